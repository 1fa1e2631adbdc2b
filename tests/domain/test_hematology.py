from __future__ import annotations

import inspect
from dataclasses import fields
from decimal import Decimal

import pytest

from ecrf.domain.hematology import (
    CountRecord,
    CountValueError,
    DuplicateCountDayError,
    Episode,
    EpisodeError,
    RecoveryParameterError,
    RecoveryParameters,
    RecoveryStatus,
    SubjectEndpoints,
    Transfusion,
    TransfusionProductError,
    compute_endpoints,
)
from ecrf.domain.hematology_summary import (
    ENDPOINT_NAMES,
    EndpointKind,
    SummaryGroupError,
    SummaryRow,
    median,
    percent,
    summarize,
    summary_csv,
)

D = Decimal
IDSA = RecoveryParameters(fn_anc=D("0.5"), fn_temp_single_inclusive=True)
CALENDAR = RecoveryParameters(recovery_run="calendar_days")


def anc_series(values: dict[int, str]) -> list[CountRecord]:
    return [CountRecord(day, D(v), None, None) for day, v in values.items()]


def plt_series(values: dict[int, str]) -> list[CountRecord]:
    return [CountRecord(day, None, D(v), None) for day, v in values.items()]


def hgb_series(values: dict[int, str]) -> list[CountRecord]:
    return [CountRecord(day, None, None, D(v)) for day, v in values.items()]


def days(start: int, stop: int, value: str) -> dict[int, str]:
    """Same value on days start..stop inclusive."""
    return {d: value for d in range(start, stop + 1)}


def typical_course() -> dict[int, str]:
    """ANC falls from day 5, nadir 0.01 on day 12, >= 0.5 from day 20."""
    return {**days(1, 4, "2.0"), **days(5, 11, "0.3"), 12: "0.01", **days(13, 19, "0.1"),
            **days(20, 30, "0.8")}


# --- nadir ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "nadir", "nadir_day"),
    [
        ({1: "2.0", 5: "0.1", 9: "0.1", 12: "0.5"}, "0.1", 5),  # tie -> earliest
        ({3: "0.0", 4: "0.0"}, "0.0", 3),
        ({1: "1.0"}, "1.0", 1),
        ({2: "0.2", 5: "0.1", 43: "0.0"}, "0.1", 5),  # day 43 beyond horizon
        ({0: "0.0", 2: "0.4"}, "0.4", 2),  # day 0 (before chemo) ignored
        ({-3: "0.0", 42: "0.3"}, "0.3", 42),  # horizon day itself included
        ({7: "0.10", 8: "0.1"}, "0.10", 7),  # numerically equal values tie
    ],
)
def test_anc_nadir(values, nadir, nadir_day):
    result = compute_endpoints(anc_series(values))
    assert result.anc_nadir == D(nadir)
    assert result.anc_nadir_day == nadir_day


def test_nadirs_are_per_count_and_ignore_missing_values():
    counts = [
        CountRecord(1, D("3.0"), D("150"), D("110")),
        CountRecord(8, None, D("9"), D("70")),
        CountRecord(10, D("0.05"), None, D("58")),
        CountRecord(14, D("0.05"), D("9"), None),
    ]
    result = compute_endpoints(counts)
    assert (result.anc_nadir, result.anc_nadir_day) == (D("0.05"), 10)
    assert (result.plt_nadir, result.plt_nadir_day) == (D("9"), 8)
    assert (result.hgb_nadir, result.hgb_nadir_day) == (D("58"), 10)


def test_no_counts_at_all():
    result = compute_endpoints([])
    assert result.anc_nadir is None and result.anc_nadir_day is None
    assert result.neutrophil_recovery_status is RecoveryStatus.NOT_EVALUABLE
    assert result.platelet_recovery_status is RecoveryStatus.NOT_EVALUABLE
    assert not result.neutrophil_recovered and not result.neutrophil_censored
    assert not result.severe_thrombocytopenia and not result.severe_anemia
    assert not result.fn_evaluable and not result.febrile_neutropenia


