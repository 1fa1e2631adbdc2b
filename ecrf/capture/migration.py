"""Moving subjects and their forms to another study version: previewed, explicit, audited.

A protocol amendment is a new version; existing forms stay on the version they were
entered under until someone migrates them. The preview lists, per form instance, what the
new version changes (items added, removed, retyped, new code lists or ranges, forms no
longer collected) and every value that would not fit. Migration moves a subject only as a
whole: if any of its forms would not fit, none of them moves and the refusal says why.
Completed forms are migrated too (their data is what the new version must accept); a
completed form that gains required items is flagged for review.

Locks hold as for any change of data: a frozen or locked study is not migrated at all,
and a subject that is locked, at a locked site, or with a locked form stays entirely on
its versions, reported with the lock that keeps it there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ecrf import studies
from ecrf.capture.locking import entry_lock
from ecrf.capture.models import EventInstance, FormInstance, GroupRow, ItemValue, Subject
from ecrf.capture.schedule import refresh_subjects
from ecrf.core import audit
from ecrf.core.audit import Actor
from ecrf.crf import FormDef, ItemDef, ItemType, Range, StudyDefinition
from ecrf.domain.dates import PartialDate, PartialDateError
from ecrf.studies import Site, Study, StudyStatus, StudyVersion


class MigrationError(ValueError):
    """A migration request that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class FormChange:
    subject_key: str
    site_code: str
    event_oid: str
    repeat: int
    form_oid: str
    form_instance_id: int
    from_label: str
    complete: bool
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # why the recorded data would not fit the new version
    notes: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return not self.problems

    @property
    def where(self) -> str:
        return f"{self.subject_key}/{self.event_oid}[{self.repeat}]/{self.form_oid}"


@dataclass
class MigrationPreview:
    study_oid: str
    to_number: int
    to_label: str
    subjects: list[str]  # subjects that would move to the version, in key order
    forms: list[FormChange] = field(default_factory=list)
    locked: dict[str, str] = field(default_factory=dict)  # subject key -> its (site's) lock
    refusal: str | None = None  # why nothing may move at all (a frozen or locked study)

    @property
    def blocked_subjects(self) -> list[str]:
        return sorted({f.subject_key for f in self.forms if not f.fits} | set(self.locked))

    def lines(self) -> list[str]:
        """The preview as text, one line per fact (for the CLI and logs)."""
        out = [f"{self.study_oid}: {len(self.subjects)} subject(s), {len(self.forms)} form(s) "
               f"to move to {self.to_label}"]
        for form in self.forms:
            state = "complete" if form.complete else "in progress"
            out.append(f"  {form.where} ({state}, {form.from_label})"
                       + ("" if form.fits else "  REFUSED"))
            out += [f"    + {oid}" for oid in form.added]
            out += [f"    - {oid}" for oid in form.removed]
            out += [f"    ~ {text}" for text in form.changed]
            out += [f"    ! {text}" for text in form.problems]
            out += [f"    note: {text}" for text in form.notes]
        out += [f"  {key}: REFUSED, {text}" for key, text in sorted(self.locked.items())]
        if self.blocked_subjects:
            out.append("refused (their data does not fit or is locked): "
                       + ", ".join(self.blocked_subjects))
        if self.refusal:
            out.append(f"refused: {self.refusal}")
        return out


@dataclass
class MigrationResult:
    to_label: str
    subjects: list[str]
    forms: int
    refused: list[FormChange]
    locked: dict[str, str] = field(default_factory=dict)  # subject key -> its (site's) lock


# --- comparing definitions -------------------------------------------------------------------


def _range_text(value: Range | None) -> str:
    if value is None:
        return "none"
    low = "" if value.min is None else str(value.min)
    high = "" if value.max is None else str(value.max)
    return f"{low}..{high}"


def _codes(definition: StudyDefinition, item: ItemDef) -> tuple[str, ...] | None:
    codes = definition.choices_of(item.form, item.oid)
    return codes.codes if codes is not None else None


