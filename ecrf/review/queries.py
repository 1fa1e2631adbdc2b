"""Queries: questions on a subject's data, answered by the site, closed by the monitor.

Life cycle: *open* (raised by a monitor or a data manager, or automatically by a failing
warning check) -> *answered* (site staff reply, possibly correcting the data) -> *closed*
(monitor or data manager). An answered or closed query can be reopened with a message.
Every step is a message of the thread and an audit row (category "review") on the path
of the target, so it shows in the item's history too.

Corrections made in reply are linked to the query (``corrections``); lists and
counts live in ``query_lists`` and are re-exported here. Queries are only refused once the
study is locked (read-only); a frozen study and locked forms still take queries.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf import accounts
from ecrf.accounts import ACTIONS, RoleGrant, User
from ecrf.capture import (
    EventInstance,
    FormInstance,
    GroupRow,
    NotFoundError,
    Subject,
    event_instance,
    event_path,
    event_rule,
    form_path,
    item_path,
)
from ecrf.core import audit, utcnow
from ecrf.core.audit import Actor
from ecrf.crf import UnknownOidError
from ecrf.crf.validation import Key
from ecrf.crf.values import N_
from ecrf.review.models import QUERY_STATUSES, Query, QueryMessage
from ecrf.review.query_lists import QueryRow, list_queries, queries_for_forms, query_counts
from ecrf.review.support import ReviewError, check_allowed, clean_text, record_review, subject_path
from ecrf.studies import Study, definition_for

__all__ = [
    "QUERY_STATUSES", "QueryError", "QueryRow", "QueryTarget", "acknowledge", "add_message",
    "answer", "assign", "audit_query", "close", "close_automatic", "comment", "list_queries",
    "query_counts", "query_path", "queries_for_forms", "raise_automatic", "raise_query",
    "reopen", "site_answerers", "visible_query",
]

SYSTEM_AUTHOR = "system"


class QueryError(ReviewError):
    """A query request that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class QueryTarget:
    """What a query is about, narrowing from the event down to one item of one row."""

    event_oid: str | None = None
    repeat: int | None = None
    form_oid: str | None = None
    group_oid: str | None = None
    row: int | None = None
    item_oid: str | None = None


# --- paths and lookups ---------------------------------------------------------------------


def query_path(query: Query, subject: Subject | None = None) -> str:
    subject = subject or query.subject
    if query.item_oid:
        return item_path(subject, query.event_oid, query.repeat, query.form_oid,
                         (query.group_oid, query.row, query.item_oid))
    if query.form_oid:
        return form_path(subject, query.event_oid, query.repeat, query.form_oid)
    if query.event_oid:
        return event_path(subject, query.event_oid, query.repeat)
    return subject_path(subject)


def visible_query(session: Session, user: User, study: Study, query_id: int) -> Query | None:
    """The query if its subject is at a site where ``user`` may see subjects."""
    stmt = (select(Query).join(Subject, Subject.id == Query.subject_id)
            .where(Query.id == query_id, Query.study_id == study.id))
    stmt = accounts.scope_to_sites(stmt, Subject.site_id,
                                 accounts.site_ids_for(user, "subjects.view", study))
    return session.scalar(stmt)


def site_answerers(session: Session, study: Study, site_id: int) -> list[User]:
    """Active users who may answer queries at a site: the choices of an assignee."""
    roles = sorted(r.value for r in ACTIONS["queries.answer"])
    stmt = (select(User).join(RoleGrant, RoleGrant.user_id == User.id)
            .where(RoleGrant.study_id == study.id, RoleGrant.revoked_at.is_(None),
                   RoleGrant.role.in_(roles), User.active,
                   (RoleGrant.site_id == site_id) | RoleGrant.site_id.is_(None))
            .distinct().order_by(User.full_name))
    return list(session.scalars(stmt))


def _resolve(session: Session, subject: Subject, target: QueryTarget
             ) -> tuple[EventInstance | None, FormInstance | None]:
    """Check that the target exists in the subject's data; its event and form instances."""
    if target.event_oid is None:
        if any(v is not None for v in (target.form_oid, target.item_oid)):
            raise QueryError(N_("Name the event of the form or item the query is about."))
        return None, None
    definition = definition_for(subject.study_version)
    repeat = target.repeat or 1
    try:
        rule = event_rule(definition, target.event_oid, repeat)
    except NotFoundError as exc:
        raise QueryError(N_("%(problem)s"), problem=str(exc)) from None
    event = event_instance(session, subject, target.event_oid, repeat)
    if target.form_oid is None:
        if target.item_oid is not None:
            raise QueryError(N_("Name the form of the item the query is about."))
        return event, None
    if target.form_oid not in rule.forms:
        raise QueryError(N_("%(event)s has no form %(form)s."), event=rule.name,
                         form=target.form_oid)
    form = None
    if event is not None:
        form = session.scalar(select(FormInstance).where(
            FormInstance.event_instance_id == event.id, FormInstance.form_oid == target.form_oid))
    if target.item_oid is None:
        return event, form
    if form is None:
        raise QueryError(N_("%(form)s has no data yet: raise the query on the form or the "
                            "event instead."), form=target.form_oid)
    form_def = definition_for(form.study_version).form(form.form_oid)
    try:
        item = form_def.item(target.item_oid)
        group = form_def.group(target.group_oid or item.group)
    except UnknownOidError as exc:
        raise QueryError(N_("%(problem)s"), problem=str(exc)) from None
    if item not in group.items:
        raise QueryError(N_("Item %(item)s is not in group %(group)s."), item=item.oid,
                         group=group.oid)
    row = target.row or 1
    if group.repeating:
        record = session.scalar(select(GroupRow).where(
            GroupRow.form_instance_id == form.id, GroupRow.group_oid == group.oid,
            GroupRow.row == row))
        if record is None:
            raise QueryError(N_("%(group)s has no row %(row)s."), group=group.oid, row=row)
    elif row != 1:
        raise QueryError(N_("%(group)s is not a repeating group: use row 1."), group=group.oid)
    return event, form


