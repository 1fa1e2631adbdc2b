from datetime import date, timedelta

import pytest

from ecrf.domain.dates import Period
from ecrf.domain.schedule import (
    EventKind,
    EventRule,
    EventStatus,
    ExpectedEvent,
    RecordedOccurrence,
    RepeatRule,
    ScheduleDefinition,
    ScheduleError,
    StopRule,
    SubjectScheduleData,
    Window,
    compute_schedule,
)

S = EventStatus
D = date


def P(text):
    return Period.parse(text)


def event(oid, kind="scheduled", anchor="enrolment", offset="0d", before="0d", after="0d",
          every=None, count=None, until=None, from_actual=False, condition=None, stop_at=()):
    repeat = None
    if every is not None:
        repeat = RepeatRule(P(every), count=count, until=until, from_actual=from_actual)
    return EventRule(
        oid=oid,
        name=oid.title(),
        kind=EventKind(kind),
        anchor=anchor if kind in ("scheduled", "repeating") else None,
        offset=P(offset),
        window=Window(P(before), P(after)),
        repeat=repeat,
        condition=condition,
        stop_at=tuple(stop_at),
    )


def subject(anchors, occurrences=(), study_end=None, true=()):
    truths = set(true)
    return SubjectScheduleData(
        anchors=anchors,
        occurrences=tuple(occurrences),
        study_end=study_end,
        evaluate=lambda source: source in truths,
    )


def rec(oid, repeat, actual, state="done"):
    return RecordedOccurrence(oid, repeat, actual, state)


def schedule(events, subj, on, stop=("death", "withdrawal")):
    return compute_schedule(ScheduleDefinition(tuple(events), StopRule(stop)), subj, on)


def rows_of(rows, oid):
    return [row for row in rows if row.event_oid == oid]


def one(rows, oid, repeat=1):
    matches = [row for row in rows if row.event_oid == oid and row.repeat == repeat]
    assert len(matches) == 1, matches
    return matches[0]


ENROL = D(2024, 3, 1)

# --- window edges and statuses --------------------------------------------------------------

# Planned 2024-03-15 (enrolment + 14d), window [2024-03-12, 2024-03-22].
VISIT = event("V1", offset="14d", before="3d", after="7d")
W_START, PLANNED, W_END = D(2024, 3, 12), D(2024, 3, 15), D(2024, 3, 22)


@pytest.mark.parametrize(
    ("on", "status", "note"),
    [
        (ENROL, S.UPCOMING, "window opens 2024-03-12"),
        (W_START - timedelta(1), S.UPCOMING, "window opens 2024-03-12"),
        (W_START, S.DUE, "window closes 2024-03-22"),
        (PLANNED, S.DUE, "window closes 2024-03-22"),
        (W_END, S.DUE, "window closes 2024-03-22"),
        (W_END + timedelta(1), S.OVERDUE, "window closed 2024-03-22"),
        (D(2025, 1, 1), S.OVERDUE, "window closed 2024-03-22"),
    ],
)
def test_not_recorded_status_by_window(on, status, note):
    row = one(schedule([VISIT], subject({"enrolment": ENROL}), on), "V1")
    assert (row.planned, row.window_start, row.window_end) == (PLANNED, W_START, W_END)
    assert (row.status, row.note, row.actual_date) == (status, note, None)


@pytest.mark.parametrize(
    ("actual", "status", "note"),
    [
        (W_START - timedelta(10), S.DONE_OUT_OF_WINDOW,
         "done 2024-03-02, 10 days before the window opened 2024-03-12"),
        (W_START - timedelta(1), S.DONE_OUT_OF_WINDOW,
         "done 2024-03-11, 1 day before the window opened 2024-03-12"),
        (W_START, S.DONE, "done 2024-03-12"),
        (PLANNED, S.DONE, "done 2024-03-15"),
        (W_END, S.DONE, "done 2024-03-22"),
        (W_END + timedelta(1), S.DONE_OUT_OF_WINDOW,
         "done 2024-03-23, 1 day after the window closed 2024-03-22"),
        (W_END + timedelta(2), S.DONE_OUT_OF_WINDOW,
         "done 2024-03-24, 2 days after the window closed 2024-03-22"),
        (None, S.DONE, "done; date not recorded"),
    ],
)
@pytest.mark.parametrize("on", [W_START - timedelta(1), W_END, D(2025, 1, 1)])
def test_done_status_depends_on_actual_date_not_on_today(actual, status, note, on):
    subj = subject({"enrolment": ENROL}, [rec("V1", 1, actual)])
    row = one(schedule([VISIT], subj, on), "V1")
    assert (row.status, row.note, row.actual_date) == (status, note, actual)


@pytest.mark.parametrize("on", [ENROL, W_START, W_END, W_END + timedelta(1)])
def test_declared_not_done_is_missed_whatever_the_date(on):
    subj = subject({"enrolment": ENROL}, [rec("V1", 1, None, "not_done")])
    row = one(schedule([VISIT], subj, on), "V1")
    assert (row.status, row.note) == (S.MISSED, "declared not done")