# --- neutrophil recovery ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "status", "day"),
    [
        (typical_course(), RecoveryStatus.RECOVERED, 20),
        # exactly at the threshold qualifies; just below does not
        ({10: "0.0", 15: "0.5", 16: "0.5", 17: "0.5"}, RecoveryStatus.RECOVERED, 15),
        ({10: "0.0", 15: "0.49", 16: "0.5", 17: "0.5", 18: "0.5"}, RecoveryStatus.RECOVERED, 16),
        ({10: "0.0", 15: "0.49", 16: "0.49", 17: "0.49"}, RecoveryStatus.CENSORED, None),
        # a missing day neither breaks nor extends the run: 15, 16, (17 missing), 18
        ({10: "0.0", 15: "0.6", 16: "0.6", 18: "0.6", 19: "0.6", 20: "0.6"},
         RecoveryStatus.RECOVERED, 15),
        ({10: "0.0", 15: "0.6", 16: "0.6", 18: "0.6"}, RecoveryStatus.RECOVERED, 15),
        # only two consecutive days
        ({10: "0.0", 15: "0.6", 16: "0.6", 17: "0.4", 18: "0.6", 19: "0.6"},
         RecoveryStatus.CENSORED, None),
        # run completes exactly on the horizon
        ({10: "0.0", 40: "0.6", 41: "0.6", 42: "0.6"}, RecoveryStatus.RECOVERED, 40),
        # run would complete on day 43, beyond the horizon: censored
        ({10: "0.0", 41: "0.6", 42: "0.6", 43: "0.6"}, RecoveryStatus.CENSORED, None),
        # pre-nadir values above the threshold are not recovery
        ({1: "2.0", 2: "2.0", 3: "2.0", 9: "0.1"}, RecoveryStatus.CENSORED, None),
        # never below 0.5: nothing to recover from
        ({1: "2.0", 9: "0.5", 10: "0.7"}, RecoveryStatus.NOT_APPLICABLE, None),
    ],
)
def test_neutrophil_recovery(values, status, day):
    result = compute_endpoints(anc_series(values))
    assert result.neutrophil_recovery_status is status
    assert result.neutrophil_recovery_day == day
    assert result.neutrophil_recovered is (status is RecoveryStatus.RECOVERED)
    assert result.neutrophil_censored is (status is RecoveryStatus.CENSORED)


@pytest.mark.parametrize(
    ("values", "status", "day"),
    [
        # calendar days: a missing day breaks the run: 15, 16, (17 missing), 18, 19, 20
        ({10: "0.0", 15: "0.6", 16: "0.6", 18: "0.6", 19: "0.6", 20: "0.6"},
         RecoveryStatus.RECOVERED, 18),
        ({10: "0.0", 15: "0.6", 16: "0.6", 18: "0.6"}, RecoveryStatus.CENSORED, None),
        (typical_course(), RecoveryStatus.RECOVERED, 20),
        ({10: "0.0", 40: "0.6", 41: "0.6", 42: "0.6"}, RecoveryStatus.RECOVERED, 40),
        ({10: "0.0", 41: "0.6", 42: "0.6", 43: "0.6"}, RecoveryStatus.CENSORED, None),
    ],
)
def test_neutrophil_recovery_on_calendar_days(values, status, day):
    result = compute_endpoints(anc_series(values), params=CALENDAR)
    assert result.neutrophil_recovery_status is status
    assert result.neutrophil_recovery_day == day


@pytest.mark.parametrize(("params", "day"), [(RecoveryParameters(), 15), (CALENDAR, 18)])
def test_a_record_without_an_anc_value_is_no_anc_measurement(params, day):
    counts = anc_series({10: "0.0", 15: "0.6", 16: "0.6", 18: "0.6", 19: "0.6", 20: "0.6"})
    counts.append(CountRecord(17, None, D("30"), None))
    assert compute_endpoints(counts, params=params).neutrophil_recovery_day == day


def test_recovery_then_relapse_below_threshold_keeps_recovery():
    values = {**typical_course(), **days(31, 35, "0.3"), **days(36, 42, "1.2")}
    result = compute_endpoints(anc_series(values))
    assert result.neutrophil_recovery_day == 20
    assert result.neutrophil_recovered
    assert result.anc_secondary_drop


def test_secondary_drop_needs_a_value_below_threshold_after_recovery():
    result = compute_endpoints(anc_series({**typical_course(), 31: "0.5"}))
    assert result.neutrophil_recovered and not result.anc_secondary_drop


def test_later_equal_nadir_after_recovery_does_not_move_recovery():
    values = {8: "0.0", 12: "0.9", 13: "0.9", 14: "0.9", 20: "0.0", 25: "0.9"}
    result = compute_endpoints(anc_series(values))
    assert result.anc_nadir_day == 8
    assert result.neutrophil_recovery_day == 12
    assert result.anc_secondary_drop


def test_secondary_drop_beyond_horizon_ignored():
    values = {**typical_course(), 43: "0.1"}
    assert not compute_endpoints(anc_series(values)).anc_secondary_drop


