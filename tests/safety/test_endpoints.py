"""Recovery endpoints through the service, on day series entered through data capture:
gaps in the measurements, the platelet transfusion look-back, no recovery by day 42,
reported versus derived febrile neutropenia, the per-dose-level summary and its CSV, and a
constant number of statements."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from sqlalchemy import event, select

from ecrf.core.extensions import db
from ecrf.domain.hematology import RecoveryStatus
from ecrf.safety import endpoints
from ecrf.studies import store as studies
from ecrf.studies.models import Site
from tests.safety.safety_setup import (
    actor_for,
    counts_row,
    enrol,
    load_safety_study,
    safety_variant,
    save,
)

D1 = dt.date(2025, 6, 1)


def day(n: int) -> dt.date:
    return D1 + dt.timedelta(days=n - 1)


@pytest.fixture
def study(app, make_study):
    return load_safety_study(make_study)


@pytest.fixture
def inv(make_user, study):
    return actor_for(make_user("inv1", role="investigator", study="SAFETY", site="S01"))


def start(inv, subject, d1=D1):
    save(inv, subject, "CHEMO", {("CHEMO_MAIN", 1, "CHEMOD1"): d1.isoformat()}, day=d1)


def series(inv, subject, anc: dict, plt: dict | None = None, hgb: dict | None = None,
           tmax: dict | None = None, plt_tx=(), rbc_tx=(), names: dict | None = None):
    values = {}
    for row, number in enumerate(sorted(anc), start=1):
        items = {"ANC": str(anc[number])}
        if plt and number in plt:
            items["PLT"] = str(plt[number])
        if hgb and number in hgb:
            items["HGB"] = str(hgb[number])
        items["TMAX"] = str((tmax or {}).get(number, "37.0"))
        items["PLTTX"] = "Y" if number in plt_tx else "N"
        items["RBCTX"] = "Y" if number in rbc_tx else "N"
        values.update(counts_row(row, day(number), **items))
    save(inv, subject, "COUNTS", renamed(values, names), day=D1)


def renamed(values: dict, names: dict | None) -> dict:
    """Values keyed by the fixture's OIDs, keyed by a variant's instead."""
    names = names or {}
    return {(names.get(g, g), r, names.get(i, i)): v for (g, r, i), v in values.items()}


# Subject A: nadir on day 8, ANC not measured on day 16 (a gap in the measurements), a platelet
# transfusion on day 9 (7-day look-back), severe anaemia on day 10 with a red-cell
# transfusion, fever with neutropenia on day 7.
A_ANC = {1: "3.00", 2: "2.50", 3: "1.50", 4: "0.80", 5: "0.30", 6: "0.10", 7: "0.05",
         8: "0.00", 9: "0.02", 10: "0.05", 11: "0.10", 12: "0.20", 13: "0.30", 14: "0.40",
         15: "0.60", 17: "0.70", 18: "0.90", 19: "1.20", 20: "1.50", 21: "1.80", 22: "2.00",
         23: "2.10", 24: "2.20", 25: "2.40"}
A_PLT = {1: 200, 2: 150, 3: 100, 4: 60, 5: 30, 6: 20, 7: 12, 8: 8, 9: 10, 10: 15, 11: 18,
         12: 22, 13: 26, 14: 30, 15: 35, 17: 50, 18: 60, 19: 70, 20: 80, 21: 90, 22: 100,
         23: 110, 24: 120, 25: 130}
A_HGB = {d: 90 for d in A_ANC} | {10: 58}


def subject_a(inv, study, key="S01-A"):
    subject = enrol(study, key, level=1)
    start(inv, subject)
    series(inv, subject, A_ANC, A_PLT, A_HGB, tmax={7: "38.6"}, plt_tx={9}, rbc_tx={10})
    return subject


def subject_b(inv, study, key="S01-B", site="S01"):
    """No neutrophil recovery by day 42: the ANC never holds 0.5 for three days."""
    subject = enrol(study, key, site=site, level=2)
    start(inv, subject)
    anc = {d: "2.00" for d in range(1, 6)} | {d: "0.10" for d in range(6, 43)}
    anc |= {30: "0.60", 31: "0.70", 33: "0.80", 40: "0.50", 41: "0.55"}
    series(inv, subject, anc, {d: 100 for d in anc}, {d: 100 for d in anc})
    return subject


def results(study, site_ids=None) -> dict:
    found = endpoints.study_endpoints(db.session, study, site_ids)
    return found, {r.series.subject_key: r for r in found.subjects}


def test_recovery_with_a_gap_and_the_transfusion_look_back(inv, study):
    subject_a(inv, study)
    _, by_key = results(study)
    e = by_key["S01-A"].endpoints
    assert (e.anc_nadir, e.anc_nadir_day) == (Decimal("0.00"), 8)
    # Day 15 >= 0.5, day 16 has no count, days 17 and 18 >= 0.5: the run of measurements
    # 15, 17, 18 starts on day 15 (on calendar days it would start on day 17).
    assert e.neutrophil_recovery_status is RecoveryStatus.RECOVERED
    assert e.neutrophil_recovery_day == 15
    assert e.evidence["time_to_neutrophil_recovery"] == (15, 17, 18)
    # PLT >= 20 from day 12, but days 12-16 have the day-9 transfusion in their look-back.
    assert e.platelet_recovery_day == 17
    assert e.platelet_transfusions == 1 and e.red_cell_transfusions == 1
    assert (e.severe_thrombocytopenia_first_day, e.severe_thrombocytopenia_days) == (6, 7)
    assert e.time_to_severe_thrombocytopenia_recovery == 17 - 6
    # Hb 58 on day 10 (transfused): the red-cell look-back pushes recovery to day 18.
    assert (e.severe_anemia_first_day, e.severe_anemia_recovery_day) == (10, 18)
    # No FN form answered: derived from the day-7 fever with ANC 0.05.
    assert e.fn_derived and e.febrile_neutropenia and e.fn_duration_days == 1


def test_no_recovery_by_day_42_is_censored(inv, study):
    subject_b(inv, study)
    _, by_key = results(study)
    e = by_key["S01-B"].endpoints
    assert e.neutrophil_recovery_status is RecoveryStatus.CENSORED
    assert e.neutrophil_recovery_day is None and e.neutrophil_censored
    assert e.platelet_recovery_status is RecoveryStatus.NOT_APPLICABLE


def test_reported_febrile_neutropenia_replaces_the_derived(inv, study):
    subject = subject_a(inv, study)
    save(inv, subject, "FN", {("FN_ANY", 1, "FNANY"): "Y",
                              ("FN_LINE", 1, "FNSTDT"): day(7).isoformat(),
                              ("FN_LINE", 1, "FNONGO"): "N",
                              ("FN_LINE", 1, "FNENDT"): day(9).isoformat()}, day=D1)
    _, by_key = results(study)
    e = by_key["S01-A"].endpoints
    assert not e.fn_derived and e.fn_duration_days == 3


def test_data_changes_are_seen_at_once(inv, study):
    subject = subject_a(inv, study)
    save(inv, subject, "COUNTS", {("CNT_DAY", 30, "LBDT"): day(16).isoformat(),
                                  ("CNT_DAY", 30, "ANC"): "0.65"}, day=D1)
    _, by_key = results(study)
    assert by_key["S01-A"].endpoints.neutrophil_recovery_day == 15


def test_subjects_without_day_1_or_with_duplicate_days_are_listed_not_counted(inv, study):
    enrol(study, "S01-C", level=1)
    twice = enrol(study, "S01-D", level=1)
    start(inv, twice)
    save(inv, twice, "COUNTS", {**counts_row(1, day(3), ANC="1.00"),
                                **counts_row(2, day(3), ANC="0.90")}, day=D1)
    found, by_key = results(study)
    assert by_key["S01-C"].endpoints is None
    assert by_key["S01-C"].series.problem == "day 1 (anchor chemo_d1) is not recorded"
    assert by_key["S01-D"].endpoints is None
    assert "more than one blood count record for day 3" in by_key["S01-D"].series.problem
    assert {r.series.subject_key for r in found.excluded} == {"S01-C", "S01-D"}


def test_summary_per_dose_level_and_csv(inv, study):
    subject_a(inv, study)
    subject_b(inv, study)
    found, _ = results(study)
    assert found.groups == ["Dose level 1", "Dose level 2"]
    rows = {(r.group, r.endpoint): r for r in found.summary}
    one = rows[("Dose level 1", "time_to_neutrophil_recovery")]
    assert (one.n, one.events, one.censored, one.median) == (1, 1, 0, Decimal(15))
    two = rows[("Dose level 2", "time_to_neutrophil_recovery")]
    assert (two.n, two.events, two.censored, two.median) == (1, 0, 1, None)
    total = rows[("All", "febrile_neutropenia")]
    assert (total.n, total.events, total.percent) == (2, 1, Decimal("50.0"))
    table = list(csv.reader(io.StringIO(found.csv())))
    assert table[0] == ["group", "endpoint", "kind", "n", "not_evaluable", "events", "percent",
                        "ci_low", "ci_high", "censored", "median", "median_low",
                        "median_high", "minimum", "maximum"]
    # one subject recovering on day 15: S(15) = 0, no interval for the median
    assert ["Dose level 1", "time_to_neutrophil_recovery", "time", "1", "0", "1", "", "", "",
            "0", "15", "", "", "15", "15"] in table
    # 1/2: exact interval 1 - sqrt(0.975) = 1.26 % to sqrt(0.975) = 98.74 %, rounded outwards
    assert ["All", "severe_anemia", "incidence", "2", "0", "1", "50.0", "1.2", "98.8", "", "",
            "", "", "", ""] in table
    # the safety study records no infection form: unknown, not "no infection"
    assert ["All", "infection", "incidence", "0", "2", "0", "", "", "", "", "", "", "", "",
            ""] in table
    assert found.csv().endswith("\r\n")


def test_parameters_come_from_the_study(inv, study):
    found, _ = results(study)
    params = found.params
    assert (params.horizon_day, params.anc_recovery, params.plt_transfusion_lookback_days,
            params.severe_anemia, params.fn_anc) == (42, Decimal("0.5"), 7, Decimal("60"),
                                                     Decimal("1.0"))


def test_site_scoping(inv, study, make_user):
    subject_a(inv, study)
    other = actor_for(make_user("inv2", role="investigator", study="SAFETY", site="S02"),
                      site="S02")
    subject_b(other, study, key="S02-B", site="S02")
    s02 = db.session.scalar(select(Site.id).where(Site.code == "S02"))
    _, by_key = results(study, {s02})
    assert set(by_key) == {"S02-B"}


def test_a_constant_number_of_statements(inv, study, make_user):
    subject_a(inv, study)
    statements = []

    def count(*args):
        statements.append(1)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        results(study)
        few = len(statements)
        statements.clear()
        subject_b(inv, study)
        subject_b(inv, study, key="S01-E")
        db.session.expire_all()
        statements.clear()
        results(study)
        many = len(statements)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert many == few <= 4


def test_the_endpoints_page_takes_as_many_statements_for_3_subjects_as_for_1(
        inv, study, client, login_as):
    """A view after a change recomputes in a fixed number of statements; a view with no
    change since reads the kept result (the audit chain head only)."""
    login_as("sponsor_viewer", study="SAFETY")

    def viewed() -> tuple[int, str]:
        seen = []
        listener = lambda *args: seen.append(1)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            response = client.get("/studies/SAFETY/endpoints")
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        assert response.status_code == 200
        return len(seen), response.get_data(as_text=True)

    subject_a(inv, study)
    few, _ = viewed()
    few_kept, page = viewed()
    assert "Dose level 2" not in page
    subject_b(inv, study)
    subject_b(inv, study, key="S01-E")
    many, _ = viewed()
    many_kept, page = viewed()
    assert "Dose level 2" in page, "recomputed after the data changed"
    assert (many, many_kept) == (few, few_kept) and few_kept < few


def test_the_endpoints_page_lists_its_subjects_a_page_at_a_time(
        inv, study, client, login_as, monkeypatch):
    from ecrf.safety import views

    subject_a(inv, study)
    subject_b(inv, study)
    login_as("investigator", "S01", study="SAFETY")
    monkeypatch.setattr(views, "ENDPOINTS_PAGE", 1)
    first = client.get("/studies/SAFETY/endpoints").get_data(as_text=True)
    second = client.get("/studies/SAFETY/endpoints?page=2").get_data(as_text=True)
    beyond = client.get("/studies/SAFETY/endpoints?page=99").get_data(as_text=True)
    assert ">S01-A</a>" in first and ">S01-B</a>" not in first
    assert ">S01-B</a>" in second and ">S01-A</a>" not in second
    assert 'aria-current="page">2<' in second and ">S01-B</a>" in beyond
    assert client.get("/studies/SAFETY/endpoints?page=x").status_code == 200


def test_the_kept_endpoints_follow_the_data_and_the_scope(inv, study):
    def kept(site_ids=None):
        seen = []
        listener = lambda *args: seen.append(1)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            result = endpoints.kept_study_endpoints(db.session, study, site_ids)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return result, len(seen)

    subject_a(inv, study)
    first, _ = kept()
    again, statements = kept()
    assert statements == 1, "only the audit chain head is read"
    assert again.summary == first.summary and again.study is study
    subject_b(inv, study)
    changed, statements = kept()
    assert statements > 1, "recomputed after a change"
    assert changed.summary == endpoints.study_endpoints(db.session, study, None).summary
    assert changed.summary != first.summary
    assert kept({-1})[0].subjects == [], "per scope"


# --- the sources are what the study's recovery_endpoints block declares ----------------------

NAMES = {"CNT_DAY": "DAILY", "LBDT": "SAMPLEDT", "ANC": "NEUTRO", "PLT": "PLATELETS",
         "TMAX": "FEVER", "PLTTX": "PLTGIVEN", "RBCTX": "RBCGIVEN", "FN_ANY": "FEBRILE",
         "FN_LINE": "EPISODES", "FNANY": "EPANY", "FNSTDT": "EPSTART", "FNENDT": "EPEND",
         "FNONGO": "EPONGOING", "chemo_d1": "cycle_start"}


def variant(make_study, tmp_path, **changes):
    return load_safety_study(make_study, folder=safety_variant(tmp_path / "study", **changes))


def test_the_endpoints_follow_the_declared_oids(app, make_study, make_user, tmp_path):
    study = variant(make_study, tmp_path, renames=NAMES)
    inv = actor_for(make_user("inv1", role="investigator", study="SAFETY", site="S01"))
    subject = enrol(study, "S01-A", level=1)
    start(inv, subject)
    series(inv, subject, A_ANC, A_PLT, A_HGB, tmax={7: "38.6"}, plt_tx={9}, rbc_tx={10},
           names=NAMES)
    _, by_key = results(study)
    e = by_key["S01-A"].endpoints
    assert (e.neutrophil_recovery_day, e.platelet_recovery_day) == (15, 17)
    assert (e.platelet_transfusions, e.red_cell_transfusions) == (1, 1)
    assert (e.severe_anemia_first_day, e.severe_anemia_recovery_day) == (10, 18)
    assert e.fn_derived and e.febrile_neutropenia
    save(inv, subject, "FN", renamed({("FN_ANY", 1, "FNANY"): "Y",
                                      ("FN_LINE", 1, "FNSTDT"): day(7).isoformat(),
                                      ("FN_LINE", 1, "FNONGO"): "N",
                                      ("FN_LINE", 1, "FNENDT"): day(9).isoformat()}, NAMES),
         day=D1)
    _, by_key = results(study)
    e = by_key["S01-A"].endpoints
    assert not e.fn_derived and e.fn_duration_days == 3


def test_a_study_without_the_block_has_no_recovery_endpoints(app, make_study, tmp_path):
    study = variant(make_study, tmp_path, drop=("recovery_endpoints",))
    definition = studies.definition_for(studies.latest_version(db.session, study))
    assert not endpoints.has_counts(definition)
    with pytest.raises(endpoints.EndpointsError,
                       match="has no recovery endpoints: its study definition declares no "
                             "recovery_endpoints block"):
        endpoints.study_endpoints(db.session, study, None)


def test_day_one_may_be_the_enrolment(app, make_study, make_user, tmp_path):
    study = variant(make_study, tmp_path,
                    edits=(("day1_anchor: chemo_d1", "day1_anchor: enrolment"),))
    inv = actor_for(make_user("inv1", role="investigator", study="SAFETY", site="S01"))
    subject = enrol(study, "S01-A", on=D1, level=1)  # no chemotherapy day 1 recorded
    series(inv, subject, A_ANC, A_PLT, A_HGB)
    _, by_key = results(study)
    assert by_key["S01-A"].series.day1 == D1
    assert by_key["S01-A"].endpoints.neutrophil_recovery_day == 15


def test_without_an_any_episode_question_recorded_episodes_are_reported(
        app, make_study, make_user, tmp_path):
    study = variant(make_study, tmp_path, drop=("      any_episode:",))
    inv = actor_for(make_user("inv1", role="investigator", study="SAFETY", site="S01"))
    subject = subject_a(inv, study)
    other = subject_a(inv, study, key="S01-Z")
    save(inv, subject, "FN", {("FN_LINE", 1, "FNSTDT"): day(7).isoformat(),
                              ("FN_LINE", 1, "FNONGO"): "N",
                              ("FN_LINE", 1, "FNENDT"): day(8).isoformat()}, day=D1)
    _, by_key = results(study)
    assert not by_key["S01-A"].endpoints.fn_derived
    assert by_key["S01-A"].endpoints.fn_duration_days == 2
    assert by_key[other.subject_key].endpoints.fn_derived


def test_recovery_run_calendar_days_is_a_study_parameter(app, make_study, make_user, tmp_path):
    study = variant(make_study, tmp_path, edits=(
        ("  fn_criteria:\n", "  recovery_run:\n    type: text\n    default: calendar_days\n"
                             "  fn_criteria:\n"),))
    inv = actor_for(make_user("inv1", role="investigator", study="SAFETY", site="S01"))
    subject_a(inv, study)
    found, by_key = results(study)
    assert found.params.recovery_run == "calendar_days"
    assert by_key["S01-A"].endpoints.neutrophil_recovery_day == 17  # day 16 breaks the run
    assert found.rules["time_to_neutrophil_recovery"].startswith(
        "ANC >= 0.5 on 3 consecutive days")


class _Definition:
    def __init__(self, **values):
        self.values = values

    def parameter_values(self):
        return self.values


@pytest.mark.parametrize(("values", "message"), [
    ({"recovery_run": "weekly"}, "recovery_run='weekly'"),
    ({"anc_recovery_days": 0}, "anc_consecutive=0"),
    ({"anc_recovery": "abc"}, "invalid recovery parameter"),
])
def test_an_invalid_recovery_parameter_is_a_clear_error(values, message):
    with pytest.raises(endpoints.EndpointsError, match=message):
        endpoints.recovery_parameters(_Definition(**values))


def test_whole_run_and_calendar_parameters_are_read():
    params = endpoints.recovery_parameters(_Definition(recovery_run=" calendar_days ",
                                                       transfusion_free_whole_run=True))
    assert params.recovery_run == "calendar_days" and params.transfusion_free_whole_run


def test_a_subject_without_counts_is_not_evaluable_for_every_count_endpoint(inv, study):
    subject_b(inv, study)
    empty = enrol(study, "S01-E", level=2)
    start(inv, empty)  # day 1 recorded, no blood count in days 1-42
    found, _ = results(study)
    rows = {r.endpoint: r for r in found.summary if r.group == "Dose level 2"}
    for name in ("febrile_neutropenia", "any_transfusion", "platelet_transfusion",
                 "red_cell_transfusion", "severe_thrombocytopenia", "severe_anemia",
                 "time_to_neutrophil_recovery"):
        assert (rows[name].n, rows[name].not_evaluable) == (1, 1), name
    assert rows["febrile_neutropenia"].text() == "0/1 (0.0 %; 95 % CI 0.0-97.5); 1 not evaluable"
    subject_rows = [r for r in found.subject_rows() if r.subject_key == "S01-E"]
    transfusion = next(r for r in subject_rows if r.endpoint == "platelet_transfusion")
    assert (transfusion.status, transfusion.evaluable, transfusion.value) == (
        "not_evaluable", False, None)
    assert transfusion.reason.startswith("no blood count record on days 1-42")


def test_episode_forms_without_a_question_need_a_count_record():
    from ecrf.domain.hematology import CountRecord, RecoveryParameters

    params = RecoveryParameters()
    bare = endpoints.SubjectSeries(1, "X", "S01", "L1", day1=D1, unasked={"infection"})
    e = endpoints.compute(bare, params)
    assert not e.infection_evaluable and not e.bleeding_evaluable  # bleeding: no form
    bare.counts.append(CountRecord(3, Decimal("1.0"), None, None))
    e = endpoints.compute(bare, params)
    assert e.infection_evaluable and not e.infection
    assert not e.bleeding_evaluable
    asked = endpoints.SubjectSeries(2, "Y", "S01", "L1", day1=D1,
                                    counts=[CountRecord(3, Decimal("1.0"), None, None)])
    assert not endpoints.compute(asked, params).infection_evaluable  # question unanswered
    asked.reported.add("infection")
    assert endpoints.compute(asked, params).infection_evaluable


def test_subject_rows_and_their_csv(inv, study):
    subject_a(inv, study)
    enrol(study, "S01-C", level=1)  # no day 1
    found, _ = results(study)
    rows = found.subject_rows()
    by = {(r.subject_key, r.endpoint): r for r in rows}
    anc = by[("S01-A", "time_to_neutrophil_recovery")]
    assert anc == endpoints.SubjectEndpointRow(
        "S01-A", "S01", "Dose level 1", "time_to_neutrophil_recovery", "event", "15", 15,
        "ANC >= 0.5 on 3 consecutive measurements, first day 15 (days 15, 17, 18)", True, None)
    plt = by[("S01-A", "time_to_platelet_recovery")]
    assert plt.rule == ("PLT >= 20 on 3 consecutive measurements with no platelet transfusion "
                        "in the 7 days before the first of them, first day 17 (days 17, 18, 19)")
    missing = by[("S01-C", "anc_nadir")]
    assert (missing.status, missing.evaluable, missing.reason) == (
        "not_evaluable", False, "day 1 (anchor chemo_d1) is not recorded")
    assert all(type(getattr(r, f)) in (str, int, bool, type(None))
               for r in rows for f in endpoints.SUBJECT_CSV_COLUMNS)
    table = list(csv.reader(io.StringIO(found.subjects_csv())))
    assert table[0] == list(endpoints.SUBJECT_CSV_COLUMNS)
    assert ["S01-A", "S01", "Dose level 1", "anc_nadir", "observed", "0.00", "8",
            "lowest ANC on days 1-42", "yes", ""] in table
    assert len(table) == 1 + len(rows)