@pytest.mark.parametrize(
    ("on", "status", "note"),
    [
        (W_START - timedelta(1), S.DUE, "in progress; window closes 2024-03-22"),
        (W_START, S.DUE, "in progress; window closes 2024-03-22"),
        (W_END, S.DUE, "in progress; window closes 2024-03-22"),
        (W_END + timedelta(1), S.OVERDUE, "in progress; window closed 2024-03-22"),
    ],
)
def test_in_progress_counts_as_started(on, status, note):
    subj = subject({"enrolment": ENROL}, [rec("V1", 1, D(2024, 3, 11), "in_progress")])
    row = one(schedule([VISIT], subj, on), "V1")
    assert (row.status, row.note, row.actual_date) == (status, note, D(2024, 3, 11))


@pytest.mark.parametrize(
    ("on", "status"),
    [(D(2024, 3, 14), S.UPCOMING), (D(2024, 3, 15), S.DUE), (D(2024, 3, 16), S.OVERDUE)],
)
def test_zero_width_window(on, status):
    row = one(schedule([event("V1", offset="14d")], subject({"enrolment": ENROL}), on), "V1")
    assert row.window_start == row.window_end == row.planned == D(2024, 3, 15)
    assert row.status is status


@pytest.mark.parametrize(
    ("offset", "before", "after", "planned", "start", "end"),
    [
        ("0d", "0d", "28d", D(2024, 3, 1), D(2024, 3, 1), D(2024, 3, 29)),
        ("-28d", "0d", "0d", D(2024, 2, 2), D(2024, 2, 2), D(2024, 2, 2)),
        ("2w", "1w", "1w", D(2024, 3, 15), D(2024, 3, 8), D(2024, 3, 22)),
        ("1m", "1m", "1m", D(2024, 4, 1), D(2024, 3, 1), D(2024, 5, 1)),
        ("1y", "0d", "1m", D(2025, 3, 1), D(2025, 3, 1), D(2025, 4, 1)),
    ],
)
def test_planned_date_and_window_from_periods(offset, before, after, planned, start, end):
    rule = event("V1", offset=offset, before=before, after=after)
    row = one(schedule([rule], subject({"enrolment": ENROL}), ENROL), "V1")
    assert (row.planned, row.window_start, row.window_end) == (planned, start, end)


def test_month_window_clamps_at_month_end():
    rule = event("V1", anchor="eot", offset="1m", before="1m", after="1m")
    row = one(schedule([rule], subject({"eot": D(2024, 1, 31)}), D(2024, 1, 31)), "V1")
    assert (row.window_start, row.planned, row.window_end) == (
        D(2024, 1, 29), D(2024, 2, 29), D(2024, 3, 29))


# --- arm and answer conditions --------------------------------------------------------------

DEX_ONLY = 'subject.arm = "DEX"'
CTRL_ONLY = 'subject.arm = "CTRL"'
AZA_ONLY = 'SALVAGE.SALVTYPE = "AZA"'
ARM_EVENTS = [
    event("DEXADM", offset="7d", after="3d", condition=DEX_ONLY),
    event("CTRLFU", offset="7d", after="3d", condition=CTRL_ONLY),
    event("ALL", offset="7d", after="3d"),
    event("AZA", kind="repeating", offset="7d", after="3d", every="28d", count=3,
          condition=AZA_ONLY),
]


@pytest.mark.parametrize(
    ("truths", "oid", "status"),
    [
        ({DEX_ONLY}, "DEXADM", S.DUE),
        ({DEX_ONLY}, "CTRLFU", S.NOT_APPLICABLE),
        ({DEX_ONLY}, "ALL", S.DUE),
        ({DEX_ONLY}, "AZA", S.NOT_APPLICABLE),
        ({CTRL_ONLY}, "DEXADM", S.NOT_APPLICABLE),
        ({CTRL_ONLY}, "CTRLFU", S.DUE),
        ({CTRL_ONLY}, "ALL", S.DUE),
        ({CTRL_ONLY, AZA_ONLY}, "AZA", S.DUE),
        ({DEX_ONLY, AZA_ONLY}, "AZA", S.DUE),
        (set(), "DEXADM", S.NOT_APPLICABLE),
        (set(), "CTRLFU", S.NOT_APPLICABLE),
        (set(), "ALL", S.DUE),
    ],
)
def test_condition_decides_applicability(truths, oid, status):
    rows = schedule(ARM_EVENTS, subject({"enrolment": ENROL}, true=truths), D(2024, 3, 9))
    row = one(rows, oid)
    assert row.status is status
    assert row.planned == D(2024, 3, 8)
    if status is S.NOT_APPLICABLE:
        condition = next(rule.condition for rule in ARM_EVENTS if rule.oid == oid)
        assert row.note == f"condition not met: {condition}"


def test_condition_false_repeat_is_listed_once():
    rows = schedule(ARM_EVENTS, subject({"enrolment": ENROL}), D(2025, 1, 1))
    assert [(r.repeat, r.status) for r in rows_of(rows, "AZA")] == [(1, S.NOT_APPLICABLE)]