def _item_changes(old_def: StudyDefinition, old: ItemDef, new_def: StudyDefinition,
                  new: ItemDef) -> list[str]:
    oid, changes = new.oid, []
    if (old.type, old.result_type) != (new.type, new.result_type):
        was = old.result_type and f"{old.type}/{old.result_type}" or str(old.type)
        now = new.result_type and f"{new.type}/{new.result_type}" or str(new.type)
        changes.append(f"{oid}: type {was} -> {now}")
    old_codes, new_codes = _codes(old_def, old), _codes(new_def, new)
    if old_codes is not None and new_codes is not None and old_codes != new_codes:
        gone = [c for c in old_codes if c not in new_codes]
        added = [c for c in new_codes if c not in old_codes]
        if gone:
            changes.append(f"{oid}: codes removed {', '.join(gone)}")
        if added:
            changes.append(f"{oid}: codes added {', '.join(added)}")
    if old.codelist != new.codelist and old_codes == new_codes:
        changes.append(f"{oid}: code list {old.codelist or 'inline'} -> "
                       f"{new.codelist or 'inline'}")
    for name, text in (("range", _range_text), ("soft_range", _range_text)):
        if getattr(old, name) != getattr(new, name):
            changes.append(f"{oid}: {name} {text(getattr(old, name))} -> "
                           f"{text(getattr(new, name))}")
    for name in ("length", "precision", "unit", "group"):
        if getattr(old, name) != getattr(new, name):
            changes.append(f"{oid}: {name} {getattr(old, name)} -> {getattr(new, name)}")
    if (old.required, old.required_if) != (new.required, new.required_if):
        now = "required" if new.required else (f"required if {new.required_if}"
                                               if new.required_if else "optional")
        changes.append(f"{oid}: now {now}")
    return changes


def _form_diff(old_def: StudyDefinition, old: FormDef | None, new_def: StudyDefinition,
               new: FormDef | None) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    if old is None or new is None:
        return (), (), ()
    old_items = {i.oid: i for i in old.items}
    new_items = {i.oid: i for i in new.items}
    added = tuple(oid for oid in new_items if oid not in old_items)
    removed = tuple(oid for oid in old_items if oid not in new_items)
    changed: list[str] = []
    for oid, item in new_items.items():
        if oid in old_items:
            changed += _item_changes(old_def, old_items[oid], new_def, item)
    return added, removed, tuple(changed)


# --- does a stored value fit an item? -------------------------------------------------------


def _in_range(item: ItemDef, number: Decimal) -> str | None:
    if item.range is not None and not item.range.contains(number):
        return f"{number} is outside the range {_range_text(item.range)}"
    return None


def value_problem(definition: StudyDefinition, item: ItemDef, text: str) -> str | None:
    """Why the stored canonical text would not be a valid value of ``item`` (None: valid)."""
    kind = item.type
    try:
        if kind is ItemType.TEXT:
            if item.length is not None and len(text) > item.length:
                return f"{len(text)} characters, more than the {item.length} allowed"
        elif kind is ItemType.INTEGER:
            if not re.fullmatch(r"-?[0-9]+", text):
                return f"{text!r} is not a whole number"
            return _in_range(item, Decimal(text))
        elif kind is ItemType.DECIMAL:
            number = Decimal(text)
            if not number.is_finite():
                return f"{text!r} is not a number"
            exponent = number.as_tuple().exponent
            places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
            if item.precision is not None and places > item.precision:
                return f"{text} has {places} decimal places, more than {item.precision}"
            return _in_range(item, number)
        elif kind is ItemType.DATE:
            if len(text) != 10:
                return f"{text!r} is not a full date"
            dt.date.fromisoformat(text)
        elif kind is ItemType.PARTIAL_DATE:
            PartialDate.parse(text)
        elif kind is ItemType.TIME:
            dt.time.fromisoformat(text)
        elif kind is ItemType.DATETIME:
            dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        elif kind in (ItemType.SINGLE_CHOICE, ItemType.YES_NO):
            codes = _codes(definition, item) or ()
            if text not in codes:
                return f"code {text!r} is not in the new code list ({', '.join(codes)})"
        elif kind is ItemType.MULTIPLE_CHOICE:
            chosen = json.loads(text)
            codes = _codes(definition, item) or ()
            if not isinstance(chosen, list):
                return f"{text!r} is not a list of codes"
            unknown = [str(c) for c in chosen if str(c) not in codes]
            if unknown:
                return f"codes {', '.join(unknown)} are not in the new code list"
    except (ValueError, InvalidOperation, PartialDateError):
        return f"{text!r} is not a valid {kind.value} value"
    return None


# --- preview and migration -------------------------------------------------------------------


