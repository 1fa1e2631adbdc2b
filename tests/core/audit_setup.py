"""What the audit trail tests share: the subject's URLs, and tampering as a database
superuser would (the append-only triggers out of the way)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import select

from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from tests.conftest import is_postgres

BASE = "/studies/CAPTURE/subjects/S01-001"
SCREEN = BASE + "/events/SCREEN/1"
VITALS = SCREEN + "/forms/VITALS"
WEIGHT_PATH = "CAPTURE/S01-001/SCREEN[1]/VITALS/VS[1]/WEIGHT"


def last_seq() -> int:
    return db.session.scalar(select(sa.func.max(AuditEvent.seq)))


def tamper(*statements: str | tuple[str, dict], **params) -> None:
    """Run statements in one transaction with the append-only triggers out of the way:
    dropped on SQLite, skipped by replica mode on PostgreSQL. A statement is SQL text
    (with ``params``) or (SQL text, its own parameters)."""
    with db.engine.begin() as conn:
        if is_postgres():
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(sa.text("DROP TRIGGER IF EXISTS audit_event_no_update"))
            conn.execute(sa.text("DROP TRIGGER IF EXISTS audit_event_no_delete"))
        for statement in statements:
            sql, values = statement if isinstance(statement, tuple) else (statement, params)
            conn.execute(sa.text(sql), values)
    db.session.expire_all()


def verify(runner, *args: str) -> tuple[int, str]:
    result = runner.invoke(args=["audit", "verify", *args])
    return result.exit_code, result.output
