"""Laboratory results against what is stored: the preview (new, unchanged, conflicting
with what is entered, and every line that cannot be imported with its reason), then
storing through data capture (``capture.save_form``: the validation, grades, audit and
reactions of the entry screen) with the reason "source: laboratory file NAME (sha256 ...),
line N". Functions flush and never commit; the caller commits only an import that stored
everything it had to, and rolls back otherwise, so a failed import leaves no trace.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf import capture
from ecrf.capture import (
    CaptureError,
    EventInstance,
    FormInstance,
    GroupRow,
    ItemValue,
    ScheduledVisit,
    Subject,
)
from ecrf.core import audit
from ecrf.core.audit import Actor
from ecrf.crf import ItemType, LabsDef, StudyDefinition
from ecrf.studies import Study, definition_for, latest_version

from .engine import (
    CONFLICT,
    NEW,
    UNCHANGED,
    Mapped,
    Slot,
    StoredRow,
    choose_row,
    choose_slot,
    map_observation,
    state_of,
)
from .parse import LabFileError, Observation, Problem, guess_format, parse

_NOT_PLANNED = ("not_applicable", "not_expected")


class LabImportRefused(ValueError):
    """Storing failed for some lines: nothing may be kept (the caller rolls back)."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} result(s) refused by data capture")
        self.problems = problems


@dataclass
class Line:
    """One result of the preview."""

    where: str
    subject_key: str
    event: str
    repeat: int
    row: int
    date: dt.date
    item: str
    value: str  # in the item's unit
    source: str  # the value and unit as the file gives them
    stored: str | None
    state: str  # new | unchanged | conflict
    new_row: bool = False


@dataclass
class LabImport:
    """What a file would do to the study: ``lines`` to store or compare, ``problems``
    that refuse the import, ``skipped`` results left out on purpose (codes the study does
    not import, patients who are not subjects of the study, repeats of a result)."""

    name: str
    sha256: str
    format: str
    lines: list[Line] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    results: int = 0

    def count(self, state: str) -> int:
        return sum(1 for line in self.lines if line.state == state)

    @property
    def importable(self) -> bool:
        return not self.problems

    def reason(self, where: str) -> str:
        return f"source: laboratory file {self.name} (sha256 {self.sha256}), {where}"


def plan_import(session: Session, study: Study, name: str, data: bytes,
                fmt: str | None = None, *, site_ids: set[int] | None = None) -> LabImport:
    """Read a file and compare it with what is stored; writes nothing clinical (the
    schedules of the subjects concerned may be brought up to date). ``site_ids`` limits
    the subjects to those sites (None: every site)."""
    version = latest_version(session, study)
    if version is None:
        raise LabFileError(f"{study.oid} has no stored version")
    definition = definition_for(version)
    if definition.labs is None:
        raise LabFileError(f"{study.oid} declares no labs block in study.yaml: no item is "
                           "fed by laboratory files")
    fmt = fmt or guess_format(name, data)
    observations, problems = parse(data, fmt)
    plan = LabImport(name, hashlib.sha256(data).hexdigest(), fmt,
                     problems=[p for p in problems if not p.skip],
                     skipped=[p for p in problems if p.skip],
                     results=len(observations) + len(problems))
    labs = definition.labs
    mapped: list[Mapped] = []
    for observation in observations:
        found = map_observation(labs, definition.form(labs.form), observation)
        if found is None:
            plan.skipped.append(Problem(observation.where, f"code {observation.codes[0]} is "
                                                           "not imported by this study",
                                        skip=True))
        elif isinstance(found, Problem):
            plan.problems.append(found)
        else:
            mapped.append(found)
    by_subject = _subjects(session, study, labs, mapped, plan, site_ids)
    for subject, results in by_subject.items():
        _plan_subject(session, subject, results, plan)
    plan.problems.sort(key=lambda p: _order(p.where))
    plan.skipped.sort(key=lambda p: _order(p.where))
    return plan


def _order(where: str) -> tuple:
    return tuple(int(part) if part.isascii() and part.isdigit() else part
                 for part in where.replace(",", " ").split())


