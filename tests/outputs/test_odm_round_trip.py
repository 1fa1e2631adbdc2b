"""Each demo study, exported as an ODM snapshot and imported into a fresh database holding
the same study definitions, comes back whole: every stored value, every subject's arm,
strata, randomization (date, list slot, number) and dose level.

The demo is loaded once for the module (it takes about half a minute); the source and the
target are two databases made from the migrations, one after the other. Calculated items
are not imported (data capture recalculates them from the imported values) and
system-written items (randomization number and date, dose level) come from the restored
allocation, not from the forms: both are counted with the rest, so they must end equal.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import and_, select

from ecrf import allocation, create_app, studies
from ecrf.allocation import Allocation, RandomizationList
from ecrf.capture import EventInstance, FormInstance, GroupRow, ItemValue, Subject
from ecrf.core.audit import Actor, AuditEvent
from ecrf.core.extensions import db
from ecrf.demo.loader import SITES, STUDY_SITES
from ecrf.demo.studies import ensure_studies
from ecrf.outputs.odm.clinical import export_odm_clinical
from ecrf.outputs.odm.common import ODM_NS, reference_errors, validate_odm
from ecrf.outputs.odm.extension import ECRF_NS
from ecrf.outputs.odm.importer.clinical import import_odm_clinical
from ecrf.outputs.rows import make_scope
from ecrf.studies import Study
from tests.conftest import BASE_CONFIG, PG_URL, _reset_postgres, audit_files

LOADER = Actor(user_id=None, username="loader", role="data_manager")
DEMO_SEED, DEMO_PER_STRATUM = "ecrf-demo-2026", 24  # ecrf.demo.loader's list
STUDIES = ("DEXAML03", "UCMSCEXO")


def state(oid: str) -> dict[str, dict]:
    """Everything that must come back: values by their place, and allocations by subject."""
    study = db.session.scalar(select(Study).where(Study.oid == oid))
    values = {}
    for key, event, repeat, form, group, row, item, value in db.session.execute(
            select(Subject.subject_key, EventInstance.event_oid, EventInstance.repeat,
                   FormInstance.form_oid, ItemValue.group_oid, ItemValue.row,
                   ItemValue.item_oid, ItemValue.value)
            .select_from(ItemValue)
            .join(FormInstance, FormInstance.id == ItemValue.form_instance_id)
            .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
            .join(Subject, Subject.id == ItemValue.subject_id)
            .outerjoin(GroupRow, and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                                      GroupRow.group_oid == ItemValue.group_oid,
                                      GroupRow.row == ItemValue.row))
            .where(Subject.study_id == study.id, ItemValue.value.is_not(None),
                   GroupRow.removed_at.is_(None))):
        values[(key, event, repeat, form, group, row, item)] = value
    allocations = {}
    for subject in db.session.scalars(select(Subject).where(Subject.study_id == study.id)):
        if subject.arm is not None:
            allocations[(subject.subject_key, "arm")] = subject.arm
            allocations[(subject.subject_key, "strata")] = subject.strata
        if subject.dose_level is not None:
            allocations[(subject.subject_key, "dose_level")] = subject.dose_level
    for key, found, rlist in db.session.execute(
            select(Subject.subject_key, Allocation, RandomizationList)
            .join(Allocation, Allocation.live_subject_id == Subject.id)
            .join(RandomizationList, RandomizationList.id == Allocation.list_id)
            .where(Subject.study_id == study.id)):
        allocations[(key, "randomization")] = (found.randomized_on, found.stratum,
                                               found.sequence, found.arm, rlist.kind,
                                               found.allocated_by)
    return {"values": values, "allocations": allocations}


def _database(database_url: str, folder: Path, name: str) -> str:
    if PG_URL:
        return database_url
    path = folder / f"{name}.db"
    shutil.copyfile(database_url.removeprefix("sqlite:///"), path)
    return f"sqlite:///{path}"


def _close(application) -> None:
    db.session.remove()
    db.engine.dispose()


@pytest.fixture(scope="module")
def round_trip(database_url, tmp_path_factory):
    folder = tmp_path_factory.mktemp("round_trip")
    source = create_app({**BASE_CONFIG, "DATABASE_URL": _database(database_url, folder, "a"),
                         **audit_files(folder / "a")})
    files, before = {}, {}
    try:
        with source.app_context():
            result = source.test_cli_runner().invoke(args=["demo"])
            assert result.exit_code == 0, result.output
            for oid in STUDIES:
                study = db.session.scalar(select(Study).where(Study.oid == oid))
                files[oid] = folder / f"{oid}.xml"
                export_odm_clinical(db.session, make_scope(db.session, study), files[oid])
                before[oid] = state(oid)
            randomized = db.session.scalars(select(Subject.subject_key).join(Study).where(
                Study.oid == "DEXAML03", Subject.arm.is_not(None))
                .order_by(Subject.subject_key)).first()
            study = db.session.scalar(select(Study).where(Study.oid == "DEXAML03"))
            files["one"] = folder / "one.xml"
            export_odm_clinical(db.session, make_scope(db.session, study, subject=randomized),
                                files["one"])
            _close(source)
    finally:
        if PG_URL:
            _reset_postgres(database_url)
    target = create_app({**BASE_CONFIG, "DATABASE_URL": _database(database_url, folder, "b"),
                         **audit_files(folder / "b")})
    after, reports = {}, {}
    try:
        with target.app_context():
            loaded = ensure_studies(db.session, LOADER, target.config)
            for code, name, tz, country in SITES:
                site = studies.create_site(db.session, LOADER, code=code, name=name,
                                           timezone=tz, country=country)
                for oid, codes in STUDY_SITES.items():
                    if code in codes:
                        studies.add_site_to_study(db.session, LOADER, loaded[oid], site)
            db.session.commit()
            # Without the list the subjects were randomized from, a randomized subject is
            # refused, and nothing of it stays.
            reports["no list"] = import_odm_clinical(db.session, LOADER, loaded["DEXAML03"],
                                                     files["one"])
            db.session.rollback()
            # The list the demo randomized from: the same seed gives the same slots.
            allocation.generate_list(db.session, LOADER, loaded["DEXAML03"], seed=DEMO_SEED,
                                     per_stratum=DEMO_PER_STRATUM, name="Demo production list")
            db.session.commit()
            for oid in STUDIES:
                reports[oid] = import_odm_clinical(db.session, LOADER, loaded[oid], files[oid])
                db.session.commit()
                after[oid] = state(oid)
            reports["audit"] = db.session.scalars(select(AuditEvent).where(
                AuditEvent.action == "subject.randomized")).all()
            _close(target)
    finally:
        if PG_URL:
            _reset_postgres(database_url)
    return files, before, after, reports


def _missing(before: dict, after: dict) -> list:
    return [(k, v, after.get(k)) for k, v in before.items() if after.get(k) != v]


@pytest.mark.parametrize("oid", STUDIES)
def test_every_value_and_allocation_comes_back(round_trip, oid):
    files, before, after, reports = round_trip
    data = files[oid].read_bytes()
    assert validate_odm(data) == [] and reference_errors(data) == []
    report = reports[oid]
    lines = [line for s in report.subjects for line in s.lines() if "refused" in line
             or "not imported" in line]
    assert report.refused_forms == 0, lines
    for part in ("values", "allocations"):
        expected, found = before[oid][part], after[oid][part]
        lost = _missing(expected, found)
        extra = sorted(set(found) - set(expected))
        back = len(expected) - len(lost)
        print(f"{oid} {part}: {back} of {len(expected)} came back")
        assert not lost and not extra, (
            f"{oid} {part}: {back} of {len(expected)} came back "
            f"({100 * back / max(len(expected), 1):.1f} %); lost or changed "
            f"{lost[:10]}; not in the source {extra[:10]}")
        assert expected, f"{oid}: the demo has no {part} to compare"


def test_dexaml03_allocations_are_restored_with_the_file_as_source(round_trip):
    _files, before, _after, reports = round_trip
    arms = {k[0]: v for k, v in before["DEXAML03"]["allocations"].items() if k[1] == "arm"}
    assert set(arms.values()) == {"DEX", "CTRL"}  # both arms are in the round trip
    restored = [r for r in reports["audit"] if "restored_from" in (r.details or "")]
    assert sorted(r.subject_key for r in restored) == sorted(arms)
    assert all(r.username == "loader" and r.reason.startswith("imported from ODM")
               for r in restored)


def test_allocation_travels_in_the_declared_extension(round_trip):
    files, before, _after, _reports = round_trip
    data = files["DEXAML03"].read_bytes()
    root = etree.fromstring(data)
    assert root.nsmap["ecrf"] == ECRF_NS  # declared on the root
    found = root.findall(f".//{{{ODM_NS}}}SubjectData/{{{ECRF_NS}}}Allocation")
    arms = {k[0]: v for k, v in before["DEXAML03"]["allocations"].items() if k[1] == "arm"}
    assert {el.getparent().get("SubjectKey"): el.get("Arm") for el in found} == arms
    rand = found[0].find(f"{{{ECRF_NS}}}Randomization")
    assert rand.get("ListKind") == "production" and int(rand.get("Sequence")) >= 1
    assert [s.get("Name") for s in rand] == ["disease_status", "salvage"]
    assert rand.get("Number").startswith("R") and rand.get("Date")
    # Last child of SubjectData, where the foundation keeps its extension group.
    assert all(el.getparent()[-1] is el for el in found)
    levels = etree.fromstring(files["UCMSCEXO"].read_bytes()).findall(
        f".//{{{ECRF_NS}}}Allocation")
    assert levels and all(el.get("DoseLevel") and el.get("Arm") is None for el in levels)
    # The official schema alone refuses only the extension's elements; without them the
    # file is valid ODM 1.3.2 as it stands.
    official = validate_odm(data, official=True)
    assert official and all("urn:x-ecrf:odm-extension:1}Allocation" in e for e in official)
    for el in found:
        el.getparent().remove(el)
    assert validate_odm(etree.tostring(root), official=True) == []


def test_a_misplaced_or_unknown_extension_attribute_is_a_schema_error(round_trip):
    root = etree.fromstring(round_trip[0]["DEXAML03"].read_bytes())
    allocation_el = root.find(f".//{{{ECRF_NS}}}Allocation")
    allocation_el.set("Colour", "red")
    assert any("'Colour' is not allowed" in e for e in validate_odm(etree.tostring(root)))
    del allocation_el.attrib["Colour"]
    subject = allocation_el.getparent()
    subject.insert(0, allocation_el)  # before the subject's own elements: out of place
    assert any("Allocation" in e and "not expected" in e
               for e in validate_odm(etree.tostring(root)))


def test_a_study_without_the_list_refuses_the_randomized_subject(round_trip):
    outcome = round_trip[3]["no list"].subjects[0]
    assert outcome.error.startswith("allocation not restored: subject ")
    assert "has no active production randomization list" in outcome.error


@pytest.mark.parametrize("oid", STUDIES)
def test_no_value_leaves_outside_its_code_list(round_trip, oid):
    root = etree.fromstring(round_trip[0][oid].read_bytes())
    ns = {"odm": ODM_NS}
    lists = {cl.get("OID"): {c.get("CodedValue") for c in cl.findall("odm:CodeListItem", ns)}
             for cl in root.iterfind(".//odm:CodeList", ns)}
    coded = {d.get("OID"): lists[d.find("odm:CodeListRef", ns).get("CodeListOID")]
             for d in root.iterfind(".//odm:ItemDef", ns)
             if d.find("odm:CodeListRef", ns) is not None}
    options = {d.get("OID") for d in root.iterfind(".//odm:ItemDef", ns)
               if d.find("odm:Alias[@Context='ecrf:choice_of']", ns) is not None}
    checked = {"coded": 0, "options": 0}
    for el in root.iterfind(".//odm:ItemData", ns):
        item, value = el.get("ItemOID"), el.get("Value")
        if item in options:
            assert value in ("0", "1"), (item, value)
            checked["options"] += 1
        elif item in coded:
            assert value in coded[item], (item, value)
            checked["coded"] += 1
    assert checked["coded"] and checked["options"], checked
