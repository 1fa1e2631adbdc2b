"""The clinical ODM import is all or nothing and historical: a failed import or a dry run
leaves the database exactly as it was; ``--partial`` keeps whole subjects; the report counts
every ItemData of the file; audit rows name the file, its hash, the source system and the
source's own audit records; a transactional file replays its history in order; and past
events raise no SAE report, notification, automatic query, AE prompt or DLT review."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections import Counter

import pytest
from lxml import etree
from sqlalchemy import func, select

from ecrf.capture import operations as capture
from ecrf.capture.models import ItemValue, Subject
from ecrf.core.audit import historical_import, importing
from ecrf.core.audit.models import AuditEvent
from ecrf.core.audit.provenance import ImportProvenance, held_back
from ecrf.core.base import Base
from ecrf.core.extensions import db
from ecrf.crf import load_study
from ecrf.jobs.models import Job
from ecrf.outputs.odm.common import odm_datetime
from ecrf.outputs.odm.importer.clinical import import_odm_clinical
from ecrf.outputs.odm.importer.clinical_read import (
    Change,
    SourceRecord,
    history_order,
    read_subject,
)
from ecrf.outputs.odm.importer.clinical_report import SKIP_REASONS
from ecrf.review.models import Query
from ecrf.safety.models import AeGradePrompt, DltAssessment, NotificationLog, SaeReport
from ecrf.studies import store as studies
from tests.outputs.clinical_setup import LOADER, STUDY_FOLDER, populate
from tests.outputs.test_odm_clinical import _copy_study, _retarget, export
from tests.safety.safety_setup import SAFETY_STUDY

ODM = "http://www.cdisc.org/ns/odm/v1.3"
NS = {"odm": ODM}


@pytest.fixture
def cast(app, make_study, make_user):
    return populate(make_study, make_user)


def database_state() -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order."""
    found = {}
    for table in Base.metadata.sorted_tables:
        rows = db.session.execute(select(table)).all()
        found[table.name] = sorted(tuple(repr(v) for v in row) for row in rows)
    return found


def item_data_in(path) -> int:
    return len(etree.parse(str(path)).getroot().xpath("//odm:ItemData", namespaces=NS))


def extra_choice_item_data(path) -> int:
    """ItemData beyond the first of each multiple-choice answer (one per code)."""
    extra = 0
    for group in etree.parse(str(path)).getroot().xpath("//odm:ItemGroupData", namespaces=NS):
        items = [d.get("ItemOID") for d in group.xpath("odm:ItemData", namespaces=NS)]
        per_item = Counter(oid.rsplit(".", 1)[0] for oid in items if oid.count(".") == 3)
        extra += sum(n - 1 for n in per_item.values())
    return extra


# --- all or nothing ---------------------------------------------------------------------------

def _bad_value(data: bytes) -> bytes:
    return data.replace(b'ItemOID="I.DEMOG.WEIGHT" Value="74.0"',
                        b'ItemOID="I.DEMOG.WEIGHT" Value="heavy"')


def _truncated(data: bytes) -> bytes:
    # The first subject is complete; the file breaks off inside the second.
    return data[:data.index(b'<SubjectData SubjectKey="S02-001"') + 60]


def _second_study(data: bytes) -> bytes:
    # A second ClinicalData, of another study, after the valid one.
    start = data.index(b"<ClinicalData ")
    end = data.index(b"</ClinicalData>") + len(b"</ClinicalData>")
    other = data[start:end].replace(b'StudyOID="CLINW"', b'StudyOID="OTHER"')
    return data[:end] + other + data[end:]