def add_message(session: Session, query: Query, actor: Actor | None, text: str, *,
                 status_to: str | None = None, audit_seq: int | None = None,
                 created: bool = False) -> QueryMessage:
    """Append to the thread; with ``status_to`` the query moves to that status."""
    now = utcnow()
    status_from = query.status if status_to and not created else None
    message = QueryMessage(query=query, author_id=actor.user_id if actor else None,
                           author=actor.username if actor else SYSTEM_AUTHOR,
                           role=actor.role if actor else None, text=text, at=now,
                           status_from=status_from, status_to=status_to, audit_seq=audit_seq)
    session.add(message)
    if status_to and status_to != query.status:
        query.status = status_to
        query.status_changed_at = now
    return message


def audit_query(session: Session, actor: Actor, action: str, query: Query, *, old=None, new=None,
           reason=None, **details) -> None:
    record_review(session, actor, action, query.subject, query_path(query), old=old, new=new,
                  reason=reason, details={"query_id": query.id, "origin": query.origin,
                                          **details})


def _writable(query: Query) -> None:
    study = query.subject.study
    if study.status == "locked":
        raise QueryError(N_("Study %(study)s is locked: its queries are read-only."),
                         study=study.oid)


def _check_assignee(session: Session, study: Study, subject: Subject,
                    assignee: User | None) -> None:
    if assignee is None:
        return
    allowed = accounts.site_ids_for(assignee, "queries.answer", study)
    if not assignee.active or not accounts.can(assignee, "queries.answer", study) or (
            allowed is not None and subject.site_id not in allowed):
        raise QueryError(N_("%(name)s cannot answer queries at site %(site)s: choose a "
                            "coordinator or an investigator of that site."),
                         name=assignee.full_name, site=subject.site.code)


# --- the life cycle --------------------------------------------------------------------------


def raise_query(session: Session, actor: Actor, subject: Subject, text: str, *,
                target: QueryTarget = QueryTarget(), assignee: User | None = None) -> Query:
    """Raise a manual query (monitor or data manager) on the subject or part of its data."""
    audit.bind_actor(session, actor)
    check_allowed(session, actor, "queries.raise", subject.study, subject.site_id)
    text = clean_text(text)
    if not text:
        raise QueryError(N_("Write the question of the query."))
    if subject.study.status == "locked":
        raise QueryError(N_("Study %(study)s is locked: no query can be raised."),
                         study=subject.study.oid)
    event, form = _resolve(session, subject, target)
    _check_assignee(session, subject.study, subject, assignee)
    item = target.item_oid
    if item is not None:
        group = target.group_oid or definition_for(form.study_version).item(
            form.form_oid, item).group
    else:
        group = None
    now = utcnow()
    query = Query(study_id=subject.study_id, subject=subject,
                  event_instance_id=event.id if event else None,
                  form_instance_id=form.id if form else None, event_oid=target.event_oid,
                  repeat=(target.repeat or 1) if target.event_oid else None,
                  form_oid=target.form_oid, group_oid=group,
                  row=(target.row or 1) if item else None, item_oid=item, status="open",
                  origin="manual", assignee_id=assignee.id if assignee else None,
                  created_by_id=actor.user_id, created_by=actor.username, created_at=now,
                  status_changed_at=now)
    session.add(query)
    add_message(session, query, actor, text, status_to="open", created=True)
    session.flush()
    audit_query(session, actor, "query.raised", query, new="open", reason=text,
           assignee=assignee.username if assignee else None)
    return query


def raise_automatic(session: Session, actor: Actor, subject: Subject, form: FormInstance,
                    check_oid: str, check_row: int, key: Key | None, text: str, *,
                    justification: str | None = None) -> Query:
    """A query raised by a failing warning check. Already acknowledged with a
    justification, it starts *answered* so the monitor reviews the justification."""
    now = utcnow()
    event = form.event
    query = Query(study_id=subject.study_id, subject=subject, event_instance_id=event.id,
                  form_instance_id=form.id, event_oid=event.event_oid, repeat=event.repeat,
                  form_oid=form.form_oid, group_oid=key[0] if key else None,
                  row=key[1] if key else None, item_oid=key[2] if key else None,
                  status="open", origin="automatic", check_oid=check_oid,
                  check_row=check_row, created_by_id=None, created_by=SYSTEM_AUTHOR,
                  created_at=now, status_changed_at=now)
    session.add(query)
    add_message(session, query, None, text, status_to="open", created=True)
    session.flush()
    audit_query(session, actor, "query.raised", query, new="open", reason=text, check=check_oid,
           row=check_row)
    if justification:
        acknowledge(session, actor, query, justification)
    return query


