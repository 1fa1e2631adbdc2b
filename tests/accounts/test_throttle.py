"""Per-address throttling of failed sign-ins (and of unknown API tokens) with a doubling
back-off, answered 429 without checking any password; device cookies that keep the real
user out of reach of an attacker's lockout."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from ecrf.accounts import throttle
from ecrf.accounts.devices import COOKIE_NAME
from ecrf.accounts.models import LoginThrottle, User
from ecrf.accounts.users import signing_locked_out
from ecrf.core.audit.models import AuditEvent
from ecrf.core.base import utcnow
from ecrf.core.extensions import db
from tests.api import API, bearer, token_for
from tests.conftest import PASSWORD, sign_in

ATTACKER = "203.0.113.66"
ELSEWHERE = "198.51.100.7"
WRONG = "Not-The-Password-1"
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
POLICY = throttle.ThrottlePolicy(threshold=5, window=dt.timedelta(minutes=15),
                                 base_seconds=15, max_seconds=900)


@pytest.mark.parametrize("failures, seconds", [
    (0, None), (1, None), (4, None), (5, 15), (6, 30), (7, 60), (8, 120), (9, 240),
    (10, 480), (11, 900), (12, 900), (40, 900), (10**6, 900),
])
def test_the_wait_doubles_from_the_threshold_up_to_the_cap(failures, seconds):
    delay = POLICY.delay(failures)
    assert (delay.total_seconds() if delay else None) == seconds


@pytest.mark.parametrize("config, expected", [
    ({}, throttle.ThrottlePolicy()),
    ({"LOGIN_THROTTLE_THRESHOLD": 3, "LOGIN_THROTTLE_WINDOW_MINUTES": 5,
      "LOGIN_THROTTLE_BASE_SECONDS": 2, "LOGIN_THROTTLE_MAX_SECONDS": 60},
     throttle.ThrottlePolicy(3, dt.timedelta(minutes=5), 2, 60)),
])
def test_the_policy_comes_from_the_configuration(config, expected):
    assert throttle.policy_from_config(config) == expected


@pytest.mark.parametrize("address, counted", [
    ("203.0.113.66", "203.0.113.66"),
    (" 203.0.113.66 ", "203.0.113.66"),
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),        # same subscriber, same count
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ("::ffff:203.0.113.66", "203.0.113.66"),          # IPv4 seen through an IPv6 socket
    ("::1", "::/64"),
    (None, "unknown"),
    ("", "unknown"),
    ("not-an-address", "not-an-address"),
    ("x" * 400, "x" * 140),
])
def test_the_unit_counted_is_the_address_or_its_ipv6_64(address, counted):
    assert throttle.client_network(address) == counted
    assert len(throttle.login_key(address)) <= 160


def _fail(key: str, times: int, at: dt.datetime) -> int:
    wait = 0
    for _ in range(times):
        wait = throttle.register_failure(db.session, key, POLICY, now=at)
    db.session.commit()
    return wait


def test_counts_are_kept_per_key_and_restart_after_a_quiet_window(app):
    key = throttle.login_key(ATTACKER)
    assert _fail(key, 4, T0) == 0
    assert throttle.seconds_to_wait(db.session, key, T0) == 0
    assert _fail(key, 1, T0) == 15
    assert throttle.seconds_to_wait(db.session, key, T0) == 15
    assert throttle.seconds_to_wait(db.session, key, T0 + dt.timedelta(seconds=14.2)) == 1
    assert throttle.seconds_to_wait(db.session, key, T0 + dt.timedelta(seconds=15)) == 0
    # the next failure within the window doubles the wait; other keys are untouched
    assert _fail(key, 1, T0 + dt.timedelta(seconds=20)) == 30
    assert throttle.seconds_to_wait(db.session, throttle.login_key(ELSEWHERE), T0) == 0
    assert throttle.seconds_to_wait(db.session, throttle.api_key(ATTACKER), T0) == 0
    # after a pause longer than the window the count starts again at one
    later = T0 + dt.timedelta(minutes=40)
    assert _fail(key, 1, later) == 0
    assert db.session.get(LoginThrottle, key).failures == 1


def _block_expired(key: str) -> None:
    """As if the address had waited out its current block."""
    db.session.execute(update(LoginThrottle).where(LoginThrottle.key == key)
                       .values(blocked_until=utcnow() - dt.timedelta(seconds=1)))
    db.session.commit()


def test_an_address_waits_after_five_failures_with_429_and_the_wait(client, make_user,
                                                                   monkeypatch):
    make_user("admin", role="admin")
    for _ in range(4):
        assert sign_in(client, "admin", WRONG, address=ATTACKER).status_code == 200
    fifth = sign_in(client, "admin", WRONG, address=ATTACKER)
    assert fifth.status_code == 200  # checked and failed; from now on the address waits
    checked = []
    from ecrf.accounts import users

    monkeypatch.setattr(users, "verify_password", lambda *a: checked.append(a) or False)
    refused = sign_in(client, "admin", PASSWORD, address=ATTACKER)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "15"
    assert b"Too many failed sign-in attempts from this network address. Wait 15 seconds" \
        in refused.data
    assert checked == []  # no password was checked (cheap, and no oracle while waiting)
    throttled = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "login.throttled")).all()
    assert len(throttled) == 1 and ATTACKER in throttled[0].details
    # waiting out the block gives one more try; its failure doubles the wait
    _block_expired(throttle.login_key(ATTACKER))
    monkeypatch.undo()
    again = sign_in(client, "admin", WRONG, address=ATTACKER)
    assert again.status_code == 200
    assert sign_in(client, "admin", WRONG, address=ATTACKER).headers["Retry-After"] == "30"


def test_unknown_usernames_count_too(client):
    for name in ("a1", "a2", "a3", "a4", "a5"):
        sign_in(client, name, WRONG, address=ATTACKER)
    assert sign_in(client, "a6", WRONG, address=ATTACKER).status_code == 429


def test_a_success_does_not_wipe_the_address_count(client, make_user):
    # Otherwise an attacker holding one account could launder its failed guesses.
    make_user("mallory", role="coordinator", site="S01")
    for _ in range(4):
        sign_in(client, "victim", WRONG, address=ATTACKER)
    assert sign_in(client, "mallory", address=ATTACKER).status_code == 302
    assert db.session.get(LoginThrottle, throttle.login_key(ATTACKER)).failures == 4


def test_a_throttled_address_does_not_hold_up_anyone_else(app_factory):
    app = app_factory(LOGIN_THROTTLE_THRESHOLD=2)
    with app.app_context():
        _user("carol")
        client = app.test_client()
        for _ in range(3):
            sign_in(client, "nobody", WRONG, address=ATTACKER)
        assert sign_in(client, "nobody", WRONG, address=ATTACKER).status_code == 429
        assert sign_in(client, "carol", address=ELSEWHERE).status_code == 302


def _user(username: str) -> User:
    from ecrf.accounts.passwords import hash_password

    user = User(username=username, full_name=f"Test {username}",
                password_hash=hash_password(PASSWORD), must_change_password=False,
                active=True, failed_logins=0)
    db.session.add(user)
    db.session.commit()
    return user


def test_an_attacker_hammering_admin_does_not_lock_the_real_admin_out(app, make_user):
    make_user("admin", role="admin")
    real = app.test_client()
    # the real administrator signed in from this browser before: it holds a device cookie
    assert sign_in(real, "admin", address=ELSEWHERE).status_code == 302
    assert real.get_cookie(COOKIE_NAME) is not None
    real.post("/logout")

    attacker = app.test_client()
    answers = [sign_in(attacker, "admin", WRONG, address=ATTACKER).status_code
               for _ in range(20)]
    assert answers == [200] * 5 + [429] * 15
    admin = db.session.scalar(select(User).where(User.username == "admin"))
    assert admin.locked_until is not None  # locked against browsers it was never seen on

    # a fresh browser elsewhere is refused while the account is locked (the generic message)
    stranger = app.test_client()
    refused = sign_in(stranger, "admin", address=ELSEWHERE)
    assert refused.status_code == 200 and b"Sign-in failed" in refused.data
    # the real administrator's browser signs in, and the lock stays for the others
    response = sign_in(real, "admin", address=ELSEWHERE)
    assert response.status_code == 302 and real.get("/").status_code == 200
    db.session.refresh(admin)
    assert admin.locked_until is not None
    success = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "login.succeeded").order_by(AuditEvent.seq.desc())).first()
    assert '"known_device": true' in success.details
    # the lock the attacker caused neither stops the administrator's signatures nor ends
    # their session
    assert admin.lock_source == "login"
    assert signing_locked_out(db.session, admin, utcnow()) is False
    db.session.commit()
    assert real.get("/").status_code == 200


@pytest.mark.parametrize("source, minutes_left, locked", [
    ("login", 10, False),         # guessers on the sign-in page: the session may sign
    ("signature", 10, True),      # the signed-in user's own wrong signing passwords
    ("token_resume", 10, True),
    (None, 10, True),             # a lock from before its source was recorded
    ("signature", -1, False),     # expired
    (None, None, False),
])
def test_which_locks_stop_signing(app, make_user, source, minutes_left, locked):
    user = make_user("ivan", role="coordinator", site="S01")
    user.lock_source = source
    user.locked_until = (utcnow() + dt.timedelta(minutes=minutes_left)
                         if minutes_left is not None else None)
    db.session.commit()
    assert signing_locked_out(db.session, user, utcnow()) is locked


def test_a_device_cookie_is_bound_to_its_users_and_its_signature(app, make_user):
    make_user("admin", role="admin")
    make_user("other", role="coordinator", site="S01")
    browser = app.test_client()
    assert sign_in(browser, "other", address=ELSEWHERE).status_code == 302
    browser.post("/logout")
    admin = db.session.scalar(select(User).where(User.username == "admin"))
    admin.locked_until = utcnow() + dt.timedelta(minutes=15)
    db.session.commit()
    # a cookie earned by another user does not open the locked admin account
    assert sign_in(browser, "admin", address=ELSEWHERE).status_code == 200
    # nor does a forged or altered cookie
    forged = app.test_client()
    forged.set_cookie(COOKIE_NAME, browser.get_cookie(COOKIE_NAME).value[:-3] + "abc")
    assert sign_in(forged, "admin", address=ELSEWHERE).status_code == 200
    forged.set_cookie(COOKIE_NAME, "x" * 2000)
    assert sign_in(forged, "admin", address=ELSEWHERE).status_code == 200


def test_a_known_device_guessing_is_throttled_and_does_not_lock_the_account(app_factory):
    app = app_factory(LOGIN_THROTTLE_THRESHOLD=3)
    with app.app_context():
        user = _user("dora")
        device = app.test_client()
        assert sign_in(device, "dora", address=ELSEWHERE).status_code == 302
        device.post("/logout")
        for n in range(3):  # three addresses, so only the device's own count adds up
            sign_in(device, "dora", WRONG, address=f"192.0.2.{n}")
        db.session.refresh(user)
        assert user.failed_logins == 0 and user.locked_until is None
        key = db.session.scalar(select(LoginThrottle.key).where(
            LoginThrottle.key.like("device:%")))
        assert throttle.seconds_to_wait(db.session, key) > 0
        # a waiting device is treated as any other browser: its failures count again
        sign_in(device, "dora", WRONG, address="192.0.2.9")
        db.session.refresh(user)
        assert user.failed_logins == 1


def test_unknown_api_tokens_are_throttled_per_address(client, make_user):
    user = make_user("alice")
    secret = token_for(user)
    other = {"environ_overrides": {"REMOTE_ADDR": ATTACKER}}
    for n in range(5):
        response = client.get(f"{API}/studies", headers=bearer(f"guess-{n}"), **other)
        assert response.status_code == 401
    refused = client.get(f"{API}/studies", headers=bearer(secret), **other)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "15"
    assert "unknown API tokens from this network address" in refused.get_json()["message"]
    # the token itself still works from its usual address
    assert client.get(f"{API}/studies", headers=bearer(secret)).status_code == 200
    # and the answer is declared in the API description
    document = client.get(f"{API}/openapi.json").get_json()
    assert document["paths"]["/studies"]["get"]["responses"]["429"] == {
        "$ref": "#/components/responses/TooManyRequests"}
    assert "Retry-After" in document["components"]["responses"]["TooManyRequests"]["headers"]


def test_a_known_but_refused_token_is_not_counted_as_a_guess(client, make_user):
    user = make_user("alice")
    user.must_change_password = True
    db.session.commit()
    secret = token_for(user)
    for _ in range(8):
        assert client.get(f"{API}/studies", headers=bearer(secret)).status_code == 401
    assert db.session.get(LoginThrottle, throttle.api_key("127.0.0.1")) is None


def test_forwarded_addresses_are_ignored_unless_the_proxy_is_configured(client):
    for n in range(5):
        client.post("/login", data={"username": "x", "password": WRONG},
                    headers={"X-Forwarded-For": f"10.9.9.{n}"})
    assert db.session.get(LoginThrottle, throttle.login_key("127.0.0.1")).failures == 5
    assert client.post("/login", data={"username": "x", "password": WRONG},
                       headers={"X-Forwarded-For": "10.9.9.99"}).status_code == 429


def test_concurrent_workers_lose_no_count(app):
    """Eight workers failing at once for a new address: one row, eight failures."""
    import threading

    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with app.app_context():
                start.wait()
                throttle.register_failure(db.session, throttle.login_key("192.0.2.200"),
                                          POLICY)
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    db.session.expire_all()
    rows = db.session.scalars(select(LoginThrottle)).all()
    assert [(r.key, r.failures) for r in rows] == [("login:192.0.2.200", 8)]
    assert rows[0].blocked_until is not None  # the 5th and later failures set a wait
