"""SDTM-shaped AE and LB datasets: columns, mapping through annotations, LB grading and
reference ranges, CSV and XPT files."""

from __future__ import annotations

import csv

import pyreadstat
import pytest

from ecrf.core.extensions import db
from ecrf.outputs.datasets.sdtm import AE_COLUMNS, LB_COLUMNS, ae_groups, export_sdtm, sdtm_domains
from ecrf.outputs.rows import make_scope
from ecrf.studies.store import definition_for
from tests.outputs.clinical_setup import populate


@pytest.fixture
def cast(app, make_study, make_user):
    return populate(make_study, make_user)


def test_ae_rows_follow_the_sdtm_annotations(cast):
    rows = sdtm_domains(db.session, make_scope(db.session, cast.study))["AE"]
    assert [r["AETERM"] for r in rows] == ["Febrile neutropenia", "Nausea"]  # row 3 removed
    first = rows[0]
    assert {k: first[k] for k in AE_COLUMNS} == {
        "STUDYID": "CLINX", "DOMAIN": "AE", "USUBJID": "CLINX-S01-001", "AESEQ": 1,
        "AETERM": "Febrile neutropenia", "AEDECOD": "Febrile neutropenia",
        "AESTDTC": "2025-05-10", "AEENDTC": "2025-05-14", "AETOXGR": "3", "AESER": "Y",
        "AESDTH": "N", "AESLIFE": "N", "AESHOSP": "Y", "AESDISAB": "N", "AESCONG": "N",
        "AESMIE": "N", "AEREL": "possible", "AEACN": "DOSE NOT CHANGED",
        "AEOUT": "RECOVERED/RESOLVED"}
    assert rows[1]["AESEQ"] == 2 and rows[1]["AESTDTC"] == "2025-05"
    assert rows[1]["AEENDTC"] is None


def test_the_mapping_comes_from_annotations_not_form_names(cast):
    definition = definition_for(cast.subject.study_version)
    groups = ae_groups(definition)
    assert groups["AE"][0] == "AE_LINE" and groups["AE"][1]["AEREL"] == "AERELX"


def test_lb_rows_with_grades_ranges_and_dates(cast):
    rows = sdtm_domains(db.session, make_scope(db.session, cast.study))["LB"]
    got = [(r["LBTESTCD"], r["LBORRES"], r["LBTOXGR"], r["LBNRIND"], r["LBDTC"]) for r in rows]
    assert got == [
        ("ALT", "130.0", "2", "HIGH", "2025-05-08"),
        ("NEUT", "0.40", "4", "LOW", "2025-05-08"), ("PLAT", "20", "4", "LOW", "2025-05-08"),
        ("NEUT", "1.20", "2", "LOW", "2025-05-09"), ("PLAT", "60", "2", "LOW", "2025-05-09"),
        ("NEUT", "2.50", "0", "NORMAL", "2025-05-10"),
        ("PLAT", "180", "0", "NORMAL", "2025-05-10")]
    assert [r["LBSEQ"] for r in rows] == list(range(1, 8))
    neut = rows[1]
    assert (neut["LBORRESU"], neut["LBSTRESU"], neut["LBORNRLO"], neut["LBORNRHI"]) == (
        "10^9/L", "10^9/L", "1.8", None)
    assert float(neut["LBSTRESN"]) == 0.4
    alt = rows[0]
    assert (alt["LBORNRHI"], alt["LBSTRESU"], alt["VISIT"]) == ("40.0", "U/L", "Treatment cycle")


def test_files_csv_and_xpt(cast, tmp_path):
    files = export_sdtm(db.session, make_scope(db.session, cast.study), tmp_path)
    assert {f.name for f in files} == {"ae.csv", "ae.xpt", "lb.csv", "lb.xpt"}
    with (tmp_path / "lb.csv").open(newline="") as handle:
        lines = list(csv.reader(handle))
    assert tuple(lines[0]) == LB_COLUMNS and len(lines) == 8
    data, meta = pyreadstat.read_xport(str(tmp_path / "lb.xpt"), output_format="dict")
    assert meta.table_name == "LB" and tuple(meta.column_names) == LB_COLUMNS
    assert data["LBTOXGR"] == ["2", "4", "4", "2", "2", "0", "0"]
    assert data["LBSTRESN"][1] == 0.4 and data["LBSEQ"] == [float(n) for n in range(1, 8)]
    ae, meta = pyreadstat.read_xport(str(tmp_path / "ae.xpt"), output_format="dict")
    assert tuple(meta.column_names) == AE_COLUMNS and ae["AESHOSP"] == ["Y", ""]
    assert dict(zip(meta.column_names, meta.column_labels, strict=True))["AETOXGR"] == \
        "Standard Toxicity Grade"
