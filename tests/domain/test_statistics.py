"""Exact binomial intervals and Kaplan-Meier estimates, against hand-computed values.

Clopper-Pearson bounds for 0/n and n/n have closed forms: the upper bound of 0/n is
1 - 0.025^(1/n) and the lower bound of n/n is 0.025^(1/n). The others are the standard
tabulated exact intervals. Bounds are printed to one decimal, rounded outwards.
"""

from decimal import Decimal

import pytest

from ecrf.domain.statistics import StatisticsError, kaplan_meier, proportion

D = Decimal


@pytest.mark.parametrize(("events", "n", "percent", "low", "high"), [
    (0, 10, "0.0", "0.0", "30.9"),      # 1 - 0.025^0.1 = 0.30850
    (10, 10, "100.0", "69.1", "100.0"),  # 0.025^0.1 = 0.69150
    (0, 1, "0.0", "0.0", "97.5"),       # exactly 0.975: float noise must not round it up
    (1, 1, "100.0", "2.5", "100.0"),
    (3, 10, "30.0", "6.6", "65.3"),     # 0.06674 - 0.65245
    (1, 3, "33.3", "0.8", "90.6"),      # 0.00840 - 0.90570
    (2, 6, "33.3", "4.3", "77.8"),      # 0.04327 - 0.77722
    (1, 6, "16.7", "0.4", "64.2"),      # 0.00421 - 0.64123
    (0, 3, "0.0", "0.0", "70.8"),       # 1 - 0.025^(1/3) = 0.70760
    (2, 3, "66.7", "9.4", "99.2"),      # 0.09430 - 0.99160
])
def test_clopper_pearson(events, n, percent, low, high):
    found = proportion(events, n)
    assert (found.percent, found.ci_low, found.ci_high) == (D(percent), D(low), D(high))


def test_empty_denominator_has_no_percentage():
    found = proportion(0, 0)
    assert (found.percent, found.ci_low, found.ci_high) == (None, None, None)
    assert found.text() == "0/0"


def test_text_names_the_denominator():
    assert proportion(3, 10).text() == "3/10 (30.0 %; 95 % CI 6.6-65.3)"


@pytest.mark.parametrize(("events", "n"), [(-1, 3), (4, 3), (0, -1)])
def test_impossible_proportions(events, n):
    with pytest.raises(StatisticsError):
        proportion(events, n)


def test_kaplan_meier_product_limit():
    # 5 event, 8 event, 10 censored, 12 event, 20 censored:
    # S(5) = 4/5 = 0.8; S(8) = 0.8 * 3/4 = 0.6; at 12 two at risk: S = 0.6 * 1/2 = 0.3.
    km = kaplan_meier([5, 8, 10, 12, 20], [True, True, False, True, False])
    assert (km.n, km.events, km.censored) == (5, 3, 2)
    assert [t for t, _ in km.steps] == [5, 8, 12]
    assert [round(s, 10) for _, s in km.steps] == [0.8, 0.6, 0.3]
    assert km.median == 12
    assert km.censor_times == (10, 20)
    assert [km.at_risk(t) for t in (0, 5, 6, 12, 13, 20, 21)] == [5, 5, 4, 2, 1, 1, 0]
    assert km.survival_at(4) == 1.0 and round(km.survival_at(11), 10) == 0.6


@pytest.mark.parametrize(("times", "events", "median"), [
    ([1, 2, 3, 4], [True] * 4, 2),          # S(2) = 0.5 exactly: the median is 2
    ([1, 2, 3], [True] * 3, 2),             # S(1) = 2/3, S(2) = 1/3
    ([3, 3, 3, 9], [True, True, False, False], 3),  # tied events: S(3) = 2/4
    ([2, 4, 6], [True, False, False], None),  # S stays at 2/3: not reached
    ([0, 5], [True, True], 0),              # an event at time 0
])
def test_kaplan_meier_median(times, events, median):
    assert kaplan_meier(times, events).median == median


def test_all_censored_has_no_steps_and_no_median():
    km = kaplan_meier([4, 7], [False, False])
    assert km.steps == () and km.median is None and km.survival_at(100) == 1.0
    assert km.at_risk(5) == 1


def test_empty_sample():
    km = kaplan_meier([], [])
    assert km.n == 0 and km.median is None


def test_median_interval_brackets_the_median():
    times = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    km = kaplan_meier(times, [True] * 12)
    assert km.median == 7  # S(7) = 6/12
    assert km.median_low is not None and km.median_low <= 7
    assert km.median_high is None or km.median_high >= 7


@pytest.mark.parametrize(("times", "events"), [([1, 2], [True]), ([-1], [True]),
                                              ([float("nan")], [True])])
def test_kaplan_meier_rejects_bad_input(times, events):
    with pytest.raises(StatisticsError):
        kaplan_meier(times, events)


@pytest.mark.parametrize("n", [1, 2, 3, 6, 10, 25, 60])
def test_the_interval_is_scipys_exact_binomial_interval(n):
    from scipy import stats

    for events in range(n + 1):
        found = proportion(events, n)
        exact = stats.binomtest(events, n).proportion_ci(method="exact")
        assert float(found.ci_low) <= 100 * exact.low + 1e-9
        assert float(found.ci_low) > 100 * exact.low - 0.1 - 1e-9
        assert float(found.ci_high) >= 100 * exact.high - 1e-9
        assert float(found.ci_high) < 100 * exact.high + 0.1 + 1e-9
