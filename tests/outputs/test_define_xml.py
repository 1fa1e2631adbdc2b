"""define.xml and the SDTM package of the clinical export test study: valid against the
Define-XML 2.1 schema, consistent with the datasets, origins into the annotated CRF,
code lists with decodes, value-level metadata, and the package zip with its manifest."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest
from lxml import etree
from sqlalchemy import select

from ecrf import jobs
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.jobs import Job
from ecrf.outputs.datasets.define import define_xml
from ecrf.outputs.datasets.sdtm import sdtm_package
from ecrf.outputs.rows import make_scope
from ecrf.studies.store import definition_for, latest_version
from tests.outputs.clinical_setup import actor, populate
from tests.outputs.define_checks import NS, consistency_problems, schema_errors
from tests.outputs.test_stat_files import schema_errors as dataset_json_errors


@pytest.fixture
def cast(app, make_study, make_user):
    return populate(make_study, make_user)


def _define(cast, pages=None):
    package = sdtm_package(db.session, make_scope(db.session, cast.study))
    version = latest_version(db.session, cast.study)
    xml = define_xml(package, definition_for(version), study_oid="CLINX",
                     version_label=version.label, content_hash=version.content_hash,
                     pages=pages)
    return package, xml, etree.fromstring(xml)


def _item(root, oid):
    found = root.find(f".//odm:ItemDef[@OID='{oid}']", NS)
    assert found is not None, oid
    return found


def test_define_xml_is_valid_and_describes_exactly_the_data(cast):
    package, xml, root = _define(cast)
    assert schema_errors(xml) == []
    assert consistency_problems(xml, package) == []
    assert root.get(f"{{{NS['def']}}}Context") == "Submission"
    standards = {(s.get("Name"), s.get("Version"))
                 for s in root.iterfind(".//def:Standard", NS)}
    assert ("SDTMIG", "3.4") in standards and ("CDISC/NCI", "2024-09-27") in standards
    leaves = {n.get("ID"): n.get(f"{{{NS['xlink']}}}href")
              for n in root.iterfind(".//def:leaf", NS)}
    assert leaves["LF.acrf"] == "acrf.pdf" and leaves["LF.AE"] == "ae.xpt"


def test_origins_point_into_the_annotated_crf_or_at_a_method(cast):
    _package, _xml, root = _define(cast)
    aeterm = _item(root, "IT.AE.AETERM").find("def:Origin", NS)
    assert (aeterm.get("Type"), aeterm.get("Source")) == ("Collected", "Investigator")
    page = aeterm.find("def:DocumentRef/def:PDFPageRef", NS)
    assert (page.get("Type"), page.get("PageRefs")) == ("NamedDestination", "form-AE")
    assert _item(root, "IT.AE.AEREL").find("def:Origin", NS).get("Type") == "Derived"
    ref = root.find(".//odm:ItemGroupDef[@Name='AE']/odm:ItemRef[@ItemOID='IT.AE.AEREL']", NS)
    method = root.find(f".//odm:MethodDef[@OID='{ref.get('MethodOID')}']", NS)
    assert "RELATED" in method.findtext("odm:Description/odm:TranslatedText", None, NS)
    _package, _xml, paged = _define(cast, pages={"AE": 7, "DEMOG": 2})
    page = _item(paged, "IT.AE.AETERM").find("def:Origin/def:DocumentRef/def:PDFPageRef", NS)
    assert (page.get("Type"), page.get("PageRefs")) == ("PhysicalRef", "7")


def test_code_lists_have_decodes_and_cdisc_codes(cast):
    _package, _xml, root = _define(cast)
    ref = _item(root, "IT.AE.AESER").find("odm:CodeListRef", NS).get("CodeListOID")
    codelist = root.find(f".//odm:CodeList[@OID='{ref}']", NS)
    decodes = {t.get("CodedValue"): t.findtext("odm:Decode/odm:TranslatedText", None, NS)
               for t in codelist.iterfind("odm:CodeListItem", NS)}
    assert decodes["Y"] == "Yes" and decodes["N"] == "No"
    assert codelist.find("odm:Alias", NS).get("Name") == "C66742"  # CDISC NY
    keys = [(r.get("ItemOID"), r.get("KeySequence")) for r in root.iterfind(
        ".//odm:ItemGroupDef[@Name='AE']/odm:ItemRef", NS) if r.get("KeySequence")]
    assert keys[:2] == [("IT.AE.STUDYID", "1"), ("IT.AE.USUBJID", "2")]


def test_lab_results_have_value_level_metadata_per_test(cast):
    package, _xml, root = _define(cast)
    tests = sorted({r["LBTESTCD"] for r in package["LB"].rows})
    assert _item(root, "IT.LB.LBORRES").find("def:ValueListRef", NS).get(
        "ValueListOID") == "VL.LB.LBORRES"
    refs = root.findall(".//def:ValueListDef[@OID='VL.LB.LBORRES']/odm:ItemRef", NS)
    assert [r.get("ItemOID") for r in refs] == [f"IT.LB.LBORRES.{t}" for t in tests]
    for test in tests:
        check = root.find(f".//def:WhereClauseDef[@OID='WC.LB.LBTESTCD.{test}']"
                          "/odm:RangeCheck", NS)
        assert (check.get(f"{{{NS['def']}}}ItemOID"), check.get("Comparator"),
                check.findtext("odm:CheckValue", None, NS)) == ("IT.LB.LBTESTCD", "EQ", test)
        item = _item(root, f"IT.LB.LBORRES.{test}")
        assert item.get("DataType") in ("integer", "float")
        unit = next(r["LBORRESU"] for r in package["LB"].rows if r["LBTESTCD"] == test)
        assert item.findtext("odm:Description/odm:TranslatedText", None, NS).endswith(
            f" result in {unit}")


def test_cli_exports_define_and_the_package(cast, runner, tmp_path):
    result = runner.invoke(args=["export", "define", "CLINX", "-o", str(tmp_path / "d.xml")])
    assert result.exit_code == 0, result.output
    assert schema_errors((tmp_path / "d.xml").read_bytes()) == []
    result = runner.invoke(args=["export", "sdtm", "CLINX", "-o", str(tmp_path / "pkg")])
    assert result.exit_code == 0, result.output
    names = {p.name for p in (tmp_path / "pkg").iterdir()}
    assert {"ae.xpt", "dm.xpt", "define.xml", "acrf.pdf", "manifest.json"} <= names
    manifest = json.loads((tmp_path / "pkg" / "manifest.json").read_text())
    assert {f["name"] for f in manifest["files"]} == names - {"manifest.json"}
    details = [r.details for r in db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "export.created"))]
    assert sum("define_xml" in d for d in details) == 1
    assert sum("clinical_sdtm" in d for d in details) == 1
    result = runner.invoke(args=["export", "dataset-json", "CLINX", "-o", str(tmp_path / "dj")])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "dj").iterdir())
    assert written == sorted(n.replace(".xpt", ".json") for n in names if n.endswith(".xpt"))
    for path in (tmp_path / "dj").iterdir():
        assert dataset_json_errors(json.loads(path.read_text("utf-8"))) == [], path.name


@pytest.mark.parametrize("args, message", [
    (["export", "sdtm", "NOPE", "-o", "{tmp}/p.zip"], "no study with OID 'NOPE'"),
    (["export", "define", "NOPE", "-o", "{tmp}/d.xml"], "no study with OID 'NOPE'"),
    (["export", "sdtm", "CLINX", "-o", "{tmp}/file.txt/pkg"], "cannot write"),
    (["export", "sdtm", "CLINX", "-o", "{tmp}/file.txt"], "is a file"),
    (["export", "define", "CLINX", "-o", "{tmp}/file.txt/d.xml"], "cannot write"),
    (["export", "sdtm", "CLINX", "--site", "S99", "-o", "{tmp}/p.zip"], "S99"),
    (["export", "dataset-json", "NOPE", "-o", "{tmp}/dj"], "no study with OID 'NOPE'"),
    (["export", "dataset-json", "CLINX", "-o", "{tmp}/file.txt"], "file.txt"),
])
def test_cli_refuses_bad_input_with_one_line(cast, runner, tmp_path, args, message):
    (tmp_path / "file.txt").write_text("x")
    result = runner.invoke(args=[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "p.zip").exists() and not (tmp_path / "d.xml").exists()


def test_package_job_zips_files_with_checksums_and_a_valid_define(cast, app, make_user):
    dm = make_user("dm1", role="data_manager", study="CLINX")
    job = jobs.enqueue(db.session, actor(dm, "data_manager", None), "clinical_data",
                       cast.study, {"format": "sdtm_package", "site": ""})
    db.session.commit()
    jobs.work(app, once=True)
    db.session.expire_all()
    job = db.session.get(Job, job.id)
    assert job.status == "done" and job.progress == 100, job.error
    path = jobs.result_file(app, job)
    assert path.name == "CLINX_all_sdtm_package.zip"
    version = latest_version(db.session, cast.study)
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert sorted(f["name"] for f in manifest["files"]) == sorted(
            n for n in archive.namelist() if n != "manifest.json")
        for entry in manifest["files"]:
            data = archive.read(entry["name"])
            assert len(data) == entry["bytes"]
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        define = archive.read("define.xml")
        assert archive.read("acrf.pdf").startswith(b"%PDF")
        # Dataset-JSON beside every XPT: valid v1.1, rows as in define.xml's datasets
        documents = {n: json.loads(archive.read(n)) for n in archive.namelist()
                     if n.endswith(".json") and n != "manifest.json"}
        assert {n[:-5] for n in documents} == {n[:-4] for n in archive.namelist()
                                              if n.endswith(".xpt")}
        for name, document in documents.items():
            assert dataset_json_errors(document) == [], name
            assert document["records"] == manifest["datasets"][document["name"]]
            assert document["metaDataVersionOID"].startswith("MDV.CLINX.")
        ae = documents["ae.json"]
        assert ae["itemGroupOID"] == "IG.AE" and ae["columns"][0]["itemOID"].startswith("IT.AE.")
    assert (manifest["study"], manifest["study_version"], manifest["content_hash"]) == (
        "CLINX", version.number, version.content_hash)
    assert manifest["datasets"]["AE"] == 2 and "ae.xpt" in {f["name"] for f in manifest["files"]}
    assert schema_errors(define) == []
    oids = {g.get("OID") for g in etree.fromstring(define).iterfind(".//odm:ItemGroupDef", NS)}
    assert {d["itemGroupOID"] for d in documents.values()} <= oids
    pages = {p.get("PageRefs") for p in etree.fromstring(define).iterfind(
        ".//def:PDFPageRef", NS)}
    assert pages and all(p.isdigit() for page in pages for p in page.split())


@pytest.mark.parametrize("output", ["pkg", "pkg.zip"])
def test_a_failed_package_leaves_no_file_and_no_audit_row(cast, runner, tmp_path, monkeypatch,
                                                          output):
    from ecrf.outputs import sdtm_package
    from ecrf.outputs.odm.study import ExportError

    def broken(*args, **kwargs):
        raise ExportError("define.xml could not be made")

    monkeypatch.setattr(sdtm_package, "define_xml", broken)
    out = tmp_path / "out"
    result = runner.invoke(args=["export", "sdtm", "CLINX", "-o", str(out / output)])
    assert result.exit_code != 0 and "define.xml could not be made" in result.output
    assert list(out.iterdir()) == []
    assert db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "export.created")) is None