@pytest.mark.parametrize(
    ("state", "actual", "status", "note"),
    [
        ("done", D(2024, 3, 9), S.DONE, "done 2024-03-09; condition not met: " + DEX_ONLY),
        ("done", D(2024, 3, 20), S.DONE_OUT_OF_WINDOW,
         "done 2024-03-20, 9 days after the window closed 2024-03-11; condition not met: "
         + DEX_ONLY),
        ("not_done", None, S.NOT_APPLICABLE, "declared not done; condition not met: " + DEX_ONLY),
        ("in_progress", D(2024, 3, 9), S.OVERDUE,
         "in progress; window closed 2024-03-11; condition not met: " + DEX_ONLY),
    ],
)
def test_recorded_data_is_kept_when_condition_is_false(state, actual, status, note):
    subj = subject({"enrolment": ENROL}, [rec("DEXADM", 1, actual, state)], true={CTRL_ONLY})
    row = one(schedule(ARM_EVENTS, subj, D(2024, 4, 1)), "DEXADM")
    assert (row.status, row.note, row.actual_date) == (status, note, actual)


def test_condition_false_repeat_keeps_recorded_occurrences():
    subj = subject({"enrolment": ENROL}, [rec("AZA", 1, D(2024, 3, 8)), rec("AZA", 2, None,
                                                                            "not_done")])
    rows = rows_of(schedule(ARM_EVENTS, subj, D(2025, 1, 1)), "AZA")
    assert [(r.repeat, r.status) for r in rows] == [(1, S.DONE), (2, S.NOT_APPLICABLE)]


# --- repeats: dates, from_actual, count, horizon, until -------------------------------------


@pytest.mark.parametrize(
    ("anchor", "offset", "every", "expected"),
    [
        (D(2024, 1, 31), "0d", "1m",
         [D(2024, 1, 31), D(2024, 2, 29), D(2024, 3, 31), D(2024, 4, 30), D(2024, 5, 31)]),
        (D(2023, 1, 31), "0d", "1m",
         [D(2023, 1, 31), D(2023, 2, 28), D(2023, 3, 31), D(2023, 4, 30), D(2023, 5, 31)]),
        (D(2024, 1, 31), "1m", "1m",
         [D(2024, 2, 29), D(2024, 3, 31), D(2024, 4, 30), D(2024, 5, 31), D(2024, 6, 30)]),
        (D(2023, 11, 30), "0d", "3m",
         [D(2023, 11, 30), D(2024, 2, 29), D(2024, 5, 30), D(2024, 8, 30), D(2024, 11, 30)]),
        (D(2024, 2, 29), "0d", "1y",
         [D(2024, 2, 29), D(2025, 2, 28), D(2026, 2, 28), D(2027, 2, 28), D(2028, 2, 29)]),
        (D(2024, 1, 1), "0d", "28d",
         [D(2024, 1, 1), D(2024, 1, 29), D(2024, 2, 26), D(2024, 3, 25), D(2024, 4, 22)]),
        (D(2024, 1, 1), "-7d", "2w",
         [D(2023, 12, 25), D(2024, 1, 8), D(2024, 1, 22), D(2024, 2, 5), D(2024, 2, 19)]),
        (D(2024, 1, 31), "1d", "1m",
         [D(2024, 2, 1), D(2024, 3, 1), D(2024, 4, 1), D(2024, 5, 1), D(2024, 6, 1)]),
    ],
)
def test_repeat_dates_count_from_the_anchor(anchor, offset, every, expected):
    rule = event("R", kind="repeating", anchor="a", offset=offset, every=every, count=5)
    rows = schedule([rule], subject({"a": anchor}), D(2030, 1, 1))
    assert [row.planned for row in rows] == expected
    assert [row.repeat for row in rows] == [1, 2, 3, 4, 5]


AZA = event("AZA", kind="repeating", anchor="c1d1", after="7d", every="28d", from_actual=True)
C1D1 = D(2024, 1, 1)


@pytest.mark.parametrize(
    ("recorded", "expected"),
    [
        # Nothing recorded: every 28 days from the anchor.
        ([], [D(2024, 1, 1), D(2024, 1, 29), D(2024, 2, 26), D(2024, 3, 25)]),
        # Cycle 2 delayed 10 days by toxicity: cycles 3 and 4 move with it.
        ([rec("AZA", 1, D(2024, 1, 1)), rec("AZA", 2, D(2024, 2, 8))],
         [D(2024, 1, 1), D(2024, 1, 29), D(2024, 3, 7), D(2024, 4, 4)]),
        # Cycle 1 itself started late.
        ([rec("AZA", 1, D(2024, 1, 5))],
         [D(2024, 1, 1), D(2024, 2, 2), D(2024, 3, 1), D(2024, 3, 29)]),
        # An in-progress cycle has started: it is the reference too.
        ([rec("AZA", 1, D(2024, 1, 1)), rec("AZA", 2, D(2024, 2, 5), "in_progress")],
         [D(2024, 1, 1), D(2024, 1, 29), D(2024, 3, 4), D(2024, 4, 1)]),
        # A cycle declared not done keeps the previous reference.
        ([rec("AZA", 1, D(2024, 1, 3)), rec("AZA", 2, D(2024, 2, 20), "not_done")],
         [D(2024, 1, 1), D(2024, 1, 31), D(2024, 2, 28), D(2024, 3, 27)]),
        # A done cycle without a date cannot move anything.
        ([rec("AZA", 1, None)], [D(2024, 1, 1), D(2024, 1, 29), D(2024, 2, 26), D(2024, 3, 25)]),
    ],
)
def test_from_actual_shifts_following_occurrences(recorded, expected):
    rule = event("AZA", kind="repeating", anchor="c1d1", after="7d", every="28d", count=4,
                 from_actual=True)
    rows = schedule([rule], subject({"c1d1": C1D1}, recorded), D(2030, 1, 1))
    assert [row.planned for row in rows] == expected


