"""ODM 1.3.2 clinical data: snapshot and transactional exports (valid against the official
XSD, every reference resolving), scopes, the CLI, and import through data capture."""

from __future__ import annotations

import io
import shutil

import pytest
from lxml import etree
from sqlalchemy import func, select

from ecrf.capture import IMPORTED_TABLES
from ecrf.capture.models import ItemValue, Subject
from ecrf.core import audit
from ecrf.core import base as core_base
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.outputs.odm.clinical import export_odm_clinical
from ecrf.outputs.odm.common import reference_errors
from ecrf.outputs.odm.importer.clinical import ClinicalImportError, import_odm_clinical
from ecrf.outputs.odm.study import validate_odm
from ecrf.outputs.rows import make_scope
from ecrf.studies import store as studies
from ecrf.studies.models import Study
from tests.conftest import count_statements, is_postgres
from tests.outputs import NS
from tests.outputs.clinical_setup import (
    LOADER,
    STUDY_FOLDER,
    XSS_TEXT,
    enrol,
    load_study,
    populate,
    save,
)

IMPORTER = LOADER


@pytest.fixture
def cast(app, make_study, make_user):
    return populate(make_study, make_user)


def export(study, *, site=None, subject=None, **kwargs) -> bytes:
    buffer = io.BytesIO()
    scope = make_scope(db.session, study, site=site, subject=subject)
    export_odm_clinical(db.session, scope, buffer, **kwargs)
    data = buffer.getvalue()
    assert validate_odm(data) == []  # every export the tests make
    assert reference_errors(data) == []
    return data


def assert_trail_matches_data() -> None:
    """The imported values, statuses, signatures and locks are those the trail recorded."""
    assert audit.verify_chain(db.session).ok
    found = audit.reconcile(db.session)
    assert found.ok and found.checked["item values"] > 0, found.lines()


def xpath(data: bytes, path: str) -> list:
    return etree.fromstring(data).xpath(path, namespaces=NS)


def item_values(data: bytes) -> dict[tuple, str]:
    """(subject, event, repeat, form, group, row, item) -> value of a snapshot."""
    found = {}
    for el in xpath(data, "//odm:ItemData"):
        ig = el.getparent()
        form = ig.getparent()
        event = form.getparent()
        subject = event.getparent()
        found[(subject.get("SubjectKey"), event.get("StudyEventOID"),
               event.get("StudyEventRepeatKey"), form.get("FormOID"), ig.get("ItemGroupOID"),
               ig.get("ItemGroupRepeatKey"), el.get("ItemOID"))] = el.get("Value")
    return found


def test_snapshot_is_valid_and_has_metadata_admin_and_clinical_data(cast):
    data = export(cast.study)
    root = etree.fromstring(data)
    assert root.get("FileType") == "Snapshot" and root.get("Granularity") == "All"
    children = [etree.QName(c).localname for c in root]
    assert children == ["Study", "AdminData", "ClinicalData"]
    cd = xpath(data, "//odm:ClinicalData")[0]
    assert cd.get("MetaDataVersionOID") == "MDV.CLINX.1"
    assert [s.get("SubjectKey") for s in xpath(data, "//odm:SubjectData")] == ["S01-001",
                                                                              "S02-001"]
    assert xpath(data, "//odm:SubjectData[@SubjectKey='S02-001']/odm:SiteRef/@LocationOID") \
        == ["LOC.S02"]


