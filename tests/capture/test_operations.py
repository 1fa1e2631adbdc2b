"""The capture service: events, the form life cycle, reasons for change, acknowledgements,
repeating rows, stale saves, and the audit rows written with every change."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from sqlalchemy import select

from ecrf.capture import operations as capture
from ecrf.capture import write as capture_write
from ecrf.capture.models import (
    CheckAcknowledgement,
    EventInstance,
    FormInstance,
    GroupRow,
    ItemValue,
    ScheduledVisit,
)
from ecrf.capture.operations import CaptureError, EventStateError, StaleFormError, Submission
from ecrf.core import audit
from ecrf.core.extensions import db
from ecrf.domain.dates import PartialDate
from tests.capture.capture_setup import (
    TODAY,
    actor_for,
    audit_rows,
    count_audit,
    count_values,
    enrol,
    load_capture_study,
)


@pytest.fixture
def study(app, make_study):
    return load_capture_study(make_study)


@pytest.fixture
def subject(study):
    return enrol(study, "S01-001")


@pytest.fixture
def crc(make_user):
    user = make_user("crc1", role="coordinator", study="CAPTURE", site="S01")
    return actor_for(user)


@pytest.fixture
def other(make_user):
    user = make_user("crc2", role="coordinator", study="CAPTURE", site="S01")
    return actor_for(user)


def vs(**values):
    base = {"VSDT": "2025-05-02", "SEX": "M", "WEIGHT": "72.5", "HEIGHT": "180"}
    base.update(values)
    return {("VS", 1, k): v for k, v in base.items() if v is not None}


def save(actor, subject, form="VITALS", values=None, *, base=None, complete=False, event="SCREEN",
         repeat=1, **extra):
    result = capture.save_form(db.session, actor, subject, event, repeat, form,
                               Submission(values=values if values is not None else vs(), **extra),
                               base_version=base, complete=complete, today=TODAY)
    db.session.commit()
    return result


def started(actor, subject, event="SCREEN", repeat=1, day=dt.date(2025, 5, 2)):
    instance = capture.open_event(db.session, actor, subject, event, repeat, day, today=TODAY)
    db.session.commit()
    return instance


def stored(subject, item, form="VITALS", group="VS", row=1) -> ItemValue | None:
    return db.session.scalar(select(ItemValue).where(
        ItemValue.subject_id == subject.id, ItemValue.form_oid == form,
        ItemValue.group_oid == group, ItemValue.row == row, ItemValue.item_oid == item))


def texts(messages) -> list[str]:
    return [str(m) for m in messages]


# --- events ---------------------------------------------------------------------------------


def test_starting_an_event_is_audited_and_refreshes_the_schedule(subject, crc):
    instance = started(crc, subject)
    assert (instance.state, instance.actual_date) == ("in_progress", dt.date(2025, 5, 2))
    [row] = audit_rows(action="event.started")
    assert row.path == "CAPTURE/S01-001/SCREEN[1]" and row.new_value == "2025-05-02"
    assert (row.category, row.role, row.site_code, row.subject_key) == (
        "clinical", "coordinator", "S01", "S01-001")
    assert row.study_version == "v1 (protocol 1.0)"
    visit = db.session.scalar(select(ScheduledVisit).where(
        ScheduledVisit.subject_id == subject.id, ScheduledVisit.event_oid == "SCREEN"))
    assert visit.actual_date == dt.date(2025, 5, 2)


def test_event_dates_are_checked_and_corrections_need_a_reason(subject, crc):
    with pytest.raises(CaptureError, match="is in the future"):
        capture.open_event(db.session, crc, subject, "SCREEN", 1, dt.date(2025, 7, 1),
                           today=TODAY)
    with pytest.raises(CaptureError, match="Give the date"):
        capture.open_event(db.session, crc, subject, "SCREEN", 1, None, today=TODAY)
    db.session.rollback()
    started(crc, subject)
    with pytest.raises(CaptureError, match="reason for changing the date"):
        capture.open_event(db.session, crc, subject, "SCREEN", 1, dt.date(2025, 5, 3),
                           today=TODAY)
    db.session.rollback()
    capture.open_event(db.session, crc, subject, "SCREEN", 1, dt.date(2025, 5, 3),
                       reason="typo", today=TODAY)
    db.session.commit()
    [row] = audit_rows(action="event.date_changed")
    assert (row.old_value, row.new_value, row.reason) == ("2025-05-02", "2025-05-03", "typo")


def test_unknown_events_and_occurrences_are_not_found(subject, crc):
    with pytest.raises(capture.NotFoundError, match="no event NOPE"):
        capture.open_event(db.session, crc, subject, "NOPE", 1, TODAY, today=TODAY)
    with pytest.raises(capture.NotFoundError, match="no occurrence 2"):
        capture.open_event(db.session, crc, subject, "SCREEN", 2, TODAY, today=TODAY)
    instance = capture.open_event(db.session, crc, subject, "AE_LOG", 1, None, today=TODAY)
    assert instance.actual_date is None  # a log needs no date


def test_declaring_not_done_and_reopening(subject, crc):
    with pytest.raises(CaptureError, match="reason why"):
        capture.declare_not_done(db.session, crc, subject, "CYCLE", 1, " ")
    instance = capture.declare_not_done(db.session, crc, subject, "CYCLE", 1, "patient refused")
    db.session.commit()
    assert (instance.state, instance.not_done_reason) == ("not_done", "patient refused")
    with pytest.raises(EventStateError, match="declared not done"):
        save(crc, subject, "DOSE", {("DOSE_MAIN", 1, "DOSE"): "10"}, event="CYCLE")
    db.session.rollback()
    with pytest.raises(CaptureError, match="reason for reopening"):
        capture.open_event(db.session, crc, subject, "CYCLE", 1, TODAY, today=TODAY)
    db.session.rollback()
    capture.open_event(db.session, crc, subject, "CYCLE", 1, TODAY, reason="came back",
                       today=TODAY)
    db.session.commit()
    assert [r.action for r in audit_rows(path="CAPTURE/S01-001/CYCLE[1]")] == [
        "event.not_done", "event.reopened", "event.date_changed"]


def test_an_event_with_data_cannot_be_declared_not_done(subject, crc):
    started(crc, subject)
    save(crc, subject)
    with pytest.raises(EventStateError, match="already has data"):
        capture.declare_not_done(db.session, crc, subject, "SCREEN", 1, "oops")


def test_a_form_of_an_event_not_started_cannot_be_saved(subject, crc):
    with pytest.raises(EventStateError, match="has not been started"):
        save(crc, subject)
    with pytest.raises(capture.NotFoundError, match="has no form DOSE"):
        save(crc, subject, "DOSE", {})


# --- saving ---------------------------------------------------------------------------------


def test_first_save_stores_typed_values_and_audits_each_one(subject, crc):
    started(crc, subject)
    result = save(crc, subject, values=vs(SAMPLEDTM="2025-05-02T14:05", BRTHDT="1970-03",
                                          RACE=["ASIAN", "WHITE"], NEUT="0.45"))
    assert result.saved and result.status == "in_progress" and result.version == 1
    fi = result.form_instance
    assert fi.study_version.number == 1
    weight = stored(subject, "WEIGHT")
    assert (weight.value, weight.value_number) == ("72.5", Decimal("72.5"))
    assert stored(subject, "VSDT").value_date == dt.date(2025, 5, 2)
    sample = stored(subject, "SAMPLEDTM")
    assert sample.value == "2025-05-02T14:05+02:00"  # site S01 is in Europe/Paris
    assert sample.value_datetime == dt.datetime(2025, 5, 2, 12, 5, tzinfo=dt.UTC)
    assert stored(subject, "BRTHDT").value == "1970-03"
    assert stored(subject, "BRTHDT").value_date is None  # never imputed
    assert stored(subject, "RACE").value == '["WHITE","ASIAN"]'
    neut = stored(subject, "NEUT")
    assert (neut.grade, neut.grade_version) == (4, "CTCAE v5.0")
    assert stored(subject, "BMI").value == "22.4"
    rows = audit_rows(action="item.entered")
    weight_row = next(r for r in rows if r.path.endswith("/WEIGHT"))
    assert weight_row.path == "CAPTURE/S01-001/SCREEN[1]/VITALS/VS[1]/WEIGHT"
    assert (weight_row.old_value, weight_row.new_value, weight_row.reason) == (None, "72.5", None)
    assert (weight_row.role, weight_row.site_code, weight_row.study_version) == (
        "coordinator", "S01", "v1 (protocol 1.0)")
    assert weight_row.username == "crc1"
    [status] = audit_rows(action="form.status")
    assert (status.old_value, status.new_value) == (None, "in_progress")


def test_refused_values_write_nothing(subject, crc):
    started(crc, subject)
    before = (count_values(), count_audit())
    result = save(crc, subject, values=vs(WEIGHT="12", HEIGHT="abc"))
    assert not result.saved
    assert "impossible" in texts(result.errors[("VS", 1, "WEIGHT")])[0]
    assert "whole number" in texts(result.errors[("VS", 1, "HEIGHT")])[0]
    assert (count_values(), count_audit()) == before
    assert db.session.scalar(select(FormInstance)) is None


def test_completion_needs_required_items_and_no_failing_error_check(subject, crc):
    started(crc, subject)
    result = save(crc, subject, values=vs(HEIGHT=None), complete=True)
    assert not result.saved and result.missing == [("VS", 1, "HEIGHT")]
    assert "1 required item(s) are blank: Height." in texts(result.blockers)
    assert db.session.scalar(select(FormInstance)) is None
    result = save(crc, subject, values=vs(HEIGHT=None))  # a draft may be incomplete
    assert result.saved and result.status == "in_progress"
    result = save(crc, subject, values=vs(BRTHDT="2012-01-01"), base=1, complete=True)
    assert not result.saved
    assert [i.id for i in result.check_errors] == ["VS_AGE"]
    result = save(crc, subject, values=vs(BRTHDT="1970-01-01"), base=1, complete=True)
    assert result.saved and result.status == "complete" and result.version == 2
    assert [(r.old_value, r.new_value) for r in audit_rows(action="form.status")] == [
        (None, "in_progress"), ("in_progress", "complete")]


def test_a_change_to_a_saved_value_needs_a_reason(subject, crc):
    started(crc, subject)
    save(crc, subject)
    before = count_audit()
    result = save(crc, subject, values=vs(WEIGHT="74.0"), base=1)
    assert not result.saved and result.reasons_needed == [("VS", 1, "WEIGHT")]
    assert texts(result.errors[("VS", 1, "WEIGHT")]) == [
        "Give a reason for changing Weight (saved value: 72.5)."]
    assert count_audit() == before and stored(subject, "WEIGHT").value == "72.5"
    result = save(crc, subject, values=vs(WEIGHT="74.0", INITIALS="ABC"), base=1,
                  reasons={("VS", 1, "WEIGHT"): "transcription error"})
    assert result.saved and result.version == 2
    [changed] = audit_rows(action="item.changed",
                           path="CAPTURE/S01-001/SCREEN[1]/VITALS/VS[1]/WEIGHT")
    assert (changed.old_value, changed.new_value, changed.reason) == (
        "72.5", "74.0", "transcription error")
    initials = next(r for r in audit_rows(action="item.entered") if r.path.endswith("INITIALS"))
    assert initials.reason is None  # a first entry needs no reason
    bmi = [r for r in audit_rows(action="item.changed") if r.path.endswith("/BMI")]
    assert bmi[0].reason.startswith("recalculated")


def test_a_form_loaded_for_a_save_serves_that_save_only_in_its_own_transaction(subject, crc):
    started(crc, subject)
    save(crc, subject)
    capture.form_definition(db.session, subject, "SCREEN", 1, "VITALS", for_save=True)
    db.session.rollback()  # the form loaded for the save is gone with its transaction
    assert save(crc, subject, values=vs(WEIGHT="74.0"), base=1,
                reasons={("VS", 1, "WEIGHT"): "re-weighed"}).saved
    # A form loaded for its save still refuses a save based on an older version.
    capture.form_definition(db.session, subject, "SCREEN", 1, "VITALS", for_save=True)
    with pytest.raises(StaleFormError):
        save(crc, subject, values=vs(WEIGHT="75.0"), base=1,
             reasons={("VS", 1, "WEIGHT"): "re-weighed"})
    db.session.rollback()
    definition, form = capture.form_definition(db.session, subject, "SCREEN", 1, "VITALS",
                                               for_save=True)
    result = save(crc, subject, values=vs(WEIGHT="75.0"), base=2,
                  reasons={("VS", 1, "WEIGHT"): "re-weighed"})
    assert result.saved and result.version == 3 and form.oid == "VITALS"
    assert stored(subject, "WEIGHT").value == "75.0"


def test_clearing_a_saved_value_is_a_change_with_a_reason(subject, crc):
    started(crc, subject)
    save(crc, subject, values=vs(INITIALS="ABC"))
    result = save(crc, subject, values=vs(), base=1,
                  reasons={("VS", 1, "INITIALS"): "not in the source"})
    assert result.saved
    [cleared] = audit_rows(action="item.cleared")
    assert (cleared.old_value, cleared.new_value, cleared.reason) == (
        "ABC", None, "not in the source")
    assert stored(subject, "INITIALS").value is None


def test_saving_nothing_new_writes_nothing(subject, crc):
    started(crc, subject)
    save(crc, subject)
    before = count_audit()
    result = save(crc, subject, base=1)
    assert result.saved and result.version == 1 and count_audit() == before


def test_partial_submissions_keep_what_they_do_not_mention(subject, crc):
    started(crc, subject)
    save(crc, subject, values=vs(INITIALS="ABC"))
    result = save(crc, subject, values={("VS", 1, "NOTES"): "ok"}, base=1, partial=True)
    assert result.saved
    assert stored(subject, "INITIALS").value == "ABC" and stored(subject, "NOTES").value == "ok"


def test_a_partial_submission_clears_what_it_hides(subject, crc):
    started(crc, subject)
    save(crc, subject, values=vs(SEX="F", PREGNANT="N"))
    result = save(crc, subject, values={("VS", 1, "SEX"): "M"}, base=1, partial=True,
                  reasons={("VS", 1, "SEX"): "wrong box ticked"})
    assert result.saved, result.errors
    assert stored(subject, "SEX").value == "M" and stored(subject, "PREGNANT").value is None


def test_editing_a_complete_form_keeps_it_complete_only_if_it_qualifies(subject, crc):
    started(crc, subject)
    assert save(crc, subject, complete=True).status == "complete"
    result = save(crc, subject, values=vs(INITIALS="XY"), base=1)
    assert result.saved and result.status == "complete"
    result = save(crc, subject, values=vs(INITIALS="XY", HEIGHT=None), base=2,
                  reasons={("VS", 1, "HEIGHT"): "wrong patient's height"})
    assert result.saved and result.status == "in_progress"
    last = audit_rows(action="form.status")[-1]
    assert (last.old_value, last.new_value) == ("complete", "in_progress")


def test_warnings_must_be_acknowledged_to_complete(subject, crc):
    started(crc, subject)
    heavy = vs(WEIGHT="160.0")
    result = save(crc, subject, values=heavy, complete=True)
    assert not result.saved
    assert {i.id for i in result.unacknowledged} == {"WEIGHT.soft_range", "VS_BMI"}
    result = save(crc, subject, values=heavy, complete=True, acknowledgements={
        ("WEIGHT.soft_range", 0): "weighed twice", ("VS_BMI", 0): "confirmed"})
    assert result.saved and result.status == "complete"
    acks = {(a.check_oid, a.row): a.justification
            for a in db.session.scalars(select(CheckAcknowledgement))}
    assert acks == {("WEIGHT.soft_range", 0): "weighed twice", ("VS_BMI", 0): "confirmed"}
    assert {r.new_value for r in audit_rows(action="warning.acknowledged")} == {
        "weighed twice", "confirmed"}
    # A later change of the value needs a new acknowledgement.
    result = save(crc, subject, values=vs(WEIGHT="165.0"), base=1, complete=True,
                  reasons={("VS", 1, "WEIGHT"): "re-weighed"})
    assert not result.saved
    assert {i.id for i in result.unacknowledged} == {"WEIGHT.soft_range", "VS_BMI"}


def test_a_value_posted_for_a_hidden_item_is_refused(subject, crc):
    started(crc, subject)
    result = save(crc, subject, values=vs(SEX="M", PREGNANT="N"))
    assert not result.saved
    assert "only applies when Sex is Female" in texts(result.errors[("VS", 1, "PREGNANT")])[0]
    assert stored(subject, "PREGNANT") is None


def test_a_saved_value_of_an_item_that_becomes_hidden_is_cleared(subject, crc):
    started(crc, subject)
    save(crc, subject, values=vs(SEX="F", PREGNANT="N"))
    result = save(crc, subject, values=vs(SEX="M"), base=1,
                  reasons={("VS", 1, "SEX"): "entered for the wrong subject"})
    assert result.saved
    assert stored(subject, "PREGNANT").value is None
    [cleared] = audit_rows(action="item.cleared")
    assert cleared.path.endswith("/PREGNANT") and "only asked when SEX" in cleared.reason


def test_required_if(subject, crc):
    started(crc, subject)
    result = save(crc, subject, values=vs(SMOKER="Y"), complete=True)
    assert ("VS", 1, "PACKYRS") in result.missing
    assert save(crc, subject, values=vs(SMOKER="Y", PACKYRS="20"), complete=True).saved


# --- repeating groups -----------------------------------------------------------------------


def ae(*rows):
    values = {}
    for number, term, start, *rest in rows:
        values[("AE_LINE", number, "AETERM")] = term
        values[("AE_LINE", number, "AESTDTC")] = start
        for name, value in zip(("AEENDTC", "AETOXGR", "AESER"), rest, strict=False):
            values[("AE_LINE", number, name)] = value
    return values


def test_rows_checks_per_row_and_removal_as_a_status(subject, crc):
    started(crc, subject, "AE_LOG")
    result = save(crc, subject, "AE", ae((1, "Nausea", "2025-05"), (2, "Fever", "2025-05-10",
                                                                  "2025-05-01")),
                  event="AE_LOG")
    assert result.saved
    assert [(i.id, i.row) for i in result.check_errors] == [("AE_END_AFTER_START", 2)]
    rows = db.session.scalars(select(GroupRow).order_by(GroupRow.row)).all()
    assert [r.row for r in rows] == [1, 2]
    # Removing a saved row needs a reason; without one nothing is written.
    result = save(crc, subject, "AE", ae((1, "Nausea", "2025-05")), event="AE_LOG", base=1,
                  removed_rows={("AE_LINE", 2): ""})
    assert not result.saved
    assert "reason for removing row 2" in texts(result.errors[("AE_LINE", 2, "")])[0]
    result = save(crc, subject, "AE", ae((1, "Nausea", "2025-05")), event="AE_LOG", base=1,
                  removed_rows={("AE_LINE", 2): "duplicate of another report"})
    assert result.saved and not result.check_errors
    row2 = db.session.scalar(select(GroupRow).where(GroupRow.row == 2))
    assert row2.removed_at is not None and row2.removal_reason == "duplicate of another report"
    assert stored(subject, "AETERM", "AE", "AE_LINE", 2).value == "Fever"  # kept, not deleted
    [removed] = audit_rows(action="row.removed")
    assert removed.path == "CAPTURE/S01-001/AE_LOG[1]/AE/AE_LINE[2]"
    assert removed.reason == "duplicate of another report"
    # A removed row cannot be changed; a new row takes a new number.
    result = save(crc, subject, "AE", ae((2, "Fever", "2025-05-10")), event="AE_LOG", base=2)
    assert not result.saved and "was removed" in str(result.form_errors[0])
    opened = capture.load_form(db.session, subject, "AE_LOG", 1, "AE", today=TODAY)
    assert opened.rows == {"AE_LINE": (1,)} and opened.next_row("AE_LINE") == 3


def test_an_added_row_left_blank_is_ignored(subject, crc):
    started(crc, subject, "AE_LOG")
    values = ae((1, "Nausea", "2025-05"))
    values[("AE_LINE", 2, "AETERM")] = ""
    result = save(crc, subject, "AE", values, event="AE_LOG", rows={"AE_LINE": [1, 2]})
    assert result.saved
    assert [r.row for r in db.session.scalars(select(GroupRow))] == [1]


def test_row_warnings_are_acknowledged_per_row(subject, crc):
    started(crc, subject, "AE_LOG")
    values = ae((1, "Sepsis", "2025-05", None, "4", "N"), (2, "Rash", "2025-05", None, "1", "N"))
    result = save(crc, subject, "AE", values, event="AE_LOG", complete=True)
    assert [(i.id, i.row) for i in result.unacknowledged] == [("AE_SEVERE_SERIOUS", 1)]
    result = save(crc, subject, "AE", values, event="AE_LOG", complete=True,
                  acknowledgements={("AE_SEVERE_SERIOUS", 1): "not serious per investigator"})
    assert result.saved and result.status == "complete"


# --- concurrency and transactions -----------------------------------------------------------


def test_a_stale_save_is_refused_naming_what_changed(subject, crc, other):
    started(crc, subject)
    save(crc, subject)
    first = save(crc, subject, values=vs(WEIGHT="73.0"), base=1,
                 reasons={("VS", 1, "WEIGHT"): "re-weighed"})
    assert first.saved and first.version == 2
    with pytest.raises(StaleFormError) as caught:
        save(other, subject, values=vs(HEIGHT="181"), base=1,
             reasons={("VS", 1, "HEIGHT"): "re-measured"})
    error = caught.value
    assert error.current_version == 2
    assert "saved by crc1" in str(error) and "WEIGHT" in str(error) and "BMI" in str(error)
    assert {c.item for c in error.changes} >= {"WEIGHT", "BMI"}
    db.session.rollback()
    assert stored(subject, "HEIGHT").value == "180"


def test_a_form_started_meanwhile_is_a_stale_save(subject, crc, other):
    started(crc, subject)
    save(crc, subject)
    with pytest.raises(StaleFormError, match="saved by crc1"):
        save(other, subject, values=vs(), base=None)


def test_a_failing_save_leaves_neither_data_nor_audit_rows(subject, crc, monkeypatch):
    started(crc, subject)
    before = (count_values(), count_audit())

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(capture_write, "_schedule_reads", boom)
    with pytest.raises(RuntimeError):
        capture.save_form(db.session, crc, subject, "SCREEN", 1, "VITALS",
                          Submission(values=vs()), base_version=None, complete=False,
                          today=TODAY)
    db.session.rollback()
    assert (count_values(), count_audit()) == before
    assert db.session.scalar(select(FormInstance)) is None


# --- event follow-up, reading -----------------------------------------------------------------


def test_the_date_item_dates_the_event_and_complete_forms_close_it(subject, crc):
    started(crc, subject)
    consent = {("CONSENT_MAIN", 1, "CONSDT"): "2025-05-01", ("CONSENT_MAIN", 1, "SIGNED"): "Y"}
    save(crc, subject, "CONSENT", consent, complete=True)
    event = db.session.scalar(select(EventInstance).where(EventInstance.event_oid == "SCREEN"))
    assert event.actual_date == dt.date(2025, 5, 1) and event.state == "in_progress"
    # The consent date anchors the cycles: the stored schedule follows it.
    cycle = db.session.scalar(select(ScheduledVisit).where(
        ScheduledVisit.subject_id == subject.id, ScheduledVisit.event_oid == "CYCLE",
        ScheduledVisit.repeat == 1))
    assert cycle.planned == dt.date(2025, 5, 8)
    save(crc, subject, complete=True)
    db.session.refresh(event)
    assert event.state == "done"
    assert [r.new_value for r in audit_rows(action="event.status")] == ["done"]
    instance, forms = capture.event_forms(db.session, subject, "SCREEN", 1)
    assert [(f.form.oid, f.status) for f in forms] == [("CONSENT", "complete"),
                                                      ("VITALS", "complete")]


def test_checks_read_other_forms_of_the_event(subject, crc):
    started(crc, subject)
    save(crc, subject, "CONSENT", {("CONSENT_MAIN", 1, "CONSDT"): "2025-05-10",
                                   ("CONSENT_MAIN", 1, "SIGNED"): "Y"})
    result = save(crc, subject, values=vs(VSDT="2025-05-02"))
    assert [i.id for i in result.check_errors] == ["VS_AFTER_CONSENT"]


def test_snapshot_history_and_subject_trail(subject, crc):
    started(crc, subject)
    save(crc, subject, values=vs(BRTHDT="1970-03"))
    save(crc, subject, values=vs(BRTHDT="1970-03", WEIGHT="73.0"), base=1,
         reasons={("VS", 1, "WEIGHT"): "scale recalibrated"})
    fi = db.session.scalar(select(FormInstance))
    snap = capture.form_snapshot(db.session, fi)
    item = snap["groups"]["VS"][0]["items"]
    assert item["WEIGHT"]["typed"] == Decimal("73.0")
    assert item["BRTHDT"]["typed"] == PartialDate(1970, 3)
    assert (snap["status"], snap["version"], snap["study_version"]) == (
        "in_progress", 2, "v1 (protocol 1.0)")
    history = capture.item_history(db.session, subject, "SCREEN", 1, "VITALS", "VS", 1, "WEIGHT")
    assert [(h.old_value, h.new_value, h.reason) for h in history] == [
        (None, "72.5", None), ("72.5", "73.0", "scale recalibrated")]
    trail = capture.subject_audit(db.session, subject, action="item.changed")
    assert {r.path.rsplit("/", 1)[-1] for r in trail} == {"WEIGHT", "BMI"}
    assert capture.subject_audit(db.session, subject, form_oid="CONSENT") == []
    assert capture.subject_audit(db.session, subject, username="nobody") == []
    everything = capture.subject_audit(db.session, subject)
    assert everything[0].action == "subject.enrolled"
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert capture.subject_audit(db.session, subject, since=future) == []
    lines = list(audit.audit_csv(everything))
    parsed = list(csv.reader(io.StringIO("".join(lines))))
    assert parsed[0][:4] == ["seq", "occurred_at_utc", "category", "action"]
    assert len(parsed) == len(everything) + 1


def test_csv_cells_that_look_like_formulas_stay_text(subject, crc):
    started(crc, subject)
    save(crc, subject, values=vs(NOTES="=HYPERLINK(\"http://x\")"))
    rows = capture.subject_audit(db.session, subject, action="item.entered")
    text = "".join(audit.audit_csv(rows))
    assert "'=HYPERLINK" in text
