"""Reading the audit trail of clinical data: item history, subject trail, CSV export.

Exports stream: rows are read in batches and written line by line, so a study-wide trail
of millions of rows needs constant memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ecrf.capture.models import Subject
from ecrf.capture.support import item_path, row_path
from ecrf.models.audit import AuditEvent

CSV_COLUMNS = ("seq", "occurred_at_utc", "category", "action", "username", "role", "site",
               "subject", "path", "old_value", "new_value", "reason", "study_version",
               "ip_address", "details", "row_hash")
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?")


def item_history(session: Session, subject: Subject, event_oid: str, repeat: int,
                 form_oid: str, group: str, row: int, item: str) -> list[AuditEvent]:
    """Every audited change of one item (and the removal of its row), oldest first."""
    paths = [item_path(subject, event_oid, repeat, form_oid, (group, row, item)),
             row_path(subject, event_oid, repeat, form_oid, group, row)]
    return list(session.scalars(
        select(AuditEvent).where(AuditEvent.study_oid == subject.study.oid,
                                 AuditEvent.subject_key == subject.subject_key,
                                 AuditEvent.path.in_(paths))
        .order_by(AuditEvent.seq)))


def subject_audit_query(subject: Subject, *, action: str | None = None,
                        username: str | None = None, form_oid: str | None = None,
                        since: dt.datetime | None = None, until: dt.datetime | None = None
                        ) -> Select:
    """The subject's audit rows, filtered; ``since`` inclusive, ``until`` exclusive."""
    stmt = select(AuditEvent).where(AuditEvent.study_oid == subject.study.oid,
                                    AuditEvent.subject_key == subject.subject_key)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if username:
        stmt = stmt.where(AuditEvent.username == username)
    if form_oid:
        stmt = stmt.where(AuditEvent.path.contains(f"/{form_oid}/", autoescape=True)
                          | AuditEvent.path.endswith(f"/{form_oid}", autoescape=True))
    if since is not None:
        stmt = stmt.where(AuditEvent.occurred_at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.occurred_at < until)
    return stmt.order_by(AuditEvent.seq)


def subject_audit(session: Session, subject: Subject, *, action: str | None = None,
                  username: str | None = None, form_oid: str | None = None,
                  since: dt.datetime | None = None, until: dt.datetime | None = None,
                  limit: int | None = None) -> list[AuditEvent]:
    """The subject's audit trail, oldest first, with optional filters."""
    stmt = subject_audit_query(subject, action=action, username=username, form_oid=form_oid,
                               since=since, until=until)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def subject_audit_choices(session: Session, subject: Subject) -> tuple[list[str], list[str]]:
    """Actions and users present in the subject's trail (for the filter lists)."""
    base = select(AuditEvent.action, AuditEvent.username).where(
        AuditEvent.study_oid == subject.study.oid, AuditEvent.subject_key == subject.subject_key
    ).distinct()
    actions: set[str] = set()
    users: set[str] = set()
    for action, username in session.execute(base):
        actions.add(action)
        if username:
            users.add(username)
    return sorted(actions), sorted(users)


def study_audit_query(study_oid: str, *, site_codes: Iterable[str] | None = None,
                      subject_key: str | None = None) -> Select:
    """A study's audit rows in chain order; ``site_codes`` limits them to those sites."""
    stmt = select(AuditEvent).where(AuditEvent.study_oid == study_oid)
    if site_codes is not None:
        stmt = stmt.where(AuditEvent.site_code.in_(sorted(site_codes) or [""]))
    if subject_key is not None:
        stmt = stmt.where(AuditEvent.subject_key == subject_key)
    return stmt.order_by(AuditEvent.seq)


def stream_rows(session: Session, stmt: Select, batch: int = 2000) -> Iterator[AuditEvent]:
    """Rows of ``stmt`` read in batches (server-side cursor where the database has one)."""
    yield from session.scalars(stmt.execution_options(yield_per=batch))


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    # A spreadsheet would run a cell starting like a formula: typed text must stay text.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit_csv(rows: Iterable[AuditEvent]) -> Iterator[str]:
    """CSV lines (header first) for audit rows, produced one at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values) -> str:
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(CSV_COLUMNS)
    for row in rows:
        yield line([
            row.seq, _when(row.occurred_at), row.category, row.action, _cell(row.username),
            row.role or "", _cell(row.site_code), _cell(row.subject_key), _cell(row.path),
            _cell(row.old_value), _cell(row.new_value), _cell(row.reason),
            _cell(row.study_version), row.ip_address or "", _cell(row.details), row.row_hash,
        ])