def test_snapshot_values_with_their_latest_audit_record(cast):
    data = export(cast.study)
    values = item_values(data)
    demog = ("S01-001", "SE.SCREEN", None, "F.DEMOG", "IG.DEMOG.DEMOG_MAIN", None)
    assert values[demog + ("I.DEMOG.WEIGHT",)] == "74.0"
    assert values[demog + ("I.DEMOG.HEIGHT",)] == "170"
    # A multiple choice: one boolean ItemData per code of its list, never "WHITE,ASIAN".
    assert demog + ("I.DEMOG.RACE",) not in values
    assert {code: values[demog + (f"I.DEMOG.RACE.{code}",)]
            for code in ("WHITE", "ASIAN", "OTHER")} == {"WHITE": "1", "ASIAN": "1",
                                                         "OTHER": "0"}
    assert values[demog + ("I.DEMOG.VISITTM",)] == "09:30:00"
    assert values[demog + ("I.DEMOG.SAMPLEDTM",)] == "2025-05-02T10:15:00+02:00"
    assert values[demog + ("I.DEMOG.NOTES",)] == XSS_TEXT
    lab = ("S01-001", "SE.CYCLE", "1", "F.LAB", "IG.LAB.LAB_DAY")
    assert values[lab + ("2", "I.LAB.NEUT")] == "1.20"
    weight = xpath(data, "//odm:ItemData[@ItemOID='I.DEMOG.WEIGHT']")[0]
    record = weight.find("odm:AuditRecord", NS)
    assert record.findtext("odm:ReasonForChange", namespaces=NS) == \
        "transcription error, see source"
    assert record.find("odm:UserRef", NS).get("UserOID") == "USR.crc1"
    assert record.find("odm:LocationRef", NS).get("LocationOID") == "LOC.S01"
    assert record.findtext("odm:DateTimeStamp", namespaces=NS).endswith("Z")
    seq = int(record.findtext("odm:SourceID", namespaces=NS))
    row = db.session.scalar(select(AuditEvent).where(AuditEvent.seq == seq))
    assert row.action == "item.changed" and row.new_value == "74.0" and row.old_value == "72.5"
    # Row 3 of the AE log was removed: not in a snapshot.
    assert not [k for k in values if k[3] == "F.AE" and k[5] == "3"]
    assert values[("S01-001", "SE.LOGS", None, "F.AE", "IG.AE.AE_LINE", "2",
                   "I.AE.AETERM")] == "Nausea"


def test_snapshot_signatures_valid_only(cast):
    data = export(cast.study)
    consent = xpath(data, "//odm:FormData[@FormOID='F.CONSENT']/odm:Signature")
    assert len(consent) == 2 - 1  # S01-001 only: S02-001's consent is unsigned
    sig = consent[0]
    assert sig.find("odm:UserRef", NS).get("UserOID") == "USR.inv1"
    assert sig.find("odm:SignatureRef", NS).get("SignatureOID") == "SD.APPROVAL"
    assert xpath(data, "//odm:SignatureDef[@OID='SD.APPROVAL']")
    # The DEMOG signature broke when HEIGHT changed: a snapshot shows no signature there.
    assert xpath(data, "//odm:FormData[@FormOID='F.DEMOG']/odm:Signature") == []
    notes = xpath(data, "//odm:FormData[@FormOID='F.DEMOG']/odm:Annotation/odm:Comment/text()")
    assert notes == ["ecrf:form status=complete; study_version=1"]


def test_transactional_has_every_change_removals_and_broken_signatures(cast):
    data = export(cast.study, transactional=True)
    assert etree.fromstring(data).get("FileType") == "Transactional"
    weights = xpath(data, "//odm:ItemData[@ItemOID='I.DEMOG.WEIGHT']")
    assert [(w.get("TransactionType"), w.get("Value")) for w in weights] == [
        ("Insert", "72.5"), ("Update", "74.0")]
    seqs = [int(w.findtext("odm:AuditRecord/odm:SourceID", namespaces=NS)) for w in weights]
    assert seqs == sorted(seqs)
    removal = xpath(data, "//odm:ItemGroupData[@ItemGroupRepeatKey='3']"
                          "[@TransactionType='Remove']")
    assert len(removal) == 1
    assert removal[0].findtext("odm:AuditRecord/odm:ReasonForChange", namespaces=NS) == \
        "duplicate of line 1"
    assert xpath(data, "//odm:SubjectData")[0].get("TransactionType") == "Upsert"
    broken = xpath(data, "//odm:FormData[@FormOID='F.DEMOG'][@TransactionType='Context']")
    assert len(broken) == 1
    assert broken[0].find("odm:Signature/odm:SignatureRef", NS).get("SignatureOID") == \
        "SD.RESPONSIBILITY"
    assert "broken_at=" in broken[0].findtext("odm:Annotation/odm:Comment", namespaces=NS)
    # Every item change of the trail is in the file, each once.
    changes = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.study_oid == "CLINX",
        AuditEvent.action.in_(("item.entered", "item.changed", "item.cleared"))))
    sources = [el.findtext("odm:AuditRecord/odm:SourceID", namespaces=NS)
               for el in xpath(data, "//odm:ItemData[odm:AuditRecord]")]
    assert len(set(sources)) == changes
    # A multiple choice changes as a whole: each code of its list carries that change.
    race = xpath(data, "//odm:ItemData[starts-with(@ItemOID, 'I.DEMOG.RACE.')]")
    assert [(r.get("ItemOID"), r.get("TransactionType"), r.get("Value")) for r in race] == [
        ("I.DEMOG.RACE.WHITE", "Insert", "1"), ("I.DEMOG.RACE.ASIAN", "Insert", "1"),
        ("I.DEMOG.RACE.OTHER", "Insert", "0")]
    assert len(sources) == changes + len(race) - 1


