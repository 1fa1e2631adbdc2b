"""SDTM datasets of the clinical export test study: AE and LB through the annotations, LB
grading and reference ranges, SUPPAE, DM, variable metadata, CSV and XPT files."""

from __future__ import annotations

import csv

import pyreadstat
import pytest

from ecrf.core.extensions import db
from ecrf.outputs.datasets.sdtm import ae_groups, export_sdtm, sdtm_domains, sdtm_package
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
    assert {k: v for k, v in first.items() if v is not None} == {
        "STUDYID": "CLINX", "DOMAIN": "AE", "USUBJID": "CLINX-S01-001", "AESEQ": 1,
        "AETERM": "Febrile neutropenia", "AEDECOD": "Febrile neutropenia",
        "AESTDTC": "2025-05-10", "AEENDTC": "2025-05-14", "AETOXGR": "3", "AESER": "Y",
        "AESDTH": "N", "AESLIFE": "N", "AESHOSP": "Y", "AESDISAB": "N", "AESCONG": "N",
        "AESMIE": "N", "AEREL": "RELATED", "AEACN": "DOSE NOT CHANGED",
        "AEOUT": "RECOVERED/RESOLVED"}
    assert rows[1]["AESEQ"] == 2 and rows[1]["AESTDTC"] == "2025-05"
    assert rows[1]["AEENDTC"] is None and rows[1]["AEREL"] == "NOT RELATED"


def test_per_drug_causality_goes_to_suppae(cast):
    supp = sdtm_domains(db.session, make_scope(db.session, cast.study))["SUPPAE"]
    assert [(r["USUBJID"], r["IDVAR"], r["IDVARVAL"], r["QNAM"], r["QVAL"]) for r in supp] == [
        ("CLINX-S01-001", "AESEQ", "1", "AEREL1", "possible"),
        ("CLINX-S01-001", "AESEQ", "2", "AEREL1", "unrelated")]


def test_dm_has_one_record_per_subject_and_metadata_names_the_items(cast):
    package = sdtm_package(db.session, make_scope(db.session, cast.study))
    dm = package["DM"].rows
    assert sorted(r["USUBJID"] for r in dm) == sorted(
        f"CLINX-{s.subject_key}" for s in (cast.subject, cast.other))
    assert all(r["USUBJID"] == f"{r['STUDYID']}-{r['SUBJID']}" for r in dm)
    assert {r["ARMCD"] for r in dm} <= {"NOTASSGN", "SCRNFAIL"}
    first = next(r for r in dm if r["SUBJID"] == cast.subject.subject_key)
    assert first["RACE"] == "MULTIPLE"  # WHITE and ASIAN: one qualifier per code
    assert [(r["USUBJID"], r["QNAM"], r["QVAL"]) for r in package["SUPPDM"].rows] == [
        (first["USUBJID"], "RACE1", "ASIAN"), (first["USUBJID"], "RACE2", "WHITE")]
    variables = {v.name: v for v in package["AE"].variables}
    assert variables["AETERM"].origin == "CRF" and variables["AETERM"].sources == ("AE.AETERM",)
    assert variables["AEREL"].origin == "Derived" and "RELATED" in variables["AEREL"].method
    assert variables["AESEQ"].type == "integer" and variables["AETERM"].type == "text"
    assert variables["AESER"].codelists == ("NY",) and variables["AETERM"].codelists == ()
    assert variables["AETERM"].length == len("Febrile neutropenia")
    for data in package.values():
        assert data.columns == tuple(data.rows[0])


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
    assert (alt["LBORNRHI"], alt["LBSTRESU"], alt["VISIT"]) == ("40", "U/L", "Treatment cycle")


def test_files_csv_and_xpt(cast, tmp_path):
    package = sdtm_package(db.session, make_scope(db.session, cast.study))
    files = export_sdtm(db.session, make_scope(db.session, cast.study), tmp_path)
    assert {f.name for f in files} == {f"{n.lower()}.{e}" for n in package for e in ("csv", "xpt")}
    lb_columns = package["LB"].columns
    with (tmp_path / "lb.csv").open(newline="") as handle:
        lines = list(csv.reader(handle))
    assert tuple(lines[0]) == lb_columns and len(lines) == 8
    data, meta = pyreadstat.read_xport(str(tmp_path / "lb.xpt"), output_format="dict")
    assert meta.table_name == "LB" and tuple(meta.column_names) == lb_columns
    assert data["LBTOXGR"] == ["2", "4", "4", "2", "2", "0", "0"]
    assert data["LBSTRESN"][1] == 0.4 and data["LBSEQ"] == [float(n) for n in range(1, 8)]
    ae, meta = pyreadstat.read_xport(str(tmp_path / "ae.xpt"), output_format="dict")
    assert tuple(meta.column_names) == package["AE"].columns and ae["AESHOSP"] == ["Y", ""]
    assert dict(zip(meta.column_names, meta.column_labels, strict=True))["AETOXGR"] == \
        "Standard Toxicity Grade"
