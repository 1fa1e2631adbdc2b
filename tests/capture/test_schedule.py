"""The schedule service: anchors and conditions read from recorded item values, stored
schedules recomputed when data changes, study-level dates, bulk refresh in constant SQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from ecrf.capture import schedule, subjects
from ecrf.capture.models import GroupRow, ScheduledVisit, Subject
from ecrf.capture.schedule_values import StoredValue, typed_value
from ecrf.core.base import utcnow
from ecrf.core.extensions import db
from ecrf.domain.expressions import ValueType
from ecrf.studies import store as studies
from tests.capture.sample import ACTOR, record, set_value, write_study
from tests.capture.sample import event as record_event
from tests.conftest import count_statements

D = dt.date
ENROLLED = D(2025, 1, 6)


@pytest.fixture
def study(app, tmp_path, make_study):
    make_study("SAMPLE", sites=("S01",))
    loaded = studies.load_folder(db.session, ACTOR, write_study(tmp_path / "sample")).study
    db.session.commit()
    return loaded


@pytest.fixture
def enrol(study, make_site):
    site = make_site("S01")

    def make(key: str, on: dt.date = ENROLLED, arm: str | None = None) -> Subject:
        subject = subjects.enrol_subject(db.session, ACTOR, study, site, key, on, today=on)
        subject.arm = arm
        db.session.flush()
        return subject

    return make


def visits(subject: Subject) -> dict[tuple[str, int], ScheduledVisit]:
    rows = db.session.scalars(select(ScheduledVisit).where(
        ScheduledVisit.subject_id == subject.id).order_by(ScheduledVisit.position))
    return {(v.event_oid, v.repeat): v for v in rows}


def test_anchor_from_a_recorded_date_plans_the_dependent_visit(enrol):
    subject = enrol("S01-001")
    assert ("RANDO", 1) not in visits(subject)  # consent not recorded yet
    record(db.session, subject, "SCREEN", "CONSENT", {"CONSDT": D(2025, 1, 8)})
    schedule.refresh_subject(db.session, subject, D(2025, 1, 10))
    rando = visits(subject)[("RANDO", 1)]
    assert (rando.planned, rando.window_start, rando.window_end) == (
        D(2025, 1, 15), D(2025, 1, 8), D(2025, 1, 22))
    assert rando.status == "due" and subject.schedule_computed_on == D(2025, 1, 10)
    screen = visits(subject)[("SCREEN", 1)]
    assert screen.planned == D(2025, 1, 6) and screen.status == "done"


def test_correcting_an_anchor_date_moves_the_planned_visits(enrol):
    subject = enrol("S01-001")
    form = record(db.session, subject, "SCREEN", "CONSENT", {"CONSDT": D(2025, 1, 8)})
    schedule.refresh_subject(db.session, subject, D(2025, 1, 10))
    assert visits(subject)[("RANDO", 1)].planned == D(2025, 1, 15)
    set_value(db.session, form, "CONSDT", D(2025, 1, 20))
    schedule.refresh_subject(db.session, subject, D(2025, 1, 10))
    rando = visits(subject)[("RANDO", 1)]
    assert rando.planned == D(2025, 1, 27) and rando.status == "upcoming"


def test_anchor_is_the_earliest_value_and_conditions_read_the_most_recent(enrol):
    subject = enrol("S01-001", arm="DEX")
    record(db.session, subject, "DEXCYC", "TREAT", {"CYCDT": D(2025, 2, 1),
                                                   "SALVTYPE": "INTENSIVE"},
           repeat=1, actual_date=D(2025, 2, 1))
    record(db.session, subject, "DEXCYC", "TREAT", {"CYCDT": D(2025, 3, 1),
                                                   "SALVTYPE": "AZA"},
           repeat=2, actual_date=D(2025, 3, 1))
    schedule.refresh_subject(db.session, subject, D(2025, 3, 10))
    rows = visits(subject)
    assert rows[("DEXCYC", 1)].planned == D(2025, 2, 1)  # c1d1 = earliest CYCDT
    assert [rows[("DEXCYC", k)].status for k in (1, 2, 3)] == ["done", "done", "upcoming"]
    assert rows[("DEXCYC", 3)].planned == D(2025, 3, 29)
    # SALVTYPE is AZA in the later cycle: the evaluation after azacitidine is expected.
    assert rows[("AZAEVAL", 1)].planned == D(2025, 4, 26)
    assert rows[("AZAEVAL", 1)].status == "upcoming"
    data = schedule.subject_schedule_data(db.session, studies.definition_for(
        subject.study_version), subject, today=D(2025, 3, 10))
    assert data.anchors["c1d1"] == D(2025, 2, 1) and data.anchors["enrolment"] == D(2025, 1, 6)
    assert data.evaluate('TREAT.SALVTYPE = "AZA"')
    assert data.evaluate('subject.site = "S01" and subject.arm = "DEX"')
    assert data.evaluate("TREAT.CYCDT = date(\"2025-03-01\")")


def test_arm_condition_makes_a_cycle_not_applicable(enrol):
    dex, ctrl = enrol("S01-001", arm="DEX"), enrol("S01-002", arm="CTRL")
    for subject in (dex, ctrl):
        record(db.session, subject, "UNSCHED", "TREAT", {"CYCDT": D(2025, 2, 1)},
               actual_date=D(2025, 2, 1))
        schedule.refresh_subject(db.session, subject, D(2025, 2, 3))
    assert visits(dex)[("DEXCYC", 1)].status == "due"
    ctrl_rows = visits(ctrl)
    assert ctrl_rows[("DEXCYC", 1)].status == "not_applicable"
    assert "condition not met" in ctrl_rows[("DEXCYC", 1)].note
    assert ("DEXCYC", 2) not in ctrl_rows


def test_death_stops_follow_up(enrol):
    subject = enrol("S01-001", arm="CTRL")
    record(db.session, subject, "EOT_LOG", "EOT", {"EOTDT": D(2025, 1, 31)}, state="in_progress")
    schedule.refresh_subject(db.session, subject, D(2025, 6, 1))
    assert visits(subject)[("FU", 1)].status == "overdue"
    record(db.session, subject, "DEATH_LOG", "DEATH", {"DTHDT": D(2025, 3, 15)},
           state="in_progress")
    schedule.refresh_subject(db.session, subject, D(2025, 6, 1))
    follow_up = [v for (oid, _), v in visits(subject).items() if oid == "FU"]
    assert follow_up and {v.status for v in follow_up} == {"not_expected"}
    assert "planned after death on 2025-03-15" in follow_up[0].note


def test_study_end_parameter_stops_follow_up(app, tmp_path, make_study, make_site):
    make_study("SAMPLE", sites=("S01",))
    folder = write_study(tmp_path / "ended", study_end="2025-03-01")
    study = studies.load_folder(db.session, ACTOR, folder).study
    subject = subjects.enrol_subject(db.session, ACTOR, study, make_site("S01"), "S01-001",
                                     D(2025, 1, 6), today=D(2025, 1, 6))
    record(db.session, subject, "EOT_LOG", "EOT", {"EOTDT": D(2025, 1, 31)}, state="in_progress")
    schedule.refresh_subject(db.session, subject, D(2025, 6, 1))
    fu = visits(subject)[("FU", 1)]
    assert fu.status == "not_expected" and "planned after study end on 2025-03-01" in fu.note


def test_study_first_anchor_gives_a_study_wide_end(enrol, monkeypatch):
    first, later = enrol("S01-001", D(2024, 1, 2)), enrol("S01-002", D(2024, 2, 20))
    record(db.session, first, "RANDO", "RAND", {"RANDDT": D(2024, 1, 10)})
    record(db.session, later, "RANDO", "RAND", {"RANDDT": D(2024, 3, 1)})
    record(db.session, later, "EOT_LOG", "EOT", {"EOTDT": D(2024, 3, 20)}, state="in_progress")
    version = later.study_version
    definition = dataclasses.replace(
        studies.definition_for(version),
        study_end="coalesce(param.study_end_date, add_months(study.first.randomization, 6))")
    data = schedule.subject_schedule_data(db.session, definition, later, today=D(2024, 8, 1))
    assert data.study_end == D(2024, 7, 10)
    assert data.evaluate('study.first.randomization = date("2024-01-10")')
    monkeypatch.setitem(studies._DEFINITIONS, version.content_hash, definition)
    schedule.refresh_subject(db.session, later, D(2024, 8, 1))
    rows = visits(later)
    assert rows[("FU", 1)].planned == D(2024, 6, 20)
    assert rows[("FU", 1)].status == "missed"  # window opened before the end, never done
    assert rows[("FU", 2)].status == "not_expected"
    assert "planned after study end on 2024-07-10" in rows[("FU", 2)].note


def test_values_in_a_removed_row_are_ignored(enrol):
    subject = enrol("S01-001")
    form = record(db.session, subject, "SCREEN", "CONSENT", {"CONSDT": D(2025, 1, 8)})
    db.session.add(GroupRow(form_instance_id=form.id, group_oid="CONSENT_MAIN", row=1,
                            removed_at=utcnow(), removal_reason="entered on the wrong form"))
    db.session.flush()
    schedule.refresh_subject(db.session, subject, D(2025, 1, 10))
    assert ("RANDO", 1) not in visits(subject)


def test_schedule_rows_recompute_a_stale_schedule(enrol):
    subject = enrol("S01-001", D(2025, 1, 6))
    assert visits(subject)[("SCREEN", 1)].status == "due"
    rows = schedule.schedule_rows(db.session, subject, D(2025, 3, 1))
    assert [r.event_oid for r in rows][:1] == ["SCREEN"] and rows[0].status == "overdue"
    assert subject.schedule_computed_on == D(2025, 3, 1)


def test_expected_events_are_computed_without_storing(enrol):
    subject = enrol("S01-001", D(2025, 1, 6))
    events = schedule.expected_events(db.session, subject, D(2025, 3, 1))
    assert events[0].event_oid == "SCREEN" and events[0].status.value == "overdue"
    assert visits(subject)[("SCREEN", 1)].status == "due"


def _populate(enrol, how_many: int, start: int = 1) -> list[Subject]:
    made = []
    for n in range(start, start + how_many):
        subject = enrol(f"S01-{n:03d}", D(2025, 1, 6), arm="DEX" if n % 2 else "CTRL")
        record(db.session, subject, "SCREEN", "CONSENT", {"CONSDT": D(2025, 1, 7)})
        record(db.session, subject, "DEXCYC", "TREAT", {"CYCDT": D(2025, 2, 1),
                                                       "SALVTYPE": "AZA"},
               actual_date=D(2025, 2, 1))
        record_event(db.session, subject, "UNSCHED", repeat=1, actual_date=D(2025, 2, 9))
        made.append(subject)
    return made


def test_refresh_stale_recomputes_only_old_schedules_in_constant_statements(study, enrol):
    counts = {}
    for size, start in ((5, 1), (50, 100)):
        _populate(enrol, size, start)
        db.session.execute(update(Subject).values(schedule_computed_on=D(2025, 1, 1)))
        db.session.commit()
        with count_statements() as counted:
            schedule.refresh_stale(db.session, study, D(2025, 3, 1))
        counts[size] = counted.n
        db.session.commit()
    assert counts[5] == counts[50], counts
    assert schedule.refresh_stale(db.session, study, D(2025, 3, 1)) == 0
    assert schedule.refresh_stale(db.session, study, D(2025, 3, 2)) == 55


@pytest.mark.parametrize("value_type,text,expected", [
    (ValueType.DECIMAL, "1.50", Decimal("1.50")),
    (ValueType.INTEGER, "12", 12),
    (ValueType.TEXT, "AZA", "AZA"),
    (ValueType.MULTI, '["A","B"]', frozenset({"A", "B"})),
    (ValueType.DATE, "2025-01-02", D(2025, 1, 2)),
    (ValueType.DATE, "2025-01", None),  # a partial date has no single day
    (ValueType.DATETIME, "2025-01-02T10:00:00Z",
     dt.datetime(2025, 1, 2, 10, tzinfo=dt.UTC)),
    (ValueType.BOOLEAN, "true", True),
])
def test_values_are_typed_as_the_item_says(value_type, text, expected):
    row = StoredValue("F", "I", text, None, None, None, ())
    assert typed_value(row, value_type, "Europe/Paris") == expected
