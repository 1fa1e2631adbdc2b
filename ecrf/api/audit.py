"""Audit trails through the API: a subject's and a study's, site-scoped, with the entry
screen's filters. Pages are read by sequence number (``after``), which stays fast and
stable on trails of millions of rows while new rows are appended."""

from __future__ import annotations

import json

from flask import g, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import Select, select

from ecrf import accounts, capture
from ecrf.accounts import Allow
from ecrf.accounts import register_route as register
from ecrf.api.blueprint import bp
from ecrf.api.common import (
    MAX_AUDIT_LIMIT,
    MAX_SEQ,
    cursor_arg,
    encode_cursor,
    int_arg,
    iso,
    subject_or_404,
    time_arg,
)
from ecrf.api.errors import ApiProblem
from ecrf.core import audit, db
from ecrf.core.audit import AuditEvent
from ecrf.studies import Site

register("api.subject_audit", Allow("audit.view"))
register("api.study_audit", Allow("audit.view"))

DEFAULT_LIMIT = 500


@bp.get("/studies/<study_oid>/subjects/<subject_key>/audit", endpoint="subject_audit")
def subject_audit(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key, "audit.view")
    tz = subject.site.timezone
    stmt = capture.subject_audit_query(
        subject, action=request.args.get("action") or None,
        username=request.args.get("user") or None, form_oid=request.args.get("form") or None,
        since=time_arg("from", tz), until=time_arg("to", tz, end=True))
    return _page(stmt)


@bp.get("/studies/<study_oid>/audit", endpoint="study_audit")
def study_audit(study_oid: str):
    allowed = accounts.site_ids_for(current_user, "audit.view", g.study)
    codes = None
    if allowed is not None:
        codes = list(db.session.scalars(select(Site.code).where(Site.id.in_(allowed or {-1}))))
    stmt = audit.study_audit_query(g.study.oid, site_codes=codes,
                                     subject_key=request.args.get("subject") or None)
    for name, column in (("action", AuditEvent.action), ("user", AuditEvent.username),
                         ("category", AuditEvent.category)):
        if request.args.get(name):
            stmt = stmt.where(column == request.args[name])
    since, until = time_arg("from", "UTC"), time_arg("to", "UTC", end=True)
    if since is not None:
        stmt = stmt.where(AuditEvent.occurred_at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.occurred_at < until)
    return _page(stmt)


def _page(stmt: Select) -> dict:
    cursor = cursor_arg("audit", (int,))
    if cursor is not None and request.args.get("after", "").strip():
        raise ApiProblem(400, _("Give either 'after' or 'cursor', not both."))
    after = cursor[0] if cursor is not None else int_arg("after", 0, minimum=0,
                                                         maximum=MAX_SEQ)
    limit = int_arg("limit", DEFAULT_LIMIT, maximum=MAX_AUDIT_LIMIT)
    rows = list(db.session.scalars(stmt.where(AuditEvent.seq > after).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [row_json(r) for r in rows], "limit": limit, "after": after,
            "next_after": rows[-1].seq if more else None,
            "next_cursor": encode_cursor("audit", (rows[-1].seq,)) if more else None}


def row_json(row: AuditEvent) -> dict:
    try:
        details = json.loads(row.details) if row.details else None
    except ValueError:
        details = row.details
    return {
        "seq": row.seq, "occurred_at": iso(row.occurred_at), "category": row.category,
        "action": row.action, "username": row.username, "role": row.role,
        "study_oid": row.study_oid, "site": row.site_code, "subject_key": row.subject_key,
        "path": row.path, "old_value": row.old_value, "new_value": row.new_value,
        "reason": row.reason, "study_version": row.study_version, "details": details,
        "ip_address": row.ip_address, "row_hash": row.row_hash,
    }