@pytest.mark.parametrize("case, edit, flags, fails", [
    ("invalid value", _bad_value, [], True),
    ("invalid value, partial, every subject refused", lambda d: _bad_value(d).replace(
        b'ItemOID="I.CONSENT.CONSDT" Value="2025-05-03"',
        b'ItemOID="I.CONSENT.CONSDT" Value="2025-02-30"'), ["--partial"], True),
    ("broken off", _truncated, [], True),
    ("another study after the first", _second_study, [], True),
    ("dry run of a valid file", lambda d: d, ["--dry-run"], False),
    ("dry run of a failing file", _bad_value, ["--dry-run"], True),
    ("dry run of a failing file, partial", _bad_value, ["--dry-run", "--partial"], True),
])
def test_a_failed_import_or_a_dry_run_leaves_the_database_exactly_as_it_was(
        cast, runner, tmp_path, make_study, case, edit, flags, fails):
    _copy_study(tmp_path, make_study, "CLINW")
    path = tmp_path / "in.xml"
    path.write_bytes(edit(_retarget(export(cast.study), "CLINW")))
    db.session.commit()
    before = database_state()
    counts = {name: len(rows) for name, rows in before.items()}
    assert counts["subject"] == 2 and counts["audit_event"] > 0
    result = runner.invoke(args=["import", "odm", str(path), "--study", "CLINW", *flags])
    assert (result.exit_code != 0) is fails, result.output
    db.session.rollback()
    after = database_state()
    assert {name: len(rows) for name, rows in after.items()} == counts
    assert after == before
    if "--dry-run" in flags:
        assert "Dry run: nothing was stored." in result.output
        if "--partial" in flags:
            assert "The import would store 1 subject(s) and leave out 1." in result.output
        else:
            assert ("The file would be refused as it stands." in result.output) is fails
    elif fails and case.startswith("invalid"):
        assert "nothing was stored" in result.output


def test_a_failed_import_called_directly_keeps_what_the_caller_did_before(
        cast, tmp_path, make_study):
    fresh = _copy_study(tmp_path, make_study, "CLINW")
    path = tmp_path / "in.xml"
    path.write_bytes(_bad_value(_retarget(export(cast.study), "CLINW")))
    fresh.name = "Renamed before the import"
    report = import_odm_clinical(db.session, LOADER, fresh, path)
    assert not report.committed
    db.session.commit()
    db.session.expire_all()
    assert fresh.name == "Renamed before the import"
    assert db.session.scalar(select(func.count()).select_from(Subject).where(
        Subject.study_id == fresh.id)) == 0


def _counts_file(study) -> bytes:
    """S01-001 with a refused weight; S02-001 valid, its consent date given twice."""
    data = _bad_value(_retarget(export(study), "CLINW"))
    consent = b'<ItemData ItemOID="I.CONSENT.CONSDT" Value="2025-05-03">'
    assert data.count(consent) == 1
    return data.replace(consent, b'<ItemData ItemOID="I.CONSENT.CONSDT" Value="2025-05-01"/>'
                        + consent)