def _subjects(session: Session, study: Study, labs: LabsDef, mapped: list[Mapped],
              plan: LabImport, site_ids: set[int] | None) -> dict[Subject, list[Mapped]]:
    """Each result's subject, by subject key or by the declared identifier item."""
    identifiers = {i for m in mapped for i in m.observation.patient}
    found: dict[str, set[Subject]] = defaultdict(set)
    scope = [Subject.study_id == study.id]
    if site_ids is not None:
        scope.append(Subject.site_id.in_(site_ids))
    for subject in session.scalars(select(Subject).where(
            *scope, Subject.subject_key.in_(identifiers))):
        found[subject.subject_key].add(subject)
    if labs.identifier is not None:
        form, item = labs.identifier
        for value, subject in session.execute(
                select(ItemValue.value, Subject).join(Subject, Subject.id == ItemValue.subject_id)
                .where(*scope, ItemValue.form_oid == form, ItemValue.item_oid == item,
                       ItemValue.value.in_(identifiers))):
            found[value].add(subject)
    result: dict[Subject, list[Mapped]] = defaultdict(list)
    for m in mapped:
        subjects = {s for i in m.observation.patient for s in found.get(i, ())}
        patient = ", ".join(m.observation.patient)
        if not subjects:
            where = " at your sites" if site_ids is not None else ""
            plan.skipped.append(Problem(m.where, f"patient {patient} is not a subject of "
                                                 f"{study.oid}{where}", skip=True))
        elif len(subjects) > 1:
            keys = ", ".join(sorted(s.subject_key for s in subjects))
            plan.problems.append(Problem(m.where, f"patient {patient} matches several "
                                                  f"subjects: {keys}"))
        else:
            result[subjects.pop()].append(m)
    return result


def _slots(session: Session, subject: Subject, labs: LabsDef) -> list[Slot]:
    if subject.schedule_computed_on is None or subject.schedule_computed_on < \
            capture.local_today(subject.site.timezone):
        capture.refresh_subject(session, subject)
    started = {(e.event_oid, e.repeat) for e in session.scalars(select(EventInstance).where(
        EventInstance.subject_id == subject.id, EventInstance.event_oid.in_(labs.events)))}
    return [Slot(v.event_oid, v.repeat, v.window_start, v.window_end, v.planned,
                 (v.event_oid, v.repeat) in started)
            for v in session.scalars(select(ScheduledVisit).where(
                ScheduledVisit.subject_id == subject.id,
                ScheduledVisit.event_oid.in_(labs.events),
                ScheduledVisit.status.not_in(_NOT_PLANNED)))]


def _stored(session: Session, subject: Subject, labs: LabsDef
            ) -> tuple[list[StoredRow], dict[tuple[str, int], set[int]]]:
    """The live rows of the labs group, and every row number used per occurrence."""
    values: dict[tuple[str, int, int], dict[str, str]] = defaultdict(dict)
    for event, repeat, row, item, value in session.execute(
            select(EventInstance.event_oid, EventInstance.repeat, ItemValue.row,
                   ItemValue.item_oid, ItemValue.value)
            .join(FormInstance, FormInstance.id == ItemValue.form_instance_id)
            .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
            .where(ItemValue.subject_id == subject.id, ItemValue.form_oid == labs.form,
                   ItemValue.group_oid == labs.group)):
        if value is not None:
            values[(event, repeat, row)][item] = value
    used: dict[tuple[str, int], set[int]] = defaultdict(set)
    removed = set()
    for event, repeat, row, removed_at in session.execute(
            select(EventInstance.event_oid, EventInstance.repeat, GroupRow.row,
                   GroupRow.removed_at)
            .join(FormInstance, FormInstance.id == GroupRow.form_instance_id)
            .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
            .where(FormInstance.subject_id == subject.id, FormInstance.form_oid == labs.form,
                   GroupRow.group_oid == labs.group)):
        used[(event, repeat)].add(row)
        if removed_at is not None:
            removed.add((event, repeat, row))
    rows = []
    for (event, repeat, row), items in values.items():
        used[(event, repeat)].add(row)
        if (event, repeat, row) in removed:
            continue
        date = items.get(labs.date)
        rows.append(StoredRow(event, repeat, row, dt.date.fromisoformat(date[:10])
                              if date else None, items))
    return rows, used