def _version(session: Session, study: Study, to_version: StudyVersion | int) -> StudyVersion:
    if isinstance(to_version, StudyVersion):
        if to_version.study_id != study.id:
            raise MigrationError(f"{to_version.label} is not a version of {study.oid}")
        return to_version
    try:
        return studies.get_version(session, study, int(to_version))
    except studies.StudyError as exc:
        raise MigrationError(str(exc)) from None


def _subjects(session: Session, study: Study, keys: list[str] | None) -> list[tuple]:
    stmt = (select(Subject, Site.code).join(Site, Site.id == Subject.site_id)
            .where(Subject.study_id == study.id).order_by(Subject.subject_key))
    if keys:
        wanted = sorted({k.strip() for k in keys if k.strip()})
        stmt = stmt.where(Subject.subject_key.in_(wanted))
        found = session.execute(stmt).all()
        missing = sorted(set(wanted) - {s.subject_key for s, _ in found})
        if missing:
            raise MigrationError(f"no subject {', '.join(missing)} in {study.oid}")
        return found
    return session.execute(stmt).all()


def study_refusal(study: Study) -> str | None:
    """Why no form of ``study`` may move to another version now (frozen, locked), or None."""
    if study.status == StudyStatus.FROZEN:
        return (f"study {study.oid} is frozen: no form can move to another version until a "
                f"data manager unfreezes it")
    if study.status == StudyStatus.LOCKED:
        return (f"study {study.oid} is locked: no form can move to another version until a "
                f"data manager unlocks it")
    return None


def preview_migration(session: Session, study: Study, to_version: StudyVersion | int,
                      subject_keys: list[str] | None = None) -> MigrationPreview:
    """What moving the subjects (default: all of the study's) to ``to_version`` would do."""
    target = _version(session, study, to_version)
    new_def = studies.definition_for(target)
    by_id = {v.id: v for v in studies.study_versions(session, study)}
    subjects = _subjects(session, study, subject_keys)
    ids = [s.id for s, _ in subjects]
    preview = MigrationPreview(study.oid, target.number, target.label, [],
                               refusal=study_refusal(study))
    if not ids:
        return preview
    forms = session.execute(
        select(FormInstance, EventInstance.event_oid, EventInstance.repeat)
        .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
        .where(FormInstance.subject_id.in_(ids), FormInstance.study_version_id != target.id)
        .order_by(FormInstance.subject_id, EventInstance.event_oid, EventInstance.repeat,
                  FormInstance.form_oid)
    ).all()
    removed_row = and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                       GroupRow.group_oid == ItemValue.group_oid, GroupRow.row == ItemValue.row)
    values: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    if forms:
        stmt = (select(ItemValue.form_instance_id, ItemValue.group_oid, ItemValue.item_oid,
                       ItemValue.value)
                .outerjoin(GroupRow, removed_row)
                .where(ItemValue.subject_id.in_(ids), ItemValue.value.is_not(None),
                       ItemValue.value != "",
                       GroupRow.removed_at.is_(None)))
        for form_id, group_oid, item_oid, value in session.execute(stmt):
            values[form_id].append((group_oid, item_oid, value))
    keys = {s.id: (s.subject_key, code) for s, code in subjects}
    moving = {s.subject_key for s, _ in subjects if s.study_version_id != target.id}
    by_subject = {s.id: s for s, _ in subjects}
    moving.update(keys[form.subject_id][0] for form, _, _ in forms)
    for subject, _ in subjects:
        lock = entry_lock(session, subject, None) if subject.subject_key in moving else None
        if lock is not None and lock.scope in ("subject", "site"):
            preview.locked[subject.subject_key] = str(lock.message)
    for form, event_oid, repeat in forms:
        key, code = keys[form.subject_id]
        old_version = by_id[form.study_version_id]
        old_def = studies.definition_for(old_version)
        change = _form_change(old_def, new_def, target, form, event_oid, repeat, key, code,
                              old_version.label, values.get(form.id, []))
        if key not in preview.locked:
            lock = entry_lock(session, by_subject[form.subject_id], form)
            if lock is not None and lock.scope == "form":
                change = dataclasses.replace(
                    change, problems=(*change.problems, f"locked: {lock.message}"))
        preview.forms.append(change)
    preview.subjects = sorted(moving)
    return preview


