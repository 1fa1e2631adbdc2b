"""Dose escalation: cohorts counted from recorded data, proposals, signed decisions.

Per level, a subject is *treated* once the DLT anchor (the infusion date) is recorded; it is
*evaluable* when a DLT was recorded, or when the full dose was received and the DLT window
is over (the day after anchor + window at the subject's site, or its last day once the
assessment says evaluable); a subject who did not get the full dose, was assessed not
evaluable, or left the study before becoming evaluable needs a replacement. The pure
engines (``ecrf.domain.escalation``) propose; a data manager or investigator decides,
signing with their password (``decisions``).

Which items say "DLT observed", "full dose received" and "evaluable" is study data. The
``dose_escalation`` block does not name them yet, so they are read from text parameters
``escalation_dlt_item``, ``escalation_full_dose_item`` and ``escalation_evaluable_item``
(``FORM.ITEM``) until the format gains ``dlt_item``/``full_dose_item``/``evaluable_item``,
which are preferred when present.

Enrolment is paced: the open level takes one cohort per decision that opened or extended
it (the start level one from the outset), plus one place per subject needing replacement.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ecrf import capture
from ecrf.allocation.models import EscalationDecision
from ecrf.allocation.randomization import (
    CLOSED_STATUSES,
    latest_definition,
    recorded_values,
    site_today,
)
from ecrf.capture import Subject
from ecrf.core import audit
from ecrf.core.audit import Actor
from ecrf.crf import (
    EscalationDef,
    EscalationDesign,
    ItemType,
    StudyDefinition,
    UnknownOidError,
)
from ecrf.domain import escalation as engine
from ecrf.domain.escalation import Action, LevelState, Proposal
from ecrf.studies import Study

ItemKey = tuple[str, str]
_PROPOSED = {
    Action.ESCALATE: "escalate", Action.EXPAND: "stay", Action.STAY: "stay",
    Action.DE_ESCALATE: "de-escalate", Action.DECLARE_MTD: "declare_mtd",
    Action.STOP_NO_MTD: "stop", Action.ENROL: None,
}


class EscalationServiceError(ValueError):
    """An escalation request that cannot be carried out; the message says why."""


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class EscalationItems:
    treated: ItemKey  # the DLT anchor's item: the infusion date
    dlt: ItemKey
    full_dose: ItemKey | None = None
    evaluable: ItemKey | None = None


_MEANING = {"dlt_item": "that a DLT was observed", "full_dose_item": "the full dose received",
            "evaluable_item": "evaluability"}


def _item_setting(defn: StudyDefinition, name: str, required: bool) -> ItemKey | None:
    esc = defn.dose_escalation
    declared = getattr(esc, name, None)
    if declared is None:
        parameter = defn.parameters.get(f"escalation_{name}")
        declared = parameter.default if parameter is not None else None
    if declared is None:
        if required:
            raise EscalationServiceError(
                f"study {defn.oid} does not say which item records {_MEANING[name]}: "
                f"declare dose_escalation.{name} (or the text parameter escalation_{name}) "
                f"as FORM.ITEM")
        return None
    key = tuple(declared.split(".", 1)) if isinstance(declared, str) else tuple(declared)
    if len(key) != 2:
        raise EscalationServiceError(f"{name} {declared!r} must be written FORM.ITEM")
    try:
        item = defn.item(*key)
    except UnknownOidError:
        raise EscalationServiceError(f"{name} names an unknown item {declared!r}") from None
    if item.type is not ItemType.YES_NO:
        raise EscalationServiceError(f"{name} {declared!r} must be a yes/no item, not "
                                     f"{item.type.value}")
    return key  # type: ignore[return-value]


def escalation_items(defn: StudyDefinition) -> EscalationItems:
    esc = _escalation_def(defn)
    treated = defn.anchors.get(esc.dlt_anchor)
    if treated is None:
        raise EscalationServiceError(f"DLT anchor {esc.dlt_anchor!r} is not declared")
    return EscalationItems(treated, _item_setting(defn, "dlt_item", True),
                           _item_setting(defn, "full_dose_item", False),
                           _item_setting(defn, "evaluable_item", False))


def _escalation_def(defn: StudyDefinition) -> EscalationDef:
    if defn.dose_escalation is None:
        raise EscalationServiceError(f"study {defn.oid} declares no dose escalation")
    return defn.dose_escalation


# --- the board ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectState:
    subject_id: int
    subject_key: str
    site_id: int
    level: int
    treated_on: dt.date | None
    window_end: dt.date | None
    dlt: bool
    full_dose: bool | None
    state: str  # not_treated | in_window | awaiting | evaluable | dlt | not_evaluable

    @property
    def treated(self) -> bool:
        return self.treated_on is not None or self.dlt

    @property
    def evaluable(self) -> bool:
        return self.state in ("evaluable", "dlt")

    @property
    def needs_replacement(self) -> bool:
        return self.state == "not_evaluable"


@dataclass
class LevelRow:
    level: int
    label: str
    dose: str | None
    subjects: list[SubjectState]
    state: LevelState
    capacity: int

    @property
    def replacements(self) -> int:
        return sum(s.needs_replacement for s in self.subjects)

    @property
    def pending(self) -> int:
        return sum(s.state in ("not_treated", "in_window", "awaiting") for s in self.subjects)


@dataclass
class Board:
    study: Study
    design: str
    levels: list[LevelRow]
    current_level: int | None  # None once closed
    proposal: Proposal | None
    decisions: list[EscalationDecision]
    closed_by: EscalationDecision | None = None
    boundaries: tuple[float, float] | None = None
    target: str | None = None
    allowed: list[str] = field(default_factory=list)

    def level(self, number: int) -> LevelRow:
        return next(row for row in self.levels if row.level == number)

    @property
    def mtd(self) -> int | None:
        return self.closed_by.mtd_level if self.closed_by else None

    @property
    def proposed_decision(self) -> str | None:
        return _PROPOSED[self.proposal.action] if self.proposal else None


def _yes(rec) -> bool | None:
    return None if rec is None else rec.value == "Y"


def _subject_state(subject: Subject, level: int, values, items: EscalationItems,
                   esc: EscalationDef, today: dt.date) -> SubjectState:
    def get(key):
        return values.get((subject.id, *key)) if key else None

    treated = get(items.treated)
    treated_on = treated.value_date if treated else None
    dlt = bool(_yes(get(items.dlt)))
    full = _yes(get(items.full_dose))
    assessed = _yes(get(items.evaluable))
    window_end = esc.dlt_window.add_to(treated_on) if treated_on else None
    left = subject.status in CLOSED_STATUSES
    if dlt:
        state = "dlt"
    elif full is False or assessed is False:
        state = "not_evaluable"
    elif treated_on is None or today < window_end or (today == window_end and not assessed):
        state = "not_evaluable" if left else ("in_window" if treated_on else "not_treated")
    elif items.full_dose is not None and full is None:
        state = "awaiting"  # window over, full dose not yet recorded
    else:
        state = "evaluable"
    return SubjectState(subject.id, subject.subject_key, subject.site_id, level, treated_on,
                        window_end, dlt, full, state)


def _propose(esc: EscalationDef, states: list[LevelState], current: int) -> Proposal:
    if esc.design is EscalationDesign.THREE_PLUS_THREE:
        return engine.three_plus_three(states, current)
    target = esc.target_dlt_rate
    proposal = engine.boin_decision(states, current, target=target)
    treated = sum(s.treated for s in states)
    if esc.max_subjects and treated >= esc.max_subjects \
            and proposal.action is not Action.STOP_NO_MTD:
        mtd = engine.boin_select_mtd(states, target)
        stop = f"{treated} subjects treated reached the maximum of {esc.max_subjects}"
        if mtd is None:
            return Proposal(Action.STOP_NO_MTD, None, f"{stop}: stop, no MTD")
        return Proposal(Action.DECLARE_MTD, mtd,
                        f"{stop}: stop; isotonic estimates select level {mtd}", mtd=mtd)
    return proposal


def _allowed(esc: EscalationDef, proposal: Proposal | None, current: int | None) -> list[str]:
    if proposal is None or current is None:
        return []
    levels = sorted(level.level for level in esc.levels)
    allowed = []
    if proposal.action is Action.ESCALATE:
        allowed += ["escalate", "stay"]
    elif proposal.action in (Action.EXPAND, Action.STAY):
        allowed.append("stay")
    if proposal.action is Action.DE_ESCALATE or (
            levels.index(current) > 0 and proposal.action is not Action.STOP_NO_MTD):
        allowed.append("de-escalate")
    if proposal.action is Action.DECLARE_MTD:
        allowed.append("declare_mtd")
    allowed.append("stop")
    return allowed


def board(session: Session, study: Study, *, today: dt.date | None = None) -> Board:
    """Every level with its subjects and counts, the proposal and the decisions so far.

    Three queries whatever the number of subjects.
    """
    defn = latest_definition(session, study)
    esc = _escalation_def(defn)
    items = escalation_items(defn)
    subjects = session.scalars(select(Subject).where(
        Subject.study_id == study.id, Subject.dose_level.is_not(None))
        .order_by(Subject.subject_key)).all()
    keys = [k for k in (items.treated, items.dlt, items.full_dose, items.evaluable) if k]
    values = recorded_values(session, [s.id for s in subjects], keys)
    decisions = list(session.scalars(select(EscalationDecision).where(
        EscalationDecision.study_id == study.id).order_by(EscalationDecision.decided_at,
                                                          EscalationDecision.id)))
    current: int | None = esc.start_level
    cohorts = Counter({esc.start_level: 1})
    closed_by = None
    for decision in decisions:
        if decision.next_level is None:
            current, closed_by = None, decision
        else:
            current = decision.next_level
            cohorts[decision.next_level] += 1

    rows = []
    for level in sorted(esc.levels, key=lambda lv: lv.level):
        members = [_subject_state(s, level.level, values, items, esc,
                                  today or site_today(s))
                   for s in subjects if s.dose_level == level.level]
        evaluable = sum(m.evaluable for m in members)
        state = LevelState(level.level, sum(m.treated for m in members), evaluable,
                           sum(m.dlt for m in members), level.label)
        rows.append(LevelRow(level.level, level.label, level.dose, members, state, 0))
    for row in rows:
        row.capacity = esc.cohort_size * cohorts[row.level] + row.replacements
    proposal = _propose(esc, [r.state for r in rows], current) if current is not None else None
    result = Board(study, esc.design.value, rows, current, proposal, decisions, closed_by,
                   allowed=_allowed(esc, proposal, current))
    if esc.design is EscalationDesign.BOIN:
        result.boundaries = engine.boin_boundaries(esc.target_dlt_rate)
        result.target = str(esc.target_dlt_rate)
    return result


def current_open_level(session: Session, study: Study) -> int | None:
    """The level enrolment goes to now; None once an MTD is declared or the trial stopped."""
    return board(session, study).current_level


def lock_study(session: Session, study: Study) -> None:
    # Serialises assignments and decisions of one study (row lock / SQLite write lock).
    session.execute(update(Study).where(Study.id == study.id).values(status=Study.status)
                    .execution_options(synchronize_session=False))


def assign_dose_level(session: Session, actor: Actor, subject: Subject, *,
                      today: dt.date | None = None) -> int:
    """Give the subject the open level, if a place is free there; flushes."""
    audit.bind_actor(session, actor)
    if subject.dose_level is not None:
        raise EscalationServiceError(f"subject {subject.subject_key} already has dose level "
                                     f"{subject.dose_level}")
    if subject.status in CLOSED_STATUSES:
        raise EscalationServiceError(f"subject status is {subject.status.replace('_', ' ')}")
    lock_study(session, subject.study)
    session.refresh(subject)
    if subject.dose_level is not None:
        raise EscalationServiceError(f"subject {subject.subject_key} already has dose level "
                                     f"{subject.dose_level}")
    state = board(session, subject.study, today=today)
    if state.current_level is None:
        why = state.closed_by.action.replace("_", " ") if state.closed_by else "closed"
        raise EscalationServiceError(f"enrolment in the escalation is closed ({why})")
    row = state.level(state.current_level)
    esc = _escalation_def(latest_definition(session, subject.study))
    assigned = sum(len(r.subjects) - r.replacements for r in state.levels)
    if esc.max_subjects and assigned >= esc.max_subjects:
        raise EscalationServiceError(f"the escalation reached its maximum of "
                                     f"{esc.max_subjects} subjects")
    if len(row.subjects) >= row.capacity:
        raise EscalationServiceError(
            f"level {row.level} is full ({len(row.subjects)} of {row.capacity} places "
            f"taken): the next cohort opens with an escalation decision")
    audit.record(session, actor, "subject.dose_level_assigned", category="clinical",
                 study_oid=subject.study.oid, site_code=subject.site.code,
                 subject_key=subject.subject_key,
                 path=f"{subject.study.oid}/{subject.subject_key}/dose_level",
                 old_value=None, new_value=row.level, study_version=subject.study_version.label,
                 details={"label": row.label, "dose": row.dose, "place": len(row.subjects) + 1,
                          "capacity": row.capacity})
    subject.dose_level = row.level
    capture.mark_on_study(session, actor, subject, f"assigned dose level {row.level}")
    session.flush()
    return row.level
