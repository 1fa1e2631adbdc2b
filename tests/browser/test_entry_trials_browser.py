"""Data entry of DEXAML-03 in Chromium: rows of the AE log added, filled, saved, edited
and removed with a reason; questions inside a row shown per row; a question depending on
a number shown while typing; a fresh form without red errors; a locked form read-only
with its banner, and a lock arriving while the user types keeps what they typed.

Data is set up through the app (load the trial, enrol, start the event), not the UI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import select

from ecrf.capture import (
    GroupRow,
    ItemValue,
    Subject,
    Submission,
    enrol_subject,
    open_event,
    save_form,
)
from ecrf.core import PROJECT_ROOT, Actor, db
from ecrf.review import locks
from ecrf.studies import definition_for, get_site, load_folder, require_study
from tests.browser.session import sign_in

LOADER = Actor(user_id=None, username="dm-loader")
SHOTS = Path("/tmp/shots-entry")
BASE = "/studies/DEXAML03/subjects/TLS-101/events"


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def trial_with_event(live_server, live_user, *forms: str) -> dict[str, str]:
    """DEXAML-03 loaded, TLS-101 enrolled, the events holding ``forms`` started; the URL
    of each form. The investigator "inv" is signed in by the caller."""
    with live_server.app.app_context():
        load_folder(db.session, LOADER, PROJECT_ROOT / "forms" / "dexaml03")
        db.session.commit()
    live_user("inv", role="investigator", study="DEXAML03", site="TLS")
    urls = {}
    with live_server.app.app_context():
        study = require_study(db.session, "DEXAML03")
        subject = enrol_subject(db.session, LOADER, study, get_site(db.session, "TLS"),
                                "TLS-101", dt.date.today())
        definition = definition_for(subject.study_version)
        for form_oid in forms:
            event = definition.events_with_form(form_oid)[0].oid
            open_event(db.session, LOADER, subject, event, 1, dt.date.today())
            urls[form_oid] = f"{BASE}/{event}/1/forms/{form_oid}"
        db.session.commit()
        db.session.remove()
    return urls


def save(page: Page) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).last.click()


def test_ae_rows_are_added_filled_edited_and_removed(page, live_server, live_user):
    urls = trial_with_event(live_server, live_user, "AE")
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    sign_in(page, "inv")
    page.goto(urls["AE"])
    expect(page.get_by_text("No rows yet.")).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Add a row").click()

    # The new row can be typed in at once; its first question has the focus.
    term = page.locator("#AE_LINE-1-AETERM")
    expect(term).to_be_visible()
    expect(term).to_be_enabled()
    expect(term).to_be_focused()
    expect(page.locator(".is-invalid")).to_have_count(0)
    term.fill("Nausée")
    page.locator("#AE_LINE-1-AESTDTC-y").fill(str(dt.date.today().year))
    page.locator("#AE_LINE-1-AESTDTC-m").select_option(f"{dt.date.today().month:02d}")
    page.locator("#AE_LINE-1-AESTDTC-d").select_option("UK")
    page.locator('input[name="AE_LINE-1-AESER"][value="N"]').check()
    expect(page.locator("#wrap-AE_LINE-1-AESHOSP")).to_be_hidden()

    # A second row: its seriousness criteria follow its own answer, not row 1's.
    with page.expect_navigation():
        page.get_by_role("button", name="Add a row").click()
    expect(page.locator("#AE_LINE-1-AETERM")).to_have_value("Nausée")
    page.locator("#AE_LINE-2-AETERM").fill("Neutropénie fébrile")
    page.locator("#AE_LINE-2-AESTDTC-y").fill(str(dt.date.today().year))
    page.locator("#AE_LINE-2-AESTDTC-m").select_option("UK")
    page.locator('input[name="AE_LINE-2-AESER"][value="Y"]').check()
    expect(page.locator("#wrap-AE_LINE-2-AESHOSP")).to_be_visible()
    expect(page.locator("#wrap-AE_LINE-1-AESHOSP")).to_be_hidden()
    page.locator('input[name="AE_LINE-2-AESHOSP"][value="Y"]').check()
    page.locator('input[name="AE_LINE-1-AESER"][value="Y"]').check()
    expect(page.locator("#wrap-AE_LINE-1-AESHOSP")).to_be_visible()
    page.locator('input[name="AE_LINE-1-AESER"][value="N"]').check()
    expect(page.locator("#wrap-AE_LINE-1-AESHOSP")).to_be_hidden()
    shot(page, "ae-two-rows")
    save(page)
    expect(page.get_by_text("Saved as in progress.")).to_be_visible()
    expect(page.locator("#AE_LINE-2-AETERM")).to_have_value("Neutropénie fébrile")

    # Editing a saved value asks for the reason beside it.
    page.locator("#AE_LINE-1-AETERM").fill("Nausées")
    reason = page.locator("#reason-AE_LINE-1-AETERM")
    expect(reason).to_be_visible()
    reason.fill("faute de frappe")
    save(page)
    expect(page.locator("#AE_LINE-1-AETERM")).to_have_value("Nausées")

    # Removing row 2 needs a reason; it stays in the record as a removed row.
    page.get_by_label("Remove this row").nth(1).check()
    page.locator("#remove_reason-AE_LINE-2").fill("saisi dans le mauvais patient")
    save(page)
    expect(page.locator("#row-AE_LINE-2")).to_have_count(0)
    expect(page.get_by_text("1 removed row")).to_be_visible()
    shot(page, "ae-row-removed")
    assert problems == [], problems

    with live_server.app.app_context():
        assert db.session.scalar(select(ItemValue.value).where(
            ItemValue.item_oid == "AETERM", ItemValue.row == 1)) == "Nausées"
        removed = db.session.scalar(select(GroupRow).where(GroupRow.row == 2))
        assert removed.removed_at is not None
        assert removed.removal_reason == "saisi dans le mauvais patient"
        db.session.remove()


def test_a_question_on_a_number_appears_while_typing(page, live_server, live_user):
    urls = trial_with_event(live_server, live_user, "IND")
    sign_in(page, "inv")
    page.goto(urls["IND"])
    days = page.locator("#IND_AMSA-1-AMSADAYS")
    last_day = page.locator("#wrap-IND_AMSA-1-AMSAENDT")
    expect(last_day).to_be_hidden()
    days.press_sequentially("3")  # no change event, no "Update": typing is enough
    expect(last_day).to_be_visible()
    days.fill("")
    days.press_sequentially("0")
    expect(last_day).to_be_hidden()
    days.fill("")
    days.press_sequentially("9")  # outside the hard range 0-7: the server refuses it
    expect(last_day).to_be_hidden()
    days.fill("")
    days.press_sequentially("7")
    expect(last_day).to_be_visible()
    shot(page, "ind-number-dependent")


def test_a_fresh_consent_form_opens_without_red_errors(page, live_server, live_user):
    urls = trial_with_event(live_server, live_user, "CONSENT")
    sign_in(page, "inv")
    page.goto(urls["CONSENT"])
    expect(page.get_by_role("heading", level=1)).to_contain_text("consent")
    expect(page.locator(".alert-danger, .invalid-feedback, .is-invalid")).to_have_count(0)
    expect(page.get_by_text("The consent date is in the future.")).to_have_count(0)
    shot(page, "consent-fresh")


def test_a_locked_form_is_read_only_and_a_late_lock_keeps_the_entries(page, live_server,
                                                                     live_user):
    urls = trial_with_event(live_server, live_user, "CONSENT")
    sign_in(page, "inv")
    page.goto(urls["CONSENT"])
    page.locator('input[name="CONSENT_MAIN-1-CONSYN"][value="Y"]').check()
    page.locator("#CONSENT_MAIN-1-CONSVER").fill("v3.1")

    # A data manager locks the form while the investigator is typing.
    with live_server.app.app_context():
        subject = db.session.scalar(select(Subject).where(Subject.subject_key == "TLS-101"))
        event = urls["CONSENT"].split("/events/")[1].split("/")[0]
        result = save_form(db.session, LOADER, subject, event, 1, "CONSENT",
                           Submission(values={("CONSENT_MAIN", 1, "CONSBIO"): "Y"}),
                           base_version=None, complete=False)
        locks.lock_form(db.session, LOADER, result.form_instance, "database lock for the DSMB")
        db.session.commit()
        db.session.remove()

    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Save", exact=True).last.click()
    assert posted.value.status == 423
    banner = page.locator("#lock-banner")
    expect(banner).to_contain_text("This form is locked")
    expect(banner).to_contain_text("dm-loader")
    expect(banner).to_contain_text("database lock for the DSMB")
    expect(page.locator("#CONSENT_MAIN-1-CONSVER")).to_have_value("v3.1")
    expect(page.locator("#CONSENT_MAIN-1-CONSVER")).to_be_disabled()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    shot(page, "consent-lock-arrived")

    # Opened afresh: read-only, the banner, no Save.
    page.goto(urls["CONSENT"])
    expect(page.locator("#lock-banner")).to_contain_text(dt.date.today().isoformat())
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    expect(page.get_by_role("button", name="Save and mark complete")).to_have_count(0)
    expect(page.locator("input:not([type=hidden])")).to_have_count(0)
    shot(page, "consent-locked")