@pytest.mark.parametrize(
    ("run", "consecutive", "day"),
    [("calendar_days", 1, 15), ("calendar_days", 2, 15), ("calendar_days", 3, 18),
     ("calendar_days", 4, None),
     ("measurements", 1, 15), ("measurements", 3, 15), ("measurements", 5, 15),
     ("measurements", 6, None)],
)
def test_consecutive_days_is_a_parameter(run, consecutive, day):
    values = {10: "0.0", 15: "0.6", 16: "0.6", 18: "0.6", 19: "0.6", 20: "0.6"}
    params = RecoveryParameters(anc_consecutive=consecutive, recovery_run=run)
    assert compute_endpoints(anc_series(values), params=params).neutrophil_recovery_day == day


@pytest.mark.parametrize(("threshold", "day"), [("0.5", 15), ("1.0", 18), ("1.01", None)])
def test_anc_threshold_is_a_parameter(threshold, day):
    values = {10: "0.0", **days(15, 17, "0.6"), **days(18, 20, "1.0")}
    params = RecoveryParameters(anc_recovery=D(threshold))
    assert compute_endpoints(anc_series(values), params=params).neutrophil_recovery_day == day


@pytest.mark.parametrize(("horizon", "day"), [(21, None), (22, 20), (28, 20)])
def test_horizon_is_a_parameter(horizon, day):
    params = RecoveryParameters(horizon_day=horizon)
    result = compute_endpoints(anc_series(typical_course()), params=params)
    assert result.neutrophil_recovery_day == day


# --- platelet recovery and transfusion look-back ----------------------------------------

PLT_COURSE = {**days(1, 5, "120"), **days(6, 13, "30"), **days(14, 17, "8"),
              **days(18, 35, "45")}


@pytest.mark.parametrize(
    ("transfusion_days", "day"),
    [
        ((), 18),
        ((10,), 18),  # day 10 is 8 days before day 18: outside [11, 17]
        ((11,), 19),  # day 11 is exactly 7 days before 18: inside; 19 looks back to 12
        ((17,), 25),  # the day before the run start
        ((16, 17), 25),
        ((18,), 18),  # given on the first day of the run: not in [d-7, d-1]
        ((19,), 18),  # given during the run: the first-day rule ignores it
        ((28,), 18),
        ((29, 33), 18),
        ((30,), 18),
    ],
)
def test_platelet_transfusion_lookback(transfusion_days, day):
    transfusions = [Transfusion(d, "platelets") for d in transfusion_days]
    result = compute_endpoints(plt_series(PLT_COURSE), transfusions)
    assert result.platelet_recovery_day == day


@pytest.mark.parametrize(("transfusion_days", "day"), [((18,), 26), ((19,), 27), ((10,), 18)])
def test_platelet_transfusion_whole_run_rule(transfusion_days, day):
    params = RecoveryParameters(transfusion_free_whole_run=True)
    transfusions = [Transfusion(d, "platelets") for d in transfusion_days]
    result = compute_endpoints(plt_series(PLT_COURSE), transfusions, params=params)
    assert result.platelet_recovery_day == day


def test_red_cell_transfusion_does_not_block_platelet_recovery():
    transfusions = [Transfusion(17, "red_cells")]
    assert compute_endpoints(plt_series(PLT_COURSE), transfusions).platelet_recovery_day == 18


def test_platelet_transfusion_before_day_one_still_in_lookback():
    values = {1: "10", **days(2, 9, "25")}
    transfusions = [Transfusion(-1, "platelets")]
    result = compute_endpoints(plt_series(values), transfusions)
    assert result.platelet_recovery_day == 7  # look-back of day 6 is -1..5
    assert result.platelet_transfusions == 0


@pytest.mark.parametrize(("lookback", "day"), [(0, 18), (1, 19), (6, 24), (7, 25), (8, 26)])
def test_platelet_lookback_is_a_parameter(lookback, day):
    params = RecoveryParameters(plt_transfusion_lookback_days=lookback)
    transfusions = [Transfusion(17, "platelets")]
    result = compute_endpoints(plt_series(PLT_COURSE), transfusions, params=params)
    assert result.platelet_recovery_day == day


