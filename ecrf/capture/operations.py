"""Data capture: events, forms and their values, with the audit trail written alongside.

Life cycle of a form: *not started* (no FormInstance), *in progress* (saved with "Save"),
*complete* ("Save and mark complete": every required item present, no error-level check
failing, every failing warning acknowledged with a justification). Saving a complete form
keeps it complete only if it still qualifies; otherwise it returns to in progress.

Every create, change, removal and status change writes audit rows (category "clinical")
in the caller's transaction. A change to a previously saved value needs a reason. A save
carries the form version it was based on; a stale one raises ``StaleFormError`` naming
what changed meanwhile. Functions take (session, actor, ...), flush, never commit.

This module is the API (the screens and the JSON API both use it); the parts live in
``structures`` (data structures), ``assess`` (loading and checking a submission),
``write`` (writing it with its audit rows), ``events`` (events), ``support`` (errors,
audit paths, expression context) and ``history`` (reading the audit trail).

Keys: item values are keyed ``(group OID, row, item OID)`` (row 1 outside repeating
groups); warnings ``(check id, row)`` (row 0 outside repeating groups), where the id of a
soft-range warning is ``ITEM.soft_range``; repeating-group rows ``(group OID, row)``.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.exc import StaleDataError

from ecrf.capture.assess import MAX_ROW, assess, load_stored  # noqa: F401
from ecrf.capture.events import (  # noqa: F401  (the capture API, in one place)
    EventForm,
    declare_not_done,
    event_forms,
    open_event,
)
from ecrf.capture.history import item_history, subject_audit  # noqa: F401
from ecrf.capture.models import (
    CheckAcknowledgement,
    EventInstance,
    FormInstance,
    GroupRow,
    ItemValue,
    Subject,
)
from ecrf.capture.structures import OpenForm, SaveResult, Stored, Submission
from ecrf.capture.support import (  # noqa: F401
    MAX_REASON,
    NOT_STARTED,
    CaptureError,
    EventStateError,
    NotFoundError,
    StaleChange,
    StaleFormError,
    build_context,
    changes_since,
    event_instance,
    event_rule,
    local_today,
)
from ecrf.capture.write import write_form
from ecrf.core import FormChange, ItemChange, audit, form_changing, form_saved
from ecrf.core.audit import Actor
from ecrf.crf import FormDef, StudyDefinition
from ecrf.crf.validation import ValidationResult, validate_form
from ecrf.crf.values import N_, from_canonical
from ecrf.studies import StudyVersion, definition_for

__all__ = [
    "CaptureError", "EventForm", "EventStateError", "NotFoundError", "OpenForm", "SaveResult",
    "StaleChange", "StaleFormError", "Submission", "declare_not_done",
    "event_forms", "form_definition", "form_snapshot", "item_history", "load_form",
    "open_event", "preview_form", "save_form", "subject_audit",
]

log = logging.getLogger(__name__)


_PREFETCHED = "capture.prefetched_form"


def form_definition(session: Session, subject: Subject, event_oid: str, repeat: int,
                    form_oid: str, *, for_save: bool = False) -> tuple[StudyDefinition, FormDef]:
    """The definition a form is entered under: the version of its instance once started,
    else the subject's version. Raises NotFoundError for a form the event does not have.

    ``for_save``: a save of the form follows in this transaction; the form is loaded for it
    now (locked, with its values), and ``save_form`` takes it from here instead of loading
    it again."""
    if for_save:
        try:
            stored = load_stored(session, subject, event_oid, repeat, form_oid, lock=True)
        except EventStateError:
            pass  # the save refuses it; the definition is found as for any other form
        else:
            session.info[_PREFETCHED] = (_transaction(stored),
                                         (subject.id, event_oid, repeat, form_oid), stored)
            return stored.definition, stored.form
    subject_definition = definition_for(subject.study_version)
    rule = event_rule(subject_definition, event_oid, repeat)
    if form_oid not in rule.forms:
        raise NotFoundError(N_("%(event)s has no form %(form)s."), event=rule.name,
                            form=form_oid)
    version_id = session.scalar(
        select(FormInstance.study_version_id)
        .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
        .where(EventInstance.subject_id == subject.id, EventInstance.event_oid == event_oid,
               EventInstance.repeat == repeat, FormInstance.form_oid == form_oid))
    if version_id is None or version_id == subject.study_version_id:
        definition = subject_definition
    else:  # from the session's identity map when already loaded
        definition = definition_for(session.get(StudyVersion, version_id))
    return definition, definition.form(form_oid)


def load_form(session: Session, subject: Subject, event_oid: str, repeat: int, form_oid: str,
              *, today: dt.date | None = None) -> OpenForm:
    """A form as stored, validated as it stands (for the entry screen and read-only views)."""
    stored = load_stored(session, subject, event_oid, repeat, form_oid, lock=False)
    rows = {g: tuple(sorted(r)) for g, r in stored.live_rows().items()}
    context = build_context(session, stored.definition, stored.form, subject, stored.event,
                            today, other_values=stored.other_values)
    validation = validate_form(
        stored.form, {k: iv.value for k, iv in stored.values.items() if iv.value is not None},
        context, rows=rows)
    return _open(stored, validation)


def _open(stored: Stored, validation: ValidationResult) -> OpenForm:
    removed = {k: gr for k, gr in stored.group_rows.items() if gr.removed_at is not None}
    return OpenForm(stored.definition, stored.form, stored.event, stored.instance,
                    {k: iv.value for k, iv in stored.values.items()}, validation.rows, removed,
                    stored.acks, validation, stored.values)


def save_form(session: Session, actor: Actor, subject: Subject, event_oid: str, repeat: int,
              form_oid: str, submission: Submission, *, base_version: int | None,
              complete: bool, today: dt.date | None = None) -> SaveResult:
    """Validate and store a submitted form.

    ``base_version`` is the FormInstance version the user started from (None for a form
    not started). Raises StaleFormError if the form changed since, NotFoundError /
    EventStateError for a form that cannot be entered. Returns ``saved=False`` with the
    reasons (nothing written) when a value is refused, a reason for change is missing, or
    completion was asked for and the form does not qualify.
    """
    audit.bind_actor(session, actor)
    stored = _prefetched(session, subject, event_oid, repeat, form_oid) or load_stored(
        session, subject, event_oid, repeat, form_oid, lock=True)
    instance = stored.instance
    # Locks, frozen and locked studies refuse here, before anything is assessed or written.
    # ``extra`` goes from the receivers of form_changing to those of form_saved of this save.
    extra: dict = {}
    form_changing.send(FormChange(
        session, actor, subject, event_oid, repeat, form_oid, instance,
        status_before=instance.status if instance else None, extra=extra))
    if (instance.version if instance else None) != base_version:
        raise StaleFormError.build(
            changes_since(session, subject, event_oid, repeat, form_oid, base_version or 0),
            instance.version if instance else None)
    assessed = assess(session, subject, stored, submission, today)
    result = assessed.result
    if result.errors or result.form_errors:
        return result
    qualifies = not result.blockers
    if complete and not qualifies:
        return result
    was_complete = instance is not None and instance.status == "complete"
    status = "complete" if complete or (was_complete and qualifies) else "in_progress"
    if instance is not None and not assessed.changes and not assessed.removals \
            and status == instance.status and all(
                stored.acks.get(k) and stored.acks[k].justification == v
                for k, v in assessed.acks.items()):
        result.saved = True
        return result  # nothing to write: no new version, no audit rows
    try:
        instance = write_form(session, actor, subject, stored, assessed, status, event_oid, repeat)
    except (StaleDataError, IntegrityError) as exc:
        # Saved by another transaction between our read and our write; the caller rolls
        # back (the session cannot be queried for details any more).
        log.warning("concurrent save of %s for %s: %s", form_oid, subject.subject_key, exc)
        raise StaleFormError.build([], None) from None
    # SDV resets, broken signatures, query links, lab grades and SAE clocks follow the
    # change in the same transaction.
    form_saved.send(FormChange(
        session, actor, subject, event_oid, repeat, form_oid, instance,
        changes=tuple(ItemChange(c.key[0], c.key[1], c.key[2], c.old, c.new)
                      for c in assessed.changes),
        removed_rows=tuple(assessed.removals),
        status_before="complete" if was_complete else (stored.instance.status
                                                       if stored.instance else None),
        status_after=instance.status,
        saved=_saved_form(stored, instance, assessed.validation), extra=extra))
    result.saved, result.status = True, instance.status
    result.version, result.form_instance = instance.version, instance
    return result


def _prefetched(session: Session, subject: Subject, event_oid: str, repeat: int,
                form_oid: str) -> Stored | None:
    """The form ``form_definition(for_save=True)`` loaded and locked for this save, if it
    did so in this same transaction (used once)."""
    found = session.info.pop(_PREFETCHED, None)
    if found is None or found[0] is None or found[0] is not _transaction(found[2]) \
            or found[1] != (subject.id, event_oid, repeat, form_oid):
        return None
    return found[2]


def _transaction(stored: Stored):
    """The transaction the form was loaded in (None once it left its session)."""
    session = object_session(stored.event)
    return session.get_transaction() if session is not None else None


def _saved_form(stored: Stored, instance: FormInstance, validation: ValidationResult
                ) -> OpenForm:
    """The form as a save left it: the values, rows and acknowledgements just written, and
    the validation they were saved under (what ``load_form`` would find again)."""
    return _open(Stored(stored.event, instance, stored.definition, stored.version_label,
                        stored.form, stored.values, stored.group_rows, stored.acks),
                 validation)


def preview_form(session: Session, subject: Subject, event_oid: str, repeat: int,
                 form_oid: str, submission: Submission, *, today: dt.date | None = None
                 ) -> tuple[OpenForm, SaveResult]:
    """What saving would find, without writing: for re-displaying a form being edited
    (show_if, calculated values, added rows) and for reporting errors."""
    stored = load_stored(session, subject, event_oid, repeat, form_oid, lock=False)
    assessed = assess(session, subject, stored, submission, today, display=True)
    return _open(stored, assessed.result.validation), assessed.result


def form_snapshot(session: Session, form_instance: FormInstance) -> dict:
    """The stored form as typed values, grouped by group and row (display and API)."""
    definition = definition_for(form_instance.study_version)
    form = definition.form(form_instance.form_oid)
    values = {(iv.group_oid, iv.row, iv.item_oid): iv for iv in session.scalars(
        select(ItemValue).where(ItemValue.form_instance_id == form_instance.id))}
    group_rows = {(gr.group_oid, gr.row): gr for gr in session.scalars(
        select(GroupRow).where(GroupRow.form_instance_id == form_instance.id))}
    acks = session.scalars(select(CheckAcknowledgement).where(
        CheckAcknowledgement.form_instance_id == form_instance.id))
    event = form_instance.event
    groups: dict[str, list[dict]] = {}
    for group in form.groups:
        if group.repeating:
            numbers = sorted({r for g, r in group_rows if g == group.oid})
        else:
            numbers = [1]
        rows = []
        for number in numbers:
            record = group_rows.get((group.oid, number))
            items = {}
            for item in group.items:
                iv = values.get((group.oid, number, item.oid))
                text = iv.value if iv is not None else None
                items[item.oid] = {
                    "value": text, "typed": from_canonical(item, text),
                    "grade": iv.grade if iv is not None else None,
                    "updated_at": iv.updated_at if iv is not None else None,
                }
            rows.append({"row": number, "items": items,
                         "removed": bool(record and record.removed_at),
                         "removed_at": record.removed_at if record else None,
                         "removal_reason": record.removal_reason if record else None})
        groups[group.oid] = rows
    return {
        "form_oid": form.oid, "name": form.name, "status": form_instance.status,
        "version": form_instance.version, "study_version": form_instance.study_version.label,
        "event_oid": event.event_oid, "repeat": event.repeat,
        "subject_key": event.subject.subject_key, "updated_at": form_instance.updated_at,
        "groups": groups,
        "acknowledgements": [{"check": a.check_oid, "row": a.row,
                              "justification": a.justification,
                              "acknowledged_at": a.acknowledged_at} for a in acks],
    }
