"""The safety services through data capture: lab grading on save (version, basis,
baseline), AE prompts and their decisions, AE consistency findings, SAE reports and their
24-hour clock, SUSAR deadlines, notifications and DLT candidates and evaluability."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from ecrf.capture.models import ItemValue
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.core.signals import FormChange, ItemChange
from ecrf.jobs import Job
from ecrf.jobs import runner as jobs
from ecrf.safety import handlers as safety_hooks
from ecrf.safety import notify
from ecrf.safety import operations as safety
from ecrf.safety.models import AeGradePrompt, DltAssessment, NotificationLog, SaeReport
from ecrf.safety.support import ae_log
from ecrf.studies.store import definition_for
from tests.safety.safety_setup import (
    ENROLLED,
    actor_for,
    ae_row,
    audit_actions,
    counts_row,
    enrol,
    load_safety_study,
    row_values,
    safety_variant,
    save,
    stored,
)

UTC = dt.UTC
D1 = dt.date(2025, 6, 1)


@pytest.fixture
def study(app, make_study):
    return load_safety_study(make_study)


@pytest.fixture
def inv(make_user, study):
    return actor_for(make_user("inv1", role="investigator", study="SAFETY", site="S01"))


@pytest.fixture
def subject(study, inv):
    found = enrol(study, "S01-001")
    save(inv, found, "CONSENT", {("CONSENT_MAIN", 1, "CONSDT"): "2025-05-20"})
    save(inv, found, "CHEMO", {("CHEMO_MAIN", 1, "CHEMOD1"): D1.isoformat()}, day=D1)
    return found


def day(n: int) -> dt.date:
    return D1 + dt.timedelta(days=n - 1)


def counts(inv, subject, rows: dict[int, dict]):
    values = {}
    for row, items in rows.items():
        values.update(counts_row(row, day(items.pop("day", row)), **items))
    return save(inv, subject, "COUNTS", values, day=D1)


def prompts(subject) -> list[AeGradePrompt]:
    return list(db.session.scalars(select(AeGradePrompt).where(
        AeGradePrompt.subject_id == subject.id).order_by(AeGradePrompt.id)))


# --- grading on save ------------------------------------------------------------------------


def test_grading_on_save_stores_grade_version_and_basis(inv, subject):
    counts(inv, subject, {1: {"ANC": "0.40", "PLT": "80", "HGB": "95", "WBC": "2.50"}})
    anc = stored(subject, "COUNTS", "ANC")
    assert (anc.grade, anc.grade_version) == (4, "CTCAE v5.0")
    assert anc.grade_basis == "absolute: 0.4 x10^9/L < 0.5"
    hgb = stored(subject, "COUNTS", "HGB")
    assert hgb.grade == 2 and "< 100" in hgb.grade_basis
    # Grade 1 of a decreased term needs the lab's LLN, which this form does not give.
    plt = stored(subject, "COUNTS", "PLT")
    assert plt.grade is None and plt.grade_version == "CTCAE v5.0"
    assert plt.grade_basis.startswith("not gradable: 80 x10^9/L is not below 75")
    assert stored(subject, "COUNTS", "WBC").grade == 2


def test_grade_edges_on_save_are_exact(inv, subject):
    counts(inv, subject, {1: {"ANC": "0.50"}, 2: {"ANC": "0.49"}, 3: {"ANC": "1.00"}})
    assert [stored(subject, "COUNTS", "ANC", r).grade for r in (1, 2, 3)] == [3, 4, 2]


def test_lln_from_the_definition_grades_grade_one(inv, subject):
    save(inv, subject, "LAB", {("LAB_MAIN", 1, "LBDT"): "2025-05-21",
                               ("LAB_MAIN", 1, "NEUT"): "1.60"})
    neut = stored(subject, "LAB", "NEUT")
    assert neut.grade == 1 and "LLN 1.8" in neut.grade_basis


def lab(inv, subject, on: dt.date, event="SCREEN", repeat=1, **items):
    values = {("LAB_MAIN", 1, "LBDT"): on.isoformat()}
    values.update({("LAB_MAIN", 1, k): v for k, v in items.items()})
    return save(inv, subject, "LAB", values, event=event, repeat=repeat, day=on,
                reason="corrected against the lab report")


def test_the_first_value_is_the_baseline_of_later_values(inv, subject):
    lab(inv, subject, dt.date(2025, 5, 21), ALT="100", ALTULN="40")
    baseline = stored(subject, "LAB", "ALT")
    # The baseline itself is graded on the ULN alone: 2.5 x ULN.
    assert baseline.grade == 1 and baseline.grade_basis.startswith("ULN-based")
    lab(inv, subject, dt.date(2025, 6, 15), event="UNSCHED", ALT="160", ALTULN="40")
    later = db.session.scalar(select(ItemValue).where(
        ItemValue.subject_id == subject.id, ItemValue.item_oid == "ALT",
        ItemValue.id != baseline.id))
    # 4 x ULN would be grade 2; the baseline is abnormal (> ULN), so 1.6 x BL: grade 1.
    assert later.grade == 1 and later.grade_basis.startswith("baseline-based: 1.6 x BL")
    # Correcting the baseline to a normal value regrades the later value (audited).
    lab(inv, subject, dt.date(2025, 5, 21), ALT="30", ALTULN="40")
    db.session.refresh(later)
    assert later.grade == 2 and later.grade_basis.startswith("ULN-based: 4 x ULN")
    graded = [a for a in audit_actions(subject, "lab.graded") if a.path.endswith("/ALT")]
    assert graded[-1].path.startswith("SAFETY/S01-001/UNSCHED[1]/LAB")
    assert graded[-1].old_value.startswith("grade 1") and graded[-1].new_value.startswith(
        "grade 2")


def test_creatinine_takes_the_worse_of_uln_and_baseline(inv, subject):
    lab(inv, subject, dt.date(2025, 5, 21), CREAT="50", CREATULN="100")
    lab(inv, subject, dt.date(2025, 6, 20), event="UNSCHED", CREAT="160", CREATULN="100")
    values = db.session.scalars(select(ItemValue).where(
        ItemValue.subject_id == subject.id, ItemValue.item_oid == "CREAT")
        .order_by(ItemValue.id)).all()
    assert [v.grade for v in values] == [0, 3]
    assert "grade 2" in values[1].grade_basis and "grade 3" in values[1].grade_basis


# --- AE prompts ---------------------------------------------------------------------------------


def test_prompt_at_the_threshold_and_not_below(inv, subject):
    counts(inv, subject, {1: {"ANC": "1.20", "HGB": "85"}})
    assert prompts(subject) == []  # grades 2 and 2: below the study threshold 3
    counts(inv, subject, {2: {"HGB": "79"}})
    [prompt] = prompts(subject)
    assert (prompt.term, prompt.grade, prompt.status) == ("Anemia", 3, "open")
    assert prompt.first_date == day(2) and prompt.value == "79"
    created = audit_actions(subject, "ae_prompt.created")
    assert len(created) == 1 and "graded 3" in created[0].reason


def test_a_baseline_value_raises_no_prompt(inv, subject):
    # Screening on the enrolment day: a cytopenia there is medical history, not an AE.
    lab(inv, subject, ENROLLED, NEUT="0.30")
    assert stored(subject, "LAB", "NEUT").grade == 4
    assert prompts(subject) == []
    lab(inv, subject, ENROLLED + dt.timedelta(days=20), event="UNSCHED", NEUT="0.30")
    [prompt] = prompts(subject)
    assert prompt.first_date == ENROLLED + dt.timedelta(days=20)


def test_an_open_prompt_takes_the_worst_value_of_its_episode(inv, subject):
    counts(inv, subject, {5: {"ANC": "0.80"}})
    counts(inv, subject, {6: {"ANC": "0.30"}, 7: {"ANC": "0.60"}})
    [prompt] = prompts(subject)
    assert (prompt.grade, prompt.value) == (4, "0.30")
    assert (prompt.first_date, prompt.last_date) == (day(5), day(7))


def test_decline_records_the_reason_and_is_audited(inv, subject):
    counts(inv, subject, {3: {"ANC": "0.20"}})
    [prompt] = prompts(subject)
    with pytest.raises(safety.SafetyError, match="reason"):
        safety.decline_prompt(db.session, inv, prompt, "  ")
    safety.decline_prompt(db.session, inv, prompt, "Expected nadir after cytarabine")
    db.session.commit()
    assert (prompt.status, prompt.reason, prompt.decided_by_id) == (
        "declined", "Expected nadir after cytarabine", inv.user_id)
    [row] = audit_actions(subject, "ae_prompt.declined")
    assert row.reason == "Expected nadir after cytarabine" and row.username == "inv1"
    with pytest.raises(safety.SafetyError, match="already declined"):
        safety.accept_prompt(db.session, inv, prompt)
    # The declined episode goes on: no new prompt for the next days of it.
    counts(inv, subject, {4: {"ANC": "0.10"}})
    assert len(prompts(subject)) == 1


def test_accept_records_a_prefilled_ae_row(inv, subject):
    counts(inv, subject, {8: {"HGB": "70"}})
    [prompt] = prompts(subject)
    safety.accept_prompt(db.session, inv, prompt, today=dt.date(2025, 8, 31))
    db.session.commit()
    assert prompt.status == "accepted" and prompt.ae_row == 1
    assert stored(subject, "AE", "AETERM").value == "Anemia"
    assert stored(subject, "AE", "AETOXGR").value == "3"
    assert stored(subject, "AE", "AESTDTC").value == day(8).isoformat()
    assert audit_actions(subject, "ae_prompt.accepted")[0].reason == "recorded as AE row 1"
    # Covered while the AE is ongoing at no higher grade; a worse value prompts again.
    counts(inv, subject, {9: {"HGB": "72"}})
    assert len(prompts(subject)) == 1


def test_accept_can_link_an_existing_row(inv, subject):
    save(inv, subject, "AE", ae_row(1, AETERM="Neutrophil count decreased",
                                    AESTDTC="2025-06-05", AETOXGR="4", AESER="N"))
    counts(inv, subject, {5: {"ANC": "0.10"}})
    [prompt] = prompts(subject)
    with pytest.raises(safety.SafetyError, match="no AE row 7"):
        safety.accept_prompt(db.session, inv, prompt, link_row=7)
    safety.accept_prompt(db.session, inv, prompt, link_row=1)
    assert (prompt.status, prompt.ae_row, prompt.reason) == ("accepted", 1,
                                                             "linked to AE row 1")


def test_a_value_corrected_below_the_threshold_withdraws_its_prompt(inv, subject):
    counts(inv, subject, {2: {"ANC": "0.20"}})
    [prompt] = prompts(subject)
    save(inv, subject, "COUNTS", {("CNT_DAY", 2, "ANC"): "2.00"},
         reasons={("CNT_DAY", 2, "ANC"): "transcription error"})
    db.session.refresh(prompt)
    assert prompt.status == "withdrawn" and "grade" in prompt.reason


def test_the_reactions_are_idempotent(inv, subject):
    result = counts(inv, subject, {1: {"ANC": "0.20"}})
    before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    change = FormChange(db.session, inv, subject, "HEMOBS", 1, "COUNTS", result.form_instance,
                        tuple(ItemChange(g, r, i, None, None) for g, r, i in result.changed))
    safety_hooks.react(change)
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == before
    assert len(prompts(subject)) == 1


# --- AE consistency -----------------------------------------------------------------------------


def test_consistency_findings_are_audited_and_resolved(inv, subject):
    save(inv, subject, "AE", ae_row(1, AETERM="Pneumonia", AESTDTC="2025-06-10", AETOXGR="3",
                                    AESER="Y", AEENDTC="2025-06-08",
                                    AESAWDTC="2025-06-10 09:00"))
    [finding] = audit_actions(subject, "ae.findings")
    assert "serious is yes but no seriousness criterion is ticked" in finding.new_value
    assert "resolution is before onset" in finding.new_value
    assert finding.path == "SAFETY/S01-001/AE_LOG[1]/AE/AE_LINE[1]"
    save(inv, subject, "AE", ae_row(1, AESHOSP="Y", AEENDTC="2025-06-20"),
         reasons={("AE_LINE", 1, "AEENDTC"): "typo"})
    [resolved] = audit_actions(subject, "ae.findings_resolved")
    assert resolved.old_value == finding.new_value and resolved.new_value is None


def test_grade_five_and_onset_before_consent(inv, subject):
    save(inv, subject, "AE", ae_row(1, AETERM="Sepsis", AESTDTC="2025-05-01", AETOXGR="5",
                                    AESER="Y", AESDTH="Y", AEOUT="RECOVERED/RESOLVED",
                                    AESAWDTC="2025-06-10 09:00"))
    overview = safety.subject_safety(db.session, subject)
    codes = {f.code for f in overview.rows[0].findings}
    assert {"grade5_not_fatal", "death_date_missing", "onset_before_consent"} <= codes


# --- SAE reports and clocks ---------------------------------------------------------------------


def sae(inv, subject, row=1, **items):
    base = dict(AETERM="Pneumonia", AESTDTC="2025-06-10", AETOXGR="3", AESER="Y",
                AESHOSP="Y", AESAWDTC="2025-06-10 08:00", AERELEXO="unrelated",
                AERELCHM="probable", AEEXPECT="EXPECTED")
    base.update(items)
    save(inv, subject, "AE", ae_row(row, **{k: v for k, v in base.items() if v is not None}))
    return db.session.scalar(select(SaeReport).where(SaeReport.subject_id == subject.id,
                                                     SaeReport.row == row))


def test_a_serious_row_opens_a_report_with_its_awareness(inv, subject):
    report = sae(inv, subject)
    # 08:00 in Paris (CEST) is 06:00 UTC; the clock runs 24 hours from it.
    assert report.awareness_at == dt.datetime(2025, 6, 10, 6, 0, tzinfo=UTC)
    assert report.awareness_source == "form" and report.version == 1
    assert json.loads(report.content)["AETERM"] == "Pneumonia"
    assert audit_actions(subject, "sae.created")[0].path.endswith("/AE_LINE[1]/sae/v1")


def test_clock_edges_exactly_24_hours_and_one_second_late(inv, subject):
    report = sae(inv, subject)
    due = dt.datetime(2025, 6, 11, 6, 0, tzinfo=UTC)
    assert safety.clock(report, due).state == "due"
    assert safety.clock(report, due).remaining == dt.timedelta(0)
    assert safety.clock(report, due + dt.timedelta(seconds=1)).state == "overdue"
    safety.submit_report(db.session, inv, report, now=due)
    assert safety.clock(report, due + dt.timedelta(days=3)).state == "submitted_in_time"
    late = sae(inv, subject, row=2, AETERM="Sepsis")
    safety.submit_report(db.session, inv, late, now=due + dt.timedelta(seconds=1))
    db.session.commit()
    assert safety.clock(late).state == "submitted_late"
    assert "submitted late" in audit_actions(subject, "sae.submitted")[-1].reason
    with pytest.raises(safety.SafetyError, match="already submitted"):
        safety.submit_report(db.session, inv, late)


def test_the_sponsor_report_time_on_the_form_counts_as_submission(inv, subject):
    report = sae(inv, subject, AESRPDTC="2025-06-11 08:00:01")
    assert report.submitted_at == dt.datetime(2025, 6, 11, 6, 0, 1, tzinfo=UTC)
    assert safety.clock(report).state == "submitted_late"


def test_awareness_entered_later_replaces_the_entry_time(inv, subject):
    report = sae(inv, subject, AESAWDTC=None)
    assert report.awareness_source == "entry"
    save(inv, subject, "AE", ae_row(1, AESAWDTC="2025-06-10 07:15"))
    db.session.refresh(report)
    assert report.awareness_at == dt.datetime(2025, 6, 10, 5, 15, tzinfo=UTC)
    assert report.awareness_source == "form"
    assert audit_actions(subject, "sae.awareness_changed")


def test_followups_are_new_versions_linked_to_the_first(inv, subject):
    report = sae(inv, subject)
    aware = dt.datetime(2025, 6, 12, 9, 0, tzinfo=UTC)
    with pytest.raises(safety.SafetyError, match="not submitted"):
        safety.add_followup(db.session, inv, report, aware)
    safety.submit_report(db.session, inv, report, now=dt.datetime(2025, 6, 10, 12, 0,
                                                                   tzinfo=UTC))
    followup = safety.add_followup(db.session, inv, report, aware)
    db.session.commit()
    assert (followup.version, followup.initial_id) == (2, report.id)
    assert safety.clock(followup, aware).due_at == aware + dt.timedelta(hours=24)
    assert audit_actions(subject, "sae.followup_created")[0].path.endswith("/sae/v2")


def test_manual_report_for_a_serious_row(inv, subject):
    save(inv, subject, "AE", ae_row(1, AETERM="Rash", AESTDTC="2025-06-10", AETOXGR="2",
                                    AESER="N"))
    aware = dt.datetime(2025, 6, 10, 7, 0, tzinfo=UTC)
    with pytest.raises(safety.SafetyError, match="not serious"):
        safety.create_report(db.session, inv, subject, 1, aware)
    report = sae(inv, subject, row=2, AESAWDTC=None)
    with pytest.raises(safety.SafetyError, match="already has an SAE report"):
        safety.create_report(db.session, inv, subject, 2, aware)
    assert report.version == 1


@pytest.mark.parametrize("items, fatal, days", [
    ({"AESLIFE": "Y"}, True, 7),
    ({"AESHOSP": "Y"}, False, 15),
])
def test_susar_due_dates(inv, make_site, study, items, fatal, days):
    make_site("S02")
    shanghai = enrol(study, "S02-001", site="S02")
    shanghai.site.timezone = "Asia/Shanghai"
    db.session.commit()
    save(inv, shanghai, "CONSENT", {("CONSENT_MAIN", 1, "CONSDT"): "2025-05-20"})
    # 07:00 in Shanghai is 23:00 UTC the day before: the awareness day is the site's day.
    report = sae(inv, shanghai, AERELEXO="possible", AEEXPECT="UNEXPECTED",
                 AESAWDTC="2025-06-10 07:00", **items)
    assert report.awareness_at == dt.datetime(2025, 6, 9, 23, 0, tzinfo=UTC)
    assert (report.susar, report.susar_fatal) == (True, fatal)
    assert report.susar_due == dt.date(2025, 6, 10) + dt.timedelta(days=days)


def test_susar_follow_up_is_due_eight_days_after_the_initial_report(inv, subject):
    report = sae(inv, subject, AERELEXO="probable", AEEXPECT="UNEXPECTED", AESLIFE="Y")
    assert report.susar_due == dt.date(2025, 6, 17)
    safety.submit_report(db.session, inv, report,
                         now=dt.datetime(2025, 6, 13, 10, 0, tzinfo=UTC))
    followup = safety.add_followup(db.session, inv, report,
                                   dt.datetime(2025, 6, 14, 10, 0, tzinfo=UTC))
    assert followup.susar_due == dt.date(2025, 6, 21)


def test_expected_or_unrelated_serious_events_are_not_susars(inv, subject):
    assert not sae(inv, subject, AERELEXO="possible", AEEXPECT="EXPECTED").susar
    unrelated = sae(inv, subject, row=2, AEEXPECT="UNEXPECTED", AERELCHM="unlikely")
    assert (unrelated.susar, unrelated.susar_due) == (False, None)
    # Becoming related later makes it a SUSAR, audited and notified.
    save(inv, subject, "AE", ae_row(2, AERELEXO="probable"),
         reasons={("AE_LINE", 2, "AERELEXO"): "new information"})
    db.session.refresh(unrelated)
    assert unrelated.susar and unrelated.susar_due == dt.date(2025, 6, 25)
    assert audit_actions(subject, "sae.susar")[0].new_value.startswith("SUSAR (other)")


def test_notifications_are_logged_without_smtp(inv, subject, app):
    app.config["SAE_NOTIFY"] = ["pv@example.org"]
    report = sae(inv, subject)
    [entry] = db.session.scalars(select(NotificationLog)).all()
    assert (entry.channel, entry.recipients, entry.sae_report_id) == (
        "log", "pv@example.org", report.id)
    assert "New SAE" in entry.subject and "Pneumonia" in entry.subject
    assert entry.sent_at is None and entry.job_id is not None  # queued, not yet written
    jobs.work(app, once=True)
    db.session.refresh(entry)
    assert entry.sent_at is not None and entry.error is None


def test_notifications_are_mailed_by_the_job_worker(inv, subject, app, monkeypatch):
    sent = []

    class FakeSMTP:
        def __init__(self, host, port, timeout):
            sent.append(("connect", host, port))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def send_message(self, message):
            sent.append(("send", message["To"], message["Subject"]))

    monkeypatch.setattr("smtplib.SMTP", FakeSMTP)
    app.config.update(SAE_NOTIFY="pv@example.org, safety@example.org",
                      MAIL_SERVER="smtp.example.org", MAIL_PORT=2525)
    sae(inv, subject)
    assert sent == []  # the save never talks to SMTP
    jobs.work(app, once=True)
    assert sent[0] == ("connect", "smtp.example.org", 2525)
    assert sent[1][1] == "pv@example.org, safety@example.org"
    entry = db.session.scalar(select(NotificationLog))
    db.session.refresh(entry)
    assert entry.channel == "email" and entry.sent_at is not None and entry.error is None


def test_a_rolled_back_save_sends_nothing(inv, subject, app, monkeypatch):
    sent = []
    monkeypatch.setattr(notify, "send_email", lambda *args: sent.append(args))
    app.config.update(SAE_NOTIFY=["pv@example.org"], MAIL_SERVER="smtp.example.org")
    save(inv, subject, "AE", ae_row(1, AETERM="Sepsis", AESTDTC="2025-06-10", AETOXGR="4",
                                    AESER="Y", AESLIFE="Y"), commit=False)
    assert db.session.scalar(select(func.count()).select_from(Job)) >= 1
    db.session.rollback()
    assert jobs.work(app, once=True) == 0
    assert sent == []
    assert db.session.scalar(select(func.count()).select_from(NotificationLog)) == 0
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0


# --- DLT ----------------------------------------------------------------------------------------


def infuse(inv, subject, on=dt.date(2025, 6, 7), at="09:30", full="Y"):
    values = {("INF_MAIN", 1, "INFDT"): on.isoformat(), ("INF_MAIN", 1, "INFSTTM"): at}
    if full:
        values[("INF_MAIN", 1, "FULLDOSE")] = full
    save(inv, subject, "INF", values, day=on)


def dlt_rows(subject) -> dict[int, DltAssessment]:
    return {a.row: a for a in db.session.scalars(select(DltAssessment).where(
        DltAssessment.subject_id == subject.id))}


@pytest.mark.parametrize("onset, related, grade, candidate", [
    ("2025-06-10", "possible", "3", True),
    ("2025-06-07", "definite", "4", True),      # the infusion day
    ("2025-06-21", "probable", "3", True),      # infusion + 14 days: last day of the window
    ("2025-06-22", "probable", "3", False),     # the day after the window
    ("2025-06-06", "probable", "3", False),     # before the infusion
    ("2025-06", "possible", "3", True),         # a partial onset that may be in the window
    ("2025-06-10", "unlikely", "4", False),
    ("2025-06-10", "unrelated", "4", False),
    ("2025-06-10", "possible", "2", False),
])
def test_dlt_candidate_flagging(inv, subject, onset, related, grade, candidate):
    infuse(inv, subject)
    save(inv, subject, "AE", ae_row(1, AETERM="Hypoxia", AESTDTC=onset, AETOXGR=grade,
                                    AESER="N", AERELEXO=related))
    found = dlt_rows(subject)
    assert (1 in found) is candidate
    if candidate:
        assert found[1].status == "candidate" and "DLT window" in found[1].candidate_reason
        if onset == "2025-06":
            assert "possibly within" in found[1].candidate_reason


def test_recording_the_infusion_later_flags_existing_rows(inv, subject):
    save(inv, subject, "AE", ae_row(1, AETERM="Hypoxia", AESTDTC="2025-06-10", AETOXGR="3",
                                    AESER="N", AERELEXO="possible"))
    assert dlt_rows(subject) == {}
    infuse(inv, subject)
    assert dlt_rows(subject)[1].status == "candidate"


def test_dlt_decisions_and_status(inv, subject):
    now = dt.datetime(2025, 6, 25, tzinfo=UTC)
    assert safety.dlt_status(db.session, subject, now).state == "not_treated"
    infuse(inv, subject)
    inside = dt.datetime(2025, 6, 21, 7, 29, tzinfo=UTC)  # 09:29 in Paris: still inside
    status = safety.dlt_status(db.session, subject, inside)
    assert (status.state, status.evaluable) == ("in_window", False)
    assert status.window_end == dt.datetime(2025, 6, 21, 7, 30, tzinfo=UTC)
    assert safety.dlt_status(db.session, subject, now).state == "evaluable"
    save(inv, subject, "AE", ae_row(1, AETERM="Hypoxia", AESTDTC="2025-06-10", AETOXGR="3",
                                    AESER="N", AERELEXO="possible"))
    assert safety.dlt_status(db.session, subject, now).state == "awaiting"
    assessment = dlt_rows(subject)[1]
    with pytest.raises(safety.DltError, match="reason"):
        safety.decide_dlt(db.session, inv, assessment, "confirmed", "")
    with pytest.raises(safety.DltError, match="must be one of"):
        safety.decide_dlt(db.session, inv, assessment, "maybe", "x")
    safety.decide_dlt(db.session, inv, assessment, "confirmed", "Grade 3 hypoxia, related")
    db.session.commit()
    status = safety.dlt_status(db.session, subject, now)
    assert (status.evaluable, status.has_dlt, status.state) == (True, True, "dlt")
    assert audit_actions(subject, "dlt.confirmed")[0].reason == "Grade 3 hypoxia, related"
    # A later change of the row keeps the decision but flags it for review.
    save(inv, subject, "AE", ae_row(1, AERELEXO="unrelated"),
         reasons={("AE_LINE", 1, "AERELEXO"): "reassessed"})
    db.session.refresh(assessment)
    assert (assessment.status, assessment.meets_criteria) == ("confirmed", False)
    assert audit_actions(subject, "dlt.criteria_changed")


def test_a_rejected_candidate_is_no_dlt(inv, subject):
    infuse(inv, subject)
    save(inv, subject, "AE", ae_row(1, AETERM="Fever", AESTDTC="2025-06-09", AETOXGR="3",
                                    AESER="N", AERELEXO="possible"))
    safety.decide_dlt(db.session, inv, dlt_rows(subject)[1], "rejected",
                      "Fever from catheter infection")
    status = safety.dlt_status(db.session, subject, dt.datetime(2025, 7, 1, tzinfo=UTC))
    assert (status.evaluable, status.has_dlt) == (True, False)


def test_not_evaluable_without_the_full_dose(inv, subject):
    infuse(inv, subject, full="N")
    status = safety.dlt_status(db.session, subject, dt.datetime(2025, 7, 1, tzinfo=UTC))
    assert (status.evaluable, status.state) == (False, "not_evaluable")
    assert "full dose" in status.reason


# --- the AE log is what the study declares -------------------------------------------------------


def test_only_the_declared_susar_drugs_make_a_susar(inv, subject):
    # Serious, unexpected and probably related, but to the chemotherapy only: the study's
    # susar_drugs names the product alone.
    report = sae(inv, subject, AERELEXO="unlikely", AERELCHM="probable",
                 AEEXPECT="UNEXPECTED")
    assert (report.susar, report.susar_due) == (False, None)


def test_dlt_relatedness_is_the_declared_dlt_drug_only(inv, subject):
    infuse(inv, subject)
    save(inv, subject, "AE", ae_row(1, AETERM="Hypoxia", AESTDTC="2025-06-10", AETOXGR="3",
                                    AESER="N", AERELEXO="unlikely", AERELCHM="definite"))
    assert dlt_rows(subject) == {}
    save(inv, subject, "AE", ae_row(2, AETERM="Rash", AESTDTC="2025-06-11", AETOXGR="3",
                                    AESER="N", AERELEXO="probable", AERELCHM="unrelated"))
    assert "probably related to PRODUCT (AERELEXO)" in dlt_rows(subject)[2].candidate_reason


RENAMED = {"AE_LINE": "EVENTS", "AETERM": "EVTERM", "AESTDTC": "EVSTART",
           "AETOXGR": "EVGRADE", "AESER": "EVSERIOUS", "AESHOSP": "EVHOSP",
           "AESAWDTC": "EVAWARE", "AESRPDTC": "EVSPONSOR", "AERELEXO": "EVRELPROD",
           "AERELCHM": "EVRELCHEMO", "AEEXPECT": "EVEXPECT", "PRODUCT": "EXOSOMES"}


def test_the_ae_log_is_read_through_the_study_block_whatever_its_oids(
        app, make_study, make_user, tmp_path):
    study = load_safety_study(make_study, folder=safety_variant(tmp_path / "s", RENAMED))
    inv = actor_for(make_user("inv1", role="investigator", study="SAFETY", site="S01"))
    subject = enrol(study, "S01-001")
    save(inv, subject, "CONSENT", {("CONSENT_MAIN", 1, "CONSDT"): "2025-05-20"})
    infuse(inv, subject)
    save(inv, subject, "AE", row_values(
        "EVENTS", 1, EVTERM="Hypoxia", EVSTART="2025-06-10", EVGRADE="3", EVSERIOUS="Y",
        EVHOSP="Y", EVAWARE="2025-06-10 08:00", EVSPONSOR="2025-06-10 20:00",
        EVRELPROD="possible", EVRELCHEMO="unrelated", EVEXPECT="UNEXPECTED"))
    report = db.session.scalar(select(SaeReport).where(SaeReport.subject_id == subject.id))
    assert report.awareness_at == dt.datetime(2025, 6, 10, 6, 0, tzinfo=UTC)
    assert report.submitted_at == dt.datetime(2025, 6, 10, 18, 0, tzinfo=UTC)
    assert (report.awareness_source, report.susar) == ("form", True)
    assert safety.report_term(report) == "Hypoxia"
    assert [v.term for v in safety.study_reports(db.session, study, None)] == ["Hypoxia"]
    assert audit_actions(subject, "sae.submitted")[0].reason == \
        "reported to the sponsor (AE.EVSPONSOR)"
    candidate = dlt_rows(subject)[1]
    assert candidate.term == "Hypoxia"
    assert "possibly related to EXOSOMES (EVRELPROD)" in candidate.candidate_reason
    [row] = safety.subject_safety(db.session, subject).rows
    assert (row.row.term, row.row.grade, row.row.serious) == ("Hypoxia", 3, True)
    # A graded-lab prompt accepted writes the declared term, grade and onset items.
    counts(inv, subject, {8: {"HGB": "70"}})
    [prompt] = prompts(subject)
    safety.accept_prompt(db.session, inv, prompt, today=dt.date(2025, 8, 31))
    db.session.commit()
    assert stored(subject, "AE", "EVTERM", row=2).value == "Anemia"
    assert stored(subject, "AE", "EVGRADE", row=2).value == "3"
    assert stored(subject, "AE", "EVSTART", row=2).value == day(8).isoformat()


def test_a_study_without_an_adverse_events_block_has_no_ae_log(app, make_study, make_user,
                                                               tmp_path):
    folder = safety_variant(tmp_path / "s", drop=("adverse_events", "  dlt_drug:"))
    study = load_safety_study(make_study, folder=folder)
    inv = actor_for(make_user("inv1", role="investigator", study="SAFETY", site="S01"))
    subject = enrol(study, "S01-001")
    assert ae_log(definition_for(subject.study_version)) is None
    infuse(inv, subject)
    save(inv, subject, "AE", ae_row(1, AETERM="Hypoxia", AESTDTC="2025-06-10", AETOXGR="3",
                                    AESER="Y", AESHOSP="Y", AERELEXO="possible"))
    assert db.session.scalar(select(func.count()).select_from(SaeReport)) == 0
    assert dlt_rows(subject) == {} and audit_actions(subject, "ae.findings") == []
    assert safety.subject_safety(db.session, subject).log is None
    with pytest.raises(safety.SafetyError, match="declares no adverse_events block"):
        safety.create_report(db.session, inv, subject, 1,
                             dt.datetime(2025, 6, 10, 6, 0, tzinfo=UTC))


def test_without_a_dlt_drug_the_ae_log_is_not_screened_for_dlts(app, make_study, make_user,
                                                                tmp_path):
    study = load_safety_study(make_study, folder=safety_variant(tmp_path / "s",
                                                                drop=("  dlt_drug:",)))
    inv = actor_for(make_user("inv1", role="investigator", study="SAFETY", site="S01"))
    subject = enrol(study, "S01-001")
    infuse(inv, subject)
    report = sae(inv, subject, AETERM="Hypoxia", AERELEXO="definite", AETOXGR="4")
    assert report is not None and dlt_rows(subject) == {}
