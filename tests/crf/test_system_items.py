"""Items written by the system and the strata used at randomization, in the definition
and in the checker (DEXAML-03 and UCMSC-Exo as in forms/, then broken copies)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ecrf.crf import check_study, load_study

FORMS = Path(__file__).resolve().parents[2] / "forms"


def test_the_randomization_items_are_system_written_without_saying_so():
    definition = load_study(FORMS / "dexaml03").definition
    assert definition.system_items == {("RAND", "RANDNO"): "randomization",
                                       ("RAND", "RANDDT"): "randomization"}
    assert definition.strata_items == {("SALVAGE", "SALVTYPE"): "salvage",
                                       ("AMLHIST", "DISSTAT"): "disease_status"}
    assert definition.event("INDUCT").condition == 'subject.stratum.salvage = "INTENSIVE"'


def test_the_dose_level_is_entered_once_by_the_escalation():
    definition = load_study(FORMS / "ucmscexo").definition
    assert definition.system_items == {("DOSELVL", "DOSELVL"): "dose_level",
                                       ("INF", "DOSELVL"): "dose_level"}
    assert definition.item("INF", "DOSELVL").system == "dose_level"
    assert definition.strata_items == {}


def _broken(tmp_path, folder: str, file: str, old: str, new: str) -> list[str]:
    copy = tmp_path / folder
    shutil.copytree(FORMS / folder, copy)
    path = copy / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return [f"{p.file}:{p.line} {p.message}" for p in check_study(copy)]


@pytest.mark.parametrize(("folder", "file", "old", "new", "expected"), [
    ("ucmscexo", "crfs/INF.yaml", "        system: dose_level",
     "        system: allocation", "'allocation' is not one of"),
    ("ucmscexo", "crfs/INF.yaml", "        system: dose_level", "        system: enrolment",
     "system: enrolment writes a date item, not single_choice"),
    ("ucmscexo", "crfs/INF.yaml", "        system: dose_level",
     "        system: randomization",
     "system: randomization needs a randomization block in study.yaml"),
    ("dexaml03", "study.yaml", "condition: 'subject.stratum.salvage = \"AZA\"'",
     "condition: 'subject.stratum.salvge = \"AZA\"'", "unknown stratum 'salvge'"),
    ("dexaml03", "crfs/RAND.yaml", "subject.stratum.disease_status",
     "subject.stratum.status", "unknown stratum 'status'"),
])
def test_the_checker_explains_a_wrong_system_item_or_stratum(tmp_path, folder, file, old, new,
                                                            expected):
    problems = _broken(tmp_path, folder, file, old, new)
    assert any(expected in p for p in problems), problems

