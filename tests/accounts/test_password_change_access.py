"""A password change or reset ends the account's other sessions and suspends or revokes
its API tokens, as chosen on the page (or on the command line); a suspended token answers
401 saying so and its owner re-enables it with their password. Every step is audited."""

from __future__ import annotations

import json

import pytest
from flask import current_app
from sqlalchemy import select

from ecrf.accounts.models import ApiToken, User, UserSession
from ecrf.core.extensions import db
from tests.api import API, audit_rows, bearer, token_for
from tests.conftest import PASSWORD, sign_in

NEW = "Quartz-Meadow-61"


def _change(client, tokens: str | None = None, new: str = NEW):
    data = {"current": PASSWORD, "new": new, "confirm": new}
    if tokens is not None:
        data["tokens"] = tokens
    return client.post("/account/password", data=data)


def api_get(secret: str):
    """An API call from a script (its own client, not the signed-in browser)."""
    return current_app.test_client().get(f"{API}/studies", headers=bearer(secret))


def _details(action: str) -> list[dict]:
    return [json.loads(r.details) for r in audit_rows(action=action)]


def test_a_change_ends_the_other_sessions_and_keeps_this_one(app, make_user):
    user = make_user("alice", role="coordinator", site="S01")
    here, laptop, phone = app.test_client(), app.test_client(), app.test_client()
    for browser in (here, laptop, phone):
        assert sign_in(browser, "alice").status_code == 302
    response = _change(here)
    assert response.status_code == 302
    home = here.get("/")
    assert home.status_code == 200
    assert "Signed out elsewhere: 2 other sessions." in home.get_data(as_text=True)
    for browser in (laptop, phone):
        assert browser.get("/").headers["Location"].startswith("/login")
    ended = db.session.scalars(select(UserSession).where(
        UserSession.user_id == user.id, UserSession.ended_at.is_not(None))).all()
    assert sorted(s.end_reason for s in ended) == ["password_changed"] * 2
    assert _details("sessions.ended") == [{"user": "alice", "reason": "password_changed",
                                           "count": 2, "current_session_kept": True}]


def test_the_choice_is_shown_only_when_there_are_active_tokens(client, make_user):
    user = make_user("alice", role="coordinator", site="S01")
    sign_in(client, "alice")
    page = client.get("/account/password").get_data(as_text=True)
    assert 'name="tokens"' not in page
    assert "other sessions (other browsers and devices) will be signed out" in page
    token_for(user, "lab feed")
    token_for(user, "epro")
    page = client.get("/account/password").get_data(as_text=True)
    assert "You have 2 active API tokens. After the change:" in page
    assert page.count('name="tokens"') == 2
    # the default keeps the tokens recoverable
    assert '<input checked class="form-check-input" id="tokens-0" name="tokens" type="radio" ' \
        'value="suspend">' in page
    assert "Suspend my API tokens until I re-enable them" in page
    assert "Revoke my API tokens" in page


def test_tokens_are_suspended_by_default_and_answer_401_saying_why(client, make_user):
    user = make_user("alice", role="coordinator", site="S01")
    secret = token_for(user, "lab feed")
    sign_in(client, "alice")
    assert api_get(secret).status_code == 200
    assert _change(client).status_code == 302
    refused = api_get(secret)
    assert refused.status_code == 401
    message = refused.get_json()["message"]
    assert "is suspended since" in message and "re-enable it on the API tokens page" in message
    token = db.session.scalar(select(ApiToken))
    assert token.suspended_at is not None and token.revoked_at is None
    assert token.suspended_reason == "password_changed"
    assert [d["reason"] for d in _details("api.auth_failed")] == ["suspended"]
    assert [d["prefix"] for d in _details("api_token.suspended")] == [token.prefix]
    listing = client.get("/account/tokens").get_data(as_text=True)
    assert "suspended" in listing and "Re-enable" in listing


def test_tokens_are_revoked_when_chosen(client, make_user):
    user = make_user("alice", role="coordinator", site="S01")
    secrets = [token_for(user, "lab feed"), token_for(user, "epro")]
    sign_in(client, "alice")
    response = _change(client, tokens="revoke")
    assert response.status_code == 302
    assert "2 API tokens revoked." in client.get("/").get_data(as_text=True)
    for secret in secrets:
        refused = api_get(secret)
        assert refused.status_code == 401 and "was revoked on" in refused.get_json()["message"]
    assert all(t.revoked_at is not None and t.suspended_at is None
               for t in db.session.scalars(select(ApiToken)))
    assert len(audit_rows(action="api_token.revoked")) == 2
    assert audit_rows(action="api_token.suspended") == []


@pytest.mark.parametrize("choice", ["", "delete", "SUSPEND"])
def test_an_unknown_choice_is_refused_and_nothing_changes(client, make_user, choice):
    user = make_user("alice", role="coordinator", site="S01")
    token_for(user)
    sign_in(client, "alice")
    response = _change(client, tokens=choice)
    assert response.status_code == 200 and b"Not a valid choice" in response.data
    assert db.session.scalar(select(ApiToken)).suspended_at is None
    assert audit_rows(action="password.changed") == []


def test_a_refused_change_ends_nothing(app, make_user):
    user = make_user("alice", role="coordinator", site="S01")
    token_for(user)
    here, other = app.test_client(), app.test_client()
    sign_in(here, "alice")
    sign_in(other, "alice")
    assert _change(here, new="Password1234!").status_code == 200
    assert other.get("/").status_code == 200
    assert db.session.scalar(select(ApiToken)).suspended_at is None
    assert audit_rows(action="sessions.ended") == []


