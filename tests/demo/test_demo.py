"""`ecrf demo`: the scripted demo data make both trials clinically coherent.

The full demo runs once (about half a minute) and one test reads everything it needs from
that database; the demo.yaml format itself is tested without a database.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ecrf.allocation import escalation
from ecrf.allocation.models import EscalationDecision
from ecrf.capture import operations as capture
from ecrf.capture.models import Subject
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.crf import ItemType, load_study
from ecrf.demo.scripts import BLANK, Dates, DemoScriptError, load_script, resolve_date
from ecrf.demo.studies import SUBJECTS
from ecrf.studies import store as studies
from ecrf.studies.models import Study
from tests.demo.coherence import check_demo_coherence

FORMS = Path(__file__).resolve().parents[2] / "forms"


def _subjects(oid: str) -> list[Subject]:
    return list(db.session.scalars(select(Subject).join(Study).where(Study.oid == oid)
                                   .order_by(Subject.subject_key)))


def _form(subject: Subject, form_oid: str):
    return capture.load_form(db.session, subject, "SCREEN", 1, form_oid)


def test_demo_is_coherent_idempotent_and_audited(runner):
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    check_demo_coherence()

    # Both trials are loaded, with every demo subject enrolled.
    for oid in ("DEXAML03", "UCMSCEXO"):
        study = db.session.scalar(select(Study).where(Study.oid == oid))
        assert studies.latest_version(db.session, study) is not None
        expected = sorted(key for o, _site, key, _days in SUBJECTS if o == oid)
        assert [s.subject_key for s in _subjects(oid)] == expected

    # DEXAML-03: everyone eligible and randomized but one deliberate screen failure.
    dex = _subjects("DEXAML03")
    failures = [s for s in dex if s.arm is None]
    assert len(failures) == 1
    failed = _form(failures[0], "ELIG")
    assert failed.values[("ELIG_DEC", 1, "ELIGIBLE")] == "N"
    assert failed.values[("ELIG_DEC", 1, "INELREAS")]
    assert failures[0].status == "screen_failed"  # from the data (study.yaml status:)
    assert {s.arm for s in dex} - {None} == {"DEX", "CTRL"}
    strata = set()
    for subject in dex:
        if subject.arm is None:
            continue
        elig, history = _form(subject, "ELIG"), _form(subject, "AMLHIST")
        assert elig.status == "complete" and not elig.validation.failing_errors
        assert history.status == "complete" and not history.validation.failing_errors
        assert elig.values[("ELIG_DEC", 1, "ELIGIBLE")] == "Y"
        assert history.values[("AMLH_DIAG", 1, "WHOCLASS")] != "APL"
        strata.add((history.values[("AMLH_STATUS", 1, "DISSTAT")],
                    _form(subject, "SALVAGE").values[("SALVAGE_MAIN", 1, "SALVTYPE")]))
    assert {d for d, _s in strata} == {"RELAPSE", "REFRACT"}
    assert {s for _d, s in strata} == {"INTENSIVE", "AZA"}

    # UCMSC-Exo: level 1 (0/3 DLT), a signed escalation, level 2 with one DLT.
    exo = db.session.scalar(select(Study).where(Study.oid == "UCMSCEXO"))
    levels = [s.dose_level for s in _subjects("UCMSCEXO")]
    assert levels == [1, 1, 1, 2, 2, 2, None]  # WUH-007: the screen failure
    decisions = db.session.scalars(select(EscalationDecision).where(
        EscalationDecision.study_id == exo.id)).all()
    assert [(d.level, d.action, d.next_level, d.decided_by) for d in decisions] == [
        (1, "escalate", 2, "dm.lead")]
    board = escalation.board(db.session, exo)
    assert board.current_level == 2
    first_level, second_level = board.level(1).state, board.level(2).state
    assert (first_level.evaluable, first_level.dlts) == (3, 0)
    assert (second_level.evaluable, second_level.dlts) == (3, 1)
    assert [s.state for s in board.level(1).subjects] == ["evaluable"] * 3

    # A second run adds nothing, and the audit chain holds.
    rows = db.session.scalar(select(func.count()).select_from(AuditEvent))
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0, second.output
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == rows
    verified = runner.invoke(args=["audit", "verify"])
    assert verified.exit_code == 0 and "audit trail intact" in verified.output


# --- the demo.yaml format -------------------------------------------------------------------

DATES = Dates(day=dt.date(2026, 3, 31), enrolment=dt.date(2026, 3, 1),
              today=dt.date(2026, 4, 15), repeat=2)


@pytest.mark.parametrize("text, expected", [
    ("day", "2026-03-31"),
    ("enrolment+3", "2026-03-04"),
    ("enrolment-400", "2025-01-25"),
    ("day-1m", "2026-02-28"),  # month arithmetic clamps to the month end
    ("enrolment-45y-71", "1980-12-20"),
    ("day + 2w", "2026-04-14"),
    ("today+30", "2026-04-15"),  # never in the future
])
def test_date_expressions(text, expected):
    assert resolve_date(text, DATES) == expected


def test_date_time_expression():
    assert resolve_date("day+1 10:20", DATES, with_time=True) == "2026-04-01T10:20"


@pytest.fixture(scope="module")
def dexaml():
    return load_study(FORMS / "dexaml03")


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "demo.yaml").write_text(text, encoding="utf-8")
    return folder


def test_script_layers_each_rows_and_blanks(tmp_path, dexaml):
    script = load_script(_write(tmp_path / "s", """
