"""Subject status rules and tasks (ecrf.domain.subject_status): every status, precedence,
the default, the one-way rule for unrelated saves and reversal on correction, task clocks."""

from __future__ import annotations

import datetime as dt

import pytest

from ecrf.domain.dates import Period
from ecrf.domain.subject_status import (
    Derived,
    StatusRule,
    SubjectStatus,
    TaskRule,
    TaskTrigger,
    decide,
    derive_status,
    open_task,
    rank,
)

S = SubjectStatus
# The DEXAML-03 precedence, with each rule's condition named by a fact.
RULES = (
    StatusRule(S.DIED, "death"),
    StatusRule(S.LOST_TO_FOLLOW_UP, "ltfu"),
    StatusRule(S.WITHDRAWN, "consent_withdrawn"),
    StatusRule(S.COMPLETED, "completed"),
    StatusRule(S.WITHDRAWN_FROM_TREATMENT, "treatment_withdrawn"),
    StatusRule(S.IN_FOLLOW_UP, "eot"),
    StatusRule(S.ON_STUDY, "randomized"),
    StatusRule(S.SCREEN_FAILED, "not_eligible"),
)


def derive(*facts: str) -> Derived:
    return derive_status(RULES, lambda source: source in facts)


@pytest.mark.parametrize(("facts", "expected", "rule"), [
    ((), S.SCREENING, None),
    (("not_eligible",), S.SCREEN_FAILED, 7),
    (("randomized",), S.ON_STUDY, 6),
    (("randomized", "not_eligible"), S.ON_STUDY, 6),
    (("randomized", "eot"), S.IN_FOLLOW_UP, 5),
    (("randomized", "eot", "treatment_withdrawn"), S.WITHDRAWN_FROM_TREATMENT, 4),
    (("randomized", "eot", "completed"), S.COMPLETED, 3),
    (("randomized", "eot", "treatment_withdrawn", "consent_withdrawn"), S.WITHDRAWN, 2),
    (("randomized", "ltfu", "consent_withdrawn"), S.LOST_TO_FOLLOW_UP, 1),
    (("randomized", "eot", "ltfu", "death"), S.DIED, 0),
    (("death",), S.DIED, 0),  # died in screening
    (("not_eligible", "death"), S.DIED, 0),
])
def test_first_rule_that_holds_gives_the_status(facts, expected, rule):
    assert derive(*facts) == Derived(expected, rule)


@pytest.mark.parametrize(("status", "expected"), [
    (S.DIED, 0), (S.LOST_TO_FOLLOW_UP, 1), (S.WITHDRAWN, 2), (S.COMPLETED, 3),
    (S.WITHDRAWN_FROM_TREATMENT, 4), (S.IN_FOLLOW_UP, 5), (S.ON_STUDY, 6),
    (S.SCREEN_FAILED, 7), (S.SCREENING, 8), ("anything_else", 8),
])
def test_rank_is_the_position_of_the_first_rule(status, expected):
    assert rank(RULES, status) == expected


@pytest.mark.parametrize(
    ("current", "facts", "reread", "status", "changed", "lowered", "kept"), [
        # the same status: nothing to do
        (S.ON_STUDY, ("randomized",), set(), S.ON_STUDY, False, False, False),
        # up the precedence: always
        (S.SCREENING, ("randomized",), set(), S.ON_STUDY, True, False, False),
        (S.ON_STUDY, ("randomized", "death"), set(), S.DIED, True, False, False),
        (S.IN_FOLLOW_UP, ("randomized", "eot", "consent_withdrawn"), set(),
         S.WITHDRAWN, True, False, False),
        (S.SCREEN_FAILED, ("not_eligible", "randomized"), set(), S.ON_STUDY, True, False,
         False),
        # down, after an unrelated save: the status stays
        (S.DIED, ("randomized",), {S.ON_STUDY}, S.DIED, False, False, True),
        (S.COMPLETED, ("randomized", "eot"), {S.IN_FOLLOW_UP}, S.COMPLETED, False, False,
         True),
        # down, after a correction of what the current status reads
        (S.DIED, ("randomized",), {S.DIED}, S.ON_STUDY, True, True, False),
        (S.WITHDRAWN, ("randomized", "eot"), {S.WITHDRAWN}, S.IN_FOLLOW_UP, True, True,
         False),
        (S.IN_FOLLOW_UP, ("randomized",), {S.IN_FOLLOW_UP}, S.ON_STUDY, True, True, False),
        (S.ON_STUDY, (), {S.ON_STUDY}, S.SCREENING, True, True, False),
        # down on an explicit recomputation (reread None)
        (S.DIED, ("randomized",), None, S.ON_STUDY, True, True, False),
        # a status no rule declares is replaced by what the data says
        (S.SCREENING, ("not_eligible",), set(), S.SCREEN_FAILED, True, False, False),
    ])
def test_decide(current, facts, reread, status, changed, lowered, kept):
    callback = None if reread is None else (lambda s: s in reread)
    decision = decide(RULES, current, derive(*facts), reread=callback)
    assert (decision.status, decision.changed, decision.lowered, decision.kept) == (
        status, changed, lowered, kept)


def test_without_rules_everyone_is_screening():
    assert derive_status((), lambda s: True) == Derived(S.SCREENING, None)


# --- tasks -------------------------------------------------------------------------------------

D = dt.date
TASK = TaskRule("EOT_DUE", "Enter End of treatment", "EOT_LOG", "EOT", Period(14, "d"), (
    TaskTrigger("death"), TaskTrigger("hsct"),
    TaskTrigger("cons3_end", when="intensive"),
), labels={"fr": "Saisir la fin de traitement"})


def run(dates: dict, facts=(), today=None, done=False):
    return open_task(TASK, lambda s: s in facts, dates.get, today or D(2025, 6, 1), done=done)


@pytest.mark.parametrize(("dates", "facts", "today", "since", "due", "overdue"), [
    ({"hsct": D(2025, 5, 1)}, (), D(2025, 5, 15), D(2025, 5, 1), D(2025, 5, 15), False),
    ({"hsct": D(2025, 5, 1)}, (), D(2025, 5, 16), D(2025, 5, 1), D(2025, 5, 15), True),
    ({"hsct": D(2025, 5, 1), "death": D(2025, 4, 20)}, (), D(2025, 5, 1), D(2025, 4, 20),
     D(2025, 5, 4), False),  # the earliest trigger starts the clock
    ({"cons3_end": D(2025, 3, 1)}, ("intensive",), D(2025, 6, 1), D(2025, 3, 1),
     D(2025, 3, 15), True),
])
def test_task_opens_from_the_earliest_trigger(dates, facts, today, since, due, overdue):
    task = run(dates, facts, today)
    assert (task.since, task.due, task.overdue) == (since, due, overdue)


@pytest.mark.parametrize(("dates", "facts", "done"), [
    ({}, (), False),  # nothing says treatment is over
    ({"cons3_end": D(2025, 3, 1)}, (), False),  # its condition does not hold
    ({"hsct": D(2025, 5, 1)}, (), True),  # the form is complete
])
def test_no_task(dates, facts, done):
    assert run(dates, facts, done=done) is None


@pytest.mark.parametrize(("language", "name"), [
    (None, "Enter End of treatment"), ("en", "Enter End of treatment"),
    ("fr", "Saisir la fin de traitement"), ("fr-CA", "Saisir la fin de traitement"),
    ("zh", "Enter End of treatment"),
])
def test_task_name_in_language(language, name):
    assert TASK.name_in(language) == name