def _plan_subject(session: Session, subject: Subject, results: list[Mapped],
                  plan: LabImport) -> None:
    definition = definition_for(subject.study_version)
    labs = definition.labs
    if labs is None:
        plan.problems += [Problem(m.where, f"{subject.subject_key} is on study version "
                                           f"{subject.study_version.label}, which declares "
                                           "no labs block") for m in results]
        return
    repeating = definition.form(labs.form).group(labs.group).repeating
    slots = _slots(session, subject, labs)
    rows, used = _stored(session, subject, labs)
    new_rows: dict[tuple[str, int], dict[dt.date, int]] = defaultdict(dict)
    seen: dict[tuple, Line] = {}
    assigned: list[StoredRow] = []  # visits this file gives a date to
    for m in sorted(results, key=lambda m: (m.observation.collected, _order(m.where))):
        collected = m.observation.collected
        slot = choose_slot(slots, rows + assigned, collected, repeating)
        if isinstance(slot, str):
            plan.problems.append(Problem(m.where, f"{subject.subject_key}: {slot}"))
            continue
        if not slot.started and _date_item_elsewhere(definition, labs, slot.event):
            plan.problems.append(Problem(m.where, f"{subject.subject_key}: {slot.event}"
                                                  f"[{slot.repeat}] is not started and takes "
                                                  "its date from another form: enter it "
                                                  "first"))
            continue
        target = choose_row(slot, rows, used[(slot.event, slot.repeat)], collected,
                            repeating, new_rows[(slot.event, slot.repeat)])
        stored_row = next((r for r in rows if (r.event, r.repeat, r.row) ==
                           (target.event, target.repeat, target.row)), None)
        if not repeating and (stored_row is None or stored_row.date is None):
            assigned.append(StoredRow(target.event, target.repeat, 1, collected))
        stored = stored_row.values.get(m.item) if stored_row else None
        key = (subject.id, target.event, target.repeat, target.row, m.item)
        observation: Observation = m.observation
        line = Line(m.where, subject.subject_key, target.event, target.repeat, target.row,
                    collected, m.item, m.value, f"{observation.value} {observation.unit}",
                    stored, state_of(stored, m.value),
                    new_row=target.new_row or stored_row is None
                    or not stored_row.values.get(labs.date))
        earlier = seen.get(key)
        if earlier is not None:
            if earlier.value == line.value:
                plan.skipped.append(Problem(m.where, f"repeats {earlier.where}", skip=True))
            else:
                plan.problems.append(Problem(
                    m.where, f"{subject.subject_key} {m.item} on {collected.isoformat()}: "
                             f"{line.value} here, {earlier.value} at {earlier.where}"))
            continue
        seen[key] = line
        plan.lines.append(line)


def _date_item_elsewhere(definition: StudyDefinition, labs: LabsDef, event: str) -> bool:
    item = definition.event_date_items.get(event)
    return item is not None and item[0] != labs.form


@dataclass
class Stored:
    values: int = 0  # values written
    forms: int = 0  # forms saved
    kept: int = 0  # conflicting results not written (the entered value kept)


