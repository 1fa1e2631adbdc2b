"""SAE notifications through the job queue: retried with backoff against an SMTP server
that fails, a failure after the last attempt shown on the data manager's dashboard and in
`ecrf jobs list`, retry now (permission-checked, audited), the delivery state on the SAE
page, and an SAE clock that owes nothing to e-mail."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.jobs import runner as jobs
from ecrf.jobs.cli import jobs_cli
from ecrf.jobs.models import Job
from ecrf.safety import notify
from ecrf.safety import operations as safety
from ecrf.safety.models import NotificationLog, SaeReport
from tests.safety.safety_setup import actor_for, ae_row, enrol, load_safety_study, save

UTC = dt.UTC
SERIOUS = dict(AETERM="Pneumonia", AESTDTC="2025-06-10", AETOXGR="3", AESER="Y",
               AESHOSP="Y", AESAWDTC="2025-06-10 08:00", AERELEXO="unrelated",
               AERELCHM="probable", AEEXPECT="EXPECTED")
BOARD = "/studies/SAFETY/dashboard?role=data_manager"


class FlakySMTP:
    """smtplib.SMTP that refuses the connection ``failures`` times, then delivers."""

    failures = 0
    sent: list = []
    connects = 0

    def __init__(self, host, port, timeout):
        type(self).connects += 1
        if type(self).failures > 0:
            type(self).failures -= 1
            raise ConnectionRefusedError(111, "Connection refused")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def send_message(self, message):
        type(self).sent.append((message["To"], message["Subject"]))


@pytest.fixture
def smtp(app, monkeypatch):
    FlakySMTP.failures, FlakySMTP.sent, FlakySMTP.connects = 0, [], 0
    monkeypatch.setattr("smtplib.SMTP", FlakySMTP)
    app.config.update(SAE_NOTIFY="pv@example.org", MAIL_SERVER="smtp.example.org",
                      NOTIFY_MAX_ATTEMPTS=3, NOTIFY_BACKOFF_SECONDS=0)
    return FlakySMTP


@pytest.fixture
def study(app, make_study):
    return load_safety_study(make_study)


@pytest.fixture
def inv(make_user, study):
    return actor_for(make_user("inv1", role="investigator", study="SAFETY", site="S01"))


@pytest.fixture
def subject(study):
    return enrol(study, "S01-001")


def serious(inv, subject, **items) -> SaeReport:
    save(inv, subject, "AE", ae_row(1, **{**SERIOUS, **items}))
    return db.session.scalar(select(SaeReport).where(SaeReport.subject_id == subject.id))


def entry() -> NotificationLog:
    db.session.expire_all()
    return db.session.scalar(select(NotificationLog).order_by(NotificationLog.id))


def test_a_failing_smtp_is_retried_until_it_delivers(app, smtp, inv, subject):
    smtp.failures = 2
    serious(inv, subject)
    assert smtp.connects == 0  # the save queued the e-mail, it did not send it
    job = db.session.get(Job, entry().job_id)
    assert (job.kind, job.max_attempts, job.status) == ("notification", 3, "queued")
    assert jobs.work(app, once=True) == 3  # backoff 0: the retries are due at once
    found = entry()
    assert smtp.connects == 3 and smtp.sent == [("pv@example.org", found.subject)]
    assert found.sent_at is not None and found.error is None
    job = db.session.get(Job, found.job_id)
    assert (job.status, job.attempts) == ("done", 3)


def test_each_failed_attempt_is_written_on_the_notification(app, smtp, inv, subject):
    app.config["NOTIFY_BACKOFF_SECONDS"] = 60
    smtp.failures = 1
    serious(inv, subject)
    jobs.work(app, once=True)
    found = entry()
    assert found.sent_at is None and "Connection refused" in found.error
    job = db.session.get(Job, found.job_id)
    assert job.retrying and job.run_after > dt.datetime.now(UTC) + dt.timedelta(seconds=50)
    [view] = safety.subject_safety(db.session, subject).notifications[found.sae_report_id]
    assert view.state == "retrying" and view.next_attempt == job.run_after


@pytest.fixture
def failed(app, smtp, inv, subject):
    """An SAE whose notification failed its three attempts."""
    smtp.failures = 99
    report = serious(inv, subject)
    jobs.work(app, once=True)
    found = entry()
    assert db.session.get(Job, found.job_id).status == "failed"
    return report, found


def test_a_failed_notification_is_on_the_data_managers_board(client, login_as, failed):
    report, found = failed
    login_as("data_manager", study="SAFETY", username="dm.safety")
    page = client.get(BOARD).get_data(as_text=True)
    assert 'id="sae-notifications"' in page and "1 not delivered" in page
    row = page[page.index(f'id="notification-{found.id}"'):]
    row = row[:row.index("</tr>")]
    for text in ("failed", "S01-001", "New SAE", "pv@example.org", "3/3",
                 "Connection refused", "Retry now"):
        assert text in row, text


def test_the_board_says_when_every_notification_left(app, client, login_as, smtp, inv,
                                                     subject):
    serious(inv, subject)
    jobs.work(app, once=True)
    login_as("data_manager", study="SAFETY", username="dm.safety")
    page = client.get(BOARD).get_data(as_text=True)
    assert 'id="notifications-ok"' in page and "not delivered" not in page


def test_jobs_list_shows_the_failed_notification(app, failed):
    _report, found = failed
    out = app.test_cli_runner().invoke(jobs_cli, ["list", "--status", "failed"])
    assert out.exit_code == 0
    line = next(r for r in out.output.splitlines() if r.split()[0] == str(found.job_id))
    assert "notification" in line and "attempt 3/3" in line and "Connection refused" in line


def test_retry_now_from_the_board(app, client, login_as, smtp, failed):
    _report, found = failed
    login_as("data_manager", study="SAFETY", username="dm.safety")
    smtp.failures = 0
    response = client.post(f"/studies/SAFETY/safety/notifications/{found.id}/retry")
    assert response.status_code == 302 and "#sae-notifications" in response.location
    job = db.session.get(Job, found.job_id)
    assert (job.status, job.max_attempts) == ("queued", 4)
    [row] = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "notification.retry")).all()
    assert row.username == "dm.safety" and "Connection refused" in row.old_value
    assert row.study_oid == "SAFETY"
    jobs.work(app, once=True)
    assert entry().sent_at is not None
    page = client.get(BOARD).get_data(as_text=True)
    assert 'id="notifications-ok"' in page
    # Delivered: nothing left to retry.
    again = client.post(f"/studies/SAFETY/safety/notifications/{found.id}/retry",
                        follow_redirects=True)
    assert again.status_code == 200 and "already delivered" in again.get_data(as_text=True)


@pytest.mark.parametrize("role, site", [("investigator", "S01"), ("coordinator", "S01"),
                                        ("monitor", None), ("sponsor_viewer", None)])
def test_only_the_data_manager_may_retry(client, login_as, failed, role, site):
    _report, found = failed
    login_as(role, site=site, study="SAFETY", username=f"u.{role}")
    response = client.post(f"/studies/SAFETY/safety/notifications/{found.id}/retry")
    assert response.status_code == 403
    assert db.session.get(Job, found.job_id).status == "failed"


def test_retry_of_an_unknown_or_foreign_notification_is_not_found(client, login_as, failed,
                                                                  make_study):
    login_as("data_manager", study="SAFETY", username="dm.safety")
    assert client.post("/studies/SAFETY/safety/notifications/99999/retry").status_code == 404
    assert client.post("/studies/SAFETY/safety/notifications/x/retry").status_code == 404


def test_the_sae_page_shows_each_notifications_delivery(client, login_as, failed):
    report, found = failed
    login_as("investigator", site="S01", study="SAFETY", username="inv.page")
    page = client.get("/studies/SAFETY/subjects/S01-001/safety").get_data(as_text=True)
    block = page[page.index(f'id="notifications-{report.id}"'):]
    block = block[:block.index("</ul>")]
    assert "failed" in block and "attempt 3 of 3" in block and "Connection refused" in block


# --- the SAE clock owes nothing to e-mail -----------------------------------------------------


def test_the_sae_clock_does_not_depend_on_email(app, smtp, inv, subject, make_user):
    smtp.failures = 99
    report = serious(inv, subject)  # the save succeeds although SMTP is down
    aware = dt.datetime(2025, 6, 10, 6, 0, tzinfo=UTC)  # 08:00 in Paris
    assert report.awareness_at == aware
    now = aware + dt.timedelta(hours=3)
    before = safety.clock(report, now)
    assert before.due_at == aware + dt.timedelta(hours=24) and before.state == "due"
    jobs.work(app, once=True)  # every attempt fails
    db.session.refresh(report)
    assert safety.clock(report, now) == before
    assert report.submitted_at is None
    # Submitting is the investigator's act, recorded whether or not the e-mail leaves.
    submitter = actor_for(make_user("inv2", role="investigator", study="SAFETY", site="S01"))
    safety.submit_report(db.session, submitter, report, now=now)
    db.session.commit()
    jobs.work(app, once=True)
    db.session.refresh(report)
    assert report.submitted_at == now
    assert safety.clock(report, now + dt.timedelta(days=3)).state == "submitted_in_time"
    states = {n.state for n in safety.subject_safety(db.session, subject)
              .notifications[report.id]}
    assert states == {"failed"}


def test_the_clock_is_the_same_with_or_without_smtp(app, smtp, inv, study):
    first = enrol(study, "S01-001")
    smtp.failures = 99
    with_mail = serious(inv, first)
    jobs.work(app, once=True)
    app.config.update(MAIL_SERVER=None)
    second = enrol(study, "S01-002")
    without = serious(inv, second)
    jobs.work(app, once=True)
    now = dt.datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
    assert safety.clock(with_mail, now) == safety.clock(without, now)
    assert (without.awareness_at, without.submitted_at) == (with_mail.awareness_at, None)
    channels = dict(db.session.execute(select(NotificationLog.sae_report_id,
                                              NotificationLog.channel)).all())
    assert channels == {with_mail.id: "email", without.id: "log"}


def test_bad_notify_settings_do_not_block_the_save(app, smtp, inv, subject):
    app.config.update(NOTIFY_MAX_ATTEMPTS="many", NOTIFY_BACKOFF_SECONDS="soon")
    report = serious(inv, subject)
    assert report is not None
    assert db.session.get(Job, entry().job_id).max_attempts == 5
    assert notify.backoff(2) == dt.timedelta(minutes=4)
    assert db.session.scalar(select(func.count()).select_from(NotificationLog)) == 1