format: 1
forms:
  ELIG:
    ECOG: {each: ["0", "1", "2"]}
    IEDT: enrolment+2
    EMD: "N"
  AE:
    rows: 2
    AETERM: {rows: [Nausea, Fatigue]}
  CONS:
    CYCNUM: "{repeat}"
events:
  SCREEN:
    ELIG: {EMD: "Y", EMDSITE: null}
subjects:
  TLS-005:
    ELIG: {ELIGIBLE: "N"}
"""), dexaml.definition)
    elig = script.form("TLS-001", 4, "SCREEN", "ELIG")
    assert elig.value("ECOG", ItemType.INTEGER, 1, DATES) == "1"  # index 4 modulo 3
    assert elig.value("IEDT", ItemType.DATE, 1, DATES) == "2026-03-03"
    assert elig.value("EMD", ItemType.YES_NO, 1, DATES) == "Y"  # the event layer wins
    assert elig.value("EMDSITE", ItemType.TEXT, 1, DATES) is BLANK
    assert elig.value("ELIGIBLE", ItemType.YES_NO, 1, DATES) is None  # not scripted
    other = script.form("TLS-005", 0, "UNSCHED", "ELIG")
    assert other.value("ELIGIBLE", ItemType.YES_NO, 1, DATES) == "N"
    assert other.value("EMD", ItemType.YES_NO, 1, DATES) == "N"
    ae = script.form("TLS-001", 0, "AE_LOG", "AE")
    assert ae.rows == 2
    assert [ae.value("AETERM", ItemType.TEXT, r, DATES) for r in (1, 2, 3)] == [
        "Nausea", "Fatigue", None]
    assert script.form("TLS-001", 0, "CONS", "CONS").value(
        "CYCNUM", ItemType.INTEGER, 1, DATES) == "2"
    assert script.scripted_for_subject("TLS-005") == {"ELIG"}


@pytest.mark.parametrize("body, message", [
    ("format: 2\n", "format: must be 1"),
    ("format: 1\nforms: {NOFORM: {X: 1}}\n", "unknown form"),
    ("format: 1\nforms: {ELIG: {NOITEM: 1}}\n", "form ELIG has no such item"),
    ("format: 1\nforms: {ELIG: {ELIGCALC: 1}}\n", "calculated item"),
    ("format: 1\nforms: {ELIG: {IEDT: yesterday}}\n", "not a date expression"),
    ("format: 1\nforms: {ELIG: {ECOG: [1, 2]}}\n", "multiple-choice items only"),
    ("format: 1\nforms: {ELIG: {rows: -1}}\n", "rows must be"),
    ("format: 1\nevents: {SCREEN: {IND: {CYCSTDT: day}}}\n", "event SCREEN has no such form"),
    ("format: 1\nforms: {ELIG: {ECOG: {each: []}}}\n", "non-empty list"),
])
def test_script_errors_name_the_file_line_and_path(tmp_path, dexaml, body, message):
    folder = _write(tmp_path / "s", body)
    with pytest.raises(DemoScriptError) as caught:
        load_script(folder, dexaml.definition)
    assert message in str(caught.value) and "demo.yaml" in str(caught.value)


def test_trial_scripts_load_and_leave_the_content_hash_alone(tmp_path):
    for name in ("dexaml03", "ucmscexo"):
        loaded = load_study(FORMS / name)
        assert load_script(FORMS / name, loaded.definition) is not None
        bare = tmp_path / name
        shutil.copytree(FORMS / name, bare, ignore=shutil.ignore_patterns("demo.yaml"))
        assert load_study(bare).content_hash == loaded.content_hash
