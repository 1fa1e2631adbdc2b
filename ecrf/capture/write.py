"""Writing a validated form: values, rows, acknowledgements, status, and their audit rows.

Called by ``capture.save_form`` once a submission has been assessed; every write here is
matched by an audit row in the same transaction.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from ecrf.capture.models import CheckAcknowledgement, FormInstance, GroupRow, ItemValue, Subject
from ecrf.capture.schedule import refresh_subject
from ecrf.capture.schedule_data import needs
from ecrf.capture.structures import Assessed, Stored
from ecrf.capture.support import event_path, form_path, item_path, record_clinical, row_path
from ecrf.core import utcnow
from ecrf.core.audit import Actor
from ecrf.crf import FormDef
from ecrf.crf.validation import ValidationResult
from ecrf.crf.values import shadows_of

_VALUE_COLUMNS = ("value", "value_number", "value_date", "value_datetime", "grade",
                  "grade_version", "grade_basis", "updated_at", "updated_by_id")


def write_form(session: Session, actor: Actor, subject: Subject, stored: Stored,
               assessed: Assessed, status: str, event_oid: str, repeat: int) -> FormInstance:
    """Apply an assessed submission, then write its audit rows.

    Rows are changed first and flushed together (one statement per kind of change), so
    the form version is known; the audit rows follow with autoflush off, so they too are
    inserted in one batch at the final flush.
    """
    validation, changes = assessed.validation, assessed.changes
    now = utcnow()
    instance = stored.instance
    old_status = instance.status if instance else None
    if instance is None:
        instance = FormInstance(event_instance_id=stored.event.id, subject_id=subject.id,
                                form_oid=stored.form.oid,
                                study_version_id=subject.study_version_id, status=status,
                                created_at=now, updated_at=now, updated_by_id=actor.user_id)
        session.add(instance)
        session.flush()  # its id, for the rows below; version 1
    else:
        instance.status = status
        instance.updated_at = now  # always: every save makes a new version
        instance.updated_by_id = actor.user_id
    _apply_values(session, actor, subject, stored, validation, changes, instance, now)
    for (group, row), reason in assessed.removals.items():
        record = stored.group_rows[(group, row)]
        record.removed_at, record.removed_by_id, record.removal_reason = now, actor.user_id, reason
    acks = _apply_acks(session, actor, stored, assessed.acks, instance, now)
    event_moved = _sync_event(session, stored, validation, instance, event_oid,
                              status_changed=old_status != status)
    session.flush()  # the new version number (a stale one fails here)

    details = {"form_version": instance.version}
    label, form_oid = stored.version_label, stored.form.oid

    def log(action: str, path: str, **kwargs) -> None:
        record_clinical(session, actor, subject, action, path, version_label=label,
                        details=details, **kwargs)

    fpath = form_path(subject, event_oid, repeat, form_oid)
    with session.no_autoflush:
        if old_status != status:
            log("form.status", fpath, old=old_status, new=status)
        for change in changes:
            log(change.action, item_path(subject, event_oid, repeat, form_oid, change.key),
                old=change.old, new=change.new, reason=change.reason)
        for (group, row), reason in assessed.removals.items():
            log("row.removed", row_path(subject, event_oid, repeat, form_oid, group, row),
                old="present", new="removed", reason=reason)
        for (check_id, row), old, justification in acks:
            log("warning.acknowledged", f"{fpath}/{check_id}[{row}]", old=old,
                new=justification, reason=justification)
        epath = event_path(subject, event_oid, repeat)
        for action, old, new, reason in event_moved:
            log(action, epath, old=old, new=new, reason=reason)
    session.flush()
    if event_moved or _schedule_reads(stored, changes):
        refresh_subject(session, subject)
    return instance


def _apply_values(session: Session, actor: Actor, subject: Subject, stored: Stored,
                  validation: ValidationResult, changes, instance: FormInstance,
                  now: dt.datetime) -> None:
    repeating = {g.oid for g in stored.form.groups if g.repeating}
    for change in changes:
        group, row, item_oid = change.key
        if group in repeating and (group, row) not in stored.group_rows:
            record = GroupRow(form_instance_id=instance.id, group_oid=group, row=row)
            session.add(record)
            stored.group_rows[(group, row)] = record
        value = existing = stored.values.get(change.key)
        if value is None:
            value = ItemValue(form_instance_id=instance.id, subject_id=subject.id,
                              form_oid=stored.form.oid, group_oid=group, row=row,
                              item_oid=item_oid)
            session.add(value)
            stored.values[change.key] = value
        shadows = shadows_of(validation.typed.get(change.key))
        value.value = change.new
        value.value_number, value.value_date = shadows.number, shadows.date
        value.value_datetime = shadows.datetime
        grade = validation.grades.get(change.key)
        value.grade = grade.grade if grade else None
        value.grade_version = grade.version if grade else None
        value.grade_basis = grade.basis if grade else None
        value.updated_at, value.updated_by_id = now, actor.user_id
        if existing is not None:
            # The same columns in every UPDATE: the flush sends them as one batch.
            for column in _VALUE_COLUMNS:
                flag_modified(value, column)


def _apply_acks(session: Session, actor: Actor, stored: Stored, new_acks: dict,
                instance: FormInstance, now: dt.datetime) -> list[tuple]:
    written = []
    for (check_id, row), justification in new_acks.items():
        ack = stored.acks.get((check_id, row))
        if ack is not None and ack.justification == justification:
            continue
        if ack is None:
            ack = CheckAcknowledgement(form_instance_id=instance.id, check_oid=check_id, row=row)
            session.add(ack)
            stored.acks[(check_id, row)] = ack  # the form as saved, for the save's receivers
        written.append(((check_id, row), ack.justification, justification))
        ack.justification, ack.acknowledged_at = justification, now
        ack.acknowledged_by_id = actor.user_id
    return written


def _sync_event(session: Session, stored: Stored, validation: ValidationResult,
                instance: FormInstance, event_oid: str, *, status_changed: bool) -> list[tuple]:
    """The event's date follows its date item; the event is done when its forms are.
    Returns the event changes to audit: (action, old, new, reason)."""
    event = stored.event
    moved = []
    date_item = stored.definition.event_date_items.get(event_oid)
    if date_item is not None and date_item[0] == stored.form.oid:
        form = stored.form
        item = form.item(date_item[1])
        value = validation.typed.get((_group_of(form, item.oid), 1, item.oid))
        day = value.date() if isinstance(value, dt.datetime) else value
        if isinstance(day, dt.date) and day != event.actual_date:
            moved.append(("event.date_changed", event.actual_date, day,
                          f"from {form.oid}.{item.oid}"))
            event.actual_date = day
    if not status_changed:
        return moved  # the other forms did not change in this transaction: nor does the event
    rule = stored.definition.event(event_oid)
    statuses = {fi.form_oid: fi.status for fi in session.scalars(
        select(FormInstance).where(FormInstance.event_instance_id == event.id,
                                   FormInstance.id != instance.id))}
    statuses[instance.form_oid] = instance.status
    state = "done" if all(statuses.get(oid) == "complete" for oid in rule.forms) \
        else "in_progress"
    if event.state != state:
        moved.append(("event.status", event.state, state, None))
        event.state = state
    return moved


def _schedule_reads(stored: Stored, changes) -> bool:
    """Whether a changed item is an anchor or is read by the schedule's conditions."""
    wanted = needs(stored.definition).items
    form_oid = stored.form.oid
    return any((form_oid, change.key[2]) in wanted for change in changes)


def _group_of(form: FormDef, item_oid: str) -> str:
    for group in form.groups:
        if any(i.oid == item_oid for i in group.items):
            return group.oid
    raise KeyError(item_oid)