def test_site_and_subject_scopes(cast):
    site = export(cast.study, site="S02")
    assert [s.get("SubjectKey") for s in xpath(site, "//odm:SubjectData")] == ["S02-001"]
    one = export(cast.study, subject="S01-001", transactional=True)
    assert [s.get("SubjectKey") for s in xpath(one, "//odm:SubjectData")] == ["S01-001"]


@pytest.mark.parametrize("transactional", [False, True])
def test_consecutive_subjects_with_the_same_only_form_each_get_their_own_group(
        app, make_study, transactional):
    # Each subject's ItemGroupData closes with its form and subject, even when the next
    # subject starts on the same event, form, group and row.
    study = load_study(make_study)
    days = {"S01-001": "2025-05-02", "S01-002": "2025-05-03"}
    for key, day in days.items():
        save(LOADER, enrol(study, key), "SCREEN", "CONSENT",
             {("CONSENT_MAIN", 1, "CONSDT"): day})
    data = export(study, transactional=transactional)  # schema-valid, references resolve
    for key, day in days.items():
        groups = xpath(data, f"//odm:SubjectData[@SubjectKey='{key}']//odm:ItemGroupData")
        assert [g.get("ItemGroupOID") for g in groups] == ["IG.CONSENT.CONSENT_MAIN"]
        values = groups[0].xpath("odm:ItemData[@ItemOID='I.CONSENT.CONSDT']/@Value",
                                 namespaces=NS)
        assert values == [day]


def test_cli_export_validates_and_is_audited(cast, runner, tmp_path):
    target = tmp_path / "out" / "clinx.xml"
    result = runner.invoke(args=["export", "odm", "CLINX", "--site", "S01", "--transactional",
                                 "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "valid against the XSD" in result.output
    assert validate_odm(target) == []
    assert not list(target.parent.glob(".ecrf-export-*"))
    row = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "export.created")
                             .order_by(AuditEvent.seq.desc())).first()
    assert row.new_value == "clinx.xml" and "clinical_odm_transactional" in row.details
    bad = runner.invoke(args=["export", "odm", "CLINX", "--site", "NOPE", "-o", str(target)])
    assert bad.exit_code != 0 and "site 'NOPE' does not take part in CLINX" in bad.output


# --- import ------------------------------------------------------------------------------------

def _copy_study(tmp_path, make_study, oid: str) -> Study:
    """The same definition under another OID: a fresh study to import into."""
    folder = tmp_path / "copy"
    shutil.copytree(STUDY_FOLDER, folder)
    text = (folder / "study.yaml").read_text().replace("oid: CLINX", f"oid: {oid}")
    (folder / "study.yaml").write_text(text)
    study = make_study(oid, sites=("S01", "S02"))
    studies.load_folder(db.session, LOADER, folder)
    db.session.commit()
    return study


def _retarget(data: bytes, oid: str) -> bytes:
    return data.replace(b'StudyOID="CLINX"', f'StudyOID="{oid}"'.encode())


def test_round_trip_export_import_export_gives_the_same_values(cast, tmp_path, make_study):
    first = export(cast.study)
    fresh = _copy_study(tmp_path, make_study, "CLINY")
    path = tmp_path / "clinx.xml"
    path.write_bytes(_retarget(first, "CLINY"))
    report = import_odm_clinical(db.session, IMPORTER, fresh, path)
    db.session.commit()
    assert report.refused_forms == 0, [line for s in report.subjects for line in s.lines()]
    assert [s.subject_key for s in report.subjects] == ["S01-001", "S02-001"]
    assert all(s.enrolled for s in report.subjects)
    again = export(fresh)
    assert item_values(again) == item_values(first)
    # Imported through data capture: audited, with the reason naming the file.
    rows = db.session.scalars(select(AuditEvent).where(
        AuditEvent.study_oid == "CLINY", AuditEvent.action == "item.entered")).all()
    assert rows and all(r.username == "loader" for r in rows)
    statuses = xpath(again, "//odm:FormData[@FormOID='F.CONSENT']/odm:Annotation/odm:Comment"
                            "/text()")
    assert all("status=complete" in s for s in statuses)
    enrolled = db.session.scalar(select(Subject).where(Subject.subject_key == "S02-001",
                                                       Subject.study_id == fresh.id))
    assert enrolled.site.code == "S02" and enrolled.enrolled_on.isoformat() == "2025-05-01"
    assert_trail_matches_data()


