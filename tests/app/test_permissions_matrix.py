"""Every route has an explicit permission decision, and each role gets exactly it."""

from __future__ import annotations

import pytest
from werkzeug.routing import IntegerConverter, Rule

from ecrf.accounts.permissions import ACTIONS, ROUTES, Allow, Public, SignedIn
from ecrf.accounts.roles import Role

ALL_ROLES = list(Role)


def _url(rule: Rule, user_id: int) -> str:
    values = {}
    for arg in rule.arguments:
        converter = rule._converters[arg]
        if arg == "study_oid":
            values[arg] = "TRIAL1"
        elif isinstance(converter, IntegerConverter):
            values[arg] = user_id
        elif arg == "filename":
            values[arg] = "ecrf.css"
        else:
            values[arg] = "X"
    url = rule.rule
    for arg, value in values.items():
        for prefix in ("int:", "path:", "string:", ""):
            url = url.replace(f"<{prefix}{arg}>", str(value))
    return url


def test_every_registered_route_has_a_decision(app):
    missing = sorted(
        rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint not in ROUTES
    )
    assert not missing, f"routes without a permission decision: {missing}"


def test_every_decision_names_a_real_route_and_action(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    stale = sorted(e for e in ROUTES if e not in endpoints)
    assert not stale, f"permission decisions for routes that do not exist: {stale}"
    for decision in ROUTES.values():
        if isinstance(decision, Allow):
            assert decision.action in ACTIONS
            assert decision.scope in ("system", "study")


def expected_allowed(decision, role: Role) -> bool:
    if isinstance(decision, (Public, SignedIn)):
        return True
    if decision.scope == "system":
        return role is Role.ADMIN
    return role in ACTIONS[decision.action]


@pytest.mark.parametrize("role", ALL_ROLES, ids=[r.value for r in ALL_ROLES])
def test_each_role_gets_exactly_its_decision_on_every_route(app, client, login_as, make_study,
                                                            role):
    make_study("TRIAL1", sites=("S01",))  # study routes exist for every role, admin included
    user = login_as(role, site="S01" if role.scope == "site" else None)
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("auth.logout",):
            continue  # signing out would end the walk
        decision = ROUTES[rule.endpoint]
        url = _url(rule, user.id)
        allowed = expected_allowed(decision, role)
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        for method in methods:
            if method != "GET" and allowed:
                continue  # allowed state changes are exercised by their own tests
            response = client.open(url, method=method)
            if allowed:
                assert response.status_code != 403, f"{role.value} refused {method} {url}"
            else:
                assert response.status_code == 403, (
                    f"{role.value} got {response.status_code} on {method} {url}"
                )
            checked += 1
    assert checked > 10


def test_anonymous_users_are_sent_to_login_everywhere_but_public_routes(app, client):
    for rule in app.url_map.iter_rules():
        decision = ROUTES[rule.endpoint]
        if isinstance(decision, Public) or "GET" not in rule.methods:
            continue
        response = client.get(_url(rule, 1))
        if rule.rule.startswith("/api/"):
            assert response.status_code == 401, rule.rule  # the API answers, never redirects
            continue
        assert response.status_code == 302 and "/login" in response.headers["Location"], rule.rule


def test_site_roles_require_a_site_and_study_roles_refuse_one():
    from ecrf.accounts.roles import RoleError, check_scope

    with pytest.raises(RoleError, match="per site"):
        check_scope(Role.INVESTIGATOR, study=object(), site=None)
    with pytest.raises(RoleError, match="whole study"):
        check_scope(Role.DATA_MANAGER, study=object(), site=object())
    with pytest.raises(RoleError, match="system-wide"):
        check_scope(Role.ADMIN, study=object(), site=None)
    check_scope(Role.MONITOR, study=object(), site=None)  # study-wide monitor is allowed