def acknowledge(session: Session, actor: Actor, query: Query, justification: str) -> None:
    """The warning behind an automatic query was acknowledged: that is the site's answer."""
    old = query.status
    add_message(session, query, actor, justification, status_to="answered")
    session.flush()
    audit_query(session, actor, "query.answered", query, old=old, new="answered",
           reason=justification, acknowledgement=True)


def close_automatic(session: Session, actor: Actor, query: Query, note: str) -> None:
    """The check behind an automatic query passes again: it closes itself."""
    old = query.status
    add_message(session, query, None, note, status_to="closed")
    session.flush()
    audit_query(session, actor, "query.closed", query, old=old, new="closed", reason=note,
           automatic=True)


def answer(session: Session, actor: Actor, query: Query, text: str) -> Query:
    """Site staff answer: open -> answered (a further answer keeps it answered)."""
    audit.bind_actor(session, actor)
    check_allowed(session, actor, "queries.answer", query.subject.study, query.subject.site_id)
    _writable(query)
    text = clean_text(text)
    if not text:
        raise QueryError(N_("Write the answer."))
    if query.status == "closed":
        raise QueryError(N_("Query %(id)s is closed: it cannot be answered unless it is "
                            "reopened."), id=query.id)
    old = query.status
    add_message(session, query, actor, text, status_to="answered")
    session.flush()
    audit_query(session, actor, "query.answered", query, old=old, new="answered", reason=text)
    return query


def close(session: Session, actor: Actor, query: Query, text: str | None = None) -> Query:
    """Monitor or data manager: open or answered -> closed."""
    audit.bind_actor(session, actor)
    check_allowed(session, actor, "queries.close", query.subject.study, query.subject.site_id)
    _writable(query)
    if query.status == "closed":
        raise QueryError(N_("Query %(id)s is already closed."), id=query.id)
    text = clean_text(text) or "Closed."
    old = query.status
    add_message(session, query, actor, text, status_to="closed")
    session.flush()
    audit_query(session, actor, "query.closed", query, old=old, new="closed", reason=text)
    return query


def reopen(session: Session, actor: Actor, query: Query, text: str) -> Query:
    """Monitor or data manager: an answered or closed query goes back to the site."""
    audit.bind_actor(session, actor)
    check_allowed(session, actor, "queries.close", query.subject.study, query.subject.site_id)
    _writable(query)
    text = clean_text(text)
    if not text:
        raise QueryError(N_("Say why the query is reopened."))
    if query.status == "open":
        raise QueryError(N_("Query %(id)s is already open."), id=query.id)
    old = query.status
    add_message(session, query, actor, text, status_to="open")
    session.flush()
    audit_query(session, actor, "query.reopened", query, old=old, new="open", reason=text)
    return query


def comment(session: Session, actor: Actor, query: Query, text: str) -> Query:
    """A note in the thread that does not change the status (anyone who may act on it)."""
    audit.bind_actor(session, actor)
    subject = query.subject
    allowed = [a for a in ("queries.raise", "queries.answer", "queries.close")
               if _may(session, actor, a, subject)]
    if actor.user_id is not None and not allowed:
        check_allowed(session, actor, "queries.answer", subject.study, subject.site_id)
    _writable(query)
    text = clean_text(text)
    if not text:
        raise QueryError(N_("Write the note."))
    if query.status == "closed":
        raise QueryError(N_("Query %(id)s is closed: reopen it to continue the thread."),
                         id=query.id)
    add_message(session, query, actor, text)
    session.flush()
    audit_query(session, actor, "query.commented", query, reason=text)
    return query


def _may(session: Session, actor: Actor, action: str, subject: Subject) -> bool:
    try:
        check_allowed(session, actor, action, subject.study, subject.site_id)
    except ReviewError:
        return False
    return True


def assign(session: Session, actor: Actor, query: Query, assignee: User | None) -> Query:
    """Give the query to one person at the site (None: to the site as a whole)."""
    audit.bind_actor(session, actor)
    subject = query.subject
    check_allowed(session, actor, "queries.raise", subject.study, subject.site_id)
    _writable(query)
    _check_assignee(session, subject.study, subject, assignee)
    old = query.assignee.username if query.assignee else None
    query.assignee_id = assignee.id if assignee else None
    query.assignee = assignee
    add_message(session, query, actor, f"Assigned to {assignee.full_name}." if assignee
                 else "Assigned to the site.")
    session.flush()
    audit_query(session, actor, "query.assigned", query, old=old,
           new=assignee.username if assignee else None)
    return query