def test_without_from_actual_delays_do_not_shift_the_plan():
    rule = event("AZA", kind="repeating", anchor="c1d1", after="7d", every="28d", count=4)
    recorded = [rec("AZA", 1, D(2024, 1, 1)), rec("AZA", 2, D(2024, 2, 8))]
    rows = schedule([rule], subject({"c1d1": C1D1}, recorded), D(2030, 1, 1))
    assert [row.planned for row in rows] == [D(2024, 1, 1), D(2024, 1, 29), D(2024, 2, 26),
                                             D(2024, 3, 25)]
    assert rows[1].status is S.DONE_OUT_OF_WINDOW


def test_from_actual_months_do_not_drift_over_unrecorded_occurrences():
    rule = event("M", kind="repeating", anchor="a", every="1m", count=4, from_actual=True)
    recorded = [rec("M", 1, D(2024, 1, 31))]
    rows = schedule([rule], subject({"a": D(2024, 1, 31)}, recorded), D(2030, 1, 1))
    assert [row.planned for row in rows] == [D(2024, 1, 31), D(2024, 2, 29), D(2024, 3, 31),
                                             D(2024, 4, 30)]


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_count_caps_occurrences(count):
    rule = event("R", kind="repeating", anchor="a", every="7d", count=count)
    rows = schedule([rule], subject({"a": D(2024, 1, 1)}), D(2030, 1, 1))
    assert [row.repeat for row in rows] == list(range(1, count + 1))
    assert all(row.status is S.OVERDUE for row in rows)


def test_recorded_occurrence_beyond_count_is_still_listed():
    rule = event("R", kind="repeating", anchor="a", every="7d", count=2)
    recorded = [rec("R", 3, D(2024, 1, 15))]
    rows = schedule([rule], subject({"a": D(2024, 1, 1)}, recorded), D(2024, 1, 20))
    assert [(r.repeat, r.status) for r in rows] == [(1, S.OVERDUE), (2, S.OVERDUE), (3, S.DONE)]
    assert rows[2].note == "done 2024-01-15; beyond the 2 planned occurrences"


# Every 10 days from 2024-01-01 with a 2-day window before: 01-01, 01-11, 01-21, 01-31...
@pytest.mark.parametrize(
    ("on", "last_repeat"),
    [
        (D(2023, 12, 1), 1),   # before the anchor: just the first one
        (D(2024, 1, 1), 2),    # on the first planned date: it, then one more
        (D(2024, 1, 8), 2),
        (D(2024, 1, 9), 3),    # window of #2 opened on 01-09: listed, plus one more
        (D(2024, 1, 10), 3),
        (D(2024, 1, 11), 3),
        (D(2024, 1, 19), 4),
        (D(2024, 4, 10), 12),  # #11 planned 04-10, #12 is the next one
    ],
)
def test_open_ended_repeat_generates_up_to_one_beyond_on(on, last_repeat):
    rule = event("R", kind="repeating", anchor="a", before="2d", every="10d")
    rows = schedule([rule], subject({"a": D(2024, 1, 1)}), on)
    assert [row.repeat for row in rows] == list(range(1, last_repeat + 1))
    assert rows[-1].status is S.UPCOMING


def test_horizon_extends_to_the_latest_recorded_occurrence():
    rule = event("R", kind="repeating", anchor="a", every="10d")
    recorded = [rec("R", 5, D(2024, 2, 10))]
    rows = schedule([rule], subject({"a": D(2024, 1, 1)}, recorded), D(2024, 1, 5))
    # Occurrence #5 was entered early (data entry ahead of time is possible): list it,
    # every one before it, and one more.
    assert [(r.repeat, r.status) for r in rows] == [
        (1, S.OVERDUE), (2, S.UPCOMING), (3, S.UPCOMING), (4, S.UPCOMING),
        (5, S.DONE), (6, S.UPCOMING)]


