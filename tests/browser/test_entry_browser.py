"""Data entry in a real browser: a coordinator enters a form with an error, fixes it,
later corrects a saved value with a reason, and finds the change in the item's history."""

from __future__ import annotations

import datetime as dt

from playwright.sync_api import expect
from sqlalchemy import select

from ecrf.capture import operations as capture
from ecrf.capture.models import ItemValue
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.studies import store as studies
from tests.browser.session import sign_in
from tests.capture.capture_setup import CAPTURE_STUDY, LOADER, actor_for, enrol

VITALS = "/studies/CAPTURE/subjects/S01-001/events/SCREEN/1/forms/VITALS"


def test_enter_fix_an_error_correct_with_a_reason_and_read_the_history(page, live_server,
                                                                        live_user):
    crc = live_user("clara", role="coordinator", study="CAPTURE", site="S01",
                    full_name="Clara Coord")
    with live_server.app.app_context():
        studies.load_folder(db.session, LOADER, CAPTURE_STUDY)
        db.session.commit()
        study = studies.require_study(db.session, "CAPTURE")
        subject = enrol(study, "S01-001", "S01")
        capture.open_event(db.session, actor_for(crc), subject, "SCREEN", 1,
                           dt.date(2025, 5, 2))
        db.session.commit()
        db.session.remove()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    sign_in(page, "clara")
    page.goto(VITALS)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Vital signs")
    page.locator("#VS-1-VSDT").fill("2025-05-02")
    page.get_by_label("Male", exact=True).check()
    page.locator("#VS-1-WEIGHT").fill("7250")  # a typing slip: outside the hard range
    page.locator("#VS-1-HEIGHT").fill("180")
    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).last.click()
    # the error is beside the field, and what was typed is still there
    expect(page.locator("#VS-1-WEIGHT-error")).to_be_visible()
    expect(page.locator("#VS-1-WEIGHT")).to_have_value("7250")
    expect(page.locator("#VS-1-HEIGHT")).to_have_value("180")

    page.locator("#VS-1-WEIGHT").fill("72.5")
    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).last.click()
    expect(page.get_by_role("status").first).to_be_visible()
    expect(page.locator("#VS-1-WEIGHT")).to_have_value("72.5")

    # a correction of a saved value needs a reason
    page.locator("#VS-1-WEIGHT").fill("75.2")
    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).last.click()
    reason = page.locator("#reason-VS-1-WEIGHT")
    expect(reason).to_be_visible()
    expect(page.locator("#VS-1-WEIGHT")).to_have_value("75.2")
    reason.fill("transcription error")
    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).last.click()
    expect(page.locator("#VS-1-WEIGHT")).to_have_value("75.2")

    with page.expect_navigation():
        page.get_by_role("link", name="History of Weight").click()
    history = page.locator("main")
    expect(history).to_contain_text("72.5")
    expect(history).to_contain_text("75.2")
    expect(history).to_contain_text("transcription error")
    expect(history).to_contain_text("clara")
    assert problems == [], problems

    with live_server.app.app_context():
        assert db.session.scalar(select(ItemValue.value).where(
            ItemValue.item_oid == "WEIGHT")) == "75.2"
        change = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "item.changed", AuditEvent.path.like("%/WEIGHT")))
        assert (change.old_value, change.new_value, change.reason) == (
            "72.5", "75.2", "transcription error")
        db.session.remove()
