"""Changing a password in a real browser: the API token choice is shown, the other
browser is signed out, this one stays signed in."""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
from playwright.sync_api import expect

from ecrf.accounts import tokens as api_tokens
from ecrf.accounts.models import ApiToken
from ecrf.core.audit import Actor
from ecrf.core.extensions import db
from tests.browser.conftest import ARTIFACTS, VIEWPORT
from tests.browser.session import sign_in
from tests.conftest import PASSWORD

NEW = "Quartz-Meadow-61"


def test_a_password_change_shows_the_token_choice_and_signs_out_the_other_browser(
        page, browser, live_server, live_user):
    user = live_user("clara", role="coordinator", site="S01", full_name="Clara Dupont")
    with live_server.app.app_context():
        api_tokens.create_token(db.session, Actor(None, "cli:test"), db.session.merge(user),
                                "lab feed", days=30)
        db.session.commit()
    other = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    laptop = other.new_page()
    try:
        sign_in(laptop, "clara")
        sign_in(page, "clara")

        page.goto("/account/password")
        choice = page.get_by_role("group", name="You have 1 active API token. After the change:")
        expect(choice).to_be_visible()
        suspend = choice.get_by_label("Suspend my API tokens until I re-enable them")
        expect(suspend).to_be_checked()
        expect(choice.get_by_label("Revoke my API tokens (they can never be used again)")) \
            .not_to_be_checked()
        page.get_by_label("Current password").fill(PASSWORD)
        page.get_by_label("New password", exact=True).fill(NEW)
        page.get_by_label("Repeat the new password").fill(NEW)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "password_change.png"), full_page=True)
        with page.expect_navigation():
            page.get_by_role("button", name="Change password").click()

        assert urlsplit(page.url).path == "/"
        expect(page.get_by_text("Your password was changed.")).to_be_visible()
        expect(page.get_by_text("Signed out elsewhere: 1 other session.")).to_be_visible()
        expect(page.get_by_text("1 API token suspended: re-enable it on the API tokens page.")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "password_changed.png"), full_page=True)

        laptop.goto("/account")
        assert urlsplit(laptop.url).path == "/login"

        page.goto("/account/tokens")
        row = page.get_by_role("row", name="lab feed")
        expect(row.get_by_text("suspended", exact=True)).to_be_visible()
        expect(row.get_by_role("button", name="Re-enable token lab feed")).to_be_visible()
    finally:
        other.close()
    with live_server.app.app_context():
        token = db.session.scalar(sa.select(ApiToken))
        assert token.suspended_at is not None and token.revoked_at is None
