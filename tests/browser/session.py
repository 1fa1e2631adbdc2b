"""Signing in through the login page, as every browser test starts."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page

from tests.conftest import PASSWORD


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_label("Password").press("Enter")
    assert urlsplit(page.url).path == "/"
