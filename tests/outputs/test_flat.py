"""Flat exports: CSV per form (repeating groups long), the data dictionary, SAS XPORT v5
and SPSS files read back with pyreadstat, the CLI and the export job."""

from __future__ import annotations

import csv
import datetime as dt
import re
import zipfile

import pyreadstat
import pytest
from sqlalchemy import select

from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.jobs import runner as jobs
from ecrf.jobs.models import Job
from ecrf.outputs.datasets.flat import export_csv
from ecrf.outputs.datasets.formats import Column
from ecrf.outputs.datasets.stats import export_stats, write_dataset_xpt
from ecrf.outputs.rows import make_scope
from ecrf.studies.models import Study
from tests.outputs.clinical_setup import XSS_TEXT, actor, populate


@pytest.fixture
def cast(app, make_study, make_user):
    return populate(make_study, make_user)


def read_csv(path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def display_format(spelling: str) -> tuple[str, int | None]:
    """Name and width of a SAS or SPSS display format as a reader reports it: pyreadstat
    spells the same format ``DATETIME20`` or ``DATETIME20.`` depending on its version."""
    match = re.fullmatch(r"([A-Z$]+)(\d*)(?:\.\d*)?", spelling.strip().upper())
    assert match, f"not a display format: {spelling!r}"
    name, width = match.groups()
    return name, int(width) if width else None


@pytest.mark.parametrize("spelling, meaning", [
    ("DATETIME20", ("DATETIME", 20)), ("DATETIME20.", ("DATETIME", 20)),
    ("datetime20.0", ("DATETIME", 20)), ("DATETIME", ("DATETIME", None)),
    ("DATETIME19.", ("DATETIME", 19)), ("DATE9.", ("DATE", 9)), ("$CHAR8.", ("$CHAR", 8)),
])
def test_display_format_spellings(spelling, meaning):
    assert display_format(spelling) == meaning


def test_csv_per_form_with_repeating_groups_in_long_format(cast, tmp_path):
    files = export_csv(db.session, make_scope(db.session, cast.study), tmp_path)
    assert {f.name for f in files} == {"CONSENT.csv", "DEMOG.csv", "LAB.csv",
                                       "LAB__LAB_DAY.csv", "AE.csv", "AE__AE_LINE.csv",
                                       "data_dictionary.csv"}
    demog = read_csv(tmp_path / "DEMOG.csv")
    assert len(demog) == 1
    row = demog[0]
    assert {k: row[k] for k in ("subject", "site", "event", "event_repeat", "form_status",
                                "study_version")} == {
        "subject": "S01-001", "site": "S01", "event": "SCREEN", "event_repeat": "1",
        "form_status": "complete", "study_version": "v1 (protocol 2.0)"}
    assert row["WEIGHT"] == "74.0" and row["RACE"] == '["WHITE","ASIAN"]'
    assert row["BMI"] == "25.6" and row["NOTES"] == XSS_TEXT and row["SEX"] == "F"
    consent = read_csv(tmp_path / "CONSENT.csv")
    assert [(r["subject"], r["CONSDT"]) for r in consent] == [("S01-001", "2025-05-02"),
                                                              ("S02-001", "2025-05-03")]
    days = read_csv(tmp_path / "LAB__LAB_DAY.csv")
    assert [(r["group_repeat"], r["NEUT"], r["PLT"]) for r in days] == [
        ("1", "0.40", "20"), ("2", "1.20", "60"), ("3", "2.50", "180")]
    lab = read_csv(tmp_path / "LAB.csv")
    assert lab[0]["ALT"] == "130.0" and "NEUT" not in lab[0]
    lines = read_csv(tmp_path / "AE__AE_LINE.csv")
    assert [r["AETERM"] for r in lines] == ["Febrile neutropenia", "Nausea"]  # row 3 removed


def test_site_scope(cast, tmp_path):
    export_csv(db.session, make_scope(db.session, cast.study, site="S02"), tmp_path)
    assert [r["subject"] for r in read_csv(tmp_path / "CONSENT.csv")] == ["S02-001"]
    assert read_csv(tmp_path / "DEMOG.csv") == []


def test_data_dictionary(cast, tmp_path):
    export_csv(db.session, make_scope(db.session, cast.study), tmp_path)
    rows = {(r["form"], r["item"]): r for r in read_csv(tmp_path / "data_dictionary.csv")}
    sex = rows[("DEMOG", "SEX")]
    assert sex["codes"] == "F=Female | M=Male" and sex["codelist"] == "CL.DEMOG.SEX"
    assert sex["sdtm"] == "DM.SEX" and sex["required"] == "Y" and sex["type"] == "single_choice"
    weight = rows[("DEMOG", "WEIGHT")]
    assert (weight["unit"], weight["range"], weight["precision"]) == ("kg", "20..300", "1")
    neut = rows[("LAB", "NEUT")]
    assert neut["dataset"] == "LAB__LAB_DAY" and neut["repeating"] == "Y"
    assert neut["lab_test"] == "NEUT" and neut["xpt_dataset"] == "LAB_DAY"
    assert rows[("DEMOG", "SAMPLEDTM")]["xpt_name"] == "SAMPLEDT"
    assert rows[("AE", "AEOUT")]["codes"].startswith("RECOVERED/RESOLVED=Recovered")
    assert rows[("DEMOG", "BMI")]["type"] == "calculated (decimal)"
    assert weight["xpt_label"] == "Weight (kg)" and weight["label"] == "Weight"
    race = rows[("DEMOG", "RACE")]
    assert race["type"] == "multiple_choice" and race["xpt_name"] == ""
    asian = rows[("DEMOG", "RACE_ASIAN")]
    assert (asian["label"], asian["xpt_name"], asian["xpt_label"], asian["codes"]) == (
        "Race: Asian", "RACASIAN", "Race: Asian", "1=Yes | 0=No")


def test_sas_transport_files_read_back(cast, tmp_path):
    export_stats(db.session, make_scope(db.session, cast.study), tmp_path, "xpt")
    data, meta = pyreadstat.read_xport(str(tmp_path / "DEMOG.xpt"), output_format="dict")
    assert meta.table_name == "DEMOG"
    assert all(len(name) <= 8 for name in meta.column_names)
    assert meta.column_names[:7] == ["SUBJECT", "SITE", "EVENT", "EVENTRPT", "FORMSTAT",
                                     "STUDYVER", "BRTHDTC"]
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    assert labels["WEIGHT"] == "Weight (kg)" and labels["SAMPLEDT"] == "Sample taken"
    assert data["WEIGHT"] == [74.0] and data["HEIGHT"] == [170.0]
    assert data["BRTHDTC"] == ["1970-03"] and data["SEX"] == ["F"]
    assert data["SAMPLEDT"] == [dt.datetime(2025, 5, 2, 8, 15)]  # UTC
    assert data["VISITTM"] == [dt.time(9, 30)] and data["EVENTRPT"] == [1.0]
    assert display_format(meta.original_variable_types["SAMPLEDT"]) == ("DATETIME", 20)
    days, meta = pyreadstat.read_xport(str(tmp_path / "LAB__LAB_DAY.xpt"), output_format="dict")
    assert meta.table_name == "LAB_DAY"
    assert days["LBDT"] == [dt.date(2025, 5, 8), dt.date(2025, 5, 9), dt.date(2025, 5, 10)]
    assert days["NEUT"] == [0.4, 1.2, 2.5] and days["GROUPRPT"] == [1.0, 2.0, 3.0]


def test_long_text_continues_in_extra_xport_variables(tmp_path):
    text = "é" * 150 + "x" * 160  # 460 bytes in UTF-8
    write_dataset_xpt(tmp_path / "long.xpt", "LONG", "Long text",
                      [Column("NOTES", "Notes", "char", [text, "short", None])])
    data, meta = pyreadstat.read_xport(str(tmp_path / "long.xpt"), output_format="dict")
    assert meta.column_names == ["NOTES", "NOTES1", "NOTES2"]
    assert "".join(data[c][0] for c in meta.column_names) == text
    assert data["NOTES"][1] == "short"


def test_spss_files_read_back(cast, tmp_path):
    export_stats(db.session, make_scope(db.session, cast.study), tmp_path, "sav")
    data, meta = pyreadstat.read_sav(str(tmp_path / "DEMOG.sav"), output_format="dict")
    assert meta.column_names[:6] == ["subject", "site", "event", "event_repeat",
                                     "form_status", "study_version"]
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    assert labels["WEIGHT"] == "Weight (kg)"
    assert data["WEIGHT"] == [74.0] and data["SAMPLEDTM"] == [dt.datetime(2025, 5, 2, 8, 15)]
    assert data["NOTES"] == [XSS_TEXT] and data["subject"] == ["S01-001"]
    assert display_format(meta.original_variable_types["SAMPLEDTM"]) == ("DATETIME", 20)
    days, _meta = pyreadstat.read_sav(str(tmp_path / "LAB__LAB_DAY.sav"), output_format="dict")
    assert days["LBDT"][0] == dt.date(2025, 5, 8) and days["group_repeat"] == [1.0, 2.0, 3.0]


def test_cli_flat_exports_are_audited(cast, runner, tmp_path):
    for fmt, sample in (("csv", "DEMOG.csv"), ("xpt", "DEMOG.xpt"), ("sav", "DEMOG.sav"),
                        ("sdtm", "ae.xpt")):
        out = tmp_path / fmt
        result = runner.invoke(args=["export", fmt, "CLINX", "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert (out / sample).is_file()
    assert (tmp_path / "xpt" / "data_dictionary.csv").is_file()
    details = [r.details for r in db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "export.created"))]
    assert sum("clinical_csv" in d or "clinical_xpt" in d or "clinical_sav" in d
               or "clinical_sdtm" in d for d in details) == 4


@pytest.mark.parametrize("fmt, member", [("csv", "DEMOG.csv"), ("sav", "DEMOG.sav"),
                                         ("xpt", "DEMOG.json"),
                                         ("odm", None)])
def test_export_job(cast, app, make_user, fmt, member):
    dm = make_user("dm1", role="data_manager", study="CLINX")
    study = db.session.scalar(select(Study).where(Study.oid == "CLINX"))
    job = jobs.enqueue(db.session, actor(dm, "data_manager", None), "clinical_data", study,
                       {"format": fmt, "site": "S01"})
    db.session.commit()
    jobs.work(app, once=True)
    db.session.expire_all()
    job = db.session.get(Job, job.id)
    assert job.status == "done", job.error
    path = jobs.result_file(app, job)
    if member:
        with zipfile.ZipFile(path) as archive:
            assert member in archive.namelist()
    else:
        assert path.name == "CLINX_S01_odm_snapshot.xml"


def test_export_job_refuses_an_unknown_format(cast, make_user):
    dm = make_user("dm1", role="data_manager", study="CLINX")
    study = db.session.scalar(select(Study).where(Study.oid == "CLINX"))
    with pytest.raises(jobs.JobError, match="format must be one of"):
        jobs.enqueue(db.session, actor(dm, "data_manager", None), "clinical_data", study,
                     {"format": "xls"})


def test_exports_page_queues_casebooks_and_data_exports(cast, client, login_as):
    login_as("data_manager", study="CLINX")
    page = client.get("/studies/CLINX/jobs")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Subject casebooks (PDF/A, zip)" in text and 'value="sdtm"' in text
    assert '<option value="S02">S02 — Site S02</option>' in text
    response = client.post("/studies/CLINX/jobs/casebooks", data={"site": "S02"})
    assert response.status_code == 302
    response = client.post("/studies/CLINX/jobs/data", data={"format": "xpt", "site": ""})
    assert response.status_code == 302
    queued = db.session.scalars(select(Job).order_by(Job.id)).all()
    assert [(j.kind, j.params) for j in queued] == [
        # the casebooks in the data manager's own language (English here)
        ("casebooks", {"site": "S02", "language": "en"}),
        ("clinical_data", {"site": None, "format": "xpt"})]
    bad = client.post("/studies/CLINX/jobs/data", data={"format": "pdf"},
                      follow_redirects=True)
    assert "format must be one of" in bad.get_data(as_text=True)


def test_exports_need_the_export_permission(cast, client, login_as):
    login_as("monitor", study="CLINX")
    assert client.post("/studies/CLINX/jobs/casebooks", data={}).status_code == 403
    assert client.post("/studies/CLINX/jobs/data", data={"format": "csv"}).status_code == 403