def test_transactional_file_imports_to_the_same_values(cast, tmp_path, make_study):
    snapshot = export(cast.study)
    fresh = _copy_study(tmp_path, make_study, "CLINZ")
    path = tmp_path / "txn.xml"
    path.write_bytes(_retarget(export(cast.study, transactional=True), "CLINZ"))
    report = import_odm_clinical(db.session, IMPORTER, fresh, path)
    db.session.commit()
    assert report.refused_forms == 0, [line for s in report.subjects for line in s.lines()]
    assert item_values(export(fresh)) == item_values(snapshot)
    assert_trail_matches_data()


def test_import_refuses_the_whole_file_and_names_each_problem(cast, tmp_path, make_study):
    data = export(cast.study)
    data = data.replace(b'ItemOID="I.DEMOG.WEIGHT" Value="74.0"',
                        b'ItemOID="I.DEMOG.WEIGHT" Value="heavy"')
    data = data.replace(b'ItemOID="I.LAB.PLT" Value="60"', b'ItemOID="I.LAB.PLT" Value="9999"')
    fresh = _copy_study(tmp_path, make_study, "CLINW")
    path = tmp_path / "bad.xml"
    path.write_bytes(_retarget(data, "CLINW"))
    report = import_odm_clinical(db.session, IMPORTER, fresh, path)
    db.session.commit()
    assert not report.committed and report.outcome == "refused"
    first, second = report.subjects
    assert {f.form for f in first.refused} == {"DEMOG", "LAB"}
    assert first.state == "not_imported" and second.state == "checked"
    where = {(p.form, p.group, p.row, p.item) for p in report.problems}
    assert where == {("F.DEMOG", "IG.DEMOG.DEMOG_MAIN", None, "I.DEMOG.WEIGHT"),
                     ("F.LAB", "IG.LAB.LAB_DAY", "2", "I.LAB.PLT")}
    weight = next(p for p in report.problems if p.item == "I.DEMOG.WEIGHT")
    assert str(weight).startswith("S01-001 / SE.SCREEN / F.DEMOG / IG.DEMOG.DEMOG_MAIN / "
                                  "I.DEMOG.WEIGHT: ") and "72.5" in weight.message
    text = "\n".join(report.lines())
    assert "S01-001 (site S01): not imported: 2 problem(s); 2 of 4 form(s) refused" in text
    assert "S02-001 (site S02): passes (would be enrolled; 1 form(s) to save)" in text
    assert "Nothing was stored" in text
    # Neither subject was enrolled: the valid one waits for the file to be corrected.
    assert db.session.scalar(select(func.count()).select_from(Subject).where(
        Subject.study_id == fresh.id)) == 0
    assert report.counts.stored == 0 and report.counts.adds_up
    assert report.counts.skipped["invalid_value"] == 2
    assert report.counts.skipped["import_refused"] == second.counts.in_file


def test_partial_import_stores_the_subjects_without_problems(cast, tmp_path, make_study):
    data = export(cast.study).replace(b'ItemOID="I.DEMOG.WEIGHT" Value="74.0"',
                                      b'ItemOID="I.DEMOG.WEIGHT" Value="heavy"')
    fresh = _copy_study(tmp_path, make_study, "CLINW")
    path = tmp_path / "bad.xml"
    path.write_bytes(_retarget(data, "CLINW"))
    report = import_odm_clinical(db.session, IMPORTER, fresh, path, partial=True)
    db.session.commit()
    assert report.committed and report.outcome == "partially stored"
    assert report.refused_subjects == ["S01-001"]
    keys = db.session.scalars(select(Subject.subject_key).where(
        Subject.study_id == fresh.id)).all()
    assert keys == ["S02-001"]
    subject_values = db.session.scalar(select(func.count()).select_from(ItemValue).join(
        Subject, Subject.id == ItemValue.subject_id).where(Subject.study_id == fresh.id))
    assert subject_values == report.counts.stored == report.subjects[1].counts.stored == 1
    assert report.counts.skipped["subject_not_imported"] + \
        report.counts.skipped["invalid_value"] + report.counts.skipped["form_refused"] + \
        report.counts.skipped["calculated"] == report.subjects[0].counts.in_file