@pytest.mark.parametrize(
    ("values", "status", "day"),
    [
        ({10: "5", 20: "20", 21: "20", 22: "20"}, RecoveryStatus.RECOVERED, 20),
        ({10: "5", 20: "19", 21: "20", 22: "20"}, RecoveryStatus.CENSORED, None),
        ({10: "20", 11: "50"}, RecoveryStatus.NOT_APPLICABLE, None),
        ({10: "19.9", 11: "50"}, RecoveryStatus.CENSORED, None),
    ],
)
def test_platelet_recovery_threshold(values, status, day):
    result = compute_endpoints(plt_series(values))
    assert result.platelet_recovery_status is status
    assert result.platelet_recovery_day == day
    assert result.platelet_censored is (status is RecoveryStatus.CENSORED)


def test_platelet_secondary_drop():
    values = {**PLT_COURSE, 36: "15"}
    result = compute_endpoints(plt_series(values))
    assert result.platelet_recovery_day == 18 and result.plt_secondary_drop


# --- severe thrombocytopenia ------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "severe", "n_days", "first", "recovery", "time"),
    [
        ({5: "25", 10: "26"}, False, 0, None, None, None),  # 25 is not < 25
        ({5: "24.9", 6: "25", 7: "25", 8: "25"}, True, 1, 5, 6, 1),
        ({5: "24", 8: "10", 9: "10", 12: "30", 13: "30", 14: "30"}, True, 3, 5, 12, 7),
        ({5: "24", 8: "10", 12: "30", 13: "30"}, True, 2, 5, None, None),  # censored
        (PLT_COURSE, True, 4, 14, 18, 4),
        # recovery needs >= 25 (not the >= 20 platelet recovery level)
        ({5: "10", 6: "24", 7: "24", 8: "24", 9: "25", 10: "25", 11: "25"}, True, 4, 5, 9, 4),
    ],
)
def test_severe_thrombocytopenia(values, severe, n_days, first, recovery, time):
    result = compute_endpoints(plt_series(values))
    assert result.severe_thrombocytopenia is severe
    assert result.severe_thrombocytopenia_days == n_days
    assert result.severe_thrombocytopenia_first_day == first
    assert result.severe_thrombocytopenia_recovery_day == recovery
    assert result.time_to_severe_thrombocytopenia_recovery == time


def test_severe_thrombocytopenia_recovery_honours_transfusion_lookback():
    values = {5: "10", **days(6, 20, "40")}
    result = compute_endpoints(plt_series(values), [Transfusion(5, "platelets")])
    assert result.severe_thrombocytopenia_recovery_day == 13  # look-back 6..12 is clean
    assert result.time_to_severe_thrombocytopenia_recovery == 8


@pytest.mark.parametrize(("threshold", "recovery", "severe", "time"),
                         [("20", None, False, None), ("20", "30", False, None),
                          ("25", "30", True, 5), ("25", None, True, 1)])
def test_severe_thrombocytopenia_thresholds_are_parameters(threshold, recovery, severe, time):
    values = {5: "20", 6: "25", 7: "25", 8: "25", 10: "30", 11: "30", 12: "30"}
    params = RecoveryParameters(
        severe_thrombocytopenia=D(threshold),
        severe_thrombocytopenia_recovery=None if recovery is None else D(recovery))
    result = compute_endpoints(plt_series(values), params=params)
    assert result.severe_thrombocytopenia is severe
    assert result.time_to_severe_thrombocytopenia_recovery == time


# --- severe anemia ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "rbc_days", "severe", "n_days", "recovery", "time"),
    [
        ({5: "60", 6: "61"}, (), False, 0, None, None),
        ({5: "59", 6: "60", 7: "60", 8: "60"}, (), True, 1, 6, 1),
        ({5: "59", 6: "60", 7: "60", 8: "60"}, (5,), True, 1, None, None),  # supported
        ({5: "59", **days(6, 15, "70")}, (5,), True, 1, 13, 8),
        ({5: "59", **days(6, 14, "70")}, (5,), True, 1, None, None),  # run 13-15 incomplete
        ({5: "59", **days(6, 14, "70")}, (4,), True, 1, 12, 7),  # 8 days before 12
        ({4: "55", 5: "50", 6: "65", 7: "65"}, (), True, 2, None, None),  # 2 days only
    ],
)
def test_severe_anemia(values, rbc_days, severe, n_days, recovery, time):
    transfusions = [Transfusion(d, "red_cells") for d in rbc_days]
    result = compute_endpoints(hgb_series(values), transfusions)
    assert result.severe_anemia is severe
    assert result.severe_anemia_days == n_days
    assert result.severe_anemia_recovery_day == recovery
    assert result.time_to_severe_anemia_recovery == time


