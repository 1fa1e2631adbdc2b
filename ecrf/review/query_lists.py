"""Lists and counts of queries, each in one statement whatever the number of subjects,
scoped to the user's sites in the query itself."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from ecrf import accounts
from ecrf.accounts import User
from ecrf.capture import Subject
from ecrf.core import utcnow
from ecrf.review.models import QUERY_STATUSES, Query, QueryMessage
from ecrf.studies import Site, Study

__all__ = ["QueryRow", "count_queries", "list_queries", "queries_for_forms", "query_counts"]


@dataclass(frozen=True)
class QueryRow:
    query: Query
    subject_key: str
    site_code: str
    site_timezone: str
    question: str
    assignee_name: str | None
    age_days: int
    messages: int


def _filters(user: User | None, study: Study, *, site: str | None, status: str | None,
             min_age_days: int | None, assignee: int | str | None, subject_id: int | None,
             origin: str | None, form_oid: str | None, now: dt.datetime) -> list:
    """The conditions of a list of queries (the statement joins Subject and Site)."""
    found = [Query.study_id == study.id]
    if user is not None:  # None: the operator at the command line sees every site
        allowed = accounts.site_ids_for(user, "subjects.view", study)
        if allowed is not None:
            found.append(Subject.site_id.in_(sorted(allowed) or [-1]))
    if site:
        found.append(Site.code == site)
    if status in QUERY_STATUSES:
        found.append(Query.status == status)
    elif status == "unclosed":
        found.append(Query.status != "closed")
    if min_age_days:
        found.append(Query.created_at <= now - dt.timedelta(days=min_age_days))
    if assignee == "none":
        found.append(Query.assignee_id.is_(None))
    elif isinstance(assignee, int):
        found.append(Query.assignee_id == assignee)
    if subject_id is not None:
        found.append(Query.subject_id == subject_id)
    if origin in ("manual", "automatic"):
        found.append(Query.origin == origin)
    if form_oid:
        found.append(Query.form_oid == form_oid)
    return found


def list_queries(session: Session, user: User | None, study: Study, *, site: str | None = None,
                 status: str | None = None, min_age_days: int | None = None,
                 assignee: int | str | None = None, subject_id: int | None = None,
                 origin: str | None = None, form_oid: str | None = None, limit: int = 500,
                 offset: int = 0, before: tuple[dt.datetime, int] | None = None,
                 now: dt.datetime | None = None) -> list[QueryRow]:
    """Queries the user may see, newest first (then by id: a stable order to page
    through with ``offset``, or with ``before``: the rows after the query raised at that
    time with that id), filtered; one statement.

    ``assignee`` is a user id, "none" (given to no one) or None (any); ``min_age_days``
    keeps queries raised at least that many days ago.
    """
    now = now or utcnow()
    first = aliased(QueryMessage)
    question = (select(first.text).where(first.query_id == Query.id).order_by(first.id)
                .limit(1).scalar_subquery())
    count = (select(func.count(QueryMessage.id)).where(QueryMessage.query_id == Query.id)
             .scalar_subquery())
    stmt = (select(Query, Subject.subject_key, Site.code, Site.timezone, question,
                   User.full_name, count)
            .join(Subject, Subject.id == Query.subject_id)
            .join(Site, Site.id == Subject.site_id)
            .outerjoin(User, User.id == Query.assignee_id)
            .where(*_filters(user, study, site=site, status=status,
                             min_age_days=min_age_days, assignee=assignee,
                             subject_id=subject_id, origin=origin, form_oid=form_oid,
                             now=now)))
    if before is not None:
        at, query_id = before
        stmt = stmt.where(or_(Query.created_at < at,
                              and_(Query.created_at == at, Query.id < query_id)))
    stmt = stmt.order_by(Query.created_at.desc(), Query.id.desc()).limit(limit).offset(offset)
    rows = []
    for query, key, code, tz, text, name, messages in session.execute(stmt):
        end = now if query.status != "closed" else query.status_changed_at
        rows.append(QueryRow(query, key, code, tz, text or "", name,
                             max(0, (end - query.created_at).days), messages))
    return rows


def count_queries(session: Session, user: User | None, study: Study, *,
                  site: str | None = None, status: str | None = None,
                  min_age_days: int | None = None, assignee: int | str | None = None,
                  subject_id: int | None = None, origin: str | None = None,
                  form_oid: str | None = None, now: dt.datetime | None = None) -> int:
    """How many queries ``list_queries`` would list with the same filters, without limit."""
    stmt = (select(func.count(Query.id)).join(Subject, Subject.id == Query.subject_id)
            .join(Site, Site.id == Subject.site_id)
            .where(*_filters(user, study, site=site, status=status,
                             min_age_days=min_age_days, assignee=assignee,
                             subject_id=subject_id, origin=origin, form_oid=form_oid,
                             now=now or utcnow())))
    return session.scalar(stmt) or 0


def query_counts(session: Session, study: Study, subject_ids: Iterable[int], *,
                 now: dt.datetime | None = None) -> dict[int, tuple[int, int, int | None]]:
    """{subject id: (open, answered, age in days of the oldest unclosed query)}; one
    statement whatever the number of subjects. Subjects without queries are absent."""
    ids = sorted(set(subject_ids))
    if not ids:
        return {}
    now = now or utcnow()
    stmt = (select(Query.subject_id,
                   func.sum(case((Query.status == "open", 1), else_=0)),
                   func.sum(case((Query.status == "answered", 1), else_=0)),
                   func.min(case((Query.status != "closed", Query.created_at), else_=None)))
            .where(Query.study_id == study.id, Query.subject_id.in_(ids))
            .group_by(Query.subject_id))
    found = {}
    for subject_id, opened, answered, oldest in session.execute(stmt):
        age = None
        if oldest is not None:
            if isinstance(oldest, str):  # SQLite returns MIN() of a CASE as text
                oldest = dt.datetime.fromisoformat(oldest)
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=dt.UTC)
            age = max(0, (now - oldest).days)
        found[subject_id] = (int(opened or 0), int(answered or 0), age)
    return found


def queries_for_forms(session: Session, form_instance_ids: Iterable[int]
                      ) -> dict[int, list[Query]]:
    """Every query of the given forms (any status), oldest first."""
    ids = sorted(set(form_instance_ids))
    found: dict[int, list[Query]] = {}
    if not ids:
        return found
    for query in session.scalars(select(Query).where(Query.form_instance_id.in_(ids))
                                 .order_by(Query.id)):
        found.setdefault(query.form_instance_id, []).append(query)
    return found
