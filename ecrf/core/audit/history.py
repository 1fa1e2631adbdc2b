"""Reading the audit trail: a study's rows in chain order, streamed in batches, and the
CSV they are exported as.

Exports stream: rows are read in batches and written line by line, so a study-wide trail
of millions of rows needs constant memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ecrf.core.audit.models import AuditEvent
from ecrf.core.csvcells import csv_cell

CSV_COLUMNS = ("seq", "occurred_at_utc", "category", "action", "username", "role", "site",
               "subject", "path", "old_value", "new_value", "reason", "study_version",
               "ip_address", "details", "row_hash")


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
            row.seq, _when(row.occurred_at), row.category, row.action,
            csv_cell(row.username), row.role or "", csv_cell(row.site_code),
            csv_cell(row.subject_key), csv_cell(row.path), csv_cell(row.old_value),
            csv_cell(row.new_value), csv_cell(row.reason), csv_cell(row.study_version),
            row.ip_address or "", csv_cell(row.details), row.row_hash,
        ])
