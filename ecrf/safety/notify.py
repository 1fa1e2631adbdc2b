"""Safety notifications: e-mail through SMTP when ``MAIL_SERVER`` is configured, otherwise
a line in the application log; every notification is kept in ``NotificationLog``.

Recipients come from the ``SAE_NOTIFY`` setting (a list, or addresses separated by commas).
``notify`` writes the log row and queues a ``notification`` job in the caller's
transaction: a rolled-back save queues (and sends) nothing, and the request never talks to
SMTP. A job worker delivers it (the web process's thread with ``JOBS_IN_PROCESS``, or
``ecrf jobs worker``) and writes the delivery time on the row; a failed delivery writes
the error and is tried again after 1, 4, 16, 64... minutes (``NOTIFY_BACKOFF_SECONDS``
base, 6 hours at most between attempts) up to ``NOTIFY_MAX_ATTEMPTS`` attempts (5), after
which the job is ``failed``. The data manager's dashboard lists failed and retrying
notifications and can retry one at once (``retry``, audited); ``ecrf jobs list --kind
notification`` shows them too.

E-mail is a courtesy to the safety desk, not the SAE record: the 24-hour clock and the
submitted state of a report come from the report's own data (``sae``), never from
whether a notification left.

Settings: ``MAIL_SERVER``, ``MAIL_PORT`` (25), ``MAIL_USE_TLS`` (STARTTLS, off),
``MAIL_USE_SSL`` (off), ``MAIL_USERNAME``/``MAIL_PASSWORD`` (optional),
``MAIL_DEFAULT_SENDER`` (``ecrf@localhost``), ``MAIL_TIMEOUT`` seconds (10), read by the
worker when it delivers (credentials are never stored in the job).
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from enum import StrEnum

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ecrf import jobs
from ecrf.capture import Subject
from ecrf.core import audit, utcnow
from ecrf.core.audit import Actor
from ecrf.jobs import Job, JobContext
from ecrf.safety.models import NotificationLog, SaeReport
from ecrf.studies import Site, Study

log = logging.getLogger(__name__)
KIND = "notification"
_SETTINGS = ("MAIL_SERVER", "MAIL_PORT", "MAIL_USE_TLS", "MAIL_USE_SSL", "MAIL_USERNAME",
             "MAIL_PASSWORD", "MAIL_DEFAULT_SENDER", "MAIL_TIMEOUT")
SYSTEM = Actor(user_id=None, username="system", role=None)


class NotificationError(ValueError):
    """A notification that cannot be delivered or retried; the message says why."""


class DeliveryState(StrEnum):
    """Where a notification is, from its row and its job."""

    PENDING = "pending"  # queued, not tried yet (or being tried)
    RETRYING = "retrying"  # an attempt failed; the next one is scheduled
    FAILED = "failed"  # every attempt failed
    SENT = "sent"  # e-mailed
    LOGGED = "logged"  # written to the log (no SMTP configured)


def recipients(config: Mapping) -> list[str]:
    raw = config.get("SAE_NOTIFY") or []
    if isinstance(raw, str):
        raw = raw.split(",")
    return [r.strip() for r in raw if isinstance(r, str) and "@" in r and r.strip()]


def _config() -> Mapping:
    return current_app.config if has_app_context() else {}


def _number(config: Mapping, key: str, default: float, low: float) -> float:
    try:
        return max(low, float(config.get(key, default)))
    except (TypeError, ValueError):
        log.error("setting %s=%r is not a number; using %s", key, config.get(key), default)
        return default


def max_attempts(config: Mapping) -> int:
    return int(_number(config, "NOTIFY_MAX_ATTEMPTS", 5, 1))


def backoff(attempt: int) -> dt.timedelta:
    """The wait after failed attempt ``attempt``, from ``NOTIFY_BACKOFF_SECONDS``."""
    return jobs.backoff_delay(attempt, _number(_config(), "NOTIFY_BACKOFF_SECONDS", 60, 0))


def notify(session: Session, *, study_id: int | None, subject: str, body: str,
           sae_report_id: int | None = None, config: Mapping | None = None,
           actor: Actor | None = None) -> NotificationLog:
    """Record a notification and queue its delivery, both in the caller's transaction."""
    config = _config() if config is None else config
    to = recipients(config)
    channel = "email" if config.get("MAIL_SERVER") and to else "log"
    entry = NotificationLog(study_id=study_id, sae_report_id=sae_report_id,
                            recipients=", ".join(to), subject=subject[:300], body=body,
                            channel=channel, logged_at=utcnow())
    session.add(entry)
    session.flush()
    job = jobs.enqueue_task(session, actor or audit.current_actor(session) or SYSTEM, KIND,
                            study_id=study_id, params={"notification": entry.id},
                            max_attempts=max_attempts(config) if channel == "email" else 1)
    entry.job_id = job.id
    session.flush()
    return entry