@pytest.mark.parametrize(
    ("recorded", "until_true", "expected"),
    [
        ([], False, [1, 2, 3, 4]),
        ([], True, []),
        ([rec("AZA", 1, D(2024, 1, 1)), rec("AZA", 2, D(2024, 1, 29))], True, [1, 2]),
        ([rec("AZA", 1, D(2024, 1, 1)), rec("AZA", 3, D(2024, 2, 26))], True, [1, 2, 3]),
        ([rec("AZA", 1, D(2024, 1, 1))], False, [1, 2, 3, 4]),
    ],
)
def test_until_stops_new_occurrences(recorded, until_true, expected):
    until = "not is_blank(anchor.progression)"
    rule = event("AZA", kind="repeating", anchor="c1d1", after="7d", every="28d", until=until)
    truths = {until} if until_true else set()
    rows = schedule([rule], subject({"c1d1": C1D1}, recorded, true=truths), D(2024, 3, 1))
    assert [row.repeat for row in rows] == expected


def test_until_is_not_evaluated_for_an_event_that_does_not_apply():
    asked = []

    def evaluate(source):
        asked.append(source)
        return False

    rule = event("AZA", kind="repeating", anchor="c1d1", every="28d", until="U", condition="C")
    subj = SubjectScheduleData({"c1d1": C1D1}, evaluate=evaluate)
    compute_schedule(ScheduleDefinition((rule,)), subj, D(2024, 6, 1))
    assert asked == ["C"]


# --- stops: death, withdrawal, per-event stop_at, study end ---------------------------------

EOT = D(2024, 8, 31)
FU_EARLY = event("FU_EARLY", kind="repeating", anchor="eot", offset="3m", before="14d",
                 after="14d", every="3m", count=8)
FU_LATE = event("FU_LATE", kind="repeating", anchor="eot", offset="30m", before="1m",
                after="1m", every="6m")
FOLLOW_UP = [FU_EARLY, FU_LATE]


def test_early_death_stops_follow_up():
    # FU#3 planned 2025-05-31, window opens 2025-05-17; death on 2025-05-20.
    death = D(2025, 5, 20)
    recorded = [rec("FU_EARLY", 1, D(2024, 12, 2))]
    subj = subject({"eot": EOT, "death": death}, recorded)
    rows = schedule(FOLLOW_UP, subj, D(2026, 9, 1))
    assert [(r.event_oid, r.repeat, r.status, r.note) for r in rows] == [
        ("FU_EARLY", 1, S.DONE, "done 2024-12-02"),
        ("FU_EARLY", 2, S.MISSED, "not done before death on 2025-05-20 (window opened 2025-02-14)"),
        # planned after death: its window had opened, but it was never due
        ("FU_EARLY", 3, S.NOT_EXPECTED, "planned after death on 2025-05-20"),
        ("FU_EARLY", 4, S.NOT_EXPECTED, "planned after death on 2025-05-20"),
        ("FU_EARLY", 5, S.NOT_EXPECTED, "planned after death on 2025-05-20"),
        ("FU_EARLY", 6, S.NOT_EXPECTED, "planned after death on 2025-05-20"),
        ("FU_EARLY", 7, S.NOT_EXPECTED, "planned after death on 2025-05-20"),
        ("FU_EARLY", 8, S.NOT_EXPECTED, "planned after death on 2025-05-20"),
    ]
    assert rows_of(rows, "FU_LATE") == []  # open-ended: never generated past the stop


@pytest.mark.parametrize(
    ("death", "status"),
    [
        (D(2025, 5, 16), S.NOT_EXPECTED),  # the day before FU#3's window opened
        (D(2025, 5, 17), S.NOT_EXPECTED),  # the day it opened
        (D(2025, 5, 30), S.NOT_EXPECTED),  # the day before its planned date
        (D(2025, 5, 31), S.MISSED),        # its planned date
        (D(2025, 6, 1), S.MISSED),         # the day after
        (D(2025, 6, 14), S.MISSED),        # the last day of the window
    ],
)
def test_death_around_a_planned_date(death, status):
    rows = schedule(FOLLOW_UP, subject({"eot": EOT, "death": death}), D(2025, 7, 1))
    assert one(rows, "FU_EARLY", 3).status is status


@pytest.mark.parametrize(
    ("on", "status"),
    [
        (D(2025, 5, 18), S.DUE),     # as of days before death, the visit was simply due
        (D(2025, 6, 4), S.DUE),
        (D(2025, 6, 5), S.MISSED),   # from the stop on, it can no longer happen
        (D(2025, 9, 1), S.MISSED),
    ],
)
def test_stop_takes_effect_on_its_date(on, status):
    # FU#3 planned 2025-05-31 (window 2025-05-17 to 2025-06-14); death on 2025-06-05.
    rows = schedule(FOLLOW_UP, subject({"eot": EOT, "death": D(2025, 6, 5)}), on)
    assert one(rows, "FU_EARLY", 3).status is status
    assert one(rows, "FU_EARLY", 4).status is S.NOT_EXPECTED


