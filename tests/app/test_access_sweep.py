"""A subject outside the user's sites answers exactly like a subject that does not exist.

Every route of the app and the API that takes a subject key is called, by every method it
accepts, for a real subject of site S02 and for a key that exists nowhere, as users whose
grants are all at site S01 (an admin with a site grant included): both answers must be the
same 404 (or, for a route the user's role may not use at all, the same 403), never a 200 or
a 500, so no answer tells a subject of another site from one that does not exist.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from werkzeug.routing import Rule

from ecrf.accounts import access
from ecrf.accounts.models import RoleGrant
from ecrf.accounts.permissions import ROUTES, Allow
from ecrf.accounts.roles import Role
from ecrf.core.extensions import db
from ecrf.studies.models import Site, Study
from tests.allocation.test_randomization import add_subject, load
from tests.api import bearer, token_for
from tests.capture.capture_setup import enrol, load_capture_study
from tests.conftest import sign_in
from tests.safety.safety_setup import load_safety_study

# A real study per area, each with a subject at S02 and the values its URLs take.
STUDIES = {
    "CAPTURE": {"event_oid": "SCREEN", "form_oid": "VITALS"},
    "SAFETY": {"event_oid": "SCREEN", "form_oid": "LAB"},
    "ALLOCR": {"event_oid": "SCREEN", "form_oid": "RAND"},
}
OTHER_SITE_KEY = "S02-001"
OWN_KEY = "S01-001"
MISSING_KEY = "S09-999"


def subject_rules(app) -> list[Rule]:
    return sorted((r for r in app.url_map.iter_rules() if "subject_key" in r.arguments),
                  key=lambda r: r.rule)


def url_for_rule(rule: Rule, study: str, key: str) -> str:
    values = {"study_oid": study, "subject_key": key, "repeat": 1, **STUDIES[study]}
    url = rule.rule
    for arg in rule.arguments:
        value = values.get(arg, 1)
        for prefix in ("int:", "path:", "string:", ""):
            url = url.replace(f"<{prefix}{arg}>", str(value))
    return url


@pytest.fixture
def three_studies(app, make_site, make_study):
    make_site("S01")
    make_site("S02", timezone="Asia/Shanghai")
    for study in (load_capture_study(make_study), load_safety_study(make_study)):
        enrol(study, OTHER_SITE_KEY, "S02")
        enrol(study, OWN_KEY, "S01")
    make_study("ALLOCR", sites=("S01", "S02"))
    randomized = load("allocation_randomized")
    add_subject(randomized, OTHER_SITE_KEY, site="S02")
    add_subject(randomized, OWN_KEY, site="S01")
    db.session.commit()


def sweep(app, client, user, headers: dict | None = None) -> tuple[int, int, list[str]]:
    """(requests made, pages the user's own subject opens, wrong answers) over the web
    routes, or the API ones with ``headers``. The own subject's pages show that the URLs
    reach real pages, so a 404 is the subject lookup's answer, not a malformed URL's."""
    made, opened, wrong = 0, 0, []
    for rule in subject_rules(app):
        if rule.rule.startswith("/api/") != bool(headers):
            continue
        decision = ROUTES[rule.endpoint]
        assert isinstance(decision, Allow), rule.endpoint
        for study in STUDIES:
            row = db.session.scalar(select(Study).where(Study.oid == study))
            expected = 404 if access.can(user, decision.action, row) else 403
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                body = {} if headers and method != "GET" else None
                answers = [client.open(url_for_rule(rule, study, key), method=method,
                                       headers=headers or {}, json=body).status_code
                           for key in (OTHER_SITE_KEY, MISSING_KEY)]
                made += 2
                if method == "GET" and expected == 404:
                    own = client.get(url_for_rule(rule, study, OWN_KEY), headers=headers or {})
                    opened += own.status_code == 200
                if answers != [expected, expected]:
                    wrong.append(f"{method} {url_for_rule(rule, study, '<key>')}: "
                                 f"{answers[0]} for a subject of S02, {answers[1]} for a key "
                                 f"that does not exist (expected {expected})")
    return made, opened, wrong


@pytest.mark.parametrize(("admin", "role"), [
    (False, Role.INVESTIGATOR), (False, Role.MONITOR), (True, Role.INVESTIGATOR),
    (True, Role.MONITOR),
], ids=["investigator", "monitor", "admin+investigator", "admin+monitor"])
def test_a_subject_of_another_site_answers_like_one_that_does_not_exist(
        app, client, make_user, three_studies, admin, role):
    user = make_user(role=Role.ADMIN if admin else None)
    s01 = db.session.scalar(select(Site).where(Site.code == "S01"))
    for oid in STUDIES:
        study = db.session.scalar(select(Study).where(Study.oid == oid))
        db.session.add(RoleGrant(user=user, role=role.value, study=study, site=s01))
    db.session.commit()
    app.config["LOCKOUT_THRESHOLD"] = 10**6  # the signing routes count wrong passwords
    assert sign_in(client, user.username).status_code == 302
    web_made, web_opened, web_wrong = sweep(app, client, user)
    api_made, api_opened, api_wrong = sweep(app, app.test_client(), user,
                                            bearer(token_for(user)))
    assert web_wrong + api_wrong == []
    assert web_made > 150 and api_made > 100
    assert web_opened > 15 and api_opened > 10, (web_opened, api_opened)
