"""`ecrf study ...` and `ecrf schedule ...` through the CLI runner."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from ecrf.capture import subjects
from ecrf.capture.models import FormInstance, Subject
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.studies import store as studies
from ecrf.studies.models import StudySite
from tests.capture.sample import ACTOR, record, write_study
from tests.crf.conftest import alias_bomb


def run(runner, *args):
    return runner.invoke(args=[str(a) for a in args])


@pytest.fixture
def folder(tmp_path):
    return write_study(tmp_path / "sample")


def test_check_a_valid_folder(runner, folder):
    result = run(runner, "study", "check", folder)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: SAMPLE v1 is valid (new content")
    run(runner, "study", "load", folder)
    again = run(runner, "study", "check", folder)
    assert again.output.startswith("ok: SAMPLE v1 is valid (already stored")


def test_check_prints_every_problem_and_fails(runner, folder):
    crf = folder / "crfs" / "DEMOG.yaml"
    crf.write_text(crf.read_text().replace("label: Sex", "label: Sex\n        requried: true"))
    result = run(runner, "study", "check", folder)
    assert result.exit_code == 1
    first = result.stdout.splitlines()[0]
    assert first.startswith("crfs/DEMOG.yaml:") and "requried" in first
    assert "1 problem" in result.stderr


def test_check_a_missing_folder(runner, tmp_path):
    result = run(runner, "study", "check", tmp_path / "nowhere")
    assert result.exit_code == 1 and "study folder not found" in result.output


@pytest.mark.parametrize("command", ["check", "load"])
@pytest.mark.parametrize(("text", "expected"), [
    ("format: 1\n\x00study: {oid: SAMPLE}\n",
     "study.yaml:2: invalid YAML: character U+0000 (NUL) at column 1 is not allowed"),
    ("format: 1\n" + alias_bomb(), "study.yaml:7: refused: the file expands to more than "
                                    "100,000 values"),
])
def test_a_hostile_study_file_is_a_problem_not_a_traceback(runner, folder, command, text,
                                                           expected):
    (folder / "study.yaml").write_text(text)
    result = run(runner, "study", command, folder)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert expected in result.output and "Traceback" not in result.output


def test_load_then_unchanged_then_next_version(runner, folder):
    first = run(runner, "study", "load", folder)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("loaded SAMPLE v1 (protocol 1.0), sha256 ")
    same = run(runner, "study", "load", folder)
    assert same.exit_code == 0 and same.output.startswith("unchanged: SAMPLE v1 (protocol 1.0)")
    write_study(folder, amended=True)
    second = run(runner, "study", "load", folder)
    assert second.output.startswith("loaded SAMPLE v2 (protocol 1.1)")
    listing = run(runner, "study", "versions", "sample")
    lines = listing.output.splitlines()
    assert len(lines) == 2 and lines[0].startswith("v1") and lines[1].startswith("v2")
    assert "1.1" in lines[1] and "subjects 0" in lines[1]
    row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "study.version_loaded"))
    assert row.username.startswith("cli:")


def test_load_refuses_an_invalid_folder(runner, folder):
    (folder / "study.yaml").write_text("format: 1\nstudy: {oid: bad}\n")
    result = run(runner, "study", "load", folder)
    assert result.exit_code != 0
    assert "not loaded" in result.stderr and "Error:" in result.stderr
    assert studies.get_study(db.session, "BAD") is None


def test_versions_of_an_unknown_study(runner):
    result = run(runner, "study", "versions", "NOPE")
    assert result.exit_code != 0 and "no study with OID 'NOPE'" in result.output


@pytest.fixture
def migratable(runner, folder, make_site):
    run(runner, "study", "load", folder)
    study = studies.get_study(db.session, "SAMPLE")
    site = make_site("S01")
    db.session.add(StudySite(study=study, site=site, active=True))
    fits = subjects.enrol_subject(db.session, ACTOR, study, site, "S01-001", dt.date(2025, 1, 6))
    heavy = subjects.enrol_subject(db.session, ACTOR, study, site, "S01-002",
                                   dt.date(2025, 1, 6))
    record(db.session, fits, "SCREEN", "DEMOG", {"WEIGHT": 70})
    record(db.session, heavy, "SCREEN", "DEMOG", {"WEIGHT": 25})
    db.session.commit()
    write_study(folder, amended=True)
    run(runner, "study", "load", folder)
    return study


def test_migrate_dry_run_prints_the_preview_and_changes_nothing(runner, migratable):
    result = run(runner, "study", "migrate", "SAMPLE", "--to", 2, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "SAMPLE: 2 subject(s), 2 form(s) to move to v2 (protocol 1.1)" in result.output
    assert "S01-002/SCREEN[1]/DEMOG" in result.output and "REFUSED" in result.output
    assert "WEIGHT: 25 is outside the range 30..200" in result.output
    versions = {f.study_version_id for f in db.session.scalars(select(FormInstance))}
    assert versions == {studies.get_version(db.session, migratable, 1).id}


def test_migrate_requires_a_reason(runner, migratable):
    result = run(runner, "study", "migrate", "SAMPLE", "--to", 2)
    assert result.exit_code != 0 and "a reason is required" in result.output


def test_migrate_moves_what_fits_and_names_what_does_not(runner, migratable):
    result = run(runner, "study", "migrate", "SAMPLE", "--to", 2, "--reason", "Amendment 1")
    assert result.exit_code != 0
    assert "migrated 1 subject(s) and 1 form(s) of SAMPLE to v2 (protocol 1.1)" in result.stdout
    assert "refused S01-002/SCREEN[1]/DEMOG: WEIGHT: 25 is outside" in result.stderr
    assert "1 subject(s) not migrated" in result.stderr and "S01-002" in result.stderr
    v2 = studies.get_version(db.session, migratable, 2)
    moved = db.session.scalar(select(Subject).where(Subject.subject_key == "S01-001"))
    assert moved.study_version_id == v2.id
    rows = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "form.version_migrated")).all()
    assert len(rows) == 1 and rows[0].reason == "Amendment 1"
    only = run(runner, "study", "migrate", "SAMPLE", "--to", 2, "--subject", "S01-001",
               "--reason", "again")
    assert only.exit_code == 0 and "migrated 0 subject(s)" in only.output


def test_schedule_show_table_and_json(runner, migratable):
    table = run(runner, "schedule", "show", "SAMPLE", "S01-001", "--on", "2025-01-10")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0] == "SAMPLE S01-001 (v1 (protocol 1.0)) on 2025-01-10"
    assert lines[2].startswith("SCREEN") and "2025-01-06..2025-02-03" in lines[2]
    assert " done " in lines[2]
    as_json = run(runner, "schedule", "show", "SAMPLE", "S01-001", "--on", "2025-03-01",
                  "--json")
    data = json.loads(as_json.output)
    assert data["on"] == "2025-03-01" and data["subject"] == "S01-001"
    assert data["events"][0] == {
        "event": "SCREEN", "name": "Screening", "repeat": 1, "planned": "2025-01-06",
        "window_start": "2025-01-06", "window_end": "2025-02-03", "status": "done",
        "actual_date": None, "note": "done; date not recorded"}


def test_schedule_show_errors(runner, migratable):
    unknown = run(runner, "schedule", "show", "SAMPLE", "NOPE")
    assert unknown.exit_code != 0 and "no subject 'NOPE' in SAMPLE" in unknown.output
    bad_date = run(runner, "schedule", "show", "SAMPLE", "S01-001", "--on", "01/02/2025")
    assert bad_date.exit_code != 0 and "--on" in bad_date.output


def test_schedule_refresh(runner, migratable):
    db.session.execute(Subject.__table__.update().values(schedule_computed_on=None))
    db.session.commit()
    result = run(runner, "schedule", "refresh")
    assert result.exit_code == 0, result.output
    assert "SAMPLE: 2 subject schedule(s) recomputed" in result.output
    again = run(runner, "schedule", "refresh", "--study", "SAMPLE")
    assert "SAMPLE: 0 subject schedule(s) recomputed" in again.output
