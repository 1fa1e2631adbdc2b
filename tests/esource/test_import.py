"""Laboratory files against the UCMSC-Exo daily counts: preview (new, unchanged,
conflicting, skipped, refused), storing through data capture with grades and audit, all
or nothing, and ``ecrf import labs``."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from ecrf import capture, esource
from ecrf.capture import ItemValue
from ecrf.core import db
from ecrf.core.audit import Actor, AuditEvent
from ecrf.studies import require_study
from tests.capture.grid_setup import load_ucmsc

from .lab_setup import TODAY, counts_csv, day, lab_subject, row_counts

FILES = Path(__file__).parent / "files"
ACTOR = Actor(user_id=None, username="lab-import", role="data_manager")

# Day 1 of every fixture: the same CBC in each format, converted to the items' units.
DAY1 = {"WBC": "3.20", "ANC": "1.45", "HGB": "104", "PLT": "152"}


@pytest.fixture
def subject(app, make_study):
    make_study("UCMSCEXO", sites=("WUH",))
    load_ucmsc(db.session)
    return lab_subject(db.session)


def study():
    return require_study(db.session, "UCMSCEXO")


def plan(name: str, data: bytes | None = None, fmt: str | None = None):
    data = data if data is not None else (FILES / name).read_bytes()
    return esource.plan_import(db.session, study(), name, data, fmt)


def stored(item: str | None = None) -> dict[tuple[int, str], str]:
    """The COUNTS values stored, by (row, item)."""
    query = select(ItemValue).where(ItemValue.form_oid == "COUNTS",
                                    ItemValue.group_oid == "CNT_DAY")
    return {(v.row, v.item_oid): v.value for v in db.session.scalars(query)
            if v.value is not None and (item is None or v.item_oid == item)}


@pytest.mark.parametrize("name, lines, day2, skipped", [
    ("counts.csv", 8, {"WBC": "2.10", "ANC": "0.80", "HGB": "98", "PLT": "98"},
     ["line 6", "line 11"]),
    ("counts.hl7", 6, {"WBC": "2.10", "ANC": "0.80"}, ["message 2, OBX 3", "message 2, OBX 4"]),
    ("counts.fhir.json", 5, {"ANC": "0.80"}, ["entry 7"]),
])
def test_each_format_is_previewed_then_stored_through_capture(subject, name, lines, day2,
                                                                skipped):
    found = plan(name)
    assert found.problems == []
    assert [p.where for p in found.skipped] == skipped
    assert len(found.lines) == lines
    assert {line.state for line in found.lines} == {esource.NEW}
    assert {(line.row, line.item): line.value for line in found.lines} == {
        **{(1, item): value for item, value in DAY1.items()},
        **{(2, item): value for item, value in day2.items()}}

    result = esource.apply_import(db.session, ACTOR, study(), found, today=TODAY)
    db.session.commit()
    assert (result.values, result.forms, result.kept) == (lines, 1, 0)
    values = stored()
    assert values[(1, "LBDT")] == day(1).isoformat()
    assert values[(2, "LBDT")] == day(2).isoformat()
    assert values[(1, "STUDYDY")] == "1" and values[(2, "STUDYDY")] == "2"
    assert {item: values[(1, item)] for item in DAY1} == DAY1
    # Graded on save like an entered value: ANC 0.80 x 10^9/L is CTCAE grade 3.
    anc = db.session.scalar(select(ItemValue).where(ItemValue.item_oid == "ANC",
                                                    ItemValue.row == 2))
    assert anc.grade == 3
    reasons = set(db.session.scalars(select(AuditEvent.reason).where(
        AuditEvent.action == "item.entered", AuditEvent.path.like("%/ANC"))))
    first = found.lines[1].where
    assert f"source: laboratory file {name} (sha256 {found.sha256}), {first}" in reasons


def test_the_same_file_again_is_unchanged_and_writes_nothing(subject):
    data = counts_csv(range(1, 4))
    esource.apply_import(db.session, ACTOR, study(), plan("a.csv", data), today=TODAY)
    db.session.commit()
    before = row_counts(db.session)
    again = plan("a.csv", data)
    assert {line.state for line in again.lines} == {esource.UNCHANGED}
    result = esource.apply_import(db.session, ACTOR, study(), again, today=TODAY)
    assert (result.values, result.forms) == (0, 0)
    db.session.commit()
    assert row_counts(db.session) == before


def test_a_conflicting_manual_entry_is_kept_unless_accepted(subject):
    esource.apply_import(db.session, ACTOR, study(), plan("counts.csv"), today=TODAY)
    db.session.commit()
    # The coordinator corrects day 1's ANC by hand; the laboratory's file says 1.45.
    form = capture.load_form(db.session, subject, "HEMOBS", 1, "COUNTS")
    saved = capture.save_form(
        db.session, ACTOR, subject, "HEMOBS", 1, "COUNTS",
        capture.Submission(values={("CNT_DAY", 1, "ANC"): "1.50"},
                           reasons={("CNT_DAY", 1, "ANC"): "re-read from the ward sheet"},
                           partial=True),
        base_version=form.version, complete=False, today=TODAY)
    assert saved.saved, saved.errors
    db.session.commit()

    again = plan("counts.csv")
    conflicts = [line for line in again.lines if line.state == esource.CONFLICT]
    assert [(c.where, c.item, c.stored, c.value) for c in conflicts] == [
        ("line 3", "ANC", "1.50", "1.45")]
    kept = esource.apply_import(db.session, ACTOR, study(), again, today=TODAY)
    assert (kept.values, kept.kept) == (0, 1)
    assert stored("ANC")[(1, "ANC")] == "1.50"

    accepted = esource.apply_import(db.session, ACTOR, study(), plan("counts.csv"),
                                    accept={"line 3"}, today=TODAY)
    db.session.commit()
    assert (accepted.values, accepted.kept) == (1, 0)
    assert stored("ANC")[(1, "ANC")] == "1.45"
    change = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "item.changed", AuditEvent.path.like("%CNT_DAY[1]/ANC"),
        AuditEvent.new_value == "1.45"))
    assert change.old_value == "1.50" and change.reason.endswith(", line 3")


@pytest.mark.parametrize("line, reason", [
    # Before chemotherapy day 1 and after the window of HEMOBS (day 49).
    ("WUH-101;2026-01-04 07:00;751-8;1,2;G/L",
     "WUH-101: no occurrence of the lab events has a window holding 2026-01-04"),
    ("WUH-101;2026-02-23 07:00;751-8;1,2;G/L",
     "WUH-101: no occurrence of the lab events has a window holding 2026-02-23"),
    ("WUH-101;2026-01-06 07:00;751-8;1,2;mmol/L",
     "unit mmol/L of 751-8 has no conversion to 10^9/L (ANC); the study accepts 10^9/L, "
     "10*9/L, G/L, 10*3/uL, 10^3/uL, K/uL, /uL"),
    ("WUH-101;06/01/2026 07:00;751-8;1,2;G/L",
     "collection date '06/01/2026 07:00' is not ISO 8601 (YYYY-MM-DD, optionally with the "
     "time)"),
    ("WUH-101;2026-01-06 07:00;751-8;<0,1;G/L",
     "value <0,1 is censored (below or above the measurable range); enter it by hand"),
    ("WUH-101;2026-01-02 07:00;751-8;1,45;G/L",
     "WUH-101: no occurrence of the lab events has a window holding 2026-01-02"),
    # Day 1 twice with different values.
    ("WUH-101;2026-01-05 18:00;751-8;1,60;G/L",
     "WUH-101 ANC on 2026-01-05: 1.60 here, 1.45 at line 3"),
])
def test_one_bad_line_refuses_the_file_and_stores_nothing(subject, line, reason):
    data = (FILES / "counts.csv").read_bytes() + (line + "\r\n").encode()
    before = row_counts(db.session)
    found = plan("bad.csv", data)
    assert [(p.where, p.reason) for p in found.problems] == [("line 12", reason)]
    with pytest.raises(esource.LabFileError, match="1 line"):
        esource.apply_import(db.session, ACTOR, study(), found, today=TODAY)
    db.session.rollback()
    assert row_counts(db.session) == before


def test_a_value_capture_refuses_rolls_the_whole_import_back(subject):
    # Day 2's haemoglobin 30 g/dL is 300 g/L, above the hard range (250): capture refuses
    # the form, and day 1 of the same file is not kept either.
    data = counts_csv(range(1, 2)) + b"WUH-101;2026-01-06 07:00;718-7;30;g/dL\r\n"
    before = row_counts(db.session)
    found = plan("range.csv", data)
    assert found.problems == []
    with pytest.raises(esource.LabImportRefused) as refused:
        esource.apply_import(db.session, ACTOR, study(), found, today=TODAY)
    assert [p.where for p in refused.value.problems] == ["line 7"]
    assert "HGB" in refused.value.problems[0].reason
    db.session.rollback()
    assert row_counts(db.session) == before


def test_42_days_of_5_analytes_for_one_subject(subject):
    found = plan("days.csv", counts_csv(range(1, 43)))
    assert (len(found.lines), found.problems, found.skipped) == (210, [], [])
    result = esource.apply_import(db.session, ACTOR, study(), found, today=TODAY)
    db.session.commit()
    assert (result.values, result.forms) == (210, 1)
    values = stored()
    assert [values[(n, "LBDT")] for n in range(1, 43)] == [day(n).isoformat()
                                                           for n in range(1, 43)]
    assert [values[(n, "STUDYDY")] for n in range(1, 43)] == [str(n) for n in range(1, 43)]
    # Day 42: WBC 2 + 4.2, ANC 1 + 2.1 (G/L), haemoglobin 9.84 g/dL -> 98 g/L (rounded to
    # the integer item), platelets 92 000 /uL -> 92, temperature 36.5 + 0/10.
    assert {item: values[(42, item)] for item in ("WBC", "ANC", "HGB", "PLT", "TMAX")} == {
        "WBC": "6.20", "ANC": "3.10", "HGB": "98", "PLT": "92", "TMAX": "36.5"}


def test_a_study_without_labs_block_refuses_every_file(app, make_study):
    from tests.capture.capture_setup import load_capture_study

    capture_study = load_capture_study(make_study)
    with pytest.raises(esource.LabFileError, match="CAPTURE declares no labs block"):
        esource.plan_import(db.session, capture_study, "counts.csv",
                            (FILES / "counts.csv").read_bytes())


def test_command_previews_and_stores(subject, runner, tmp_path):
    target = tmp_path / "counts.csv"
    target.write_bytes(counts_csv(range(1, 3)))
    dry = runner.invoke(args=["import", "labs", str(target), "--study", "UCMSCEXO",
                              "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "10 new, 0 unchanged, 0 conflicting, 0 skipped, 0 cannot be imported" in dry.output
    assert "dry run: nothing stored" in dry.output
    assert stored() == {}

    done = runner.invoke(args=["import", "labs", str(target), "--study", "UCMSCEXO"])
    assert done.exit_code == 0, done.output
    assert "10 value(s) stored in 1 form(s)" in done.output
    assert len(stored()) == 10 + 2 * 2  # and each row's date and study day

    target.write_bytes(counts_csv(range(1, 2)) + b"WUH-101;2026-03-01;751-8;1;G/L\r\n")
    refused = runner.invoke(args=["import", "labs", str(target), "--study", "UCMSCEXO"])
    assert refused.exit_code == 1
    assert "line 7: cannot be imported: WUH-101: no occurrence" in refused.output
    assert "1 result(s) cannot be imported (listed above); nothing was stored" in refused.output
    unknown = runner.invoke(args=["import", "labs", str(target), "--study", "NOPE"])
    assert unknown.exit_code == 1 and "no study with OID 'NOPE'" in unknown.output


def test_a_frozen_study_refuses_the_import(subject, runner, tmp_path):
    target = tmp_path / "counts.csv"
    target.write_bytes(counts_csv(range(1, 3)))
    frozen = runner.invoke(args=["study", "freeze", "UCMSCEXO", "--reason", "interim analysis"])
    assert frozen.exit_code == 0, frozen.output
    before = row_counts(db.session)
    refused = runner.invoke(args=["import", "labs", str(target), "--study", "UCMSCEXO"])
    assert refused.exit_code == 1
    assert "line 2: refused: WUH-101 HEMOBS[1]: Study UCMSCEXO is frozen" in refused.output
    assert "10 result(s) refused by data capture; nothing was stored" in refused.output
    assert row_counts(db.session) == before

