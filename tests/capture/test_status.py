"""Subject status follows the data of the DEXAML-03 seed trial (forms/dexaml03 status:
and tasks:), through capture's save path, and shows on the subject page, the matrix,
the site dashboards and the sponsor's counts."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from ecrf import capture
from ecrf.capture import Submission, subjects
from ecrf.core.audit.models import AuditEvent
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.studies import store as studies
from ecrf.studies.models import Site

FORMS = Path(__file__).resolve().parents[2] / "forms"
ACTOR = Actor(user_id=None, username="crc", role="coordinator", site_code="S01")
TODAY = capture.local_today("Europe/Paris")


def day(n: int) -> str:
    return (TODAY - dt.timedelta(days=n)).isoformat()


@pytest.fixture
def trial(app, make_study):
    study = make_study("DEXAML03", sites=("S01", "S02"))
    studies.load_folder(db.session, ACTOR, FORMS / "dexaml03")
    db.session.commit()
    return study


def enrol(study, key="S01-001", randomize=True):
    site = db.session.scalar(select(Site).where(Site.code == "S01"))
    subject = subjects.enrol_subject(db.session, ACTOR, study, site, key,
                                     TODAY - dt.timedelta(days=120), today=TODAY)
    if randomize:
        subject.arm = "DEX"
        capture.mark_on_study(db.session, ACTOR, subject, "randomized to DEX")
    db.session.commit()
    return subject


def save(subject, event, form, values, *, complete=False, base=None, reasons=None):
    if capture.event_instance(db.session, subject, event, 1) is None:
        when = None if event.endswith("_LOG") else TODAY - dt.timedelta(days=100)
        capture.open_event(db.session, ACTOR, subject, event, 1, when, today=TODAY)
    group = {"DEATH": "DEATH_MAIN", "HSCT": "HSCT_MAIN", "EOT": "EOT_MAIN",
             "EOS": "EOS_MAIN", "ELIG": "ELIG_DEC"}[form]
    result = capture.save_form(
        db.session, ACTOR, subject, event, 1, form,
        Submission(values={(group, 1, k): v for k, v in values.items()},
                   reasons={(group, 1, k): v for k, v in (reasons or {}).items()}),
        base_version=base, complete=complete, today=TODAY)
    assert result.saved, (result.errors, result.form_errors, result.blockers)
    db.session.commit()
    return result


DEATH = {"DTHDT": day(10), "DTHCAUSE": "AML", "DTHAE": "N", "DTHSRC": "RECORDS",
         "AUTOPSY": "N"}


def status_changes(key):
    return list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "subject.status_changed", AuditEvent.subject_key == key)
        .order_by(AuditEvent.seq)))


def test_randomisation_puts_the_subject_on_study_with_the_rule_audited(trial):
    subject = enrol(trial)
    assert subject.status == "on_study"
    [row] = status_changes("S01-001")
    assert (row.old_value, row.new_value) == ("screening", "on_study")
    assert "randomized to DEX" in row.reason and "subject.arm" in row.reason


def test_a_death_makes_the_subject_died_and_a_correction_reverses_it(trial):
    subject = enrol(trial)
    result = save(subject, "DEATH_LOG", "DEATH", DEATH)
    assert subject.status == "died"
    changes = status_changes("S01-001")
    assert (changes[-1].old_value, changes[-1].new_value) == ("on_study", "died")
    assert "DEATH saved" in changes[-1].reason and "anchor.death" in changes[-1].reason
    # An unrelated save later does not lower it.
    save(subject, "HSCT_LOG", "HSCT", {"HSCTDT": day(40)})
    assert subject.status == "died"
    # The death was entered for the wrong subject: the date is removed, the status goes
    # back to what the data says, audited.
    save(subject, "DEATH_LOG", "DEATH", {**DEATH, "DTHDT": ""}, base=result.version,
         reasons={"DTHDT": "entered for the wrong subject"})
    assert subject.status == "on_study"
    assert (status_changes("S01-001")[-1].old_value,
            status_changes("S01-001")[-1].new_value) == ("died", "on_study")


@pytest.mark.parametrize(("eos", "status"), [
    ({"EOSREAS": "WITHDRAWAL", "WDDT": day(5), "WDSCOPE": "FOLLOWUP"}, "withdrawn"),
    ({"EOSREAS": "LTFU", "LTFUDT": day(5), "LTFUATT": "3"}, "lost_to_follow_up"),
    ({"EOSREAS": "COMPLETED"}, "completed"),
])
def test_end_of_study_reason_gives_the_status(trial, eos, status):
    subject = enrol(trial)
    save(subject, "EOS_LOG", "EOS", {"EOSDT": day(1), "LKADT": day(5), **eos})
    assert subject.status == status


@pytest.mark.parametrize(("reason", "status"), [
    ("HSCT", "in_follow_up"), ("COMPLETED", "in_follow_up"),
    ("TOXICITY", "withdrawn_from_treatment"), ("PATIENT", "withdrawn_from_treatment"),
])
def test_end_of_treatment_reason_gives_the_status(trial, reason, status):
    subject = enrol(trial)
    save(subject, "EOT_LOG", "EOT", {"EOTDT": day(30), "EOTREAS": reason})
    assert subject.status == status


def test_screen_failure(trial):
    subject = enrol(trial, randomize=False)
    save(subject, "SCREEN", "ELIG", {"ELIGIBLE": "N"})
    assert subject.status == "screen_failed"


def test_withdrawal_from_treatment_keeps_survival_follow_up(trial):
    subject = enrol(trial)
    save(subject, "EOT_LOG", "EOT", {"EOTDT": day(100), "EOTREAS": "PATIENT"})
    rows = capture.expected_events(db.session, subject, TODAY)
    follow_up = [r for r in rows if r.event_oid == "FU_Y12"]
    assert follow_up and all(r.status not in ("not_applicable", "not_expected")
                             for r in follow_up)
    # Consent withdrawn for visits but not for survival status: follow-up goes on.
    save(subject, "EOS_LOG", "EOS", {"EOSDT": day(1), "EOSREAS": "WITHDRAWAL",
                                      "WDDT": day(2), "WDSCOPE": "SURVIVAL",
                                      "LKADT": day(2)})
    assert subject.status == "withdrawn"
    rows = capture.expected_events(db.session, subject, TODAY + dt.timedelta(days=200))
    assert all(r.status not in ("not_applicable", "not_expected")
               for r in rows if r.event_oid == "FU_Y12")


def test_consent_withdrawn_for_all_follow_up_stops_it(trial):
    subject = enrol(trial)
    save(subject, "EOT_LOG", "EOT", {"EOTDT": day(100), "EOTREAS": "PATIENT"})
    save(subject, "EOS_LOG", "EOS", {"EOSDT": day(1), "EOSREAS": "WITHDRAWAL",
                                      "WDDT": day(2), "WDSCOPE": "FOLLOWUP",
                                      "LKADT": day(2)})
    rows = capture.expected_events(db.session, subject, TODAY + dt.timedelta(days=200))
    assert any(r.status == "not_expected" for r in rows if r.event_oid == "FU_Y12")


def test_eot_task_after_a_transplant_until_eot_is_complete(trial):
    subject = enrol(trial)
    assert capture.subject_tasks(db.session, subject, TODAY) == []
    save(subject, "HSCT_LOG", "HSCT", {"HSCTDT": day(30)})
    [task] = capture.subject_tasks(db.session, subject, TODAY)
    assert task.task.rule.form == "EOT" and task.task.since.isoformat() == day(30)
    assert task.task.overdue  # 14 days after the transplant
    assert [t.subject_key for t in capture.study_tasks(db.session, trial, None, TODAY)] == [
        "S01-001"]
    assert capture.study_tasks(db.session, trial, set(), TODAY) == []  # no visible site
    save(subject, "EOT_LOG", "EOT", {"EOTDT": day(31), "LASTDOSE": day(35),
                                      "EOTREAS": "HSCT", "NCYCLES": "2", "BESTRESP": "CR"},
         complete=True)
    assert capture.subject_tasks(db.session, subject, TODAY) == []
    assert subject.status == "in_follow_up"


def test_recompute_command_follows_the_data(trial, runner):
    subject = enrol(trial)
    subject.status = "completed"  # e.g. written before the rules existed
    db.session.commit()
    result = runner.invoke(args=["study", "recompute-status", "DEXAML03"])
    assert result.exit_code == 0, result.output
    assert "1 subject(s) now on_study" in result.output
    db.session.refresh(subject)
    assert subject.status == "on_study"
    result = runner.invoke(args=["study", "recompute-status", "DEXAML03"])
    assert "already follows its data" in result.output


def test_pages_show_the_status_and_the_task(trial, client, login_as):
    subject = enrol(trial)
    save(subject, "HSCT_LOG", "HSCT", {"HSCTDT": day(30)})
    other = enrol(trial, "S01-002")
    save(other, "DEATH_LOG", "DEATH", DEATH)
    login_as("investigator", "S01", study="DEXAML03")
    page = html.unescape(client.get("/studies/DEXAML03/subjects/S01-002").get_data(
        as_text=True))
    assert re.search(r"Status</dt><dd[^>]*>Died</dd>", page)  # the label, not the code
    page = html.unescape(client.get("/studies/DEXAML03/subjects/S01-001").get_data(
        as_text=True))
    assert "Enter End of treatment" in page and "Overdue" in page
    assert "/events/EOT_LOG/1/forms/EOT" in page
    assert ("Its date will plan: Follow-up, years 1-2 (every 3 months), Follow-up, after "
            "year 2 (every 6 months).") in page
    board = html.unescape(client.get("/studies/DEXAML03/dashboard?role=investigator")
                          .get_data(as_text=True))
    assert "S01-001 · Enter End of treatment" in board
    matrix = client.get("/studies/DEXAML03/subjects?status=died").get_data(as_text=True)
    assert "S01-002" in matrix and "S01-001" not in matrix


def test_sponsor_counts_show_the_died(trial, client, login_as):
    subject = enrol(trial)
    save(subject, "DEATH_LOG", "DEATH", DEATH)
    assert capture.study_counts(db.session, trial).by_status["died"] == 1
    login_as("sponsor_viewer", study="DEXAML03")
    page = client.get("/studies/DEXAML03/dashboard?role=sponsor_viewer").get_data(as_text=True)
    header = page.split('id="status-title"', 1)[1]
    labels = [c.split("<", 1)[0] for c in header.split("<th scope=\"col\">")[2:11]]
    cells = header.split("<td>")[1:10]
    assert cells[labels.index("Died")].startswith("1<")


def test_coordinator_board_lists_tasks_of_their_sites_only(trial, client, login_as):
    subject = enrol(trial)
    save(subject, "HSCT_LOG", "HSCT", {"HSCTDT": day(3)})
    login_as("coordinator", "S02", study="DEXAML03", username="crc2")
    board = html.unescape(client.get("/studies/DEXAML03/dashboard?role=coordinator")
                          .get_data(as_text=True))
    assert "Nothing is waiting to be entered." in board and "S01-001" not in board
    client.post("/logout")
    login_as("coordinator", "S01", study="DEXAML03", username="crc1")
    board = html.unescape(client.get("/studies/DEXAML03/dashboard?role=coordinator")
                          .get_data(as_text=True))
    line = board.split("S01-001 · Enter End of treatment", 1)[1].split("</li>", 1)[0]
    assert "overdue" not in line  # 3 days after the transplant: due, not overdue


def test_pages_name_the_arm(trial, client, login_as):
    subject = enrol(trial)
    subject.arm = "DEX"
    db.session.commit()
    login_as("investigator", "S01", study="DEXAML03")
    page = html.unescape(client.get("/studies/DEXAML03/subjects/S01-001").get_data(
        as_text=True))
    assert re.search(r"Arm</dt><dd[^>]*>Salvage therapy \+ dexamethasone \(DEX\)</dd>", page)
    matrix = html.unescape(client.get("/studies/DEXAML03/subjects").get_data(as_text=True))
    assert '<abbr title="Salvage therapy + dexamethasone">DEX</abbr>' in matrix


@pytest.mark.parametrize(("stratum", "asked"), [("INTENSIVE", True), ("AZA", False)])
def test_eot_task_after_consolidation_3_follows_the_stratum_used(trial, stratum, asked):
    """The task reads the salvage stratum used at randomization, as the schedule does: a
    stratification factor corrected afterwards changes neither the branch nor the task."""
    subject = enrol(trial)
    subject.strata = json.dumps({"salvage": stratum, "disease_status": "RELAPSE"})
    db.session.commit()
    capture.open_event(db.session, ACTOR, subject, "CONS", 1, TODAY - dt.timedelta(days=60),
                       today=TODAY)
    capture.save_form(db.session, ACTOR, subject, "CONS", 1, "CONS", Submission(values={
        ("CONS_CYCLE", 1, "CYCNUM"): "3", ("CONS_CYCLE", 1, "CYCSTDT"): day(60)}),
        base_version=None, complete=False, today=TODAY)
    db.session.commit()
    tasks = capture.subject_tasks(db.session, subject, TODAY)
    assert [t.task.rule.form for t in tasks] == (["EOT"] if asked else [])
    if asked:
        assert tasks[0].task.since.isoformat() == day(32)  # 28 days after cycle 3's day 1


def test_schedule_notes_say_conditions_and_stops_by_their_labels(trial, app):
    from ecrf.capture.views.subjects import _note
    from ecrf.crf.naming import Naming

    definition = studies.definition_for(studies.latest_version(db.session, trial))
    names = Naming(definition)
    condition = definition.event("INDUCT").condition
    assert _note(f"condition not met: {condition}", definition, "INDUCT", names) == (
        "condition not met: Planned salvage therapy (stratification factor) at "
        "randomization is Intensive chemotherapy (amsacrine-cytarabine)")
    assert _note("not done before eot on 2026-04-20 (window opened 2026-03-23)", definition,
                 "AZA_CYC", names) == \
        "not done before End of treatment on 2026-04-20 (window opened 2026-03-23)"
    assert _note("done 2026-01-02; after lost to follow up on 2025-12-01", definition,
                 "FU_Y12", names) == "done 2026-01-02; after End of study on 2025-12-01"
    assert _note("window closes 2026-12-12", definition, "NOPE", names) == \
        "window closes 2026-12-12"
    assert _note(None, definition, "INDUCT", names) == ""
