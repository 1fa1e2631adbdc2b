"""A subject's status and the entries its data asks for, derived from declared rules.

Pure: the rules come from study.yaml (``status:`` and ``tasks:``), and the caller says
whether an expression holds for a subject (``holds``) and which date an expression gives
(``date_of``).

**Status.** The rules are in precedence order: the first one whose ``when`` holds gives the
status; when none holds the subject is *screening*. Recomputing from the data alone would
let any save move the status; ``decide`` adds the one rule that keeps it honest:

* a status of higher precedence is always taken (a recorded death makes the subject
  *died* whatever the subject was before);
* a status of lower precedence is taken only when data read by the rules of the current
  status changed (the death date was corrected away, the end-of-study reason changed) or
  on an explicit recomputation; otherwise the current status stays, so a later unrelated
  save never lowers it.

**Tasks.** A task asks for a form (e.g. End of treatment) once the data shows it is
expected: each trigger is a date expression (when treatment ended: a transplant, a
progression, the last planned cycle) with an optional condition. The earliest date of the
triggers that fire starts the clock; the task is due ``due_after`` later and overdue after
that, until the form is complete.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from ecrf.domain.dates import Period


class SubjectStatus(StrEnum):
    SCREENING = "screening"
    ON_STUDY = "on_study"
    SCREEN_FAILED = "screen_failed"
    IN_FOLLOW_UP = "in_follow_up"
    WITHDRAWN_FROM_TREATMENT = "withdrawn_from_treatment"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"  # from the study: consent withdrawn
    LOST_TO_FOLLOW_UP = "lost_to_follow_up"
    DIED = "died"


DEFAULT_STATUS = SubjectStatus.SCREENING


@dataclass(frozen=True)
class StatusRule:
    status: SubjectStatus
    when: str  # a boolean expression over the subject's data


@dataclass(frozen=True)
class Derived:
    status: SubjectStatus
    rule: int | None  # index of the rule that holds; None: none holds (the default)


def derive_status(rules: Sequence[StatusRule], holds: Callable[[str], bool]) -> Derived:
    """The status of the first rule that holds, else the default."""
    for index, rule in enumerate(rules):
        if holds(rule.when):
            return Derived(rule.status, index)
    return Derived(DEFAULT_STATUS, None)


def rank(rules: Sequence[StatusRule], status: str) -> int:
    """Precedence of a status: the position of its first rule (0 is the highest). The
    default and any status no rule declares come last."""
    for index, rule in enumerate(rules):
        if rule.status == status:
            return index
    return len(rules)


@dataclass(frozen=True)
class Decision:
    status: str
    changed: bool
    lowered: bool = False
    kept: bool = False  # a lower status was found but the current one stays
    rule: int | None = None


def decide(rules: Sequence[StatusRule], current: str, derived: Derived, *,
           reread: Callable[[str], bool] | None = None) -> Decision:
    """What the stored status becomes. ``reread(status)`` says whether data read by the
    rules of ``status`` changed; None means an explicit recomputation (take the data's
    status whatever it is)."""
    if derived.status == current:
        return Decision(current, False, rule=derived.rule)
    declared = any(rule.status == current for rule in rules)
    if not declared or rank(rules, derived.status) < rank(rules, current):
        return Decision(derived.status, True, rule=derived.rule)
    if reread is None or reread(current):
        return Decision(derived.status, True, lowered=True, rule=derived.rule)
    return Decision(current, False, kept=True, rule=derived.rule)


# --- tasks --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskTrigger:
    start: str  # a date expression: when the form became expected
    when: str | None = None  # an optional condition


@dataclass(frozen=True)
class TaskRule:
    oid: str
    name: str
    event: str
    form: str
    due_after: Period
    triggers: tuple[TaskTrigger, ...]
    labels: dict[str, str] = field(default_factory=dict)

    def name_in(self, language: str | None = None) -> str:
        if language:
            for key in (language, language.replace("_", "-").split("-")[0]):
                if key in self.labels:
                    return self.labels[key]
        return self.name


@dataclass(frozen=True)
class OpenTask:
    rule: TaskRule
    since: dt.date
    due: dt.date
    overdue: bool


def open_task(rule: TaskRule, holds: Callable[[str], bool],
              date_of: Callable[[str], dt.date | None], today: dt.date, *,
              done: bool) -> OpenTask | None:
    """The task if the data asks for its form and the form is not complete yet."""
    if done:
        return None
    starts = []
    for trigger in rule.triggers:
        if trigger.when is not None and not holds(trigger.when):
            continue
        start = date_of(trigger.start)
        if start is not None:
            starts.append(start)
    if not starts:
        return None
    since = min(starts)
    due = rule.due_after.add_to(since)
    return OpenTask(rule, since, due, today > due)