def apply_import(session: Session, actor: Actor, study: Study, plan: LabImport, *,
                 accept: set[str] | bool = False, today: dt.date | None = None) -> Stored:
    """Store the new results (and the conflicting ones ``accept`` names by their
    ``where``, or all of them when True) through data capture. Raises LabFileError for a
    plan with problems and LabImportRefused when data capture refuses a form; the caller
    then rolls back."""
    if plan.problems:
        raise LabFileError(f"{len(plan.problems)} line(s) cannot be imported; nothing was "
                           "stored")
    audit.bind_actor(session, actor)
    outcome = Stored()
    forms: dict[tuple[str, str, int], list[Line]] = defaultdict(list)
    for line in plan.lines:
        if line.state == UNCHANGED:
            continue
        if line.state == CONFLICT and not (accept is True or (accept and line.where in accept)):
            outcome.kept += 1
            continue
        forms[(line.subject_key, line.event, line.repeat)].append(line)
    subjects = {s.subject_key: s for s in session.scalars(select(Subject).where(
        Subject.study_id == study.id, Subject.subject_key.in_({k for k, _, _ in forms})))}
    refused: list[Problem] = []
    for (key, event, repeat), lines in forms.items():
        subject = subjects[key]
        try:
            refused += _save(session, actor, subject, event, repeat, lines, plan, today)
        except CaptureError as exc:
            # Locked, frozen or changed meanwhile: nothing more is tried (the session may
            # have to be rolled back before it can be read again).
            refused += [Problem(line.where, f"{key} {event}[{repeat}]: {exc}") for line in lines]
            break
        outcome.forms += 1
        outcome.values += len(lines)
    if refused:
        raise LabImportRefused(refused)
    return outcome


def _save(session: Session, actor: Actor, subject: Subject, event: str, repeat: int,
          lines: list[Line], plan: LabImport, today: dt.date | None) -> list[Problem]:
    definition = definition_for(subject.study_version)
    labs = definition.labs
    assert labs is not None, "checked by the plan"
    form = definition.form(labs.form)
    instance = capture.event_instance(session, subject, event, repeat)
    if instance is None:
        capture.open_event(session, actor, subject, event, repeat,
                           min(line.date for line in lines),
                           reason=plan.reason(lines[0].where), today=today)
    existing = session.scalar(
        select(FormInstance).join(EventInstance,
                                  EventInstance.id == FormInstance.event_instance_id)
        .where(EventInstance.subject_id == subject.id, EventInstance.event_oid == event,
               EventInstance.repeat == repeat, FormInstance.form_oid == form.oid))
    values: dict = {}
    reasons: dict = {}
    for line in lines:
        key = (labs.group, line.row, line.item)
        values[key], reasons[key] = line.value, plan.reason(line.where)
        date_key = (labs.group, line.row, labs.date)
        if line.new_row and date_key not in values:
            values[date_key] = line.date.isoformat()
            reasons[date_key] = plan.reason(line.where)
    if existing is not None:
        # Stored calculated values would be re-submitted by a partial save and refused:
        # blank them so that they are recalculated.
        calculated = {i.oid for i in form.items if i.type is ItemType.CALCULATED}
        for group, row, oid in session.execute(
                select(ItemValue.group_oid, ItemValue.row, ItemValue.item_oid).where(
                    ItemValue.form_instance_id == existing.id,
                    ItemValue.item_oid.in_(calculated))):
            values.setdefault((group, row, oid), None)
    submission = capture.Submission(values=values, reasons=reasons, partial=True)
    result = capture.save_form(session, actor, subject, event, repeat, form.oid, submission,
                               base_version=existing.version if existing else None,
                               complete=False, today=today)
    if result.saved:
        return []
    by_row = {(line.row, line.item): line.where for line in lines}
    first = {line.row: line.where for line in reversed(lines)}
    found = []
    for (group, row, item), messages in sorted(result.errors.items()):
        where = by_row.get((row, item)) or first.get(row) or lines[0].where
        found += [Problem(where, f"{subject.subject_key} {event}[{repeat}] {group}[{row}]"
                                 f"{'.' + item if item else ''}: {m}") for m in messages]
    found += [Problem(lines[0].where, f"{subject.subject_key} {event}[{repeat}]: {m}")
              for m in result.form_errors]
    return found or [Problem(lines[0].where, f"{subject.subject_key} {event}[{repeat}]: "
                                             "refused by data capture")]


__all__ = ["CONFLICT", "NEW", "UNCHANGED", "LabImport", "LabImportRefused", "Line", "Stored",
           "apply_import", "plan_import"]