@pytest.mark.parametrize(
    ("state", "actual", "status"),
    [
        ("done", D(2025, 9, 1), S.DONE),
        ("not_done", None, S.NOT_EXPECTED),
        ("in_progress", D(2025, 9, 1), S.OVERDUE),
    ],
)
def test_recorded_occurrence_after_stop_keeps_its_data(state, actual, status):
    subj = subject({"eot": EOT, "death": D(2025, 5, 20)}, [rec("FU_EARLY", 4, actual, state)])
    row = one(schedule(FOLLOW_UP, subj, D(2026, 1, 1)), "FU_EARLY", 4)
    assert row.status is status
    assert row.note.endswith("; planned after death on 2025-05-20")


@pytest.mark.parametrize(
    ("anchors", "label"),
    [
        ({"death": D(2025, 5, 20)}, "death on 2025-05-20"),
        ({"withdrawal": D(2025, 5, 20)}, "withdrawal on 2025-05-20"),
        ({"death": D(2025, 6, 1), "withdrawal": D(2025, 5, 20)}, "withdrawal on 2025-05-20"),
        ({"death": D(2025, 5, 20), "withdrawal": D(2025, 6, 1)}, "death on 2025-05-20"),
        ({"lost_to_follow_up": D(2025, 5, 20)}, "lost to follow up on 2025-05-20"),
        ({"progression": D(2025, 5, 20)}, None),  # not a subject-level stop
    ],
)
def test_earliest_subject_stop_anchor_applies(anchors, label):
    subj = subject({"eot": EOT, **anchors})
    rows = schedule(FOLLOW_UP, subj, D(2026, 1, 1),
                    stop=("death", "withdrawal", "lost_to_follow_up"))
    row = one(rows, "FU_EARLY", 4)
    if label is None:
        assert row.status is S.OVERDUE
    else:
        assert (row.status, row.note) == (S.NOT_EXPECTED, f"planned after {label}")


def test_stop_on_the_same_day_as_study_end_is_named_after_the_anchor():
    subj = subject({"eot": EOT, "death": D(2025, 5, 20)}, study_end=D(2025, 5, 20))
    rows = schedule(FOLLOW_UP, subj, D(2026, 1, 1))
    assert one(rows, "FU_EARLY", 4).note == "planned after death on 2025-05-20"


def test_per_event_stop_at_only_stops_that_event():
    cycles = event("AZA", kind="repeating", anchor="c1d1", after="7d", every="28d",
                   stop_at=("progression",))
    capped = event("EVAL", kind="repeating", anchor="c1d1", offset="84d", every="84d",
                   count=4, stop_at=("progression",))
    visits = event("HEMATO", kind="repeating", anchor="c1d1", every="28d", count=6)
    subj = subject({"c1d1": C1D1, "progression": D(2024, 3, 1)})
    rows = schedule([cycles, capped, visits], subj, D(2024, 6, 1))
    # Progression is a stop for the cycles: what was not done by then can no longer be.
    assert [(r.repeat, r.status) for r in rows_of(rows, "AZA")] == [
        (1, S.MISSED), (2, S.MISSED), (3, S.MISSED)]
    assert one(rows, "AZA", 3).note == (
        "not done before progression on 2024-03-01 (window opened 2024-02-26)")
    assert [r.status for r in rows_of(rows, "EVAL")] == [S.NOT_EXPECTED] * 2
    assert [r.status for r in rows_of(rows, "HEMATO")] == [S.OVERDUE] * 6


def test_study_end_caps_open_ended_follow_up():
    study_end = D(2028, 3, 15)
    subj = subject({"eot": EOT}, study_end=study_end)
    rows = rows_of(schedule(FOLLOW_UP, subj, D(2029, 1, 1)), "FU_LATE")
    # 6-monthly from 2027-02-28; 2028-02-29 (window opens 2028-01-29) is the last before the end.
    assert [r.planned for r in rows] == [D(2027, 2, 28), D(2027, 8, 31), D(2028, 2, 29)]
    assert all(r.window_start <= study_end for r in rows)
    assert rows[-1].status is S.MISSED
    assert rows[-1].note == "not done before study end on 2028-03-15 (window opened 2028-01-29)"


def test_study_end_in_the_future_marks_later_count_limited_visits_not_expected():
    subj = subject({"eot": EOT}, study_end=D(2025, 4, 1))
    rows = rows_of(schedule(FOLLOW_UP, subj, D(2025, 3, 1)), "FU_EARLY")
    assert [(r.repeat, r.status) for r in rows] == [(1, S.OVERDUE), (2, S.DUE),
                                                   (3, S.NOT_EXPECTED)]
    assert rows[2].note == "planned after study end on 2025-04-01"


def test_study_end_before_window_opening_of_open_ended_repeat_lists_nothing():
    subj = subject({"eot": EOT}, study_end=D(2026, 1, 1))
    assert rows_of(schedule(FOLLOW_UP, subj, D(2025, 12, 1)), "FU_LATE") == []


# --- DEXAML-03 follow-up from an end of treatment on 31 August ------------------------------