def test_the_report_counts_every_item_data_and_adds_up(cast, runner, tmp_path, make_study):
    fresh = _copy_study(tmp_path, make_study, "CLINW")
    path = tmp_path / "in.xml"
    path.write_bytes(_counts_file(cast.study))
    in_file = item_data_in(path)
    first_subject = len(etree.parse(str(path)).getroot().xpath(
        "//odm:SubjectData[@SubjectKey='S01-001']//odm:ItemData", namespaces=NS))
    demog = len(etree.parse(str(path)).getroot().xpath(
        "//odm:SubjectData[@SubjectKey='S01-001']//odm:FormData[@FormOID='F.DEMOG']"
        "//odm:ItemData", namespaces=NS))
    target = tmp_path / "report.json"
    result = runner.invoke(args=["import", "odm", str(path), "--study", "CLINW", "--partial",
                                 "--report", str(target)])
    assert result.exit_code == 0, result.output
    report = json.loads(target.read_text())
    counts = report["item_data"]
    assert counts["in_file"] == in_file
    assert counts["stored"] + counts["unchanged"] + sum(counts["skipped"].values()) == in_file
    # S02-001: its consent date stored once, the earlier duplicate superseded.
    assert (counts["stored"], counts["unchanged"]) == (1, 0)
    # S01-001: the weight refused, the rest of DEMOG with it (BMI is calculated here),
    # every other value of the subject not imported.
    assert counts["skipped"] == {
        "superseded": 1, "invalid_value": 1, "calculated": 1,
        "form_refused": demog - 2, "subject_not_imported": first_subject - demog}
    assert set(counts["skipped"]) <= set(SKIP_REASONS)
    assert report["outcome"] == "partially stored" and report["committed"] is True
    assert report["subjects"] == {"in_file": 2, "stored": 1, "enrolled": 1,
                                  "not_imported": ["S01-001"]}
    assert report["mode"] == "partial" and report["file_type"] == "Snapshot"
    assert report["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    [problem] = report["problems"]
    assert problem["subject"] == "S01-001" and problem["event"] == "SE.SCREEN"
    assert (problem["form"], problem["group"], problem["item"]) == (
        "F.DEMOG", "IG.DEMOG.DEMOG_MAIN", "I.DEMOG.WEIGHT")
    assert f"ItemData: {in_file} in the file = 1 stored + 0 unchanged + {in_file - 1} skipped" \
        in result.output
    # The same file again: S02-001's value is now unchanged.
    again = runner.invoke(args=["import", "odm", str(path), "--study", "CLINW", "--partial",
                                "--report", str(target)])
    assert again.exit_code == 0, again.output
    counts = json.loads(target.read_text())["item_data"]
    assert (counts["in_file"], counts["stored"], counts["unchanged"]) == (in_file, 0, 1)
    assert db.session.scalar(select(func.count()).select_from(Subject).where(
        Subject.study_id == fresh.id)) == 1


def test_a_clean_import_stores_everything_and_counts_add_up(cast, tmp_path, make_study):
    fresh = _copy_study(tmp_path, make_study, "CLINW")
    path = tmp_path / "in.xml"
    path.write_bytes(_retarget(export(cast.study), "CLINW"))
    report = import_odm_clinical(db.session, LOADER, fresh, path)
    db.session.commit()
    assert report.committed and report.outcome == "stored" and report.problems == []
    counts = report.counts
    assert counts.adds_up and counts.in_file == item_data_in(path)
    assert dict(counts.skipped) == {"calculated": 1}  # BMI
    stored = db.session.scalar(select(func.count()).select_from(ItemValue).join(
        Subject, Subject.id == ItemValue.subject_id).where(Subject.study_id == fresh.id,
                                                           ItemValue.value.is_not(None)))
    # BMI is recalculated here, not imported; a multiple choice is one ItemData per code of
    # its list (I.<FORM>.<ITEM>.<CODE>) for one stored value
    assert counts.stored == stored - 1 + extra_choice_item_data(path)
    again = import_odm_clinical(db.session, LOADER, fresh, path)
    db.session.commit()
    assert (again.counts.stored, again.counts.unchanged) == (0, counts.stored)


def test_a_file_that_cannot_be_read_is_refused_cleanly(cast, runner, tmp_path, make_study):
    _copy_study(tmp_path, make_study, "CLINW")
    path = tmp_path / "in.xml"
    path.write_bytes(_retarget(export(cast.study), "CLINW"))
    target = tmp_path / "missing" / "report.json"
    result = runner.invoke(args=["import", "odm", str(path), "--study", "CLINW",
                                 "--report", str(target)])
    assert result.exit_code != 0
    assert "cannot write the report" in result.output and "nothing was stored" in result.output
    assert db.session.scalar(select(func.count()).select_from(Subject).where(
        Subject.subject_key == "S02-001")) == 1  # CLINX's own, nothing in CLINW


# --- historical mode: provenance and history --------------------------------------------------

def _rows(study_oid: str, *actions: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.study_oid == study_oid, AuditEvent.action.in_(actions))
        .order_by(AuditEvent.seq)))


