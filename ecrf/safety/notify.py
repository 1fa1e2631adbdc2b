"""Safety notifications: e-mail through SMTP when ``MAIL_SERVER`` is configured, otherwise
a line in the application log; every notification is kept in ``NotificationLog``.

Recipients come from the ``SAE_NOTIFY`` setting (a list, or addresses separated by commas).
Mail leaves only after the transaction that raised it commits, so a rolled-back save never
sends anything; the delivery time (or the SMTP error) is then written to the log row.

Settings: ``MAIL_SERVER``, ``MAIL_PORT`` (25), ``MAIL_USE_TLS`` (STARTTLS, off),
``MAIL_USE_SSL`` (off), ``MAIL_USERNAME``/``MAIL_PASSWORD`` (optional),
``MAIL_DEFAULT_SENDER`` (``ecrf@localhost``), ``MAIL_TIMEOUT`` seconds (10).
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Mapping
from email.message import EmailMessage

from flask import current_app, has_app_context
from sqlalchemy import event, update
from sqlalchemy.orm import Session

from ecrf.core import utcnow
from ecrf.safety.models import NotificationLog

log = logging.getLogger(__name__)
_OUTBOX = "ecrf_safety_outbox"
_SETTINGS = ("MAIL_SERVER", "MAIL_PORT", "MAIL_USE_TLS", "MAIL_USE_SSL", "MAIL_USERNAME",
             "MAIL_PASSWORD", "MAIL_DEFAULT_SENDER", "MAIL_TIMEOUT")


def recipients(config: Mapping) -> list[str]:
    raw = config.get("SAE_NOTIFY") or []
    if isinstance(raw, str):
        raw = raw.split(",")
    return [r.strip() for r in raw if isinstance(r, str) and "@" in r and r.strip()]


def _config() -> Mapping:
    return current_app.config if has_app_context() else {}


def notify(session: Session, *, study_id: int | None, subject: str, body: str,
           sae_report_id: int | None = None, config: Mapping | None = None
           ) -> NotificationLog:
    """Record a notification; e-mail it after commit when SMTP is configured."""
    config = _config() if config is None else config
    to = recipients(config)
    smtp = {k: config.get(k) for k in _SETTINGS}
    channel = "email" if smtp["MAIL_SERVER"] and to else "log"
    entry = NotificationLog(study_id=study_id, sae_report_id=sae_report_id,
                            recipients=", ".join(to), subject=subject[:300], body=body,
                            channel=channel, logged_at=utcnow())
    session.add(entry)
    session.flush()
    if channel == "log":
        log.warning("safety notification (no SMTP configured) to %s: %s\n%s",
                    entry.recipients or "nobody configured in SAE_NOTIFY", subject, body)
    else:
        session.info.setdefault(_OUTBOX, []).append((entry.id, to, subject, body, smtp))
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


@event.listens_for(Session, "after_commit")
def _deliver(session: Session) -> None:
    outbox = session.info.pop(_OUTBOX, None)
    if not outbox:
        return
    bind = session.get_bind()
    for entry_id, to, subject, body, smtp in outbox:
        error, sent = None, None
        try:
            send_email(smtp, to, subject, body)
            sent = utcnow()
        except (OSError, smtplib.SMTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("safety e-mail %s to %s failed: %s", subject, ", ".join(to), error)
        # The clinical transaction is over: the delivery result goes in its own.
        with bind.connect() as conn:
            conn.execute(update(NotificationLog).where(NotificationLog.id == entry_id)
                         .values(sent_at=sent, error=error))
            conn.commit()


@event.listens_for(Session, "after_rollback")
def _discard(session: Session) -> None:
    session.info.pop(_OUTBOX, None)
