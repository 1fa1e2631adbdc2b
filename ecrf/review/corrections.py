"""Corrections in reply to queries: the change of a value linked to the query it answers.

The link is a message of the query's thread carrying the audit sequence number of the
change, and an audit row ``query.correction_linked`` carrying the query id, so the audit
trail itself tells which correction answered which query. Linking is idempotent: data
capture's hook and an answer-with-correction may both try, one link is kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf import capture
from ecrf.capture import FormInstance, Subject
from ecrf.core.audit import Actor, AuditEvent
from ecrf.crf.validation import Key
from ecrf.crf.values import N_, Message, Raw
from ecrf.review.models import Query, QueryMessage
from ecrf.review.queries import QueryError, add_message, answer, audit_query, query_path
from ecrf.review.support import check_allowed, clean_text

__all__ = ["Correction", "CorrectionRefused", "answer_with_correction", "latest_changes",
           "link_correction", "open_queries_on"]

ITEM_ACTIONS = ("item.entered", "item.changed", "item.cleared")


def open_queries_on(session: Session, form: FormInstance, keys: Iterable[Key], *,
                    among: Iterable[Query] | None = None) -> dict[Key, list[Query]]:
    """Unclosed item queries of a form on the given items (``among``: from queries of the
    form already loaded, in id order, instead of loading them)."""
    wanted = set(keys)
    found: dict[Key, list[Query]] = {}
    if not wanted:
        return found
    if among is None:
        among = session.scalars(select(Query).where(
            Query.form_instance_id == form.id, Query.status != "closed",
            Query.item_oid.is_not(None)).order_by(Query.id))
    for query in among:
        if query.status == "closed" or query.item_oid is None:
            continue
        key = (query.group_oid, query.row, query.item_oid)
        if key in wanted:
            found.setdefault(key, []).append(query)
    return found


def latest_changes(session: Session, subject: Subject, paths: Iterable[str]
                   ) -> dict[str, AuditEvent]:
    """The newest value change recorded on each path: in a save's own transaction, the
    change that save made (writers of the chain are serialised)."""
    paths = sorted(set(paths))
    if not paths:
        return {}
    rows = session.scalars(
        select(AuditEvent).where(AuditEvent.study_oid == subject.study.oid,
                                 AuditEvent.subject_key == subject.subject_key,
                                 AuditEvent.path.in_(paths),
                                 AuditEvent.action.in_(ITEM_ACTIONS))
        .order_by(AuditEvent.seq.desc()))
    found: dict[str, AuditEvent] = {}
    for row in rows:
        found.setdefault(row.path, row)
        if len(found) == len(paths):
            break
    return found


def link_correction(session: Session, actor: Actor, query: Query, change: AuditEvent) -> bool:
    """Link a value change to the query it answers; False if it was already linked.

    A manual open query becomes answered by the correction.
    """
    linked = session.scalar(select(QueryMessage.id).where(
        QueryMessage.query_id == query.id, QueryMessage.audit_seq == change.seq))
    if linked is not None:
        return False
    text = (f"Data corrected: {change.path.rsplit('/', 1)[-1]} "
            f"{change.old_value if change.old_value is not None else '(blank)'} -> "
            f"{change.new_value if change.new_value is not None else '(blank)'}"
            + (f" (reason: {change.reason})" if change.reason else ""))
    to = "answered" if query.status == "open" and query.origin == "manual" else None
    old = query.status
    add_message(session, query, actor, text, status_to=to, audit_seq=change.seq)
    session.flush()
    audit_query(session, actor, "query.correction_linked", query, old=old, new=query.status,
           reason=change.reason, audit_seq=change.seq, correction_action=change.action)
    return True


@dataclass(frozen=True)
class Correction:
    """A new value for a query's item (raw, as typed) and the reason for the change."""

    value: Raw
    reason: str


class CorrectionRefused(QueryError):
    """The corrected value was refused by data capture; ``problems`` says why."""

    def __init__(self, problems: list[Message]) -> None:
        super().__init__(N_("The corrected value was not saved: %(why)s"),
                         why=" ".join(str(p) for p in problems))
        self.problems = problems


def answer_with_correction(session: Session, actor: Actor, query: Query, text: str,
                           correction: Correction, *, today: dt.date | None = None
                           ) -> capture.SaveResult:
    """Answer an item query and correct the item through data capture in one step; the
    change is linked to the query. Raises CorrectionRefused when capture refuses the value
    (the caller rolls back: nothing is kept, not even the answer)."""
    answer(session, actor, query, text)
    subject = query.subject
    if query.item_oid is None or query.form_instance_id is None:
        raise QueryError(N_("Only a query on one item can carry a correction: correct the "
                            "data on the form."))
    check_allowed(session, actor, "data.enter", subject.study, subject.site_id)
    form = session.get(FormInstance, query.form_instance_id)
    key = (query.group_oid, query.row, query.item_oid)
    # The answer (up to 4000 characters) stands in for a reason not given: its start.
    reason = clean_text(correction.reason, 2000) or clean_text(text)[:2000]
    result = capture.save_form(
        session, actor, subject, query.event_oid, query.repeat, query.form_oid,
        capture.Submission(values={key: correction.value}, reasons={key: reason},
                           partial=True),
        base_version=form.version, complete=False, today=today)
    if not result.saved:
        problems = [m for messages in result.errors.values() for m in messages]
        raise CorrectionRefused(problems + list(result.form_errors))
    if key not in result.changed:
        raise QueryError(N_("The value given is the one already saved: nothing was "
                            "corrected. Answer without a correction instead."))
    path = query_path(query, subject)
    change = latest_changes(session, subject, [path]).get(path)
    if change is not None:
        link_correction(session, actor, query, change)
    return result