def _form_change(old_def: StudyDefinition, new_def: StudyDefinition, target: StudyVersion,
                 form: FormInstance, event_oid: str, repeat: int, key: str, code: str,
                 from_label: str, values: list[tuple[str, str, str]]) -> FormChange:
    old_form = old_def.forms.get(form.form_oid)
    new_form = new_def.forms.get(form.form_oid)
    added, removed, changed = _form_diff(old_def, old_form, new_def, new_form)
    problems: list[str] = []
    notes: list[str] = []
    if new_form is None:
        problems.append(f"form {form.form_oid} is not in {target.label}")
    else:
        event = next((e for e in new_def.events if e.oid == event_oid), None)
        if event is None:
            problems.append(f"event {event_oid} is not in {target.label}")
        elif form.form_oid not in event.forms:
            problems.append(f"event {event_oid} of {target.label} does not collect "
                            f"{form.form_oid}")
        new_items = {i.oid: i for i in new_form.items}
        for group_oid, item_oid, value in values:
            item = new_items.get(item_oid)
            if item is None:
                problems.append(f"{item_oid} holds {value!r} but {target.label} has no item "
                                f"{item_oid}")
            elif item.group != group_oid:
                problems.append(f"{item_oid} moved from group {group_oid} to {item.group}")
            else:
                reason = value_problem(new_def, item, value)
                if reason:
                    problems.append(f"{item_oid}: {reason}")
        if form.status == "complete":
            old_required = {i.oid for i in old_form.items if i.required} if old_form else set()
            gained = [i.oid for i in new_form.items if i.required and i.oid not in old_required]
            if gained:
                notes.append("complete form: newly required " + ", ".join(gained)
                             + " (review it)")
    return FormChange(key, code, event_oid, repeat, form.form_oid, form.id, from_label,
                      form.status == "complete", added, removed, changed, tuple(problems),
                      tuple(notes))


def migrate_forms(session: Session, actor: Actor, study: Study, to_version: StudyVersion | int,
                  subject_keys: list[str] | None = None, *, reason: str) -> MigrationResult:
    """Move subjects and their forms to ``to_version``; a subject any of whose forms would
    not fit is left entirely on its versions and reported in ``refused``."""
    reason = (reason or "").strip()
    if not reason:
        raise MigrationError("a reason is required to migrate forms to another version")
    target = _version(session, study, to_version)
    refusal = study_refusal(study)
    if refusal is not None:
        raise MigrationError(f"{refusal}; nothing was migrated")
    preview = preview_migration(session, study, target, subject_keys)
    blocked = set(preview.blocked_subjects)
    movers = [k for k in preview.subjects if k not in blocked]
    audit.bind_actor(session, actor)
    result = MigrationResult(target.label, movers, 0,
                             [f for f in preview.forms if f.subject_key in blocked],
                             dict(preview.locked))
    if not movers:
        return result
    rows = session.execute(select(Subject, Site.code).join(Site, Site.id == Subject.site_id)
                           .where(Subject.study_id == study.id, Subject.subject_key.in_(movers)))
    subjects, sites = {}, {}
    for subject, code in rows:
        subjects[subject.subject_key], sites[subject.subject_key] = subject, code
    form_ids = [f.form_instance_id for f in preview.forms if f.subject_key not in blocked]
    instances = {f.id: f for f in session.scalars(
        select(FormInstance).where(FormInstance.id.in_(form_ids)))} if form_ids else {}
    by_id = {v.id: v for v in studies.study_versions(session, study)}
    for change in preview.forms:
        if change.subject_key in blocked:
            continue
        instances[change.form_instance_id].study_version_id = target.id
        audit.record(session, actor, "form.version_migrated", category="data",
                     study_oid=study.oid, site_code=change.site_code,
                     subject_key=change.subject_key, path=f"{study.oid}/{change.where}",
                     old_value=change.from_label, new_value=target.label, reason=reason,
                     study_version=target.label,
                     details={"added": list(change.added), "removed": list(change.removed),
                              "changed": list(change.changed), "notes": list(change.notes)})
        result.forms += 1
    for key in movers:
        subject = subjects[key]
        if subject.study_version_id == target.id:
            continue
        old_label = by_id[subject.study_version_id].label
        subject.study_version_id = target.id
        audit.record(session, actor, "subject.version_migrated", category="data",
                     study_oid=study.oid, site_code=sites[key], subject_key=key,
                     path=f"{study.oid}/{key}", old_value=old_label, new_value=target.label,
                     reason=reason, study_version=target.label)
    session.flush()
    refresh_subjects(session, list(subjects.values()))
    return result
