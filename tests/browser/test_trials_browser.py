"""Both seed trials, as defined in forms/, served by the whole app and walked in Chromium
by a site investigator: the study page, the dashboard, the subject matrix, the subject
page, starting the first event and opening its first form, and the subject's review and
safety pages."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from ecrf.capture import enrol_subject
from ecrf.core import PROJECT_ROOT, Actor, db
from ecrf.studies import get_site, load_folder, require_study
from tests.browser.session import sign_in

LOADER = Actor(user_id=None, username="test-loader")
TRIALS = [
    pytest.param("DEXAML03", "dexaml03", "TLS", "DEXAML-03", id="DEXAML03"),
    pytest.param("UCMSCEXO", "ucmscexo", "WUH", "UCMSC-Exo", id="UCMSCEXO"),
]


def visit(page: Page, path: str) -> None:
    response = page.goto(path)
    assert response is not None and response.status == 200, (path, response and response.status)


@pytest.mark.parametrize(("oid", "folder", "site", "name"), TRIALS)
def test_an_investigator_walks_the_seed_trial_through_every_area(page, live_server, live_user,
                                                                 oid, folder, site, name):
    with live_server.app.app_context():
        load_folder(db.session, LOADER, PROJECT_ROOT / "forms" / folder)
        db.session.commit()
    live_user("inv", role="investigator", study=oid, site=site, full_name="Ines Investigator")
    key = f"{site}-101"
    with live_server.app.app_context():
        study = require_study(db.session, oid)
        enrol_subject(db.session, LOADER, study, get_site(db.session, site), key,
                      dt.date.today())
        db.session.commit()
        db.session.remove()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    sign_in(page, "inv")
    base = f"/studies/{oid}"
    visit(page, base)
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    visit(page, f"{base}/dashboard")
    expect(page.get_by_text("Forms awaiting my signature")).to_be_visible()
    visit(page, f"{base}/subjects")
    expect(page.get_by_role("link", name=key)).to_be_visible()

    visit(page, f"{base}/subjects/{key}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(key)
    event_links = page.locator(f"a[href^='{base}/subjects/{key}/events/']")
    assert event_links.count() > 0
    with page.expect_navigation():
        event_links.first.click()
    assert "/events/" in urlsplit(page.url).path
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Start", exact=True).click()
    expect(page.get_by_text("The event is started: enter its forms.")).to_be_visible()
    form_links = page.locator("a[href*='/forms/']")
    assert form_links.count() > 0
    with page.expect_navigation():
        form_links.first.click()
    assert "/forms/" in urlsplit(page.url).path
    expect(page.get_by_role("heading", level=1)).to_be_visible()

    visit(page, f"{base}/subjects/{key}/review")
    visit(page, f"{base}/subjects/{key}/safety")
    assert problems == []
