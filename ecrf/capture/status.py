"""Subject status and tasks from the study's declared rules (``status:`` and ``tasks:`` in
study.yaml; the semantics are in ``ecrf.domain.subject_status``).

The status is recomputed after a save that changes an item a status rule reads (a
``form_saved`` receiver), on randomisation or dose assignment (``mark_on_study``), and on
request (``ecrf subjects recompute-status``). Every change is audited with the rule that
caused it. Tasks are derived when shown: nothing is stored.

Expressions see what schedule conditions see: ``FORM.ITEM`` is the subject's most recent
value, ``anchor.NAME`` the anchor's date, ``subject.arm`` / ``subject.dose_level`` /
``subject.site`` and ``param.NAME``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf.capture.models import EventInstance, FormInstance, Subject
from ecrf.capture.schedule_data import (
    SubjectInfo,
    _anchors,
    _latest_values,
    info_of,
    infos_of,
    load_recorded,
    local_today,
)
from ecrf.capture.schedule_values import StoredValue
from ecrf.capture.support import strata_fields
from ecrf.core import FormChange, audit
from ecrf.core.audit import Actor
from ecrf.crf import StudyDefinition
from ecrf.domain.expressions import ExpressionError, compile_cached, evaluate
from ecrf.domain.subject_status import (
    Decision,
    OpenTask,
    SubjectStatus,
    decide,
    derive_status,
    open_task,
)
from ecrf.studies import Study, definition_for

log = logging.getLogger(__name__)

Key = tuple[str, str]
SUBJECT_FIELDS = {"arm", "dose_level", "site"}

__all__ = ["SubjectTask", "anchored_on", "on_form_saved", "recompute_status", "recompute_study",
           "status_reads", "study_tasks", "subject_tasks"]


# --- what the rules read ------------------------------------------------------------------------


@dataclass(frozen=True)
class Reads:
    by_status: dict[str, frozenset[Key]]  # status -> FORM.ITEM (anchors resolved) its rules read
    status_items: frozenset[Key]  # everything the status rules read
    items: frozenset[Key]  # everything status and tasks read, with every anchor's item


_READS: dict[int, tuple[StudyDefinition, Reads]] = {}


def _refs(definition: StudyDefinition, source: str | None) -> set[Key]:
    found: set[Key] = set()
    if not source:
        return found
    for parts in compile_cached(source).references:
        if len(parts) != 2:
            continue
        head, name = parts
        if head == "anchor":
            if name in definition.anchors:
                found.add(definition.anchors[name])
        elif head == "subject":
            found.add(("subject", name))
        elif head != "param":
            found.add((head, name))
    return found


def status_reads(definition: StudyDefinition) -> Reads:
    cached = _READS.get(id(definition))
    if cached is not None and cached[0] is definition:
        return cached[1]
    by_status: dict[str, set[Key]] = {}
    for rule in definition.status_rules:
        by_status.setdefault(rule.status, set()).update(_refs(definition, rule.when))
    status_items = set().union(*by_status.values()) if by_status else set()
    items = set(status_items) | set(definition.anchors.values())
    for task in definition.tasks:
        for trigger in task.triggers:
            items |= _refs(definition, trigger.start) | _refs(definition, trigger.when)
    reads = Reads({s: frozenset(k) for s, k in by_status.items()}, frozenset(status_items),
                  frozenset(k for k in items if k[0] != "subject"))
    _READS[id(definition)] = (definition, reads)
    return reads


# --- evaluating over one subject's data ---------------------------------------------------------


class _Evaluator:
    def __init__(self, definition: StudyDefinition, info: SubjectInfo,
                 rows: list[StoredValue], today: dt.date) -> None:
        self.definition, self.info, self.today = definition, info, today
        self.latest = _latest_values(definition, rows, info.timezone)
        self.anchors = _anchors(definition, rows, info.timezone, info.enrolled_on)
        self.params = definition.parameter_values()
        self.fields = {"arm": info.arm, "site": info.site_code,
                       "dose_level": str(info.dose_level) if info.dose_level is not None
                       else None, **strata_fields(info.strata)}

    def resolve(self, parts: tuple[str, ...]) -> object:
        if len(parts) == 3 and parts[:2] == ("subject", "stratum"):
            return self.fields.get(f"stratum.{parts[2]}")  # subject.stratum.NAME
        if len(parts) != 2:
            return None
        head, name = parts
        if head == "anchor":
            return self.anchors.get(name)
        if head == "param":
            return self.params.get(name)
        if head == "subject":
            return self.fields.get(name)
        return self.latest.get(parts)

    def value(self, source: str) -> object:
        try:
            return evaluate(compile_cached(source), self.resolve, today=self.today)
        except ExpressionError as exc:
            log.warning("status expression %r failed for subject %s: %s", source,
                        self.info.id, exc)
            return None

    def holds(self, source: str) -> bool:
        return self.value(source) is True

    def date_of(self, source: str) -> dt.date | None:
        value = self.value(source)
        if isinstance(value, dt.datetime):
            return value.date()
        return value if isinstance(value, dt.date) else None


def _evaluators(session: Session, definition: StudyDefinition, infos: list[SubjectInfo],
                today: dt.date | None) -> dict[int, _Evaluator]:
    recorded = load_recorded(session, infos, status_reads(definition).items)
    return {info.id: _Evaluator(definition, info, recorded.rows.get(info.id, []),
                                today or local_today(info.timezone)) for info in infos}


# --- status ----------------------------------------------------------------------------------


def _rule_text(definition: StudyDefinition, decision: Decision) -> str:
    if decision.rule is None:
        return "no status rule holds"
    rule = definition.status_rules[decision.rule]
    return f"status rule {decision.rule + 1}: {rule.status} when {rule.when}"


def recompute_status(session: Session, actor: Actor, subject: Subject, *,
                     changed: Iterable[Key] | None = None, why: str | None = None,
                     today: dt.date | None = None,
                     evaluator: _Evaluator | None = None) -> Decision | None:
    """Derive the subject's status from its data and store it if it moves (audited).

    ``changed`` are the items (``("subject", "arm")`` for an allocation) whose change
    prompted this; None is an explicit recomputation, which may lower a status. Returns
    None when the study declares no status rules."""
    definition = definition_for(subject.study_version)
    rules = definition.status_rules
    if not rules:
        return None
    if evaluator is None:
        session.flush()
        evaluator = _evaluators(session, definition, [info_of(subject)], today)[subject.id]
    derived = derive_status(rules, evaluator.holds)
    reads = status_reads(definition)
    changed_set = None if changed is None else set(changed)

    def reread(status: str) -> bool:
        return changed_set is not None and bool(reads.by_status.get(status, frozenset())
                                                & changed_set)

    decision = decide(rules, subject.status, derived,
                      reread=None if changed_set is None else reread)
    if decision.kept:
        log.info("subject %s stays %s: %s also holds but nothing its status reads changed",
                 subject.subject_key, subject.status, derived.status)
    if not decision.changed:
        return decision
    reason = _rule_text(definition, decision)
    if why:
        reason = f"{why}; {reason}"
    audit.record(session, actor, "subject.status_changed", category="clinical",
                 study_oid=subject.study.oid, site_code=subject.site.code,
                 subject_key=subject.subject_key,
                 path=f"{subject.study.oid}/{subject.subject_key}/status",
                 old_value=subject.status, new_value=decision.status, reason=reason,
                 study_version=subject.study_version.label,
                 details={"rule": decision.rule + 1 if decision.rule is not None else None,
                          "lowered": decision.lowered})
    subject.status = decision.status
    return decision


def on_form_saved(change: FormChange) -> None:
    """``form_saved`` receiver: recompute when a changed item is read by a status rule."""
    subject = change.subject
    if not isinstance(subject, Subject):
        return
    definition = definition_for(subject.study_version)
    if not definition.status_rules:
        return
    changed: set[Key] = {(change.form_oid, c.item) for c in change.changes}
    if change.removed_rows:
        form = definition.forms.get(change.form_oid)
        removed_groups = {group for group, _ in change.removed_rows}
        if form is not None:
            changed |= {(form.oid, i.oid) for g in form.groups if g.oid in removed_groups
                        for i in g.items}
    if not changed & status_reads(definition).status_items:
        return
    recompute_status(change.session, change.actor, subject, changed=changed,
                     why=f"{change.form_oid} saved")


def recompute_study(session: Session, actor: Actor, study: Study,
                    today: dt.date | None = None) -> dict[str, int]:
    """Recompute every subject's status in ``study`` from its data (may lower a status);
    returns how many moved to each status."""
    moved: dict[str, int] = {}
    subjects = list(session.scalars(select(Subject).where(Subject.study_id == study.id)
                                    .order_by(Subject.id)))
    by_version: dict[int, list[Subject]] = {}
    for subject in subjects:
        by_version.setdefault(subject.study_version_id, []).append(subject)
    for group in by_version.values():
        definition = definition_for(group[0].study_version)
        if not definition.status_rules:
            continue
        evaluators = _evaluators(session, definition, infos_of(session, group), today)
        for subject in group:
            decision = recompute_status(session, actor, subject, why="recomputed",
                                        evaluator=evaluators[subject.id])
            if decision is not None and decision.changed:
                moved[decision.status] = moved.get(decision.status, 0) + 1
    return moved


# --- tasks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectTask:
    subject_key: str
    site_code: str
    task: OpenTask
    repeat: int  # the occurrence of the event to open (1 for a log)


_CLOSED = (SubjectStatus.SCREENING, SubjectStatus.SCREEN_FAILED)


def anchored_on(definition: StudyDefinition, form_oid: str) -> tuple[str, ...]:
    """Planned events whose anchor is a date of ``form_oid``: what entering the form will
    put on the schedule (follow-up after End of treatment)."""
    names = {name for name, (form, _item) in definition.anchors.items() if form == form_oid}
    return tuple(rule.oid for rule in definition.events if rule.anchor in names)


def _complete_forms(session: Session, subject_ids: list[int], definition: StudyDefinition
                    ) -> set[tuple[int, str, str]]:
    wanted = {(t.event, t.form) for t in definition.tasks}
    if not wanted or not subject_ids:
        return set()
    rows = session.execute(
        select(EventInstance.subject_id, EventInstance.event_oid, FormInstance.form_oid)
        .join(FormInstance, FormInstance.event_instance_id == EventInstance.id)
        .where(EventInstance.subject_id.in_(subject_ids),
               EventInstance.event_oid.in_(sorted({e for e, _ in wanted})),
               FormInstance.status == "complete"))
    return {tuple(row) for row in rows}


def _tasks_of(definition: StudyDefinition, subjects: list[tuple[Subject, SubjectInfo]],
              evaluators: dict[int, _Evaluator], complete: set) -> list[SubjectTask]:
    found = []
    for subject, info in subjects:
        evaluator = evaluators[info.id]
        for rule in definition.tasks:
            task = open_task(rule, evaluator.holds, evaluator.date_of, evaluator.today,
                             done=(info.id, rule.event, rule.form) in complete)
            if task is not None:
                found.append(SubjectTask(subject.subject_key, info.site_code, task, 1))
    return found


def subject_tasks(session: Session, subject: Subject, today: dt.date | None = None
                  ) -> list[SubjectTask]:
    """The entries the subject's data asks for, due soonest first."""
    definition = definition_for(subject.study_version)
    if not definition.tasks or subject.status in _CLOSED:
        return []
    info = info_of(subject)
    evaluators = _evaluators(session, definition, [info], today)
    complete = _complete_forms(session, [subject.id], definition)
    return sorted(_tasks_of(definition, [(subject, info)], evaluators, complete),
                  key=lambda t: t.task.due)