def send_email(smtp: Mapping, to: list[str], subject: str, body: str) -> None:
    message = EmailMessage()
    message["From"] = smtp.get("MAIL_DEFAULT_SENDER") or "ecrf@localhost"
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(body)
    port = int(smtp.get("MAIL_PORT") or (465 if smtp.get("MAIL_USE_SSL") else 25))
    timeout = float(smtp.get("MAIL_TIMEOUT") or 10)
    kind = smtplib.SMTP_SSL if smtp.get("MAIL_USE_SSL") else smtplib.SMTP
    with kind(smtp["MAIL_SERVER"], port, timeout=timeout) as client:
        if smtp.get("MAIL_USE_TLS") and not smtp.get("MAIL_USE_SSL"):
            client.starttls()
        if smtp.get("MAIL_USERNAME"):
            client.login(smtp["MAIL_USERNAME"], smtp.get("MAIL_PASSWORD") or "")
        client.send_message(message)


# --- delivery, as a job ----------------------------------------------------------------------


def _entry(session: Session, job: Job) -> NotificationLog | None:
    entry_id = (job.params or {}).get("notification")
    return session.get(NotificationLog, entry_id) if isinstance(entry_id, int) else None


def _record_failure(session: Session, job: Job, error: str,
                    next_at: dt.datetime | None) -> None:
    entry = _entry(session, job)
    if entry is None:
        return
    entry.error = error
    what = f"next attempt {next_at:%Y-%m-%d %H:%M} UTC" if next_at else "no attempt left"
    log.error("safety e-mail %r to %s failed (attempt %s of %s, %s): %s", entry.subject,
              entry.recipients, job.attempts, job.max_attempts, what, error)


@jobs.job_kind(KIND, label=_l("SAE notification"), files=False, backoff=backoff,
               on_failure=_record_failure,
               expected=(OSError, smtplib.SMTPException, NotificationError))
def deliver(ctx: JobContext) -> None:
    """Send (or log) one notification and write its delivery time; raise to retry."""
    entry = _entry(ctx.session, ctx.job)
    if entry is None:
        raise NotificationError("the notification this job delivers no longer exists")
    if entry.sent_at is not None:
        return None  # delivered by an earlier attempt whose end was not recorded
    if entry.channel == "log":
        log.warning("safety notification (no SMTP configured) to %s: %s\n%s",
                    entry.recipients or "nobody configured in SAE_NOTIFY", entry.subject,
                    entry.body)
    else:
        config = _config()
        if not config.get("MAIL_SERVER"):
            raise NotificationError("MAIL_SERVER is not configured where the job worker runs")
        to = [r.strip() for r in entry.recipients.split(",") if r.strip()]
        send_email({k: config.get(k) for k in _SETTINGS}, to, entry.subject, entry.body)
    entry.sent_at, entry.error = utcnow(), None
    return None


# --- what the screens show -------------------------------------------------------------------


def delivery_state(entry: NotificationLog, job: Job | None) -> DeliveryState:
    if entry.sent_at is not None:
        return DeliveryState.LOGGED if entry.channel == "log" else DeliveryState.SENT
    if job is None:  # a row from before the queue: its one attempt is over
        return DeliveryState.FAILED if entry.error else DeliveryState.PENDING
    if job.status in ("failed", "cancelled") or job.status == "done":
        return DeliveryState.FAILED
    return DeliveryState.RETRYING if job.retrying else DeliveryState.PENDING