@pytest.mark.parametrize(("threshold", "recovery", "severe", "time"),
                         [("60", None, False, None), ("65", None, True, 4),
                          ("65", "70", True, 6), ("80", None, True, None)])
def test_severe_anemia_thresholds_are_parameters(threshold, recovery, severe, time):
    values = {3: "64", 4: "62", 7: "65", 8: "65", 9: "70", 10: "70", 11: "70"}
    params = RecoveryParameters(
        severe_anemia=D(threshold),
        severe_anemia_recovery=None if recovery is None else D(recovery))
    result = compute_endpoints(hgb_series(values), params=params)
    assert result.severe_anemia is severe
    assert result.time_to_severe_anemia_recovery == time


# --- febrile neutropenia ----------------------------------------------------------------


def fn_counts(rows: dict[int, tuple[str | None, str | None]]) -> list[CountRecord]:
    return [CountRecord(day, None if a is None else D(a), None, None,
                        tmax=None if t is None else D(t)) for day, (a, t) in rows.items()]


@pytest.mark.parametrize(
    ("anc", "tmax", "ctcae", "idsa"),
    [
        ("0.4", "38.3", False, True),  # 38.3 exactly: CTCAE needs > 38.3, IDSA >= 38.3
        ("0.4", "38.4", True, True),
        ("0.4", "38.2", False, False),
        ("0.99", "39.0", True, False),
        ("1.0", "39.0", False, False),  # ANC must be < 1.0
        ("0.5", "39.0", True, False),  # IDSA needs ANC < 0.5
        ("0.49", "38.3", False, True),
        (None, "39.5", False, False),
        ("0.1", None, False, False),
    ],
)
def test_febrile_neutropenia_day_rules(anc, tmax, ctcae, idsa):
    counts = fn_counts({8: (anc, tmax)})
    assert compute_endpoints(counts).febrile_neutropenia is ctcae
    assert compute_endpoints(counts, params=IDSA).febrile_neutropenia is idsa


def test_fn_episodes_derived_from_consecutive_days():
    counts = fn_counts({
        8: ("0.1", "38.5"), 9: ("0.1", "39.0"), 10: ("0.1", "38.9"),  # episode 8-10
        11: ("0.1", "37.0"),
        12: ("0.1", "38.6"),  # episode 12
        14: ("0.1", "38.6"), 15: ("0.2", "38.4"),  # day 13 unmeasured: new episode 14-15
        41: ("0.1", "38.8"), 42: ("0.1", "38.8"), 43: ("0.1", "38.8"),  # clipped at 42
    })
    result = compute_endpoints(counts)
    assert result.fn_derived and result.fn_evaluable and result.febrile_neutropenia
    assert result.fn_episodes == (Episode(8, 10), Episode(12, 12), Episode(14, 15),
                                  Episode(41, 42))
    assert result.fn_duration_days == 3 + 1 + 2 + 2


def test_fn_not_evaluable_without_temperatures():
    result = compute_endpoints(anc_series({8: "0.1"}))
    assert result.fn_derived and not result.fn_evaluable and not result.febrile_neutropenia


def test_reported_fn_episodes_replace_derivation():
    counts = fn_counts({8: ("0.1", "39.0")})
    result = compute_endpoints(counts, fn_episodes=[Episode(20, 22), Episode(40, None)])
    assert not result.fn_derived and result.fn_evaluable
    assert result.fn_episodes == (Episode(20, 22), Episode(40, 42))
    assert result.fn_duration_days == 6


def test_reported_empty_fn_list_is_evaluable_and_negative():
    result = compute_endpoints([], fn_episodes=[])
    assert result.fn_evaluable and not result.febrile_neutropenia
    assert result.fn_duration_days == 0


# --- infection, bleeding, transfusions, anti-infectives ---------------------------------


@pytest.mark.parametrize(
    ("episodes", "incidence", "count", "duration"),
    [
        ([], False, 0, 0),
        ([Episode(10, 12)], True, 1, 3),
        ([Episode(10, 10)], True, 1, 1),
        ([Episode(30, None)], True, 1, 13),  # ongoing: runs to day 42
        ([Episode(42, None)], True, 1, 1),
        ([Episode(40, 50)], True, 1, 3),  # clipped at the horizon
        ([Episode(-2, 3)], True, 1, 3),  # clipped at day 1
        ([Episode(43, 45)], False, 0, 0),  # wholly after the horizon
        ([Episode(-5, 0)], False, 0, 0),  # wholly before chemotherapy
        ([Episode(5, 9), Episode(20, 21)], True, 2, 7),
        ([Episode(5, 9), Episode(8, 12)], True, 2, 8),  # overlapping days count once
        ([Episode(5, None), Episode(8, 12)], True, 2, 38),
    ],
)
def test_infection_and_bleeding_episodes(episodes, incidence, count, duration):
    result = compute_endpoints([], infections=episodes, bleedings=episodes)
    assert result.infection is incidence and result.bleeding is incidence
    assert result.infection_episodes == count and result.bleeding_episodes == count
    assert result.infection_duration_days == duration
    assert result.bleeding_duration_days == duration


