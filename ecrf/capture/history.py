"""Reading a subject's audit trail: one item's history and the subject's trail with its
filters. A study's trail and the CSV export are the audit trail's own
(``ecrf.core.audit.history``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ecrf.capture.models import Subject
from ecrf.capture.support import item_path, row_path
from ecrf.core.audit import AuditEvent


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