def test_audit_rows_name_the_file_its_hash_the_source_and_the_source_records(
        cast, tmp_path, make_study):
    fresh = _copy_study(tmp_path, make_study, "CLINW")
    path = tmp_path / "clinx.xml"
    path.write_bytes(_retarget(export(cast.study), "CLINW"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    first = db.session.scalar(select(func.max(AuditEvent.seq)))
    report = import_odm_clinical(db.session, LOADER, fresh, path)
    db.session.commit()
    assert report.source_system.startswith("ecrf ") and report.originator == "ecrf"
    rows = list(db.session.scalars(select(AuditEvent).where(AuditEvent.seq > first)))
    assert rows and all(r.username == "loader" for r in rows)  # the importer acts
    for row in rows:
        provenance = json.loads(row.details)["import"]
        assert provenance == {"file": "clinx.xml", "sha256": digest,
                              "source_system": report.source_system, "originator": "ecrf"}
    [summary] = [r for r in rows if r.action == "import.odm_clinical"]
    assert json.loads(summary.details)["item_data"]["stored"] == report.counts.stored
    # The weight's source record: who changed it in CLINX, when and why.
    [weight] = [r for r in rows if (r.path or "").endswith("/DEMOG_MAIN[1]/WEIGHT")]
    original = _rows("CLINX", "item.changed")
    original = next(r for r in original if r.path.endswith("/DEMOG_MAIN[1]/WEIGHT"))
    assert weight.reason == "imported from ODM clinx.xml: transcription error, see source"
    source = json.loads(weight.details)["source"]
    assert source == {"user": "USR.crc1", "login": "crc1", "name": "Carla Coordinator",
                      "location": "LOC.S01", "time": odm_datetime(original.occurred_at),
                      "reason": "transcription error, see source",
                      "source_id": str(original.seq)}


def test_a_transactional_file_replays_its_history_in_order(cast, tmp_path, make_study):
    fresh = _copy_study(tmp_path, make_study, "CLINW")
    path = tmp_path / "txn.xml"
    path.write_bytes(_retarget(export(cast.study, transactional=True), "CLINW"))
    report = import_odm_clinical(db.session, LOADER, fresh, path)
    db.session.commit()
    assert report.committed, report.lines()
    assert report.file_type == "Transactional" and report.rows_removed == 1
    actions = ("item.entered", "item.changed", "item.cleared", "row.removed")
    calculated = "/BMI"

    def history(study_oid: str) -> dict[str, list[tuple]]:
        found: dict[str, list[tuple]] = {}
        for row in _rows(study_oid, *actions):
            if not row.path.endswith(calculated):
                path_in_study = row.path.split("/", 1)[1]
                found.setdefault(path_in_study, []).append((row.action, row.new_value))
        return found

    assert history("CLINW") == history("CLINX")
    weight = [r for r in _rows("CLINW", "item.entered", "item.changed")
              if r.path.endswith("/DEMOG_MAIN[1]/WEIGHT")]
    assert [(r.action, r.new_value) for r in weight] == [("item.entered", "72.5"),
                                                         ("item.changed", "74.0")]
    original = {r.seq: r for r in _rows("CLINX", *actions) if not r.path.endswith(calculated)}
    replayed = [json.loads(r.details)["source"] for r in _rows("CLINW", *actions)
                if not r.path.endswith(calculated)]
    # Every change once, in the source's order, with the source's time and user.
    assert [int(s["source_id"]) for s in replayed] == sorted(original)
    for source in replayed:
        row = original[int(source["source_id"])]
        assert source["time"] == odm_datetime(row.occurred_at)
        assert source["user"] == f"USR.{row.username}"
    [removed] = _rows("CLINW", "row.removed")
    assert removed.reason == "imported from ODM txn.xml: duplicate of line 1"


def _change(index: int, time: str | None, source_id: str | None = None) -> Change:
    record = SourceRecord(time=time, source_id=source_id) if time or source_id else None
    return Change(index, "G", 1, f"I{index}", "v", "IG.G", None, f"I.I{index}", record)


@pytest.mark.parametrize("changes, order", [
    ([(1, "2025-05-02T10:00:05Z", None), (2, "2025-05-02T10:00:01Z", None)], [2, 1]),
    ([(1, "2025-05-02T10:00:01Z", "9"), (2, "2025-05-02T10:00:01Z", "4")], [2, 1]),
    ([(1, "2025-05-02T10:00:01Z", None), (2, "2025-05-02T10:00:01Z", None)], [1, 2]),
    ([(1, "2025-05-02T12:00:00+02:00", None), (2, "2025-05-02T11:00:00Z", None)], [1, 2]),
    # a change without a time stays after the change before it in the file
    ([(1, "2025-05-02T10:00:09Z", None), (2, None, None), (3, "2025-05-02T10:00:05Z", None)],
     [3, 1, 2]),
    ([(1, None, None), (2, None, None)], [1, 2]),
    ([(1, "not a time", None), (2, "2025-05-02T10:00:05Z", None)], [1, 2]),
])
def test_history_order(changes, order):
    found = history_order([_change(*c) for c in changes])
    assert [c.index for c in found] == order


def _subject(body: str) -> etree._Element:
    return etree.fromstring(f'<SubjectData xmlns="{ODM}" SubjectKey="S01-009">{body}'
                            "</SubjectData>")


def _demog(*item_data: str, form: str = "F.DEMOG", event: str = "SE.SCREEN") -> str:
    return (f'<StudyEventData StudyEventOID="{event}"><FormData FormOID="{form}">'
            f'<ItemGroupData ItemGroupOID="IG.DEMOG.DEMOG_MAIN">{"".join(item_data)}'
            "</ItemGroupData></FormData></StudyEventData>")


@pytest.mark.parametrize("item_data, expected", [
    ('<ItemData ItemOID="I.DEMOG.WEIGHT" Value="72.5"/>', ("WEIGHT", "72.5", None)),
    ('<ItemData ItemOID="WEIGHT" Value="72.5"/>', ("WEIGHT", "72.5", None)),
    ('<ItemDataFloat ItemOID="I.DEMOG.WEIGHT">72.5</ItemDataFloat>', ("WEIGHT", "72.5", None)),
    ('<ItemData ItemOID="I.DEMOG.WEIGHT" IsNull="Yes"/>', ("WEIGHT", None, None)),
    ('<ItemData ItemOID="I.DEMOG.WEIGHT" Value="72.5" TransactionType="Remove"/>',
     ("WEIGHT", None, None)),
    ('<ItemData ItemOID="I.DEMOG.BMI" Value="25.1"/>', ("BMI", "25.1", "calculated")),
    ('<ItemData ItemOID="I.DEMOG.NOPE" Value="1"/>', ("NOPE", "1", "unknown_item")),
])
def test_each_item_data_is_read_with_its_fate(item_data, expected):
    definition = load_study(STUDY_FOLDER).definition
    [form], _steps = read_subject(_subject(_demog(item_data)), definition,
                                  transactional=False, users={})
    [change] = form.item_data
    assert (change.item, change.value, change.skip) == expected
    assert bool(form.problems) is (expected[2] == "unknown_item")


@pytest.mark.parametrize("form, event, skip, message", [
    ("F.NOPE", "SE.SCREEN", "unknown_form", "form F.NOPE is not in the study definition"),
    ("F.DEMOG", "SE.NOPE", "unknown_event", "event SE.NOPE is not in the study definition"),
])
def test_unknown_forms_and_events_are_problems(form, event, skip, message):
    definition = load_study(STUDY_FOLDER).definition
    body = _demog('<ItemData ItemOID="I.DEMOG.WEIGHT" Value="72.5"/>',
                  '<ItemData ItemOID="I.DEMOG.HEIGHT" Value="170"/>', form=form, event=event)
    [data], _steps = read_subject(_subject(body), definition, transactional=False, users={})
    assert [c.skip for c in data.item_data] == [skip, skip]
    [problem] = data.problems
    assert (problem.subject, problem.event, problem.form, problem.message) == (
        "S01-009", event, form, message)


def test_a_snapshot_keeps_the_last_value_of_an_item():
    definition = load_study(STUDY_FOLDER).definition
    body = _demog('<ItemData ItemOID="I.DEMOG.WEIGHT" Value="70"/>',
                  '<ItemData ItemOID="I.DEMOG.WEIGHT" Value="72.5"/>')
    [data], [step] = read_subject(_subject(body), definition, transactional=False, users={})
    assert [(c.value, c.skip) for c in data.item_data] == [("70", "superseded"), ("72.5", None)]
    assert [c.value for c in step.changes] == ["72.5"]


def _audited(item: str, value: str, user: str, seq: int, *, remove: bool = False) -> str:
    record = (f'<AuditRecord><UserRef UserOID="{user}"/><LocationRef LocationOID="S01"/>'
              f"<DateTimeStamp>2025-05-02T10:00:00Z</DateTimeStamp><SourceID>{seq}</SourceID>"
              "</AuditRecord>")
    if remove:
        return (f'<ItemGroupData ItemGroupOID="AE_LINE" ItemGroupRepeatKey="{item}" '
                f'TransactionType="Remove">{record}</ItemGroupData>')
    return (f'<ItemGroupData ItemGroupOID="AE_LINE" ItemGroupRepeatKey="1">'
            f'<ItemData ItemOID="{item}" Value="{value}">{record}</ItemData></ItemGroupData>')


def test_a_transactional_history_is_cut_into_saves():
    definition = load_study(STUDY_FOLDER).definition
    changes = [_audited("AETERM", "Nausea", "USR.a", 1), _audited("AETOXGR", "1", "USR.a", 2),
               _audited("AETOXGR", "2", "USR.a", 3),  # the same item again: a new save
               _audited("AESER", "N", "USR.b", 4),  # another user: a new save
               _audited("1", "", "USR.b", 5, remove=True),  # a removal: a save of its own
               _audited("AETERM", "Vomiting", "USR.b", 6)]
    body = ('<StudyEventData StudyEventOID="LOGS"><FormData FormOID="AE">'
            + "".join(reversed(changes)) + "</FormData></StudyEventData>")
    _forms, steps = read_subject(_subject(body), definition, transactional=True,
                                 users={"USR.a": ("crc1", "Carla Coordinator")})
    assert [[(c.item, c.value) for c in s.changes] for s in steps] == [
        [("AETERM", "Nausea"), ("AETOXGR", "1")], [("AETOXGR", "2")], [("AESER", "N")],
        [(None, None)], [("AETERM", "Vomiting")]]
    first = steps[0].changes[0].record
    assert (first.login, first.name, first.source_id) == ("crc1", "Carla Coordinator", "1")


def test_the_import_mark_is_explicit_and_counts_what_it_holds_back(app):
    session = db.session
    assert importing(session) is None and held_back(session, "notifications") is False
    provenance = ImportProvenance("a.xml", "0" * 64, "REDCap 14.0.1")
    with historical_import(session, provenance):
        assert importing(session) is provenance
        assert held_back(session, "notifications") and held_back(session, "notifications")
        with pytest.raises(RuntimeError, match="already running"):
            with historical_import(session, ImportProvenance("b.xml", "1" * 64)):
                pass
    assert importing(session) is None
    assert provenance.held == {"notifications": 2}


# --- historical mode: past events raise no new actions ----------------------------------------

ENROLLED = dt.date(2025, 5, 20)
TODAY = dt.date(2025, 8, 31)
PAST = [  # (event, date, form, group, rows) of one subject's history
    ("SCREEN", "2025-05-20", "CONSENT", "CONSENT_MAIN", [{"CONSDT": "2025-05-20"}]),
    # ALTULN outside the variant's soft range: a warning, so an automatic query
    ("SCREEN", "2025-05-20", "LAB", "LAB_MAIN",
     [{"LBDT": "2025-05-20", "ALT": "30", "ALTULN": "200"}]),
    ("CHEMO_D1", "2025-06-01", "CHEMO", "CHEMO_MAIN", [{"CHEMOD1": "2025-06-01"}]),
    ("INFUSION", "2025-06-07", "INF", "INF_MAIN",
     [{"INFDT": "2025-06-07", "INFSTTM": "09:30", "FULLDOSE": "Y"}]),
    # haemoglobin 79 g/L on day 3: grade 3 anaemia, an AE prompt
    ("HEMOBS", "2025-06-01", "COUNTS", "CNT_DAY",
     [{"LBDT": "2025-06-02", "HGB": "85"}, {"LBDT": "2025-06-03", "HGB": "79"}]),
    # a serious AE reported to the sponsor (SAE report, submitted, two notifications) and
    # a related grade 3 AE in the DLT window (a DLT candidate)
    ("AE_LOG", None, "AE", "AE_LINE", [
        {"AETERM": "Pneumonia", "AESTDTC": "2025-06-10", "AETOXGR": "3", "AESER": "Y",
         "AESHOSP": "Y", "AESAWDTC": "2025-06-10 08:00", "AESRPDTC": "2025-06-10 20:00",
         "AERELEXO": "unrelated", "AERELCHM": "probable", "AEEXPECT": "EXPECTED"},
        {"AETERM": "Hypoxia", "AESTDTC": "2025-06-10", "AETOXGR": "3", "AESER": "N",
         "AERELEXO": "possible"}]),
]


@pytest.fixture
def safety(app, make_study, tmp_path):
    folder = tmp_path / "safety"
    shutil.copytree(SAFETY_STUDY, folder)
    lab = folder / "crfs" / "LAB.yaml"
    text = lab.read_text()
    marker = "      - oid: ALTULN\n        label: ALT upper limit of normal\n" \
             "        type: integer\n"
    assert marker in text
    lab.write_text(text.replace(marker, marker + "        soft_range: {min: 10, max: 100}\n"))
    study = make_study("SAFETY", sites=("S01",))
    studies.load_folder(db.session, LOADER, folder)
    db.session.commit()
    app.config.update(SAE_NOTIFY="pv@example.org")
    return study


# Per save: automatic queries after each of the 6 forms, AE prompts after the 2 with lab
# values, SAE reports after the AE log, DLT reviews after the AE log and the infusion.
HELD = {"automatic_queries": 6, "ae_prompts": 2, "sae_reports": 1, "dlt_candidates": 2}


def _odm(subject_key: str) -> bytes:
    events = []
    for event, date, form, group, rows in PAST:
        repeating = len(rows) > 1 or form == "AE"
        groups = "".join(
            f'<ItemGroupData ItemGroupOID="{group}"'
            + (f' ItemGroupRepeatKey="{n}"' if repeating else "") + ">"
            + "".join(f'<ItemData ItemOID="{item}" Value="{value}"/>'
                      for item, value in row.items())
            + "</ItemGroupData>" for n, row in enumerate(rows, start=1))
        note = (f'<Annotation SeqNum="1"><Comment>ecrf:event actual_date={date}</Comment>'
                "</Annotation>") if date else ""
        events.append(f'<StudyEventData StudyEventOID="{event}">{note}'
                      f'<FormData FormOID="{form}">{groups}</FormData></StudyEventData>')
    return (f'<?xml version="1.0" encoding="UTF-8"?><ODM xmlns="{ODM}" FileOID="F1" '
            'FileType="Snapshot" CreationDateTime="2025-08-31T10:00:00Z" ODMVersion="1.3.2" '
            'SourceSystem="OtherEDC" SourceSystemVersion="7.2" Originator="Hospital X">'
            f'<ClinicalData StudyOID="SAFETY" MetaDataVersionOID="MDV.1">'
            f'<SubjectData SubjectKey="{subject_key}"><SiteRef LocationOID="S01"/>'
            + "".join(events) + "</SubjectData></ClinicalData></ODM>").encode()


def _enter(study, subject_key: str) -> None:
    """The same history, entered by a person through data capture."""
    from ecrf.capture import subjects
    from ecrf.studies.models import Site

    site = db.session.scalar(select(Site).where(Site.code == "S01"))
    subject = subjects.enrol_subject(db.session, LOADER, study, site, subject_key, ENROLLED,
                                     today=TODAY)
    for event, date, form, group, rows in PAST:
        if capture.event_instance(db.session, subject, event, 1) is None:
            capture.open_event(db.session, LOADER, subject, event, 1,
                               dt.date.fromisoformat(date) if date else None, today=TODAY)
        values = {(group, n, item): value for n, row in enumerate(rows, start=1)
                  for item, value in row.items()}
        result = capture.save_form(db.session, LOADER, subject, event, 1, form,
                                   capture.Submission(values=values, partial=True),
                                   base_version=None, complete=False, today=TODAY)
        assert result.saved, (form, result.errors, result.form_errors)
    db.session.commit()


def _actions(subject_key: str) -> dict[str, int]:
    subject = db.session.scalar(select(Subject).where(Subject.subject_key == subject_key))

    def count(model, *where) -> int:
        return db.session.scalar(select(func.count()).select_from(model).where(*where))

    reports = list(db.session.scalars(select(SaeReport).where(
        SaeReport.subject_id == subject.id)))
    return {
        "sae_reports": len(reports),
        "sae_submitted": sum(1 for r in reports if r.submitted_at is not None),
        "notifications": count(NotificationLog, NotificationLog.sae_report_id.in_(
            [r.id for r in reports])) if reports else 0,
        "automatic_queries": count(Query, Query.subject_id == subject.id,
                                   Query.origin == "automatic"),
        "ae_prompts": count(AeGradePrompt, AeGradePrompt.subject_id == subject.id),
        "dlt_candidates": count(DltAssessment, DltAssessment.subject_id == subject.id),
    }


def test_a_normal_save_fires_every_safety_action(safety):
    _enter(safety, "S01-001")
    assert _actions("S01-001") == {"sae_reports": 1, "sae_submitted": 1, "notifications": 2,
                                   "automatic_queries": 1, "ae_prompts": 1,
                                   "dlt_candidates": 1}
    assert db.session.scalar(select(func.count()).select_from(Job).where(
        Job.kind == "notification")) == 2


def test_an_import_of_past_events_fires_none_and_still_grades(safety, tmp_path):
    path = tmp_path / "past.xml"
    path.write_bytes(_odm("S01-002"))
    report = import_odm_clinical(db.session, LOADER, safety, path, today=TODAY)
    db.session.commit()
    assert report.committed, report.lines()
    assert report.counts.stored == sum(len(r) for *_x, rows in PAST for r in rows)
    assert _actions("S01-002") == {"sae_reports": 0, "sae_submitted": 0, "notifications": 0,
                                   "automatic_queries": 0, "ae_prompts": 0,
                                   "dlt_candidates": 0}
    assert db.session.scalar(select(func.count()).select_from(Job).where(
        Job.kind == "notification")) == 0
    # Grades are computed and stored all the same.
    subject = db.session.scalar(select(Subject).where(Subject.subject_key == "S01-002"))
    hgb = {iv.row: iv.grade for iv in db.session.scalars(select(ItemValue).where(
        ItemValue.subject_id == subject.id, ItemValue.item_oid == "HGB"))}
    assert hgb == {1: 2, 2: 3}
    # The import says what it held back, and where the data came from.
    [summary] = _rows("SAFETY", "import.odm_clinical")
    details = json.loads(summary.details)
    assert details["held_back"] == HELD
    assert details["import"]["source_system"] == "OtherEDC 7.2"
    assert details["import"]["originator"] == "Hospital X"
    assert "Historical import, held back: " in "\n".join(report.lines())
    # After the import, a person's change fires the actions again.
    _enter(safety, "S01-003")
    assert _actions("S01-003")["notifications"] == 2


def test_a_subject_left_out_by_a_partial_import_holds_nothing_back(safety, tmp_path):
    good = _odm("S01-002")
    bad = _odm("S01-004").replace(b'ItemOID="AETOXGR" Value="3"', b'ItemOID="AETOXGR" Value="9"')
    start = bad.index(b"<SubjectData ")
    end = bad.index(b"</SubjectData>") + len(b"</SubjectData>")
    both = good.replace(b"</ClinicalData>", bad[start:end] + b"</ClinicalData>")
    path = tmp_path / "past.xml"
    path.write_bytes(both)
    report = import_odm_clinical(db.session, LOADER, safety, path, today=TODAY, partial=True)
    db.session.commit()
    assert report.committed and report.refused_subjects == ["S01-004"]
    assert [(p.subject, p.form, p.row, p.item) for p in report.problems] == [
        ("S01-004", "AE", "1", "AETOXGR"), ("S01-004", "AE", "2", "AETOXGR")]
    assert report.held == HELD  # S01-004's saves were rolled back, and their counts
    assert db.session.scalar(select(func.count()).select_from(Subject).where(
        Subject.subject_key == "S01-004")) == 0