def test_infection_and_bleeding_are_independent():
    result = compute_endpoints([], infections=[Episode(3, 4)])
    assert result.infection and not result.bleeding and result.bleeding_duration_days == 0


@pytest.mark.parametrize(
    ("transfusions", "platelets", "red_cells", "any_"),
    [
        ([], 0, 0, False),
        ([Transfusion(1, "platelets")], 1, 0, True),
        ([Transfusion(42, "red_cells")], 0, 1, True),
        ([Transfusion(0, "platelets"), Transfusion(43, "red_cells")], 0, 0, False),
        ([Transfusion(9, "platelets"), Transfusion(9, "platelets"), Transfusion(9, "red_cells")],
         2, 1, True),
    ],
)
def test_transfusion_counts(transfusions, platelets, red_cells, any_):
    result = compute_endpoints([], transfusions)
    assert result.platelet_transfusions == platelets
    assert result.red_cell_transfusions == red_cells
    assert result.any_transfusion is any_


@pytest.mark.parametrize(
    ("anti_days", "used", "n_days"),
    [((), False, 0), ((1,), True, 1), ((0, 43), False, 0), ((5, 6, 6, 7, 42, 43), True, 4)],
)
def test_anti_infective_days(anti_days, used, n_days):
    result = compute_endpoints([], anti_infective_days=anti_days)
    assert result.anti_infective_used is used
    assert result.anti_infective_days == n_days


def test_generators_are_accepted():
    result = compute_endpoints(
        plt_series(PLT_COURSE), (Transfusion(d, "platelets") for d in (17,)),
        infections=iter([Episode(2, 3)]), anti_infective_days=iter([4]))
    assert result.platelet_recovery_day == 25
    assert result.platelet_transfusions == 1
    assert result.infection and result.anti_infective_days == 1


# --- input validation -------------------------------------------------------------------


def test_duplicate_day_raises_naming_the_day():
    counts = anc_series({3: "1.0", 7: "0.2"}) + [CountRecord(7, D("0.3"), None, None)]
    with pytest.raises(DuplicateCountDayError, match="day 7") as caught:
        compute_endpoints(counts)
    assert caught.value.day == 7


def test_duplicate_day_outside_window_still_raises():
    counts = [CountRecord(50, D("1"), None, None), CountRecord(50, D("2"), None, None)]
    with pytest.raises(DuplicateCountDayError, match="day 50"):
        compute_endpoints(counts)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"anc": 0.5}, "anc"), ({"plt": D("-1")}, "plt"), ({"hgb": "60"}, "hgb"),
     ({"wbc": 1}, "wbc"), ({"tmax": 38.5}, "tmax")],
)
def test_count_values_must_be_decimal(kwargs, field):
    base = {"day": 4, "anc": None, "plt": None, "hgb": None}
    with pytest.raises(CountValueError, match=field):
        CountRecord(**{**base, **kwargs})


def test_zero_count_is_valid():
    assert CountRecord(4, D("0"), D("0"), D("0")).anc == D("0")


def test_episode_ending_before_start():
    with pytest.raises(EpisodeError, match="day 3"):
        Episode(5, 3)


def test_unknown_transfusion_product():
    with pytest.raises(TransfusionProductError, match="plasma"):
        Transfusion(3, "plasma")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"horizon_day": 0}, {"anc_consecutive": 0}, {"plt_consecutive": -1},
     {"hgb_consecutive": 0}, {"plt_transfusion_lookback_days": -1},
     {"red_cell_transfusion_lookback_days": -2}, {"anc_recovery": 0.5},
     {"severe_anemia_recovery": 60}, {"fn_temp_single": 38.3}],
)
def test_invalid_parameters(kwargs):
    with pytest.raises(RecoveryParameterError, match=next(iter(kwargs))):
        RecoveryParameters(**kwargs)


def test_every_endpoint_field_has_its_own_doc_comment():
    lines = inspect.getsource(SubjectEndpoints).splitlines()
    for field in fields(SubjectEndpoints):
        index = next(i for i, line in enumerate(lines) if line.startswith(f"    {field.name}:"))
        assert lines[index - 1].strip().startswith("#:"), field.name