def test_import_of_a_key_enrolled_in_another_case_refuses_that_subject(cast, tmp_path):
    path = tmp_path / "case.xml"
    path.write_bytes(export(cast.study).replace(b'SubjectKey="S02-001"', b'SubjectKey="s02-001"'))
    report = import_odm_clinical(db.session, IMPORTER, cast.study, path, partial=True)
    db.session.commit()
    assert report.refused_subjects == ["s02-001"]
    assert "s02-001 (site S02): not imported: screening number 'S02-001' is already used in " \
        in "\n".join(report.lines())
    keys = db.session.scalars(select(Subject.subject_key).where(
        Subject.study_id == cast.study.id).order_by(Subject.subject_key)).all()
    assert keys == ["S01-001", "S02-001"]


def test_import_refusals_of_whole_files(cast, tmp_path, make_study):
    fresh = _copy_study(tmp_path, make_study, "CLINV")
    path = tmp_path / "other.xml"
    path.write_bytes(export(cast.study))
    with pytest.raises(ClinicalImportError, match="holds data of study 'CLINX', not CLINV"):
        import_odm_clinical(db.session, IMPORTER, fresh, path)
    db.session.rollback()
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<ODM><ClinicalData")
    with pytest.raises(ClinicalImportError, match="not well-formed"):
        import_odm_clinical(db.session, IMPORTER, fresh, broken)
    db.session.rollback()
    unknown = tmp_path / "unknown.xml"
    unknown.write_bytes(_retarget(export(cast.study, subject="S02-001"), "CLINV")
                        .replace(b"I.CONSENT.CONSDT", b"I.CONSENT.NOPE"))
    report = import_odm_clinical(db.session, IMPORTER, fresh, unknown, site_code="S01")
    assert report.subjects[0].refused[0].messages == [
        "CONSENT_MAIN.NOPE is not an item of CONSENT"]
    assert report.subjects[0].site_code == "S01"  # --site wins over the file's SiteRef


def test_cli_import_reports_per_subject(cast, runner, tmp_path, make_study):
    _copy_study(tmp_path, make_study, "CLINU")
    path = tmp_path / "in.xml"
    path.write_bytes(_retarget(export(cast.study), "CLINU").replace(
        b'ItemOID="I.AE.AETOXGR" Value="1"', b'ItemOID="I.AE.AETOXGR" Value="9"'))
    result = runner.invoke(args=["import", "odm", str(path), "--study", "CLINU"])
    assert result.exit_code != 0
    assert "S02-001 (site S02): passes (would be enrolled; 1 form(s) to save)" in result.output
    assert "S01-001 / SE.LOGS / F.AE / IG.AE.AE_LINE[2] / I.AE.AETOXGR: " in result.output
    assert "nothing was stored: 1 problem(s), listed above" in result.output
    partial = runner.invoke(args=["import", "odm", str(path), "--study", "CLINU",
                                  "--partial"])
    assert partial.exit_code == 0, partial.output
    assert "S02-001 (site S02): enrolled; 1 form(s) saved" in partial.output
    assert "Stored, except the subject(s) listed as not imported: S01-001." in partial.output


def test_cli_import_analyzes_what_it_filled_on_postgresql(cast, runner, tmp_path, make_study,
                                                         monkeypatch):
    _copy_study(tmp_path, make_study, "CLINA")
    path = tmp_path / "in.xml"
    path.write_bytes(_retarget(export(cast.study), "CLINA"))
    monkeypatch.setattr(core_base, "ANALYZE_THRESHOLD", 1)  # this file is small
    with count_statements() as counted:
        result = runner.invoke(args=["import", "odm", str(path), "--study", "CLINA"])
    assert result.exit_code == 0, result.output
    analyzed = [s for s in counted.texts if s.startswith("ANALYZE")]
    assert analyzed == ([f'ANALYZE "{t}"' for t in IMPORTED_TABLES] if is_postgres() else [])
    # A dry run stores nothing and analyzes nothing.
    with count_statements() as counted:
        runner.invoke(args=["import", "odm", str(path), "--study", "CLINA", "--dry-run"])
    assert not [s for s in counted.texts if s.startswith("ANALYZE")]
