"""Sign-in, sign-out, lockout and the content security policy in a real browser."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from ecrf.accounts.models import User
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from tests.browser.conftest import ARTIFACTS
from tests.conftest import PASSWORD

GENERIC = "Sign-in failed. Check your username and password."


def type_credentials(page: Page, username: str, password: str) -> None:
    """Type as a person would: the username field has focus on load, Tab, then Enter."""
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(password)
    page.keyboard.press("Enter")


def submit_login(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_label("Password").press("Enter")


def test_coordinator_signs_in_and_out(page, live_server, live_user):
    live_user("clara", role="coordinator", site="S01", full_name="Clara Dupont")
    page.goto("/login")
    expect(page).to_have_title("Sign in · ecrf")
    with page.expect_navigation():
        type_credentials(page, "clara", PASSWORD)

    assert urlsplit(page.url).path == "/"
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Clara Dupont")
    expect(page.get_by_role("navigation").get_by_role("link", name="Clara Dupont")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)

    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    assert urlsplit(page.url).path == "/login"
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    expect(page.get_by_label("Username")).to_be_visible()

    page.goto("/")
    assert urlsplit(page.url).path == "/login"
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


@pytest.fixture
def live_server_config() -> dict:
    # Every browser attempt comes from 127.0.0.1: the address waits only after the account
    # lock is shown here (the per-address back-off has its own tests, test_throttle.py).
    return {"WTF_CSRF_ENABLED": True, "LOGIN_THROTTLE_THRESHOLD": 10}


def test_five_wrong_passwords_lock_the_account_with_one_message(page, live_server, live_user):
    user = live_user("bruno", role="coordinator", site="S01")
    page.goto("/login")
    messages = []
    for attempt in range(5):
        submit_login(page, "bruno", f"Wrong-Password-{attempt}")
        assert urlsplit(page.url).path == "/login"
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text(GENERIC)
        messages.append(alert.inner_text())
    assert len(set(messages)) == 1, messages

    submit_login(page, "bruno", PASSWORD)
    assert urlsplit(page.url).path == "/login"
    expect(page.get_by_role("alert")).to_have_text(messages[0])
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)

    with live_server.app.app_context():
        locked = db.session.get(User, user.id)
        assert locked.locked_until is not None
        trail = list(db.session.scalars(
            sa.select(AuditEvent.action).where(AuditEvent.category == "security")
            .order_by(AuditEvent.seq)))
    assert trail.count("login.failed") == 5
    assert "account.locked" in trail
    assert trail[-1] == "login.refused"


def test_pages_respect_the_csp_and_stay_on_the_server(page, live_server, live_user):
    live_user("carla", role="coordinator", site="S01", full_name="Carla Rossi")
    console_errors: list[str] = []
    page_errors: list[str] = []
    requested: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))

    def record(route):
        requested.append(route.request.url)
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    page.route("**/*", record)

    page.goto("/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    submit_login(page, "carla", PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Carla Rossi")
    # ecrf.js ran (it marks <html> for progressive enhancement) and Bootstrap's CSS applied.
    expect(page.locator("html")).to_have_class("js")
    assert page.locator("nav.navbar").evaluate("el => getComputedStyle(el).display") == "flex"
    page.wait_for_load_state("networkidle")

    csp = [text for text in console_errors if "Content Security Policy" in text
           or "Content-Security-Policy" in text]
    assert csp == [], csp
    assert page_errors == [], page_errors
    assert any(urlsplit(u).path.endswith(".css") for u in requested), requested
    assert any(urlsplit(u).path.endswith(".js") for u in requested), requested
    origin = urlsplit(live_server.url)
    outside = [u for u in requested if urlsplit(u).netloc != origin.netloc]
    assert outside == [], outside
