"""Recovery runs on consecutive measurements (the default) and on calendar days, the
transfusion look-back over the run, rule texts, evaluability, the per-level summary with
exact intervals and Kaplan-Meier medians, and the per-subject table.

Every expected value below was worked out by hand from the definitions in
ecrf/domain/hematology.py and hematology_summary.py.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from ecrf.domain.hematology import (
    CountRecord,
    Episode,
    RecoveryParameterError,
    RecoveryParameters,
    RecoveryRun,
    RecoveryStatus,
    Transfusion,
    compute_endpoints,
    endpoint_rules,
    recovery_rule,
)
from ecrf.domain.hematology_summary import (
    ENDPOINT_NAMES,
    SUBJECT_ENDPOINT_NAMES,
    Needs,
    SummaryRow,
    subject_values,
    summarize,
)

D = Decimal
CALENDAR = RecoveryParameters(recovery_run="calendar_days")
WHOLE = RecoveryParameters(transfusion_free_whole_run=True)
WHOLE_CALENDAR = RecoveryParameters(transfusion_free_whole_run=True,
                                    recovery_run="calendar_days")

# Inpatient daily counts to day 14, then every 2-4 days after discharge.
OUTPATIENT_DAYS = (17, 19, 22, 25, 27, 30, 33, 36, 40, 42)
SPARSE_DAYS = (*range(1, 15), *OUTPATIENT_DAYS)


def sparse_course() -> list[CountRecord]:
    """ANC < 0.5 to day 19 (nadir 0.0 on day 10), >= 0.5 at every measurement from day 22;
    PLT < 20 to day 14 (below 25 from day 5, nadir 3 on day 11), 30 from day 17."""
    records = []
    for day in SPARSE_DAYS:
        anc = D("2.0") if day < 5 else D("0.0") if day == 10 else D("0.2") if day < 22 else D("0.9")
        plt = (D("150") if day < 5 else D("3") if day == 11 else D("10") if day <= 14
               else D("30"))
        records.append(CountRecord(day, anc, plt, D("90")))
    return records


def anc_series(values: dict[int, str]) -> list[CountRecord]:
    return [CountRecord(day, D(v), None, None) for day, v in values.items()]


def plt_series(values: dict[int, str]) -> list[CountRecord]:
    return [CountRecord(day, None, D(v), None) for day, v in values.items()]


def days(start: int, stop: int, value: str) -> dict[int, str]:
    return {d: value for d in range(start, stop + 1)}


# --- the two cases ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "neutrophil", "platelet", "severe"),
    [
        (RecoveryParameters(), 22, 17, 17),
        (WHOLE, 22, 17, 17),
        # the old calendar rule: no three consecutive days are measured after day 14
        (CALENDAR, None, None, None),
    ],
)
def test_counts_every_2_to_4_days_after_discharge(params, neutrophil, platelet, severe):
    result = compute_endpoints(sparse_course(), params=params)
    assert result.anc_nadir_day == 10 and result.plt_nadir_day == 11
    assert result.neutrophil_recovery_day == neutrophil
    assert result.platelet_recovery_day == platelet
    assert result.severe_thrombocytopenia_recovery_day == severe
    assert result.severe_thrombocytopenia_first_day == 5
    expected = RecoveryStatus.RECOVERED if neutrophil else RecoveryStatus.CENSORED
    assert result.neutrophil_recovery_status is expected
    assert result.platelet_recovery_status is expected
    assert result.time_to_severe_thrombocytopenia_recovery == (
        None if severe is None else severe - 5)


def test_sparse_course_evidence_is_the_run_of_measurements():
    result = compute_endpoints(sparse_course())
    assert result.evidence["time_to_neutrophil_recovery"] == (22, 25, 27)
    assert result.evidence["time_to_platelet_recovery"] == (17, 19, 22)
    assert result.evidence["time_to_severe_thrombocytopenia_recovery"] == (17, 19, 22)
    assert result.evidence["severe_thrombocytopenia"] == tuple(range(5, 15))


@pytest.mark.parametrize(("params", "day", "run"),
                         [(RecoveryParameters(), 23, (23, 25, 26)), (CALENDAR, 25, (25, 26, 27))])
def test_daily_counts_with_day_24_missing(params, day, run):
    values = {**days(1, 9, "1.5"), **days(10, 22, "0.1"), **days(23, 42, "0.7")}
    del values[24]
    result = compute_endpoints(anc_series(values), params=params)
    assert result.neutrophil_recovery_day == day
    assert result.evidence["time_to_neutrophil_recovery"] == run


# --- measurement runs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "measurements", "calendar"),
    [
        # (values, recovery day on measurements, recovery day on calendar days)
        ({10: "0.0", 15: "0.6", 17: "0.6", 20: "0.6"}, 15, None),
        ({10: "0.0", 15: "0.6", 16: "0.6", 17: "0.6"}, 15, 15),
        # a measurement below the threshold breaks the run on either rule
        ({10: "0.0", 20: "0.6", 23: "0.6", 25: "0.4", 27: "0.6", 30: "0.6", 33: "0.6"}, 27, None),
        ({10: "0.0", 20: "0.6", 21: "0.6", 22: "0.4", 23: "0.6", 24: "0.6", 25: "0.6"}, 23, 23),
        # the horizon: the third measurement on day 42 completes the run, on day 43 it does not
        ({10: "0.0", 38: "0.6", 40: "0.6", 42: "0.6"}, 38, None),
        ({10: "0.0", 38: "0.6", 40: "0.6", 43: "0.6"}, None, None),
        ({10: "0.0", 40: "0.6", 41: "0.6", 42: "0.6"}, 40, 40),
        ({10: "0.0", 41: "0.6", 42: "0.6", 43: "0.6"}, None, None),
        ({10: "0.0", 40: "0.6", 42: "0.6"}, None, None),
        # values above the threshold before the nadir are not recovery
        ({1: "2.0", 3: "2.0", 6: "2.0", 9: "0.1", 30: "0.6"}, None, None),
        # exactly at the threshold counts; a hair below does not
        ({10: "0.0", 14: "0.5", 18: "0.5", 21: "0.5"}, 14, None),
        ({10: "0.0", 14: "0.49", 18: "0.5", 21: "0.5", 24: "0.5"}, 18, None),
        # the nadir is the earliest lowest value (day 5); the run starts after it, and the
        # second 0.0 on day 12 breaks 8, 9, 12
        ({5: "0.0", 8: "0.6", 9: "0.6", 12: "0.0", 14: "0.6", 16: "0.6", 19: "0.6"}, 14, None),
        # measurements before day 1 are outside the window
        ({-2: "0.6", 0: "0.6", 1: "0.1", 3: "0.6", 6: "0.6", 9: "0.6"}, 3, None),
    ],
)
def test_neutrophil_recovery_measurements_vs_calendar(values, measurements, calendar):
    series = anc_series(values)
    assert compute_endpoints(series).neutrophil_recovery_day == measurements
    assert compute_endpoints(series, params=CALENDAR).neutrophil_recovery_day == calendar


@pytest.mark.parametrize(
    ("values", "status"),
    [
        ({1: "2.0", 5: "0.9", 9: "0.5"}, RecoveryStatus.NOT_APPLICABLE),
        ({1: "2.0", 5: "0.4"}, RecoveryStatus.CENSORED),
        ({}, RecoveryStatus.NOT_EVALUABLE),
        ({43: "0.1", 0: "0.1"}, RecoveryStatus.NOT_EVALUABLE),
    ],
)
def test_not_applicable_and_not_evaluable(values, status):
    for params in (RecoveryParameters(), CALENDAR):
        result = compute_endpoints(anc_series(values), params=params)
        assert result.neutrophil_recovery_status is status
        assert result.neutrophil_recovery_day is None


def test_a_record_without_the_count_neither_breaks_nor_extends_the_run():
    records = [CountRecord(10, D("0.0"), D("5"), None), CountRecord(20, D("0.6"), D("5"), None),
               CountRecord(21, None, D("5"), None), CountRecord(22, D("0.6"), D("5"), None),
               CountRecord(23, D("0.6"), D("5"), None)]
    result = compute_endpoints(records)
    assert result.neutrophil_recovery_day == 20
    assert result.evidence["time_to_neutrophil_recovery"] == (20, 22, 23)
    assert compute_endpoints(records, params=CALENDAR).neutrophil_recovery_day is None


def test_secondary_drop_on_measurements():
    values = {5: "0.0", 20: "0.6", 23: "0.6", 26: "0.6", 30: "0.3", 34: "0.8"}
    result = compute_endpoints(anc_series(values))
    assert result.neutrophil_recovery_day == 20
    assert result.anc_secondary_drop


# --- transfusion look-back over measurement runs -------------------------------------------

# PLT 5 daily to day 15 (nadir day 8), then 30 every other day 17..41.
PLT_SPARSE = {**days(1, 7, "120"), **days(8, 15, "5"), **{d: "30" for d in range(17, 42, 2)}}


@pytest.mark.parametrize(
    ("transfused", "first_day_only", "whole_run"),
    [
        ((), 17, 17),
        ((9,), 17, 17),    # L+1 = 8 days before day 17: outside 10..16
        ((10,), 19, 19),   # exactly L = 7 days before day 17: inside 10..16
        ((16,), 25, 25),   # unmeasured day before the run: in the look-back of 17..23
        ((17,), 17, 25),   # on the first run day: not in 17's look-back, in 19's, 21's, 23's
        ((18,), 17, 27),   # the day before the run's 2nd measurement (19)
        ((19,), 17, 27),   # on the run's 2nd measurement: in 21's look-back (14..20)
        ((20,), 17, 29),   # in the look-back of 21..27
        ((22,), 17, 17),   # after the run 17, 19, 21
        ((17, 30), 17, 25),  # 25, 27, 29 all before 30
        ((17, 28), 17, 37),  # 28 sits in the look-back of 29..35
    ],
)
def test_platelet_transfusion_inside_the_run(transfused, first_day_only, whole_run):
    transfusions = [Transfusion(d, "platelets") for d in transfused]
    series = plt_series(PLT_SPARSE)
    assert compute_endpoints(series, transfusions).platelet_recovery_day == first_day_only
    assert compute_endpoints(series, transfusions, params=WHOLE).platelet_recovery_day == whole_run


@pytest.mark.parametrize(
    ("transfused", "first_day_only", "whole_run"),
    [
        # PLT_COURSE of test_hematology: daily 30 from day 18 to 35 after a nadir on day 14
        ((), 18, 18),
        ((11,), 19, 19),
        ((18,), 18, 26),
        ((19,), 18, 27),
        ((10,), 18, 18),
    ],
)
def test_whole_run_on_calendar_days_keeps_the_old_results(transfused, first_day_only, whole_run):
    course = {**days(1, 5, "120"), **days(6, 13, "30"), **days(14, 17, "8"),
              **days(18, 35, "45")}
    transfusions = [Transfusion(d, "platelets") for d in transfused]
    series = plt_series(course)
    assert compute_endpoints(series, transfusions, params=CALENDAR).platelet_recovery_day == (
        first_day_only)
    assert compute_endpoints(series, transfusions,
                             params=WHOLE_CALENDAR).platelet_recovery_day == whole_run


def test_red_cell_transfusion_inside_a_haemoglobin_run():
    hgb = {**days(1, 4, "100"), **days(5, 12, "55"), 15: "70", 18: "70", 21: "70", 24: "70",
           27: "70", 30: "70"}
    series = [CountRecord(d, None, None, D(v)) for d, v in hgb.items()]
    transfusions = [Transfusion(16, "red_cells")]
    # first day only: 15's look-back 8..14 is clean
    assert compute_endpoints(series, transfusions).severe_anemia_recovery_day == 15
    # whole run: 16 is in the look-back of 18, 21 (14..20) and 21 (14..20); 24 looks at 17..23
    assert compute_endpoints(series, transfusions, params=WHOLE).severe_anemia_recovery_day == 24
    assert compute_endpoints(series, transfusions,
                             params=WHOLE).time_to_severe_anemia_recovery == 24 - 5


# --- parameters and rule texts --------------------------------------------------------------


def test_recovery_run_parameter():
    assert RecoveryParameters().recovery_run is RecoveryRun.MEASUREMENTS
    assert CALENDAR.recovery_run is RecoveryRun.CALENDAR_DAYS
    for bad in ("days", "", None, 3):
        with pytest.raises(RecoveryParameterError, match="recovery_run"):
            RecoveryParameters(recovery_run=bad)
    with pytest.raises(RecoveryParameterError, match="transfusion_free_whole_run"):
        RecoveryParameters(transfusion_free_whole_run="yes")


@pytest.mark.parametrize(
    ("params", "endpoint", "text"),
    [
        (RecoveryParameters(), "time_to_neutrophil_recovery",
         "ANC >= 0.5 on 3 consecutive measurements"),
        (CALENDAR, "time_to_neutrophil_recovery", "ANC >= 0.5 on 3 consecutive days"),
        (WHOLE, "time_to_platelet_recovery",
         "PLT >= 20 on 3 consecutive measurements with no platelet transfusion in the 7 days "
         "before any of them"),
        (RecoveryParameters(), "time_to_platelet_recovery",
         "PLT >= 20 on 3 consecutive measurements with no platelet transfusion in the 7 days "
         "before the first of them"),
        (RecoveryParameters(plt_transfusion_lookback_days=0), "time_to_platelet_recovery",
         "PLT >= 20 on 3 consecutive measurements"),
        (RecoveryParameters(plt_consecutive=1, plt_transfusion_lookback_days=1),
         "time_to_platelet_recovery",
         "PLT >= 20 on 1 measurement with no platelet transfusion in the day before it"),
        (WHOLE, "time_to_severe_anemia_recovery",
         "HGB >= 60 on 3 consecutive measurements with no red-cell transfusion in the 7 days "
         "before any of them"),
        (RecoveryParameters(anc_recovery=D("1.0"), anc_consecutive=2),
         "time_to_neutrophil_recovery", "ANC >= 1.0 on 2 consecutive measurements"),
        (RecoveryParameters(), "infection", None),
    ],
)
def test_recovery_rule_texts(params, endpoint, text):
    assert recovery_rule(params, endpoint) == text


def test_every_endpoint_has_a_rule():
    rules = endpoint_rules(RecoveryParameters(horizon_day=28))
    assert set(rules) == set(SUBJECT_ENDPOINT_NAMES)
    assert rules["infection"] == "an infection episode on days 1-28"
    assert rules["severe_thrombocytopenia"] == "PLT < 25 on any measurement, days 1-28"
    assert rules["time_to_neutrophil_recovery"] == (
        "ANC >= 0.5 on 3 consecutive measurements, after the nadir; censored at day 28")


# --- evaluability, summary with exact intervals and Kaplan-Meier ----------------------------


def counted(anc: dict[int, str], plt: str = "30", **kwargs):
    records = [CountRecord(d, D(v), D(plt), D("90")) for d, v in anc.items()]
    return compute_endpoints(records, **kwargs)


def recovering(day: int | None, **kwargs):
    """ANC nadir on day 5; recovery on ``day`` (None: censored at 42)."""
    values = {5: "0.0"}
    if day is not None:
        values.update({day: "0.6", day + 2: "0.6", day + 4: "0.6"})
    return counted(values, **kwargs)


UNREPORTED = {"infections": None, "bleedings": None, "anti_infective_days": None}


def test_no_counts_is_not_evaluable_for_every_endpoint_that_needs_them():
    # level 2: three subjects with counts, one without any data in the window
    subjects = {
        "201": recovering(12, transfusions=[Transfusion(6, "platelets")],
                          infections=[Episode(7, 9)]),
        "202": recovering(15),
        "203": recovering(None),
        "204": compute_endpoints([CountRecord(50, D("0.1"), D("5"), D("50"))], **UNREPORTED),
    }
    rows = {r.endpoint: r for r in summarize(subjects, dict.fromkeys(subjects, "DL2"),
                                             include_total=False)}
    for name in ENDPOINT_NAMES:
        if name.startswith(("time_to_severe", "febrile")):
            continue
        assert rows[name].not_evaluable == 1, name
    assert (rows["platelet_transfusion"].n, rows["platelet_transfusion"].events) == (3, 1)
    assert (rows["infection"].n, rows["infection"].events) == (3, 1)
    assert rows["febrile_neutropenia"].n == 0  # no temperature anywhere: not derivable
    assert rows["febrile_neutropenia"].not_evaluable == 4
    # 1/3: 33.3 %, exact 95 % CI 1 - 0.975 ** (1/3) = 0.84 % to the root of
    # 3x^2 - 2x^3 = 0.975 (Beta(2, 2)), x = 0.9057 -> 0.8-90.6
    plt = rows["platelet_transfusion"]
    assert (plt.percent, plt.ci_low, plt.ci_high) == (D("33.3"), D("0.8"), D("90.6"))
    assert plt.text() == "1/3 (33.3 %; 95 % CI 0.8-90.6); 1 not evaluable"
    assert (rows["red_cell_transfusion"].ci_low, rows["red_cell_transfusion"].ci_high) == (
        D("0.0"), D("70.8"))  # 0/3: 1 - 0.025 ** (1/3) = 70.76 %
    neutrophil = rows["time_to_neutrophil_recovery"]
    assert (neutrophil.n, neutrophil.events, neutrophil.censored) == (3, 2, 1)
    # KM over 12, 15, 42+: S = 2/3, 1/3 -> median 15
    assert neutrophil.median == D("15")


@pytest.mark.parametrize(
    ("days_", "median", "low", "high", "span"),
    [
        # 10, 12, 42+, 15: S = .75 at 10, .5 at 12 -> median 12; the log-log lower bound at 10
        # is exp(-exp(0.721)) = 0.13 <= .5 (low 10), the upper bound stays above .5 (NR)
        ((10, 12, None, 15), D("12"), D("10"), None, (D("10"), D("15"))),
        # 10, 12, 15, 42+, 42+: S = .8, .6, .4 -> median 15
        ((10, 12, 15, None, None), D("15"), D("10"), None, (D("10"), D("15"))),
        # one event of four: S = .75 never reaches .5 -> median not reached, but the
        # lower pointwise bound at 20 is 0.13 (as for the first case): low 20
        ((20, None, None, None), None, D("20"), None, (D("20"), D("20"))),
        # nobody recovered
        ((None, None), None, None, None, (None, None)),
    ],
)
def test_kaplan_meier_median(days_, median, low, high, span):
    subjects = {str(i): recovering(d) for i, d in enumerate(days_)}
    rows = summarize(subjects, dict.fromkeys(subjects, "L"), include_total=False)
    row = {r.endpoint: r for r in rows}["time_to_neutrophil_recovery"]
    assert row.n == len(days_)
    assert row.events == sum(d is not None for d in days_)
    assert row.censored == sum(d is None for d in days_)
    assert (row.median, row.median_low, row.median_high) == (median, low, high)
    assert (row.minimum, row.maximum) == span


@pytest.mark.parametrize(
    ("median", "low", "high", "text"),
    [(D("12"), D("10"), None, "12 (95 % CI 10-NR)"),
     (D("12"), D("10"), D("15"), "12 (95 % CI 10-15)"),
     (None, D("20"), None, "not reached (95 % CI 20-NR)"),
     (None, None, None, "not reached"),
     (D("8"), None, None, "8 (95 % CI not estimable)")],
)
def test_median_text(median, low, high, text):
    row = SummaryRow("L", "t", 1, 1, None, median, None, None, censored=0, kind="time",
                     median_low=low, median_high=high)
    assert row.median_text() == text


def test_time_row_text():
    row = SummaryRow("L", "time_to_neutrophil_recovery", 4, 3, None, D("12"), D("10"), D("15"),
                     censored=1, kind="time", median_low=D("10"), median_high=None)
    assert row.text() == ("n 4 at risk, 3 events, 1 censored; KM median 12 (95 % CI 10-NR); "
                          "range 10-15")


def test_severe_recovery_is_censored_at_the_horizon_minus_the_first_day_below():
    # PLT < 25 from day 6; one recovers on day 20 (time 14), one never (censored at 42 - 6)
    a = compute_endpoints(plt_series({**days(6, 12, "10"), 20: "30", 22: "30", 24: "30"}))
    b = compute_endpoints(plt_series(days(6, 12, "10")))
    rows = summarize({"a": a, "b": b}, {"a": "L", "b": "L"}, include_total=False)
    row = {r.endpoint: r for r in rows}["time_to_severe_thrombocytopenia_recovery"]
    assert (row.n, row.events, row.censored, row.minimum, row.maximum) == (
        2, 1, 1, D("14"), D("14"))
    assert row.median == D("14")  # S(14) = 1/2
    value = {v.endpoint: v for v in subject_values(b, endpoint_rules())}
    assert (value["time_to_severe_thrombocytopenia_recovery"].status,
            value["time_to_severe_thrombocytopenia_recovery"].value) == ("censored", "36")


# --- per-subject table ----------------------------------------------------------------------


def test_subject_values_of_the_sparse_course():
    params = WHOLE
    rules = endpoint_rules(params)
    runs = {name: recovery_rule(params, name) for name in ENDPOINT_NAMES}
    result = compute_endpoints(sparse_course(), params=params)
    values = {v.endpoint: v for v in subject_values(result, rules, runs)}
    assert list(values) == list(SUBJECT_ENDPOINT_NAMES)
    anc = values["time_to_neutrophil_recovery"]
    assert (anc.status, anc.value, anc.day, anc.evaluable, anc.reason) == (
        "event", "22", 22, True, None)
    assert anc.rule == "ANC >= 0.5 on 3 consecutive measurements, first day 22 (days 22, 25, 27)"
    plt = values["time_to_platelet_recovery"]
    assert plt.rule == ("PLT >= 20 on 3 consecutive measurements with no platelet transfusion "
                        "in the 7 days before any of them, first day 17 (days 17, 19, 22)")
    assert (values["anc_nadir"].value, values["anc_nadir"].day) == ("0.0", 10)
    assert (values["severe_thrombocytopenia"].value, values["severe_thrombocytopenia"].day) == (
        "yes", 5)
    severe = values["time_to_severe_thrombocytopenia_recovery"]
    assert (severe.value, severe.day) == ("12", 17)
    assert values["platelet_transfusion"].value == "no"
    assert values["severe_anemia"].status == "no_event"
    assert values["time_to_severe_anemia_recovery"].status == "not_applicable"
    assert values["febrile_neutropenia"].status == "not_evaluable"
    assert values["febrile_neutropenia"].reason == (
        "febrile neutropenia not reported and no day 1-42 with both ANC and temperature")


def test_subject_values_without_data():
    result = compute_endpoints([], **UNREPORTED)
    values = subject_values(result, endpoint_rules())
    assert all(not v.evaluable and v.status == "not_evaluable" and v.value is None
               for v in values)
    reasons = {v.endpoint: v.reason for v in values}
    assert reasons["platelet_transfusion"] == Needs.COUNT_ROWS.reason(42)
    assert reasons["infection"] == "infections not reported for days 1-42"
    assert reasons["time_to_neutrophil_recovery"] == "no ANC value on days 1-42"
