"""The trial walk: each seed trial walked through the browser, as its people would.

A site coordinator enrols subjects and fills every form of every event they reach (values
chosen from the study definition, see tests/browser/walk/values.py), the logs (adverse
events with an SAE, medications, deviations, transplant, death, end of study), in every
repeating group rows added, edited and removed with reasons (the counts grid's through its
line menu), a correction with its reason; the investigator signs; the
monitor queries and verifies; the data manager reads the escalation board, locks and
exports. Each person has their own browser context. The walk then checks the subject page
(status, schedule), the ODM export and the casebook PDF for values typed on the way.

Only setup goes around the pages: the study is loaded from forms/, the people are created
with their grants, and DEXAML-03 gets its randomization list, as an administrator does
with the command line. Run one trial at a time:

    pytest tests/browser/test_trial_walk.py -k UCMSCEXO
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from ecrf.accounts.models import RoleGrant
from ecrf.allocation import generate_list
from ecrf.core import PROJECT_ROOT, Actor, db
from ecrf.crf import load_study
from ecrf.studies import Site, load_folder, require_study
from tests.browser.conftest import ARTIFACTS
from tests.browser.walk.clock import WALK_CONFIG, ServerClock
from tests.browser.walk.flow import Walk
from tests.browser.walk.stories import STORIES

LOADER = Actor(user_id=None, username="test-loader")
RANDOMIZATION_SEED = "walk-8"  # TLS-101 (intensive, relapse) gets DEX, TLS-102 CTRL
# Each trial is walked in its sites' language: Wuhan in Chinese, Toulouse in French.
TRIALS = [
    pytest.param("UCMSCEXO", "ucmscexo", "WUH", "zh_Hans", id="UCMSCEXO"),
    pytest.param("DEXAML03", "dexaml03", "TLS", "fr", id="DEXAML03"),
]
# Set to a folder to keep screenshots of a few pages of the walk (subject, form, queries).
SCREENSHOTS = os.environ.get("ECRF_WALK_SCREENSHOTS")
# The walk's sites as the demo installs them: each one's name, time zone and country.
SITES = {"WUH": ("Wuhan Union Hospital", "Asia/Shanghai", "CN"),
         "TLS": ("CHU de Toulouse", "Europe/Paris", "FR")}
PEOPLE = {  # walk role -> (username, role, full name, site-bound)
    "crc": ("crc", "coordinator", "Chloe Coordinator", True),
    "inv": ("inv", "investigator", "Ines Investigator", True),
    "mon": ("mon", "monitor", "Marc Monitor", False),
    "dm": ("dm", "data_manager", "Dana Data-Manager", False),
}


@pytest.fixture
def live_server_config() -> dict:
    # Exports run on the web process's job thread, as in a single-server installation;
    # sessions and passwords outlive the months the walk's clock moves on.
    return {"WTF_CSRF_ENABLED": True, "JOBS_IN_PROCESS": True, **WALK_CONFIG}


def _setup(live_server, live_user, oid: str, folder: str, site: str
           ) -> tuple[dict[str, str], str]:
    with live_server.app.app_context():
        load_folder(db.session, LOADER, PROJECT_ROOT / "forms" / folder)
        name, timezone, country = SITES[site]
        db.session.add(Site(code=site, name=name, timezone=timezone, country=country,
                            active=True))
        db.session.commit()
    users = {}
    for name, (username, role, full_name, at_site) in PEOPLE.items():
        if at_site:
            live_user(username, role=role, study=oid, site=site, full_name=full_name)
        else:
            user = live_user(username, full_name=full_name)
            with live_server.app.app_context():
                study = require_study(db.session, oid)
                db.session.add(RoleGrant(user_id=user.id, role=role, study_id=study.id,
                                         site_id=None))
                db.session.commit()
        users[name] = username
    with live_server.app.app_context():
        study = require_study(db.session, oid)
        if load_study(PROJECT_ROOT / "forms" / folder).definition.randomization is not None:
            # The production list, as the data manager generates it with `ecrf` commands.
            generate_list(db.session, LOADER, study, seed=RANDOMIZATION_SEED, per_stratum=12,
                          name="Walk production list")
            db.session.commit()
        timezone = db.session.scalar(sa.select(Site.timezone).where(Site.code == site))
        db.session.remove()
    return users, timezone


@pytest.fixture
def walk_for(browser, live_server, live_user, monkeypatch, record_property, request):
    made: list[Walk] = []

    def make(oid: str, folder: str, site: str, language: str) -> Walk:
        users, timezone = _setup(live_server, live_user, oid, folder, site)
        walk = Walk(browser, live_server, oid, site, users, ServerClock(monkeypatch, timezone),
                    language=language)
        made.append(walk)
        return walk

    started = time.perf_counter()
    yield make
    # How long the walk took and how fast its pages were, passed or failed.
    elapsed = time.perf_counter() - started
    report = getattr(request.node, "rep_call", None)
    for walk in made:
        summary = walk.timings.summary()
        record_property("walk_seconds", round(elapsed, 1))
        record_property("page_timings", summary)
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\n{walk.study_oid} walk: {elapsed:.1f}s; {summary}")
    for walk in made:
        if report is not None and report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            for name, role in walk.roles.items():
                if role.page.is_closed():
                    continue
                try:
                    role.page.screenshot(
                        path=str(ARTIFACTS / f"walk-{walk.study_oid}-{name}.png"),
                        full_page=True)
                except Exception as exc:  # a broken page must not hide the failure
                    print(f"screenshot of {name} failed: {exc}")
        walk.close()


@pytest.mark.parametrize(("oid", "folder", "site", "language"), TRIALS)
def test_trial_walk(walk_for, oid, folder, site, language):
    walk = walk_for(oid, folder, site, language)
    STORIES[oid](walk)
    if SCREENSHOTS:
        _screenshots(walk, Path(SCREENSHOTS))
    assert walk.problems == [], walk.problems
    # Every page the walk's people saw spoke their language: no English application string.
    assert walk.untranslated == {}, "\n".join(
        f"{phrase!r} on {url}" for phrase, url in walk.untranslated.items())


def _screenshots(walk: Walk, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    key = {"UCMSCEXO": "WUH-101", "DEXAML03": "TLS-101"}[walk.study_oid]
    form = {"UCMSCEXO": "SCREEN/1/forms/VS", "DEXAML03": "SCREEN/1/forms/VS"}[walk.study_oid]
    base = f"/studies/{walk.study_oid}"
    pages = {"subject": f"{base}/subjects/{key}", "form": f"{base}/subjects/{key}/events/{form}",
             "queries": f"{base}/queries"}
    role = walk.role("crc")
    for name, path in pages.items():
        role.visit(path)
        role.page.screenshot(path=str(folder / f"walk-{walk.study_oid}-{name}.png"),
                             full_page=True)
