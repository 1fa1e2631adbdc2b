"""A query's life in a real browser: a monitor raises it on an item, a coordinator answers
with a correction (and its reason), and the monitor closes it."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from ecrf.capture.models import ItemValue
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.review.models import Query
from ecrf.studies import store as studies
from tests.browser.conftest import ARTIFACTS
from tests.browser.session import sign_in
from tests.capture.capture_setup import LOADER, actor_for
from tests.review.review_setup import REVIEW_STUDY, demog, save, start, subject_at

REVIEW = "/studies/REVIEW/subjects/S01-001/events/SCREEN/1/forms/VITALS/review"


def sign_out(page: Page) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()


def prepare(live_server, live_user) -> None:
    live_user("mona", role="monitor", study="REVIEW", site="S01", full_name="Mona Monitor")
    crc = live_user("clara", role="coordinator", study="REVIEW", site="S01",
                    full_name="Clara Coord")
    with live_server.app.app_context():
        studies.load_folder(db.session, LOADER, REVIEW_STUDY)
        db.session.commit()
        study = studies.require_study(db.session, "REVIEW")
        subject = subject_at(study, "S01-001")
        actor = actor_for(crc)
        start(actor, subject)
        assert save(actor, subject, complete=True).status == "complete"
        save(actor, subject, "DEMOG", demog(), complete=True)
        db.session.remove()


@pytest.mark.usefixtures("wired_capture")
def test_monitor_raises_coordinator_corrects_monitor_closes(page, live_server, live_user):
    prepare(live_server, live_user)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error"
            and not m.location.get("url", "").endswith("/favicon.ico") else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    # The monitor raises a query on the weight from the form's review page.
    sign_in(page, "mona")
    page.goto(REVIEW)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Vital signs")
    page.get_by_role("link", name="Raise a query on Weight").click()
    page.get_by_label("Question for the site").fill("The source document says 75.2 kg.")
    with page.expect_navigation():
        page.get_by_role("button", name="Raise the query").click()
    assert urlsplit(page.url).path == REVIEW
    expect(page.get_by_role("status").first).to_contain_text("was raised")
    weight_row = page.get_by_role("row", name="Weight")
    expect(weight_row).to_contain_text("Open")
    sign_out(page)

    # The coordinator finds it on the dashboard and answers with a correction.
    sign_in(page, "clara")
    page.goto("/studies/REVIEW/dashboard")
    answer_panel = page.get_by_role("region", name="Queries to answer")
    expect(answer_panel).to_contain_text("The source document says 75.2 kg.")
    with page.expect_navigation():
        answer_panel.get_by_role("link").first.click()
    expect(page.locator("#current-value")).to_contain_text("72.5 kg")
    page.get_by_label("Your answer").fill("Transcription error, corrected.")
    page.get_by_label("Corrected value").fill("75.2")
    page.get_by_label("Reason for change").fill("transcription error")
    with page.expect_navigation():
        page.get_by_role("button", name="Send the answer").click()
    expect(page.get_by_role("status").first).to_contain_text("correction were recorded")
    expect(page.locator("#current-value")).to_contain_text("75.2 kg")
    expect(page.locator(".query-thread")).to_contain_text("Correction, audit row")
    sign_out(page)

    # The monitor reviews the answer and closes the query.
    sign_in(page, "mona")
    page.goto("/studies/REVIEW/queries?status=answered")
    with page.expect_navigation():
        page.get_by_role("link", name="#1").click()
    expect(page.locator(".query-thread")).to_contain_text("Transcription error, corrected.")
    page.get_by_label("Closing note (optional)").fill("Matches the source now.")
    with page.expect_navigation():
        page.get_by_role("button", name="Close the query").click()
    expect(page.get_by_role("heading", level=1).locator("..")).to_contain_text("Closed")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "query-closed.png"), full_page=True)
    page.goto(REVIEW)
    expect(page.get_by_role("row", name="Weight")).to_contain_text("75.2 kg")
    assert problems == [], problems

    with live_server.app.app_context():
        query = db.session.scalar(select(Query))
        assert query.status == "closed"
        assert [m.status_to for m in query.messages] == ["open", "answered", None, "closed"]
        weight = db.session.scalar(select(ItemValue.value).where(
            ItemValue.item_oid == "WEIGHT"))
        assert weight == "75.2"
        change = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "item.changed"))
        assert change.reason == "transcription error" and change.username == "clara"
        link = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "query.correction_linked"))
        assert json.loads(link.details)["query_id"] == query.id
        assert json.loads(link.details)["audit_seq"] == change.seq
        db.session.remove()