def test_the_owner_re_enables_a_suspended_token_with_their_password(client, make_user):
    user = make_user("alice", role="coordinator", site="S01")
    secret = token_for(user, "lab feed")
    sign_in(client, "alice")
    _change(client)
    token = db.session.scalar(select(ApiToken))
    wrong = client.post(f"/account/tokens/{token.id}/resume", data={"password": PASSWORD})
    assert wrong.status_code == 302  # the old password no longer counts
    page = client.get("/account/tokens").get_data(as_text=True)
    assert "The password is not correct: the token stays suspended." in page
    assert api_get(secret).status_code == 401
    assert [d["reason"] for d in _details("api_token.resume_failed")] == ["wrong password"]
    assert db.session.get(User, user.id).failed_logins == 1
    empty = client.post(f"/account/tokens/{token.id}/resume", data={"password": ""})
    assert empty.status_code == 302
    assert "Give your password to re-enable the token." in client.get(
        "/account/tokens").get_data(as_text=True)
    ok = client.post(f"/account/tokens/{token.id}/resume", data={"password": NEW})
    assert ok.status_code == 302
    assert "works again" in client.get("/account/tokens").get_data(as_text=True)
    assert api_get(secret).status_code == 200
    resumed = audit_rows(action="api_token.resumed")
    assert len(resumed) == 1 and resumed[0].username == "alice"
    assert resumed[0].old_value == "suspended" and resumed[0].new_value == "active"
    again = client.post(f"/account/tokens/{token.id}/resume", data={"password": NEW})
    assert again.status_code == 302
    assert "is active, not suspended" in client.get("/account/tokens").get_data(as_text=True)


def test_nobody_else_can_re_enable_a_token(client, make_user):
    owner = make_user("alice", role="coordinator", site="S01")
    token_for(owner)
    token = db.session.scalar(select(ApiToken))
    token.suspended_at = token.created_at
    db.session.commit()
    make_user("bob", role="coordinator", site="S01")
    sign_in(client, "bob")
    assert client.post(f"/account/tokens/{token.id}/resume",
                       data={"password": PASSWORD}).status_code == 404
    assert db.session.scalar(select(ApiToken)).suspended_at is not None


def test_an_admin_reset_ends_every_session_and_applies_the_choice(app, make_user):
    user = make_user("alice", role="coordinator", site="S01")
    secret = token_for(user, "lab feed")
    token_for(user, "epro")
    alice = app.test_client()
    sign_in(alice, "alice")
    admin = app.test_client()
    make_user("root", role="admin")
    sign_in(admin, "root")
    page = admin.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert "2 active API tokens:" in page
    assert "Suspend their API tokens until they re-enable them" in page
    response = admin.post(f"/admin/users/{user.id}/reset-password", data={"tokens": "revoke"})
    assert response.status_code == 302
    flashed = admin.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert "alice was signed out of 1 session(s); API tokens suspended: 0, revoked: 2." \
        in flashed
    assert "active API token" not in flashed  # no working token left: no choice shown
    assert alice.get("/").headers["Location"].startswith("/login")
    assert api_get(secret).status_code == 401
    assert _details("sessions.ended")[-1] == {"user": "alice", "reason": "password_reset",
                                              "count": 1, "current_session_kept": False}
    assert [r.username for r in audit_rows(action="api_token.revoked")] == ["root", "root"]


def test_an_admin_reset_suspends_by_default_and_refuses_an_unknown_choice(client, make_user):
    user = make_user("alice", role="coordinator", site="S01")
    token_for(user)
    make_user("root", role="admin")
    sign_in(client, "root")
    bad = client.post(f"/admin/users/{user.id}/reset-password", data={"tokens": "erase"})
    assert bad.status_code == 302
    assert "Choose whether the API tokens are suspended or revoked." in client.get(
        f"/admin/users/{user.id}").get_data(as_text=True)
    assert audit_rows(action="password.reset") == []
    assert client.post(f"/admin/users/{user.id}/reset-password").status_code == 302
    token = db.session.scalar(select(ApiToken))
    assert token.suspended_at is not None and token.suspended_reason == "password_reset"


@pytest.mark.parametrize("args, suspended, revoked", [
    ([], 1, 0),
    (["--tokens", "suspend"], 1, 0),
    (["--tokens", "revoke"], 0, 1),
])
def test_the_cli_reset_ends_sessions_and_applies_the_choice(client, runner, make_user,
                                                             args, suspended, revoked):
    user = make_user("alice", role="coordinator", site="S01")
    token_for(user)
    sign_in(client, "alice")
    result = runner.invoke(args=["users", "reset-password", "alice", *args])
    assert result.exit_code == 0, result.output
    assert (f"sessions ended: 1; API tokens suspended: {suspended}, revoked: {revoked}"
            in result.output)
    assert client.get("/").headers["Location"].startswith("/login")
    token = db.session.scalar(select(ApiToken))
    assert (token.suspended_at is not None) == bool(suspended)
    assert (token.revoked_at is not None) == bool(revoked)


def test_the_cli_refuses_an_unknown_choice(runner, make_user):
    make_user("alice", role="coordinator", site="S01")
    result = runner.invoke(args=["users", "reset-password", "alice", "--tokens", "erase"])
    assert result.exit_code != 0 and "'erase' is not one of 'suspend', 'revoke'" in result.output


def test_the_cli_lists_suspended_tokens(runner, make_user):
    user = make_user("alice")
    token_for(user)
    runner.invoke(args=["users", "reset-password", "alice"])
    assert "suspended" in runner.invoke(args=["tokens", "list", "alice"]).output
