"""Data review's reactions to data capture, connected to its signals by ``register``.

Before a change: locked data is refused (``DataLockedError`` naming the lock, or the
frozen / locked study). After a save, in the same transaction:

1. SDV marks of changed items (and of removed rows) are reset, with the reason.
2. Signatures whose signed data no longer hashes the same are broken.
3. Automatic queries follow the warning checks. Capture lets a form be saved in progress
   with a failing warning unacknowledged, and requires an acknowledgement (a
   justification) to mark it complete. So every failing warning gets one automatic
   query: *open* while unacknowledged (the site must confirm or correct), *answered*
   with the justification once acknowledged (the monitor reviews it and closes or
   reopens it). A query closed by the monitor is not raised again unless the values the
   check reads change. When the data is corrected so that the check passes, the query
   closes itself with a note.
4. A change to an item with an unclosed query on it (or to the items of the queries named
   in ``change.extra["query_ids"]``) is linked to that query: a message carrying the
   audit sequence of the change, and a ``query.correction_linked`` audit row carrying the
   query id.

While historical data is imported (``audit.historical_import``) no query is raised
automatically (3., and the mis-stratification query): the data was reviewed where it was
entered. SDV resets and broken signatures still follow the change.
"""

from __future__ import annotations

from sqlalchemy import and_, exists, or_, select

from ecrf import capture, core
from ecrf.capture import FormInstance, item_path
from ecrf.core import FormChange, audit
from ecrf.crf.validation import Key
from ecrf.review import corrections, locks, queries, sdv, signatures, strata
from ecrf.review.models import Lock, Query, QueryMessage

AUTO_CLOSE_NOTE = "Closed automatically: the data was corrected and the check now passes."


def register() -> None:
    """Connect review's receivers; the app factory calls this at start-up."""
    core.connect(core.form_changing, refuse_locked)
    capture.add_lock_reader(locks.entry_lock)
    core.connect(core.form_saved, reset_sdv, break_signatures, link_corrections,
                    sync_automatic_queries, strata.query_misstratification)


_PRESENT = "review.present"


def refuse_locked(change: FormChange) -> None:
    """Refuse a change of locked data. Before a save of a stored form, the same statement
    tells which of its verifications, signatures and queries exist, so that the reactions
    to the save read only those that do."""
    session, subject, form = change.session, change.subject, change.form_instance
    if not isinstance(form, FormInstance):
        locks.ensure_writable(session, subject, form.id if form is not None else None)
        return
    locks.refuse_frozen(subject)
    lock_id, marks, signed, asked = session.execute(select(
        select(Lock.id).where(locks.covering(subject, form.id)).order_by(Lock.id).limit(1)
        .scalar_subquery(),
        exists().where(sdv.standing_marks(form.id)),
        exists().where(signatures.valid_over(subject, form)),
        exists().where(_form_query_filter(form.id)))).one()
    locks.refuse_lock(session.get(Lock, lock_id) if lock_id is not None else None)
    change.extra[_PRESENT] = (form, {"sdv": bool(marks), "signatures": bool(signed),
                                     "queries": bool(asked)})


def _present(change: FormChange, form: FormInstance, what: str) -> bool:
    """Whether the saved form may have ``what`` (unknown: it may)."""
    found = change.extra.get(_PRESENT)
    return found is None or found[0] is not form or found[1][what]


def _changes(change: FormChange) -> tuple[FormInstance | None, dict[Key, tuple]]:
    form = change.form_instance
    if not isinstance(form, FormInstance):
        return None, {}
    return form, {(c.group, c.row, c.item): (c.old, c.new) for c in change.changes}


def reset_sdv(change: FormChange) -> None:
    form, changed = _changes(change)
    if form is not None and (changed or change.removed_rows) and _present(change, form, "sdv"):
        sdv.reset_for_change(change.session, change.actor, form, changed,
                             tuple(change.removed_rows))


def break_signatures(change: FormChange) -> None:
    form, changed = _changes(change)
    if form is not None and (changed or change.removed_rows) \
            and _present(change, form, "signatures"):
        signatures.break_changed(change.session, change.actor, change.subject, form,
                                 _describe(change))


def link_corrections(change: FormChange) -> None:
    form, changed = _changes(change)
    if form is not None and (changed or change.removed_rows):
        _link_corrections(change, form, changed)


def sync_automatic_queries(change: FormChange) -> None:
    form, changed = _changes(change)
    if form is not None and not audit.held_back(change.session, strata.AUTOMATIC_QUERIES):
        _sync_automatic_queries(change, form, set(changed))


