"""The data manager sees an SAE notification that the mail server refused on the study
dashboard, and sends it again with Retry now."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from ecrf import capture, jobs
from ecrf.capture import Submission, enrol_subject
from ecrf.core import PROJECT_ROOT, Actor, db
from ecrf.core.audit.models import AuditEvent
from ecrf.safety import NotificationLog
from ecrf.studies import get_site, load_folder, require_study

from .test_trials_browser import sign_in, visit

LOADER = Actor(user_id=None, username="test-loader")
SHOTS = "/tmp/shots-notify"


@pytest.fixture
def live_server_config() -> dict:
    # Port 1 on the loopback refuses connections: a real SMTP failure, no mock.
    return {"WTF_CSRF_ENABLED": True, "JOBS_IN_PROCESS": False, "SAE_NOTIFY": "pv@example.org",
            "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": 1, "MAIL_TIMEOUT": 2,
            "NOTIFY_MAX_ATTEMPTS": 2, "NOTIFY_BACKOFF_SECONDS": 0}


def test_data_manager_retries_a_failed_sae_notification(page, live_server, live_user):
    app = live_server.app
    today = dt.date.today()
    with app.app_context():
        load_folder(db.session, LOADER, PROJECT_ROOT / "forms" / "dexaml03")
        db.session.commit()
    live_user("inv", role="investigator", study="DEXAML03", site="TLS")  # the site, too
    live_user("dm", role="data_manager", study="DEXAML03")
    with app.app_context():
        study = require_study(db.session, "DEXAML03")
        subject = enrol_subject(db.session, LOADER, study, get_site(db.session, "TLS"),
                                "TLS-301", today - dt.timedelta(days=30))
        capture.open_event(db.session, LOADER, subject, "AE_LOG", 1, None)
        aware = (today - dt.timedelta(days=1)).isoformat()
        values = {("AE_LINE", 1, k): v for k, v in {
            "AETERM": "Febrile neutropenia", "AESTDTC": aware, "AETOXGR": "3", "AESER": "Y",
            "AESDTH": "N", "AESLIFE": "N", "AESHOSP": "Y", "AESAWDTC": f"{aware} 08:00",
        }.items()}
        result = capture.save_form(db.session, LOADER, subject, "AE_LOG", 1, "AE",
                                   Submission(values=values, partial=True),
                                   base_version=None, complete=False)
        assert result.saved, (result.errors, result.form_errors)
        db.session.commit()
        assert jobs.work(app, once=True) >= 1  # two refused attempts
        entry = db.session.scalar(select(NotificationLog))
        assert entry is not None and entry.sent_at is None and entry.error
        db.session.remove()

    sign_in(page, "dm")
    visit(page, "/studies/DEXAML03/dashboard?role=data_manager")
    panel = page.get_by_role("region", name="SAE notifications")
    expect(panel.get_by_text("1 not delivered")).to_be_visible()
    row = panel.locator(f"#notification-{entry.id}")
    expect(row).to_contain_text("TLS-301")
    expect(row).to_contain_text("Febrile neutropenia")
    expect(row).to_contain_text("pv@example.org")
    expect(row).to_contain_text("2/2")
    expect(row).to_contain_text("Connection refused")
    panel.scroll_into_view_if_needed()
    page.screenshot(path=f"{SHOTS}/dashboard-failed.png", full_page=True)

    with page.expect_navigation():
        row.get_by_role("button", name="Retry now").click()
    expect(page.get_by_text(f"Notification {entry.id} queued again")).to_be_visible()
    page.screenshot(path=f"{SHOTS}/dashboard-retry-queued.png", full_page=True)
    with app.app_context():
        job = db.session.get(jobs.Job, entry.job_id)
        assert (job.status, job.max_attempts) == ("queued", 3)
        audited = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "notification.retry"))
        assert audited is not None and audited.username == "dm"
        # The server still refuses: the extra attempt fails and the board says so.
        jobs.work(app, once=True)
        db.session.remove()
    visit(page, "/studies/DEXAML03/dashboard?role=data_manager")
    expect(page.locator(f"#notification-{entry.id}")).to_contain_text("3/3")

    # The subject's safety page shows the notification's delivery next to its report.
    with page.expect_navigation():
        page.locator(f"#notification-{entry.id}").get_by_role("link", name="TLS-301").click()
    state = page.locator(".notification-states").first
    expect(state).to_contain_text("failed")
    expect(state).to_contain_text("attempt 3 of 3")
    expect(state).to_contain_text("pv@example.org")
    page.screenshot(path=f"{SHOTS}/sae-page.png", full_page=True)
