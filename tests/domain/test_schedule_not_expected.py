"""Visits planned after death, withdrawal, loss to follow-up or the study end are not
expected, never missed: the planned date (not the window opening) is compared with the stop,
strictly. Expectations below are computed by hand from the dates in the comments."""

from datetime import date

import pytest

from ecrf.domain.schedule import (
    EventStatus,
    ScheduleDefinition,
    StopRule,
    compute_schedule,
)

from .test_schedule import event, rec, subject

S = EventStatus
D = date

EOT = D(2025, 1, 1)
ON = D(2026, 6, 1)  # long after every date below
# planned 2025-04-01, window 2025-03-18 to 2025-04-15
VISIT = event("V", anchor="eot", offset="3m", before="14d", after="14d")
# planned 2025-04-01, 2025-07-01 (window opens 2025-06-17), 2025-10-01, 2026-01-01
FU = event("FU", kind="repeating", anchor="eot", offset="3m", every="3m", count=4,
           before="14d", after="14d")
FU_OPEN = event("FU_OPEN", kind="repeating", anchor="eot", offset="3m", every="3m",
                before="14d", after="14d")
# DEXAML-03: a withdrawal stops the schedule unless survival follow-up is still allowed.
SCOPE = 'EOS.WDSCOPE != "SURVIVAL"'
DEXAML_STOP = StopRule(("death", "lost_to_follow_up", "withdrawal"), (("withdrawal", SCOPE),))


def run(events, subj, on=ON, stop=DEXAML_STOP):
    return compute_schedule(ScheduleDefinition(tuple(events), stop), subj, on)


def statuses(rows, oid):
    return [(r.repeat, r.status) for r in rows if r.event_oid == oid]


@pytest.mark.parametrize(("death", "status", "note"), [
    (None, S.OVERDUE, "window closed 2025-04-15"),
    # death before the window opened
    (D(2025, 3, 10), S.NOT_EXPECTED, "planned after death on 2025-03-10"),
    # death with the window already open, the day before the planned date
    (D(2025, 3, 31), S.NOT_EXPECTED, "planned after death on 2025-03-31"),
    # planned on the day of death: it could have been done
    (D(2025, 4, 1), S.MISSED, "not done before death on 2025-04-01 (window opened 2025-03-18)"),
    (D(2025, 4, 2), S.MISSED, "not done before death on 2025-04-02 (window opened 2025-03-18)"),
    (D(2025, 5, 1), S.MISSED, "not done before death on 2025-05-01 (window opened 2025-03-18)"),
])
def test_death_boundary_days(death, status, note):
    anchors = {"eot": EOT} if death is None else {"eot": EOT, "death": death}
    (row,) = run([VISIT], subject(anchors))
    assert (row.status, row.note) == (status, note)


@pytest.mark.parametrize(("anchors", "true", "study_end", "status", "note"), [
    ({"lost_to_follow_up": D(2025, 3, 31)}, (), None,
     S.NOT_EXPECTED, "planned after lost to follow up on 2025-03-31"),
    # consent withdrawn for all follow-up: the withdrawal is a stop
    ({"withdrawal": D(2025, 3, 31)}, (SCOPE,), None,
     S.NOT_EXPECTED, "planned after withdrawal on 2025-03-31"),
    ({"withdrawal": D(2025, 4, 1)}, (SCOPE,), None,
     S.MISSED, "not done before withdrawal on 2025-04-01 (window opened 2025-03-18)"),
    # survival follow-up still allowed: no stop, the visit is simply overdue
    ({"withdrawal": D(2025, 3, 31)}, (), None, S.OVERDUE, "window closed 2025-04-15"),
    ({}, (), D(2025, 3, 31), S.NOT_EXPECTED, "planned after study end on 2025-03-31"),
    ({}, (), D(2025, 4, 1),
     S.MISSED, "not done before study end on 2025-04-01 (window opened 2025-03-18)"),
])
def test_every_kind_of_stop(anchors, true, study_end, status, note):
    subj = subject({"eot": EOT, **anchors}, study_end=study_end, true=true)
    (row,) = run([VISIT], subj)
    assert (row.status, row.note) == (status, note)


@pytest.mark.parametrize(("death", "status", "note"), [
    (D(2025, 3, 31), S.NOT_EXPECTED, "declared not done; planned after death on 2025-03-31"),
    (D(2025, 4, 1), S.MISSED, "declared not done"),
    (D(2025, 4, 2), S.MISSED, "declared not done"),
])
def test_declared_not_done(death, status, note):
    subj = subject({"eot": EOT, "death": death}, [rec("V", 1, None, "not_done")])
    (row,) = run([VISIT], subj)
    assert (row.status, row.note) == (status, note)


def test_a_false_condition_wins_over_the_stop():
    rule = event("V", anchor="eot", offset="3m", before="14d", after="14d", condition="C")
    for recorded in ([], [rec("V", 1, None, "not_done")]):
        subj = subject({"eot": EOT, "death": D(2025, 3, 31)}, recorded)
        (row,) = run([rule], subj)
        assert row.status is S.NOT_APPLICABLE
        assert row.note.endswith("condition not met: C")


@pytest.mark.parametrize(("death", "expected"), [
    (D(2025, 7, 1), [(1, S.MISSED), (2, S.MISSED), (3, S.NOT_EXPECTED), (4, S.NOT_EXPECTED)]),
    # FU#2's window opened on 2025-06-17, but it was planned after death
    (D(2025, 6, 30),
     [(1, S.MISSED), (2, S.NOT_EXPECTED), (3, S.NOT_EXPECTED), (4, S.NOT_EXPECTED)]),
    (D(2025, 3, 31), [(1, S.NOT_EXPECTED)] + [(k, S.NOT_EXPECTED) for k in (2, 3, 4)]),
])
def test_count_limited_repeat_after_death(death, expected):
    rows = run([FU], subject({"eot": EOT, "death": death}))
    assert statuses(rows, "FU") == expected


@pytest.mark.parametrize(("death", "expected"), [
    (D(2025, 7, 1), [(1, S.MISSED), (2, S.MISSED)]),
    (D(2025, 6, 30), [(1, S.MISSED)]),   # FU#2 planned after death: not generated
    (D(2025, 3, 31), []),
])
def test_open_ended_repeat_is_not_generated_past_death(death, expected):
    rows = run([FU_OPEN], subject({"eot": EOT, "death": death}))
    assert statuses(rows, "FU_OPEN") == expected


def test_open_ended_repeat_recorded_after_death_keeps_its_data():
    subj = subject({"eot": EOT, "death": D(2025, 6, 30)}, [rec("FU_OPEN", 3, D(2025, 10, 2))])
    rows = run([FU_OPEN], subj)
    assert statuses(rows, "FU_OPEN") == [(1, S.MISSED), (2, S.NOT_EXPECTED), (3, S.DONE)]
    assert rows[-1].note == "done 2025-10-02; planned after death on 2025-06-30"


def test_study_end_ahead_of_today():
    # as of 2025-05-01 FU#1 is overdue (not yet missed: the study has not ended), FU#2 is
    # planned after the end and never will be expected
    rows = run([FU], subject({"eot": EOT}, study_end=D(2025, 6, 30)), on=D(2025, 5, 1))
    assert statuses(rows, "FU") == [(1, S.OVERDUE), (2, S.NOT_EXPECTED)]
    assert rows[1].note == "planned after study end on 2025-06-30"


def test_not_expected_is_its_own_status():
    assert S.NOT_EXPECTED.value == "not_expected"
    assert S.NOT_EXPECTED is not S.NOT_APPLICABLE
