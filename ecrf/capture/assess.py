"""Loading a form for a save and assessing a submission against it: live rows, values,
changes and their reasons, warnings and their acknowledgements. Nothing is written here."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ecrf.capture.models import (
    CheckAcknowledgement,
    EventInstance,
    FormInstance,
    GroupRow,
    ItemValue,
    Subject,
)
from ecrf.capture.structures import Assessed, Change, SaveResult, Stored, Submission
from ecrf.capture.support import (
    MAX_REASON,
    NOT_STARTED,
    EventStateError,
    NotFoundError,
    build_context,
    event_rule,
    other_forms_read,
)
from ecrf.capture.system_values import (
    allocation_refusals,
    apply_system_values,
    strata_refusals,
)
from ecrf.core import audit
from ecrf.crf import FormDef, ItemType, Severity
from ecrf.crf.validation import (
    IssueKey,
    Key,
    ValidationResult,
    completion_problems,
    keys_of,
    validate_form,
)
from ecrf.crf.values import N_, Message, is_blank_raw
from ecrf.studies import definition_for

MAX_ROW = 9999


def load_stored(session: Session, subject: Subject, event_oid: str, repeat: int,
                form_oid: str, *, lock: bool) -> Stored:
    """The form with its values, rows and acknowledgements (``lock``: for a save, locking
    the event and form rows so that concurrent saves of the event queue up)."""
    subject_definition = definition_for(subject.study_version)
    rule = event_rule(subject_definition, event_oid, repeat)
    if form_oid not in rule.forms:
        raise NotFoundError(N_("%(event)s has no form %(form)s."), event=rule.name,
                            form=form_oid)
    # The event, the form and its values in one statement; a save locks the event row,
    # which every save of the event takes first, so concurrent saves of it queue up there
    # (the form's own version check catches any other writer).
    # The row-1 values of the other forms its expressions read come in the same statement.
    others = other_forms_read(subject_definition, form_oid)
    forms = FormInstance.form_oid == form_oid
    values_of = ItemValue.form_instance_id == FormInstance.id
    if others:
        forms = FormInstance.form_oid.in_([form_oid, *others])
        values_of = and_(values_of, or_(FormInstance.form_oid == form_oid, ItemValue.row == 1))
    stmt = (select(EventInstance, FormInstance, ItemValue)
            .outerjoin(FormInstance, and_(FormInstance.event_instance_id == EventInstance.id,
                                          forms))
            .outerjoin(ItemValue, values_of)
            .where(EventInstance.subject_id == subject.id,
                   EventInstance.event_oid == event_oid, EventInstance.repeat == repeat)
            .execution_options(populate_existing=True))
    if lock:
        stmt = stmt.with_for_update(of=EventInstance)
    found = session.execute(stmt).all()
    event = found[0][0] if found else None
    instance = next((fi for _event, fi, _iv in found
                     if fi is not None and fi.form_oid == form_oid), None)
    loaded = [iv for _event, _fi, iv in found if iv is not None and iv.form_oid == form_oid]
    other_values = [(iv.form_oid, iv.item_oid, iv.value) for _event, _fi, iv in found
                    if iv is not None and iv.form_oid != form_oid]
    if event is None:
        raise EventStateError(N_("%(event)s has not been started: give its date on the event "
                                 "page first."), event=rule.name)
    if event.state == "not_done":
        raise EventStateError(N_("%(event)s was declared not done (%(reason)s); reopen it "
                                 "to enter data."), event=rule.name,
                              reason=event.not_done_reason or "")
    version = instance.study_version if instance else subject.study_version
    definition = definition_for(version)
    values: dict[Key, ItemValue] = {(iv.group_oid, iv.row, iv.item_oid): iv for iv in loaded}
    group_rows: dict[tuple[str, int], GroupRow] = {}
    acks: dict[IssueKey, CheckAcknowledgement] = {}
    form = definition.form(form_oid)
    if instance is not None:
        if any(g.repeating for g in form.groups):
            for gr in session.scalars(select(GroupRow).where(
                    GroupRow.form_instance_id == instance.id)):
                group_rows[(gr.group_oid, gr.row)] = gr
        if _may_warn(form):
            for ack in session.scalars(select(CheckAcknowledgement).where(
                    CheckAcknowledgement.form_instance_id == instance.id)):
                acks[(ack.check_oid, ack.row)] = ack
    # Read for the subject's version: they serve a form entered under that version only.
    return Stored(event, instance, definition, version.label, form, values, group_rows, acks,
                  other_values if others and definition is subject_definition else None)


def _may_warn(form: FormDef) -> bool:
    return any(i.soft_range is not None for i in form.items) or any(
        c.severity is Severity.WARNING for c in form.checks)


def assess(session: Session, subject: Subject, stored: Stored, submission: Submission,
           today: dt.date | None, *, display: bool = False) -> Assessed:
    """Validate a submission against the stored form: what a save would write, and why it
    could not (errors, missing reasons) or could not complete (blockers).

    ``display``: for showing the page again rather than saving. Rows added on the page and
    still blank, and saved rows about to be removed, are not rows a save writes, but the
    page shows them: they are validated too (so each row's questions are shown or hidden
    on its own answers), without the issues or required items of rows nobody filled in.
    """
    instance, form = stored.instance, stored.form
    result = SaveResult(saved=False, status=instance.status if instance else NOT_STARTED,
                        version=instance.version if instance else None,
                        form_instance=instance, form_def=form)
    rows, removals, shown_only = _rows(form, stored, submission, result, display=display)
    raw = dict(submission.values)
    kept = set()
    if submission.partial:
        # Calculated items are recomputed from their inputs, never carried over.
        calculated = {i.oid for i in form.items if i.type is ItemType.CALCULATED}
        kept = {k for k, iv in stored.values.items()
                if k not in raw and iv.value is not None and k[2] not in calculated}
        raw.update({k: stored.values[k].value for k in kept})
    refused = apply_system_values(subject, stored, raw)
    # A randomization date for a subject never randomized: this message, not the system one.
    refused.update(allocation_refusals(subject, stored, submission.values))
    context = build_context(session, stored.definition, form, subject, stored.event, today,
                            other_values=stored.other_values)
    validation = validate_form(form, raw, context, rows=rows)
    hidden = {k for k in kept if k not in validation.visible}
    if hidden:
        # A kept value of an item this submission hides was not posted by anyone: it is
        # cleared, not refused.
        validation = validate_form(form, {k: v for k, v in raw.items() if k not in hidden},
                                   context, rows=rows)
    if shown_only:
        # Rows on the page that a save would not write: nothing to require or check there.
        validation.issues = [i for i in validation.issues
                             if i.group is None or (i.group, i.row) not in shown_only]
        validation.missing = [k for k in validation.missing if k[:2] not in shown_only]
    result.validation = validation
    for key, messages in validation.errors.items():
        result.errors.setdefault(key, []).extend(messages)
    result.form_errors.extend(validation.form_errors)
    changes = _changes(form, stored, validation, submission, result, shown_only)
    refused.update(strata_refusals(subject, stored, changes, audit.current_actor(session)))
    for key, message in refused.items():
        result.errors.setdefault(key, []).append(message)
    changes = [c for c in changes if c.key not in refused]
    result.changed = [c.key for c in changes]
    result.missing = list(validation.missing)
    result.check_errors = validation.failing_errors
    result.warnings = validation.warnings
    changed_keys = set(result.changed)
    acks: dict[IssueKey, str] = {}
    for issue in validation.warnings:
        given = (submission.acknowledgements.get(issue.key) or "").strip()
        existing = stored.acks.get(issue.key)
        if len(given) > MAX_REASON:
            result.form_errors.append(_too_long(N_(
                "The justification is %(n)s characters long; at most %(limit)s are allowed."),
                given))
        elif given:
            acks[issue.key] = given
        elif existing is None or set(issue.keys) & changed_keys:
            result.unacknowledged.append(issue)
    result.completion_problems = completion_problems(form, validation)
    return Assessed(result, validation, changes, removals, acks)


def _rows(form: FormDef, stored: Stored, submission: Submission, result: SaveResult, *,
          display: bool = False
          ) -> tuple[dict[str, tuple[int, ...]], dict[tuple[str, int], str],
                     set[tuple[str, int]]]:
    """Live rows after this submission, the saved rows it removes (with reasons), and (for
    ``display``) the rows kept only to be shown: blank added rows and rows being removed."""
    live = stored.live_rows()
    repeating = {g.oid for g in form.groups if g.repeating}
    known_groups = {g.oid for g in form.groups}
    items = {i.oid for i in form.items}
    named: dict[str, set[int]] = {g: set() for g in repeating}
    for group, rows in (submission.rows or {}).items():
        if group in named:
            named[group].update(int(r) for r in rows)
    for group, row, item in submission.values:
        if group not in known_groups or item not in items:
            result.form_errors.append(Message(N_("%(group)s.%(item)s is not an item of this "
                                                 "form."), {"group": group, "item": item}))
        elif group in repeating:
            named[group].add(row)
        elif row != 1:
            result.form_errors.append(Message(N_("%(group)s is not a repeating group: use row "
                                                 "1, not %(row)s."), {"group": group, "row": row}))
    removals: dict[tuple[str, int], str] = {}
    for (group, row), reason in submission.removed_rows.items():
        record = stored.group_rows.get((group, row))
        if record is None:
            named.get(group, set()).discard(row)  # an unsaved row simply disappears
            continue
        if record.removed_at is not None:
            continue
        reason = (reason or "").strip()
        if len(reason) > MAX_REASON:
            result.errors.setdefault((group, row, ""), []).append(
                _too_long(N_(
                "The reason for removing the row is %(n)s characters long; at most %(limit)s "
                "are allowed."), reason))
            continue
        if not reason:
            result.errors.setdefault((group, row, ""), []).append(Message(
                N_("Give a reason for removing row %(row)s of %(group)s."),
                {"row": row, "group": group}))
            continue
        removals[(group, row)] = reason
    rows: dict[str, tuple[int, ...]] = {}
    shown_only: set[tuple[str, int]] = set()
    for group in repeating:
        wanted = live[group] | named[group]
        for row in sorted(wanted - live[group]):
            record = stored.group_rows.get((group, row))
            if record is not None and record.removed_at is not None:
                result.form_errors.append(Message(
                    N_("Row %(row)s of %(group)s was removed and cannot be changed."),
                    {"row": row, "group": group}))
                wanted.discard(row)
            elif not 1 <= row <= MAX_ROW:
                result.form_errors.append(Message(N_("Row numbers run from 1 to %(max)s."),
                                                  {"max": MAX_ROW}))
                wanted.discard(row)
            elif all(is_blank_raw(submission.values.get((group, row, i.oid)))
                     for i in form.group(group).items):
                # An added row left empty is not a row: a save drops it, the page keeps it.
                if display:
                    shown_only.add((group, row))
                else:
                    wanted.discard(row)
        leaving = {r for g, r in removals if g == group}
        if display:
            shown_only |= {(group, r) for r in leaving}
        else:
            wanted -= leaving
        rows[group] = tuple(sorted(wanted))
    return rows, removals, shown_only


def _changes(form: FormDef, stored: Stored, validation: ValidationResult,
             submission: Submission, result: SaveResult,
             shown_only: set[tuple[str, int]]) -> list[Change]:
    changes = []
    for key in keys_of(form, validation.rows):
        if key in validation.errors or key[:2] in shown_only:
            continue
        new = validation.canonical.get(key)
        record = stored.values.get(key)
        old = record.value if record is not None else None
        if new == old:
            continue
        item = form.item(key[2])
        reason = (submission.reasons.get(key) or "").strip() or None
        if reason is not None and len(reason) > MAX_REASON:
            result.errors.setdefault(key, []).append(_too_long(N_(
                "The reason for change is %(n)s characters long; at most %(limit)s are "
                "allowed."), reason))
            continue
        action = "item.entered" if old is None else "item.cleared" if new is None \
            else "item.changed"
        if item.type is ItemType.CALCULATED:
            reason = reason or "recalculated from the values it depends on"
        elif key not in validation.visible:
            reason = reason or f"not applicable: {item.label} is only asked when {item.show_if}"
        elif old is not None and not reason:
            result.reasons_needed.append(key)
            result.errors.setdefault(key, []).append(Message(
                N_("Give a reason for changing %(label)s (saved value: %(old)s)."),
                {"label": item.label, "old": old}))
            continue
        changes.append(Change(key, old, new, reason, action))
    return changes


def _too_long(template: str, text: str) -> Message:
    """A text longer than MAX_REASON, refused (never cut: the person shortens it)."""
    return Message(template, {"n": len(text), "limit": MAX_REASON})