_FORM_QUERIES = "review.form_queries"


def _form_queries(change: FormChange, form: FormInstance) -> list[Query]:
    """The form's unclosed item queries and its automatic queries, in id order: loaded once
    per save for both the correction links and the automatic queries."""
    cached = change.extra.get(_FORM_QUERIES)
    if cached is None or cached[0] is not form:
        found = list(change.session.scalars(select(Query).where(_form_query_filter(form.id))
                                            .order_by(Query.id))) \
            if _present(change, form, "queries") else []
        cached = change.extra[_FORM_QUERIES] = (form, found)
    return cached[1]


def _form_query_filter(form_instance_id: int):
    return and_(Query.form_instance_id == form_instance_id,
                or_(and_(Query.status != "closed", Query.item_oid.is_not(None)),
                    Query.origin == "automatic"))


def _describe(change: FormChange) -> str:
    parts = [f"{c.item}[{c.row}] {c.old if c.old is not None else '(blank)'} -> "
             f"{c.new if c.new is not None else '(blank)'}" for c in change.changes[:10]]
    if len(change.changes) > 10:
        parts.append(f"and {len(change.changes) - 10} more")
    parts += [f"row {row} of {group} removed" for group, row in change.removed_rows]
    return (f"{change.form_oid} at {change.event_oid}[{change.repeat}] changed by "
            f"{change.actor.username}: " + "; ".join(parts))


def _link_corrections(change: FormChange, form: FormInstance,
                      changed: dict[Key, tuple]) -> None:
    session, subject = change.session, change.subject
    targets = corrections.open_queries_on(session, form, changed,
                                          among=_form_queries(change, form))
    named = change.extra.get("query_ids") or ()
    if isinstance(named, int):
        named = (named,)
    if named:
        for query in session.scalars(select(Query).where(
                Query.id.in_(list(named)), Query.form_instance_id == form.id,
                Query.status != "closed")):
            if query.item_oid is None:
                # A form-level query: every change of this save answers it.
                for key in changed:
                    targets.setdefault(key, []).append(query)
    if not targets:
        return
    paths = {key: item_path(subject, change.event_oid, change.repeat, change.form_oid, key)
             for key in targets}
    rows = corrections.latest_changes(session, subject, paths.values())
    for key, found in targets.items():
        row = rows.get(paths[key])
        if row is None:
            continue
        for query in dict.fromkeys(found):
            corrections.link_correction(session, change.actor, query, row)


def _sync_automatic_queries(change: FormChange, form: FormInstance, changed: set[Key]) -> None:
    session, actor, subject = change.session, change.actor, change.subject
    opened = change.saved if isinstance(change.saved, capture.OpenForm) else \
        capture.load_form(session, subject, change.event_oid, change.repeat, change.form_oid)
    failing = {issue.key: issue for issue in opened.validation.warnings}
    existing: dict[tuple[str, int], list[Query]] = {}
    for query in _form_queries(change, form):
        if query.origin != "automatic":
            continue
        existing.setdefault((query.check_oid, query.check_row or 0), []).append(query)
    unclosed = [q for qs in existing.values() for q in qs if q.status != "closed"]
    said: dict[int, set[str]] = {}
    if unclosed:
        for query_id, text in session.execute(select(QueryMessage.query_id, QueryMessage.text)
                                              .where(QueryMessage.query_id.in_(
                                                  [q.id for q in unclosed]))):
            said.setdefault(query_id, set()).add(text)
    checks = {c.oid: c for c in opened.form.checks}
    for key, issue in failing.items():
        ack = opened.acknowledgements.get(key)
        justification = ack.justification if ack is not None else None
        queries_of_check = existing.get(key, [])
        live = [q for q in queries_of_check if q.status != "closed"]
        if live:
            query = live[-1]
            if justification and justification not in said.get(query.id, set()):
                queries.acknowledge(session, actor, query, justification)
            continue
        if queries_of_check and not (set(issue.keys) & changed):
            continue  # closed by the monitor and the values it reads did not change
        check = checks.get(issue.id)
        text = check.message if check is not None and not issue.message.params \
            else str(issue.message)
        queries.raise_automatic(session, actor, subject, form, issue.id, issue.row,
                                issue.keys[0] if issue.keys else None,
                                f"{text} [{issue.id}]", justification=justification)
    for check_key, queries_of_check in existing.items():
        if check_key in failing:
            continue
        for query in queries_of_check:
            if query.status != "closed":
                queries.close_automatic(session, actor, query, AUTO_CLOSE_NOTE)