def study_tasks(session: Session, study: Study, site_ids: set[int] | None,
                today: dt.date | None = None, limit: int = 100) -> list[SubjectTask]:
    """Open tasks of the study's subjects at ``site_ids`` (None: every site), overdue and
    due soonest first. A fixed number of statements per study version."""
    stmt = (select(Subject).where(Subject.study_id == study.id,
                                  Subject.status.not_in([s.value for s in _CLOSED]))
            .order_by(Subject.subject_key))
    if site_ids is not None:
        stmt = stmt.where(Subject.site_id.in_(site_ids or {-1}))
    subjects = list(session.scalars(stmt))
    by_version: dict[int, list[Subject]] = {}
    for subject in subjects:
        by_version.setdefault(subject.study_version_id, []).append(subject)
    found: list[SubjectTask] = []
    for group in by_version.values():
        definition = definition_for(group[0].study_version)
        if not definition.tasks:
            continue
        pairs = list(zip(group, infos_of(session, group), strict=True))
        evaluators = _evaluators(session, definition, [i for _, i in pairs], today)
        complete = _complete_forms(session, [s.id for s in group], definition)
        found += _tasks_of(definition, pairs, evaluators, complete)
    found.sort(key=lambda t: (t.task.due, t.subject_key))
    return found[:limit]