# --- summary ----------------------------------------------------------------------------


def subject(anc: dict[int, str] | None = None, plt: dict[int, str] | None = None,
            **kwargs) -> SubjectEndpoints:
    anc = anc or {}
    plt = plt or {}
    counts = [CountRecord(d, D(anc[d]) if d in anc else None, D(plt[d]) if d in plt else None,
                          D("100"), tmax=D("37.0")) for d in sorted(set(anc) | set(plt))]
    return compute_endpoints(counts, **kwargs)


def recovering(day: int) -> dict[int, str]:
    """ANC nadir on day 5, recovery on ``day``."""
    return {5: "0.0", day: "0.6", day + 1: "0.6", day + 2: "0.6"}


def rows_by_endpoint(rows: list[SummaryRow], group: str) -> dict[str, SummaryRow]:
    return {r.endpoint: r for r in rows if r.group == group}


@pytest.mark.parametrize(
    ("values", "expected"),
    [([], None), ([7], "7"), ([3, 1, 2], "2"), ([4, 1, 3, 2], "2.5"), ([20, 21], "20.5"),
     ([5, 5, 9, 9], "7"), ([D("0.1"), D("0.4")], "0.25"), ([18, 22, 19, 30, 17], "19")],
)
def test_median(values, expected):
    assert median(values) == (None if expected is None else D(expected))


@pytest.mark.parametrize(
    ("events", "n", "expected"),
    [(0, 3, "0.0"), (1, 3, "33.3"), (2, 3, "66.7"), (1, 6, "16.7"), (1, 8, "12.5"),
     (3, 3, "100.0"), (0, 0, None), (1, 16, "6.3")],  # 6.25 rounds half up
)
def test_percent(events, n, expected):
    assert percent(events, n) == (None if expected is None else D(expected))


def test_summary_time_to_recovery_odd_and_even_groups():
    subjects = {
        "01": subject(recovering(18)), "02": subject(recovering(21)),
        "03": subject(recovering(19)),
        "04": subject(recovering(15)), "05": subject(recovering(20)),
        "06": subject({5: "0.0", 20: "0.6"}),  # censored
        "07": subject(recovering(22)), "08": subject(recovering(17)),
        "09": subject({5: "0.9"}),  # never neutropenic: not at risk
    }
    groups = {"01": "DL1", "02": "DL1", "03": "DL1", "04": "DL2", "05": "DL2", "06": "DL2",
              "07": "DL2", "08": "DL2", "09": "DL3"}
    rows = summarize(subjects, groups)
    dl1 = rows_by_endpoint(rows, "DL1")["time_to_neutrophil_recovery"]
    assert (dl1.n, dl1.events, dl1.censored) == (3, 3, 0)
    assert (dl1.median, dl1.minimum, dl1.maximum) == (D("19"), D("18"), D("21"))
    dl2 = rows_by_endpoint(rows, "DL2")["time_to_neutrophil_recovery"]
    assert (dl2.n, dl2.events, dl2.censored) == (5, 4, 1)
    # Kaplan-Meier over 15, 17, 20, 22 and 42 censored: S = .8, .6, .4 at day 20
    assert (dl2.median, dl2.minimum, dl2.maximum) == (D("20"), D("15"), D("22"))
    assert dl2.percent is None and dl2.kind is EndpointKind.TIME
    dl3 = rows_by_endpoint(rows, "DL3")["time_to_neutrophil_recovery"]
    assert (dl3.n, dl3.events, dl3.censored, dl3.median) == (0, 0, 0, None)
    total = rows_by_endpoint(rows, "All")["time_to_neutrophil_recovery"]
    assert (total.n, total.events, total.censored, total.median) == (8, 7, 1, D("19"))


