"""Sign-in, lockout, password rules, session limits and sign-out."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from ecrf.accounts.models import User, UserSession
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from tests.conftest import PASSWORD, sign_in

GENERIC = "Sign-in failed. Check your username and password."


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def test_login_page_renders(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert b'name="username"' in response.data and b'autocomplete="current-password"' in response.data


def test_successful_login_redirects_home_and_is_audited(client, make_user):
    user = make_user("alice", role="coordinator", site="S01")
    response = sign_in(client, "alice")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200 and b"Test alice" in home.data
    assert "login.succeeded" in actions()
    assert db.session.get(User, user.id).last_login_at is not None


@pytest.mark.parametrize("username,password", [
    ("alice", "wrong-password-1A"),   # existing user, wrong password
    ("nobody", "wrong-password-1A"),  # unknown user
    ("ALICE ", "wrong-password-1A"),  # normalised name, wrong password
])
def test_failed_login_gives_one_generic_message(client, make_user, username, password):
    make_user("alice", role="coordinator", site="S01")
    response = sign_in(client, username, password)
    assert response.status_code == 200
    assert GENERIC.encode() in response.data
    assert b"does not exist" not in response.data and b"unknown" not in response.data.lower()
    assert "login.failed" in actions()


def test_username_is_case_insensitive(client, make_user):
    make_user("alice", role="coordinator", site="S01")
    assert sign_in(client, "  Alice ").status_code == 302


def test_lockout_after_five_failures_and_same_message(client, make_user):
    make_user("bob", role="coordinator", site="S01")
    for _ in range(4):
        assert GENERIC.encode() in sign_in(client, "bob", "nope-Nope-1234").data
    assert db.session.scalar(select(User).where(User.username == "bob")).locked_until is None
    fifth = sign_in(client, "bob", "nope-Nope-1234")
    assert GENERIC.encode() in fifth.data
    user = db.session.scalar(select(User).where(User.username == "bob"))
    db.session.refresh(user)
    assert user.locked_until is not None
    assert "account.locked" in actions()
    # the right password is refused while locked, with the very same message (from another
    # address: this one now waits, see test_throttle.py)
    locked = sign_in(client, "bob", PASSWORD, address="10.1.1.1")
    assert locked.status_code == 200 and GENERIC.encode() in locked.data
    assert actions()[-1] == "login.refused"


def test_lock_expires_after_the_configured_minutes(client, make_user):
    user = make_user("carol", role="coordinator", site="S01")
    user.locked_until = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    db.session.commit()
    assert sign_in(client, "carol").status_code == 302


def test_lockout_threshold_is_configurable(app_factory):
    app = app_factory(LOCKOUT_THRESHOLD=2)
    with app.app_context():
        db.session.add(User(username="dan", full_name="Dan", password_hash="x", must_change_password=False,
                            active=True, failed_logins=0))
        db.session.commit()
        client = app.test_client()
        sign_in(client, "dan", "bad-Password-99")
        sign_in(client, "dan", "bad-Password-99")
        assert db.session.scalar(select(User).where(User.username == "dan")).locked_until is not None


def test_success_resets_failure_count(client, make_user):
    make_user("erin", role="coordinator", site="S01")
    for _ in range(3):
        sign_in(client, "erin", "nope-Nope-1234")
    assert sign_in(client, "erin").status_code == 302
    assert db.session.scalar(select(User).where(User.username == "erin")).failed_logins == 0


def test_disabled_account_cannot_sign_in(client, make_user):
    user = make_user("frank", role="coordinator", site="S01")
    user.active = False
    db.session.commit()
    response = sign_in(client, "frank")
    assert response.status_code == 200 and GENERIC.encode() in response.data


def test_forced_password_change_at_first_login(client, make_user):
    make_user("gina", role="coordinator", site="S01", must_change=True)
    sign_in(client, "gina")
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/password")
    weak = client.post("/account/password", data={"current": PASSWORD, "new": "short", "confirm": "short"})
    assert b"at least 12 characters" in weak.data
    contains = client.post("/account/password", data={
        "current": PASSWORD, "new": "Gina-Password-77", "confirm": "Gina-Password-77"})
    assert b"must not contain the username" in contains.data
    wrong = client.post("/account/password", data={
        "current": "not-it-At-all-1", "new": "Fresh-Secret-2030", "confirm": "Fresh-Secret-2030"})
    assert b"current password is not correct" in wrong.data
    ok = client.post("/account/password", data={
        "current": PASSWORD, "new": "Fresh-Secret-2030", "confirm": "Fresh-Secret-2030"})
    assert ok.status_code == 302
    assert client.get("/").status_code == 200
    assert "password.changed" in actions()


def test_expired_password_must_be_changed(client, make_user):
    user = make_user("hank", role="coordinator", site="S01")
    user.password_changed_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=181)
    db.session.commit()
    sign_in(client, "hank")
    assert client.get("/").headers["Location"].endswith("/account/password")


def test_password_age_limit_can_be_disabled(app_factory):
    app = app_factory(PASSWORD_MAX_AGE_DAYS=0)
    with app.app_context():
        from ecrf.accounts.passwords import hash_password

        db.session.add(User(username="ivy", full_name="Ivy", password_hash=hash_password(PASSWORD),
                            must_change_password=False, active=True, failed_logins=0,
                            password_changed_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))
        db.session.commit()
        client = app.test_client()
        sign_in(client, "ivy")
        assert client.get("/").status_code == 200


def _age_session(minutes_idle: float = 0, hours_old: float = 0):
    live = db.session.scalars(select(UserSession)).all()[-1]
    now = dt.datetime.now(dt.UTC)
    live.last_seen_at = now - dt.timedelta(minutes=minutes_idle)
    live.created_at = now - dt.timedelta(hours=hours_old)
    db.session.commit()
    return live


def test_idle_timeout_signs_out(client, make_user):
    make_user("jack", role="coordinator", site="S01")
    sign_in(client, "jack")
    assert client.get("/").status_code == 200
    _age_session(minutes_idle=31)
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert b"session expired" in client.get("/login").data
    assert db.session.scalars(select(UserSession)).all()[-1].end_reason == "idle_timeout"


def test_activity_within_idle_limit_keeps_session(client, make_user):
    make_user("kate", role="coordinator", site="S01")
    sign_in(client, "kate")
    _age_session(minutes_idle=29)
    assert client.get("/").status_code == 200


def test_absolute_timeout_even_when_active(client, make_user):
    make_user("liam", role="coordinator", site="S01")
    sign_in(client, "liam")
    _age_session(minutes_idle=0, hours_old=12.01)
    assert client.get("/").status_code == 302
    assert db.session.scalars(select(UserSession)).all()[-1].end_reason == "absolute_timeout"


def test_logout_ends_the_server_side_session(client, make_user):
    make_user("mia", role="coordinator", site="S01")
    sign_in(client, "mia")
    cookie = client.get_cookie("ecrf_session").value
    response = client.post("/logout")
    assert response.status_code == 302
    assert client.get("/").status_code == 302
    # replaying the old cookie does not bring the session back
    client.set_cookie("ecrf_session", cookie)
    assert client.get("/").status_code == 302
    assert "logout" in actions()


def test_logout_requires_post(client, make_user):
    make_user("ned", role="coordinator", site="S01")
    sign_in(client, "ned")
    assert client.get("/logout").status_code == 405


def test_disabling_a_user_ends_their_sessions(client, app, make_user):
    make_user("olga", role="coordinator", site="S01")
    sign_in(client, "olga")
    assert client.get("/").status_code == 200
    runner = app.test_cli_runner()
    assert runner.invoke(args=["users", "disable", "olga"]).exit_code == 0
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("target,expected", [
    ("/account", "/account"),
    ("https://evil.example/", "/"),
    ("//evil.example/x", "/"),
])
def test_next_parameter_is_only_followed_within_the_site(client, make_user, target, expected):
    make_user("pia", role="coordinator", site="S01")
    response = client.post(f"/login?next={target}", data={"username": "pia", "password": PASSWORD})
    assert response.headers["Location"] == expected