@pytest.mark.parametrize(
    ("eot", "early", "late"),
    [
        (D(2024, 8, 31),
         [D(2024, 11, 30), D(2025, 2, 28), D(2025, 5, 31), D(2025, 8, 31), D(2025, 11, 30),
          D(2026, 2, 28), D(2026, 5, 31), D(2026, 8, 31)],
         [D(2027, 2, 28), D(2027, 8, 31), D(2028, 2, 29), D(2028, 8, 31), D(2029, 2, 28)]),
        (D(2023, 8, 31),
         [D(2023, 11, 30), D(2024, 2, 29), D(2024, 5, 31), D(2024, 8, 31), D(2024, 11, 30),
          D(2025, 2, 28), D(2025, 5, 31), D(2025, 8, 31)],
         [D(2026, 2, 28), D(2026, 8, 31), D(2027, 2, 28), D(2027, 8, 31), D(2028, 2, 29)]),
    ],
)
def test_dexaml_follow_up_dates(eot, early, late):
    study_end = late[-1] + timedelta(days=40)
    rows = schedule(FOLLOW_UP, subject({"eot": eot}, study_end=study_end), D(2035, 1, 1))
    assert [r.planned for r in rows_of(rows, "FU_EARLY")] == early
    assert [r.planned for r in rows_of(rows, "FU_LATE")] == late
    # One list, in date order: the 6-monthly visits follow the eighth 3-monthly one.
    assert [r.planned for r in rows] == early + late


# --- recomputation -------------------------------------------------------------------------


def test_correcting_an_anchor_moves_every_dependent_date():
    screen = event("SCREEN", after="28d")
    fu = event("FU", kind="repeating", anchor="eot", offset="3m", before="14d", after="14d",
               every="3m", count=3)
    eot_visit = event("EOT", anchor="eot", after="7d")
    on = D(2025, 1, 1)
    before = schedule([screen, eot_visit, fu], subject({"enrolment": ENROL,
                                                        "eot": D(2024, 8, 31)}), on)
    after = schedule([screen, eot_visit, fu], subject({"enrolment": ENROL,
                                                       "eot": D(2024, 9, 30)}), on)
    assert one(before, "SCREEN") == one(after, "SCREEN")
    assert [r.planned for r in rows_of(before, "FU")] == [D(2024, 11, 30), D(2025, 2, 28)]
    assert [r.planned for r in rows_of(after, "FU")] == [D(2024, 12, 30), D(2025, 3, 30)]
    assert one(before, "FU").status is S.OVERDUE
    assert one(after, "FU").status is S.DUE
    assert one(after, "EOT").window_end == D(2024, 10, 7)


def test_removing_an_anchor_hides_expected_events_but_keeps_recorded_ones():
    fu = event("FU", kind="repeating", anchor="eot", offset="3m", every="3m", count=3)
    recorded = [rec("FU", 1, D(2024, 12, 1))]
    rows = schedule([fu], subject({"enrolment": ENROL}, recorded), D(2025, 6, 1))
    assert rows == [ExpectedEvent("FU", "Fu", 1, None, None, None, S.DONE, D(2024, 12, 1),
                                  "anchor eot not recorded; done 2024-12-01")]
    assert schedule([fu], subject({"enrolment": ENROL}), D(2025, 6, 1)) == []


# --- unscheduled, log, ordering ------------------------------------------------------------


def test_unscheduled_occurrences_are_listed_and_logs_are_not():
    events = [event("SCREEN", after="28d"), event("UNSCHED", kind="unscheduled"),
              event("AE_LOG", kind="log")]
    recorded = [
        rec("UNSCHED", 2, D(2024, 3, 10), "in_progress"),
        rec("UNSCHED", 1, D(2024, 2, 20)),
        rec("UNSCHED", 3, None, "not_done"),
        rec("AE_LOG", 1, D(2024, 3, 1)),
    ]
    rows = schedule(events, subject({"enrolment": ENROL}, recorded), D(2024, 3, 5))
    assert [(r.event_oid, r.repeat, r.planned, r.status, r.note) for r in rows] == [
        ("UNSCHED", 1, None, S.DONE, "unscheduled; done 2024-02-20"),
        ("SCREEN", 1, ENROL, S.DUE, "window closes 2024-03-29"),
        ("UNSCHED", 2, None, S.DUE, "unscheduled; in progress since 2024-03-10"),
        ("UNSCHED", 3, None, S.MISSED, "unscheduled; declared not done"),
    ]


def test_rows_are_ordered_by_planned_date_then_definition_order():
    events = [
        event("B", offset="7d"),
        event("A", offset="7d"),
        event("R", kind="repeating", offset="0d", every="7d", count=3),
        event("C", offset="-1d"),
    ]
    rows = schedule(events, subject({"enrolment": ENROL}), D(2024, 3, 20))
    assert [(r.event_oid, r.repeat) for r in rows] == [
        ("C", 1), ("R", 1), ("B", 1), ("A", 1), ("R", 2), ("R", 3)]


def test_event_kind_may_be_given_as_text():
    rule = EventRule("V", "Visit", "scheduled", anchor="enrolment")
    assert rule.kind is EventKind.SCHEDULED