@dataclass(frozen=True)
class NotificationView:
    entry: NotificationLog
    job: Job | None
    state: DeliveryState
    subject_key: str | None
    site_code: str | None
    report_version: int | None

    @property
    def attempts(self) -> int:
        return self.job.attempts if self.job else (1 if self.entry.error else 0)

    @property
    def max_attempts(self) -> int:
        return self.job.max_attempts if self.job else 1

    @property
    def next_attempt(self) -> dt.datetime | None:
        return self.job.run_after if self.state is DeliveryState.RETRYING else None


def report_notifications(session: Session, report_ids: list[int]
                         ) -> dict[int, list[NotificationView]]:
    """The notifications of these SAE reports with their delivery state (one query)."""
    found: dict[int, list[NotificationView]] = {}
    if not report_ids:
        return found
    for entry, job in session.execute(
            select(NotificationLog, Job).outerjoin(Job, Job.id == NotificationLog.job_id)
            .where(NotificationLog.sae_report_id.in_(report_ids))
            .order_by(NotificationLog.id)):
        found.setdefault(entry.sae_report_id, []).append(
            NotificationView(entry, job, delivery_state(entry, job), None, None, None))
    return found


@dataclass
class NotificationProblems:
    failed: list[NotificationView]
    retrying: list[NotificationView]
    pending: int

    @property
    def count(self) -> int:
        return len(self.failed) + len(self.retrying)


def notification_problems(session: Session, study: Study, limit: int = 100
                          ) -> NotificationProblems:
    """The study's notifications that failed or wait for another attempt, newest first,
    and how many are still queued for their first attempt (two queries)."""
    waiting = (Job.status == "queued") & (Job.attempts > 0)
    stmt = (select(NotificationLog, Job, Subject.subject_key, Site.code, SaeReport.version)
            .outerjoin(Job, Job.id == NotificationLog.job_id)
            .outerjoin(SaeReport, SaeReport.id == NotificationLog.sae_report_id)
            .outerjoin(Subject, Subject.id == SaeReport.subject_id)
            .outerjoin(Site, Site.id == Subject.site_id)
            .where(NotificationLog.study_id == study.id, NotificationLog.sent_at.is_(None),
                   or_(Job.status.in_(("failed", "cancelled")), waiting,
                       (Job.id.is_(None)) & NotificationLog.error.is_not(None)))
            .order_by(NotificationLog.id.desc()).limit(limit))
    failed, retrying = [], []
    for entry, job, key, code, version in session.execute(stmt):
        view = NotificationView(entry, job, delivery_state(entry, job), key, code, version)
        (retrying if view.state is DeliveryState.RETRYING else failed).append(view)
    pending = session.scalar(
        select(func.count()).select_from(NotificationLog)
        .join(Job, Job.id == NotificationLog.job_id)
        .where(NotificationLog.study_id == study.id, NotificationLog.sent_at.is_(None),
               Job.attempts == 0, Job.status.in_(("queued", "running")))) or 0
    return NotificationProblems(failed, retrying, pending)


def retry(session: Session, actor: Actor, entry: NotificationLog) -> Job:
    """Try a failed or waiting notification again now (a failed one gets one more
    attempt); audited. A row from before the queue is given a job."""
    if entry.sent_at is not None:
        raise NotificationError(f"notification {entry.id} was already delivered")
    audit.bind_actor(session, actor)
    job = session.get(Job, entry.job_id) if entry.job_id else None
    if job is None:
        job = jobs.enqueue_task(session, actor, KIND, study_id=entry.study_id,
                                params={"notification": entry.id}, max_attempts=1)
        entry.job_id = job.id
    else:
        try:
            jobs.retry_now(session, job)
        except jobs.JobError as exc:
            raise NotificationError(str(exc)) from None
    study = session.get(Study, entry.study_id) if entry.study_id else None
    audit.record(session, actor, "notification.retry", category="safety",
                 study_oid=study.oid if study else None,
                 path=f"{study.oid if study else '-'}/notification/{entry.id}",
                 old_value=entry.error, new_value=f"{KIND} job {job.id} queued",
                 reason="retry requested by the data manager",
                 details={"notification": entry.id, "job": job.id,
                          "sae_report": entry.sae_report_id})
    session.flush()
    return job