def test_summary_incidences_and_durations():
    subjects = {
        "A": subject({8: "0.1"}, {8: "10"}, infections=[Episode(3, 7)],
                     transfusions=[Transfusion(8, "platelets")], fn_episodes=[Episode(8, 9)]),
        "B": subject({8: "0.1"}, {8: "30"}, infections=[Episode(10, 11), Episode(20, 20)],
                     anti_infective_days=[10, 11], fn_episodes=[]),
        "C": subject({8: "0.1"}, {8: "24"}, bleedings=[Episode(40, None)]),
    }
    rows = rows_by_endpoint(summarize(subjects, {"A": "L1", "B": "L1", "C": "L1"}), "L1")
    assert set(rows) == set(ENDPOINT_NAMES)
    infection = rows["infection"]
    assert (infection.n, infection.events, infection.percent) == (3, 2, D("66.7"))
    duration = rows["infection_duration"]
    assert (duration.n, duration.events) == (3, 2)
    assert (duration.median, duration.minimum, duration.maximum) == (D("4"), D("3"), D("5"))
    assert rows["bleeding"].percent == D("33.3")
    assert rows["bleeding_duration"].median == D("3")
    assert (rows["severe_thrombocytopenia"].events, rows["severe_thrombocytopenia"].n) == (2, 3)
    assert rows["platelet_transfusion"].percent == D("33.3")
    assert rows["red_cell_transfusion"].percent == D("0.0")
    assert rows["anti_infective_use"].events == 1
    assert (rows["febrile_neutropenia"].n, rows["febrile_neutropenia"].events) == (3, 1)
    assert rows["febrile_neutropenia_duration"].median == D("2")
    severe_recovery = rows["time_to_severe_thrombocytopenia_recovery"]
    assert (severe_recovery.n, severe_recovery.events, severe_recovery.censored) == (2, 0, 2)


def test_summary_excludes_subjects_without_counts_from_count_endpoints():
    subjects = {"A": compute_endpoints([]), "B": subject({8: "0.1"}, {8: "10"})}
    rows = rows_by_endpoint(summarize(subjects, {"A": "L1", "B": "L1"}), "L1")
    assert rows["severe_thrombocytopenia"].n == 1
    assert rows["severe_anemia"].n == 1
    assert rows["febrile_neutropenia"].n == 1
    assert rows["infection"].n == 2  # infections reported (an empty list) for both
    assert (rows["any_transfusion"].n, rows["any_transfusion"].not_evaluable) == (1, 1)


def test_summary_group_order_and_total():
    subjects = {"1": subject(recovering(20)), "2": subject(recovering(25))}
    rows = summarize(subjects, {"2": "DL2", "1": "DL1"})
    assert [r.group for r in rows[:: len(ENDPOINT_NAMES)]] == ["DL2", "DL1", "All"]
    assert len(rows) == 3 * len(ENDPOINT_NAMES)
    assert len(summarize(subjects, {"2": "DL2", "1": "DL1"}, include_total=False)) == 2 * len(
        ENDPOINT_NAMES)


def test_summary_empty_group_is_listed_with_zero_n():
    rows = summarize({}, {"x": "DL3"}, include_total=False)
    assert {r.group for r in rows} == {"DL3"}
    assert all(r.n == 0 and r.events == 0 and r.percent is None for r in rows)


def test_summary_subject_without_group():
    with pytest.raises(SummaryGroupError, match="'S9'"):
        summarize({"S9": compute_endpoints([])}, {})


def test_summary_group_named_like_total_is_refused():
    with pytest.raises(SummaryGroupError, match="'All'"):
        summarize({"S1": compute_endpoints([])}, {"S1": "All"})
    rows = summarize({"S1": compute_endpoints([])}, {"S1": "All"}, include_total=False)
    assert rows[0].group == "All"


def test_summary_csv():
    subjects = {"01": subject(recovering(18)), "02": subject(recovering(21))}
    rows = summarize(subjects, {"01": "DL1", "02": "DL1"}, include_total=False)
    text = summary_csv(rows)
    lines = text.split("\r\n")
    assert lines[0] == ("group,endpoint,kind,n,not_evaluable,events,percent,ci_low,ci_high,"
                        "censored,median,median_low,median_high,minimum,maximum")
    assert lines[-1] == ""
    assert len(lines) == 1 + len(ENDPOINT_NAMES) + 1
    # Kaplan-Meier: S(18) = 1/2, so the median is 18; its upper bound is not reached
    assert "DL1,time_to_neutrophil_recovery,time,2,0,2,,,,0,18,18,,18,21" in lines
    # 0/2: exact upper bound 1 - 0.025 ** (1/2) = 84.19 %, rounded up
    assert "DL1,infection,incidence,2,0,0,0.0,0.0,84.2,,,,,," in lines


def test_summary_csv_quotes_labels_and_never_uses_exponents():
    row = SummaryRow("DL 1, high", "x", 1, 1, D("100.0"), D("2E+1"), D("20"), D("20"))
    line = summary_csv([row]).split("\r\n")[1]
    assert line == '"DL 1, high",x,incidence,1,0,1,100.0,,,,20,,,20,20'