def test_defaults_give_a_zero_window_on_the_anchor():
    rule = EventRule("V", "Visit", EventKind.SCHEDULED, anchor="enrolment")
    rows = compute_schedule(ScheduleDefinition((rule,)), SubjectScheduleData({"enrolment": ENROL}),
                            ENROL)
    assert rows == [ExpectedEvent("V", "Visit", 1, ENROL, ENROL, ENROL, S.DUE, None,
                                  "window closes 2024-03-01")]


# --- validation ----------------------------------------------------------------------------


def _rule(**kwargs):
    base = {"oid": "V", "name": "Visit", "kind": EventKind.SCHEDULED, "anchor": "enrolment"}
    return EventRule(**{**base, **kwargs})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: _rule(repeat=RepeatRule(P("7d"))), "repeat given for a scheduled event"),
        (lambda: _rule(kind=EventKind.UNSCHEDULED, anchor=None, repeat=RepeatRule(P("7d"))),
         "repeat given for a unscheduled event"),
        (lambda: _rule(kind=EventKind.LOG, anchor=None, repeat=RepeatRule(P("7d"))),
         "repeat given for a log event"),
        (lambda: _rule(kind=EventKind.REPEATING), "needs a repeat rule"),
        (lambda: _rule(anchor=None), "needs an anchor"),
        (lambda: _rule(anchor=""), "needs an anchor"),
        (lambda: _rule(kind=EventKind.REPEATING, anchor=None, repeat=RepeatRule(P("7d"))),
         "needs an anchor"),
        (lambda: _rule(kind=EventKind.UNSCHEDULED), "takes no anchor, got 'enrolment'"),
        (lambda: _rule(kind="weekly"), "unknown kind 'weekly'"),
        (lambda: _rule(offset="14d"), "offset must be a period, got '14d'"),
        (lambda: Window(P("-1d"), P("0d")), "window before must not be negative, got -1d"),
        (lambda: Window(P("0d"), P("-3d")), "window after must not be negative, got -3d"),
        (lambda: Window(P("0d"), P("-1m")), "window after must not be negative, got -1m"),
        (lambda: Window("3d", P("0d")), "window before must be a period, got '3d'"),
        (lambda: RepeatRule(P("0d")), "repeat interval must be positive, got 0d"),
        (lambda: RepeatRule(P("0m")), "repeat interval must be positive, got 0m"),
        (lambda: RepeatRule(P("-28d")), "repeat interval must be positive, got -28d"),
        (lambda: RepeatRule(P("-1y")), "repeat interval must be positive, got -1y"),
        (lambda: RepeatRule("28d"), "repeat interval must be a period, got '28d'"),
        (lambda: RepeatRule(P("28d"), count=0), "count must be an integer of at least 1, got 0"),
        (lambda: RepeatRule(P("28d"), count=-2), "at least 1, got -2"),
        (lambda: RepeatRule(P("28d"), count=True), "at least 1, got True"),
        (lambda: RepeatRule(P("28d"), count=2.0), "at least 1, got 2.0"),
        (lambda: ScheduleDefinition((_rule(), _rule())), "event OID defined twice: V"),
        (lambda: RecordedOccurrence("V", 0, None, "done"), "repeat must be 1 or more, got 0"),
        (lambda: RecordedOccurrence("V", -1, None, "done"), "got -1"),
        (lambda: RecordedOccurrence("V", 1, None, "complete"), "unknown state 'complete'"),
    ],
)
def test_impossible_definitions_raise(build, message):
    with pytest.raises(ScheduleError) as excinfo:
        build()
    assert message in str(excinfo.value)


@pytest.mark.parametrize(("every", "count"), [("1d", 1), ("1m", None), ("28d", 3)])
def test_smallest_valid_repeat_rules_are_accepted(every, count):
    assert RepeatRule(P(every), count=count).every == P(every)


@pytest.mark.parametrize(
    ("occurrences", "message"),
    [
        ([rec("NOPE", 1, None)], "event not in the definition: NOPE"),
        ([rec("V", 2, None)], "single occurrence, got repeat 2"),
        ([rec("LOG", 2, None)], "single occurrence, got repeat 2"),
        ([rec("R", 2, None), rec("R", 2, D(2024, 3, 2))], "occurrence R#2 recorded twice"),
    ],
)
def test_inconsistent_recorded_data_raises(occurrences, message):
    events = [_rule(), event("R", kind="repeating", every="7d"), event("LOG", kind="log")]
    with pytest.raises(ScheduleError, match=message):
        schedule(events, subject({"enrolment": ENROL}, occurrences), ENROL)


@pytest.mark.parametrize(("width", "start", "end"), [
    ("0d", D(2024, 3, 1), D(2024, 3, 1)),
    ("3d", D(2024, 2, 27), D(2024, 3, 4)),
    ("1m", D(2024, 2, 1), D(2024, 4, 1)),
])
def test_symmetric_window(width, start, end):
    rule = EventRule("V", "Visit", EventKind.SCHEDULED, anchor="enrolment",
                     window=Window.around(P(width)))
    row = one(schedule([rule], subject({"enrolment": ENROL}), ENROL), "V")
    assert (row.window_start, row.window_end) == (start, end)
