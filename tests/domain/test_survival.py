"""One subject's overall-survival time from dates, against hand-computed values.

Origin 2025-01-10 throughout: 2025-01-10 -> 2025-03-11 is 21 + 28 + 11 = 60 days,
-> 2025-07-10 is 181 days (21+28+31+30+31+30+10), -> 2026-01-10 is 365 days.
"""

import datetime as dt

import pytest

from ecrf.domain.survival import (
    ALIVE,
    CUTOFF,
    DAYS_PER_MONTH,
    EVENT,
    NO_FOLLOW_UP,
    months,
    survival_time,
)

D = dt.date
ORIGIN = D(2025, 1, 10)
LTFU = "lost_to_follow_up"
WD = "withdrawal"


@pytest.mark.parametrize(
    ("case", "death", "alive", "censors", "cutoff", "days", "event", "end", "reason"), [
        ("death", D(2025, 3, 11), [D(2025, 2, 1)], {}, None, 60, True, D(2025, 3, 11), EVENT),
        ("same-day death", ORIGIN, [], {}, None, 0, True, ORIGIN, EVENT),
        ("alive at last contact", None, [D(2025, 2, 1), D(2025, 7, 10), D(2025, 3, 1)], {},
         None, 181, False, D(2025, 7, 10), ALIVE),
        ("lost to follow-up", None, [D(2025, 2, 1)], {LTFU: D(2025, 3, 11)}, None, 60, False,
         D(2025, 3, 11), LTFU),
        ("LTFU date = last alive", None, [D(2025, 3, 11)], {LTFU: D(2025, 3, 11)}, None, 60,
         False, D(2025, 3, 11), LTFU),
        ("found again after LTFU", None, [D(2025, 7, 10)], {LTFU: D(2025, 3, 11)}, None, 181,
         False, D(2025, 7, 10), ALIVE),
        ("withdrawal", None, [D(2025, 2, 1)], {WD: D(2025, 3, 11), LTFU: None}, None, 60,
         False, D(2025, 3, 11), WD),
        ("no follow-up: day 0", None, [], {}, None, 0, False, ORIGIN, NO_FOLLOW_UP),
        ("dates before the origin are not follow-up", None, [D(2025, 1, 2)], {}, None, 0,
         False, ORIGIN, NO_FOLLOW_UP),
        ("cut-off before the death", D(2026, 1, 10), [D(2025, 7, 10)], {}, D(2025, 7, 10),
         181, False, D(2025, 7, 10), CUTOFF),
        ("death on the cut-off counts", D(2025, 7, 10), [], {}, D(2025, 7, 10), 181, True,
         D(2025, 7, 10), EVENT),
        ("alive after the cut-off", None, [D(2026, 1, 10)], {}, D(2025, 7, 10), 181, False,
         D(2025, 7, 10), CUTOFF),
        ("last contact before the cut-off", None, [D(2025, 3, 11)], {}, D(2026, 1, 10), 60,
         False, D(2025, 3, 11), ALIVE),
        ("death after loss to follow-up", D(2026, 1, 10), [], {LTFU: D(2025, 3, 11)}, None,
         365, True, D(2026, 1, 10), EVENT),
    ])
def test_survival_time(case, death, alive, censors, cutoff, days, event, end, reason):
    found = survival_time(ORIGIN, death, alive, censors, cutoff)
    assert found.included
    assert (found.days, found.event, found.end, found.reason) == (days, event, end, reason)
    assert found.months == pytest.approx(days / 30.4375)


def test_no_origin_is_not_in_the_analysis():
    found = survival_time(None, D(2025, 3, 11), [D(2025, 2, 1)])
    assert not found.included and found.days is None
    assert found.excluded_because == "no origin date" and found.problems == ()


def test_origin_after_the_cut_off_is_not_in_the_analysis():
    found = survival_time(ORIGIN, None, [D(2025, 2, 1)], cutoff=D(2025, 1, 9))
    assert not found.included and "after the cut-off" in found.excluded_because


def test_death_before_origin_is_a_problem_not_a_negative_time():
    found = survival_time(ORIGIN, D(2025, 1, 5), [D(2025, 2, 1)])
    assert not found.included and found.days is None
    assert found.problems == ("death date 2025-01-05 is before the origin 2025-01-10",)


def test_known_alive_after_death_is_a_problem_and_the_death_counts():
    found = survival_time(ORIGIN, D(2025, 3, 11), [D(2025, 2, 1), D(2025, 4, 1), D(2025, 5, 2)])
    assert (found.days, found.event) == (60, True)
    assert found.problems == ("known alive on 2025-05-02, after the death date 2025-03-11",)


def test_death_after_loss_to_follow_up_is_listed_for_review():
    found = survival_time(ORIGIN, D(2026, 1, 10), [], {LTFU: D(2025, 3, 11)})
    assert found.event
    assert found.problems == ("death on 2026-01-10 after the lost to follow up date "
                              "2025-03-11: counted as the event",)


def test_months():
    assert DAYS_PER_MONTH == 365.25 / 12
    assert months(365) == pytest.approx(11.9918, abs=1e-4)  # 365 / 30.4375
    assert months(0) == 0
