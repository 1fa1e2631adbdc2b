"""Real files written by other systems (tests/fixtures/odm_real, sources in its README):
each one's metadata becomes a valid study folder with a source map, and its clinical data
goes into a fresh database through that map. Every ItemData of the file is accounted for:
stored (the database holds what the file says), or skipped with its reason."""

from __future__ import annotations

import gzip
import io
from collections import Counter
from pathlib import Path

import pytest
import yaml
from lxml import etree
from sqlalchemy import select

from ecrf.capture import EventInstance, FormInstance, ItemValue, Subject
from ecrf.core.extensions import db
from ecrf.crf import ItemType, StudyDefinition, check_study
from ecrf.crf.values import InvalidValue, is_blank_raw, parse_raw, to_canonical
from ecrf.outputs.odm.common import q
from ecrf.outputs.odm.importer import import_metadata, write_folder
from ecrf.outputs.odm.importer.clinical import import_odm_clinical
from ecrf.outputs.odm.importer.source_data import source_reader
from ecrf.studies import definition_for
from ecrf.studies import store as studies
from tests.outputs import LOADER

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "odm_real"


def _bytes(name: str) -> bytes:
    data = (REAL / name).read_bytes()
    return gzip.decompress(data) if name.endswith(".gz") else data


# file -> (metadata file, Study to import, clinical data file)
FILES = {
    "redcap_classic": ("redcap_classic.xml", None, "redcap_classic.xml"),
    "redcap_longitudinal": ("redcap_longitudinal.xml", None, "redcap_longitudinal.xml"),
    "redcap_checkboxes": ("redcap_checkboxes.xml", None, "redcap_checkboxes.xml"),
    "openedc": ("openedc_metadata.xml", None, "openedc_clinicaldata.xml.gz"),
    "openclinica3": ("openclinica3_extract.xml.gz", "S_R0112345", "openclinica3_extract.xml.gz"),
}


def _expected(definition: StudyDefinition, tree) -> tuple[dict, Counter]:
    """What each ItemData of the file should leave in the database, by ecrf key, and the
    ItemData skipped on purpose (by reason)."""
    reader = source_reader(definition)
    expected: dict[tuple, tuple[int, str | None]] = {}  # key -> (ItemData count, value)
    skipped: Counter = Counter()
    for subject in tree.iter(q("SubjectData")):
        key = subject.get("SubjectKey")
        for sed, event, repeat in reader.events(subject):
            for fd in sed.iterfind(q("FormData")):
                form = reader.form(fd.get("FormOID"))
                for igd in fd.iterfind(q("ItemGroupData")):
                    group = reader.group(fd.get("FormOID"), igd.get("ItemGroupOID"))
                    row = int(igd.get("ItemGroupRepeatKey") or 1)
                    count = Counter(reader.map.locate_item(
                        fd.get("FormOID"), igd.get("ItemGroupOID"), d.get("ItemOID"))[1].item
                        for d in igd.iterfind(q("ItemData")))
                    for group, item, value in reader.values(fd.get("FormOID"), igd):
                        expected[(key, event, repeat, form, group, row, item)] = \
                            (count[item], value)
    skipped.update(reader.skipped)
    return expected, skipped


def _stored(study) -> dict[tuple, str | None]:
    rows = db.session.execute(
        select(Subject.subject_key, EventInstance.event_oid, EventInstance.repeat,
               ItemValue.form_oid, ItemValue.group_oid, ItemValue.row, ItemValue.item_oid,
               ItemValue.value)
        .join(FormInstance, FormInstance.id == ItemValue.form_instance_id)
        .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
        .join(Subject, Subject.id == ItemValue.subject_id)
        .where(Subject.study_id == study.id))
    return {tuple(r[:7]): r[7] for r in rows}


def account(definition: StudyDefinition, tree, study) -> Counter:
    """ItemData of the file: in file, stored, and skipped by reason."""
    expected, skipped = _expected(definition, tree)
    stored = _stored(study)
    counts = Counter({"in file": sum(1 for _ in tree.iter(q("ItemData")))})
    for reason, n in skipped.items():
        counts[f"skipped: {reason}"] += n
    for key, (n, raw) in expected.items():
        _subject, _event, _repeat, form, _group, _row, oid = key
        try:
            item = definition.form(form).item(oid)
        except Exception:  # noqa: BLE001 - counted below as not in the study
            counts["skipped: not in the study definition"] += n
            continue
        if item.type is ItemType.CALCULATED:
            counts["skipped: calculated by ecrf"] += n
            continue
        codes = definition.choices_of(form, oid)
        try:
            want = None if is_blank_raw(raw) else to_canonical(
                item, parse_raw(item, raw, codes), codes)
        except InvalidValue:
            counts["skipped: refused value"] += n
            continue
        if stored.get(key) == want:
            counts["stored"] += n
        else:
            counts["skipped: not stored"] += n
    return counts


RECORD_ID = "skipped: REDCap record ID: it is the subject key"
FORM_STATUS = "skipped: REDCap form status: ecrf keeps each form's own status"

# Counted in the files (grep -c, see the fixtures' README): every ItemData, and those of
# the REDCap record ID and form status fields; every other one must be stored.
EXPECTED = {
    "redcap_classic": {"in file": 35, RECORD_ID: 3, FORM_STATUS: 3, "stored": 29},
    "redcap_longitudinal": {"in file": 128, RECORD_ID: 2, FORM_STATUS: 32, "stored": 94},
    "redcap_checkboxes": {"in file": 800, RECORD_ID: 50, FORM_STATUS: 50, "stored": 700},
    "openedc": {"in file": 1684, "stored": 1684},
    "openclinica3": {"in file": 769, "stored": 769},
}
SUBJECTS = {"redcap_classic": 3, "redcap_longitudinal": 2, "redcap_checkboxes": 50,
            "openedc": 90, "openclinica3": 13}


def _import(name: str, tmp_path, make_study):
    meta, study_oid, clinical = FILES[name]
    result = import_metadata(io.BytesIO(_bytes(meta)), study_oid=study_oid,
                             data=io.BytesIO(_bytes(clinical)) if clinical != meta else None)
    folder = write_folder(result, tmp_path / name)
    assert check_study(folder) == []
    study = make_study(result.study_oid, sites=("S01",))
    studies.load_folder(db.session, LOADER, folder)
    db.session.commit()
    path = tmp_path / "clinical.xml"
    path.write_bytes(_bytes(clinical))
    report = import_odm_clinical(db.session, LOADER, study, path, site_code="S01")
    db.session.commit()
    return result, study, path, report


@pytest.mark.parametrize("name", sorted(FILES))
def test_real_file_imports_whole(name, app, make_study, tmp_path, capsys):
    result, study, path, report = _import(name, tmp_path, make_study)
    assert report.refused_forms == 0, [line for s in report.subjects for line in s.lines()]
    assert len(report.subjects) == SUBJECTS[name]
    definition = definition_for(studies.latest_version(db.session, study))
    assert definition.source_map == result.source_map  # kept with the stored version
    counts = account(definition, etree.parse(str(path)), study)
    assert dict(counts) == EXPECTED[name]
    mappable = counts["in file"] - counts[RECORD_ID] - counts[FORM_STATUS]
    assert counts["stored"] >= 0.95 * mappable
    with capsys.disabled():  # the table of the closing note
        skipped = ", ".join(f"{k[9:]} {v}" for k, v in counts.items() if k.startswith("skip"))
        print(f"\n| {name} | {result.source} | {counts['in file']} | {counts['stored']} | "
              f"{skipped or '-'} |")


def test_redcap_values_arrive_translated(app, make_study, tmp_path):
    """Record 1001 ticks only "White" (code 4.4, ItemData race___4_4) of the race checkbox;
    REDCap's classic project data lands in the implied event."""
    result, study, _path, _report = _import("redcap_checkboxes", tmp_path, make_study)
    assert result.source_map.implied_event == "MAIN"
    stored = _stored(study)
    race = [v for k, v in stored.items() if k[0] == "1001" and k[6] == "RACE"]
    assert race == ['["4.4"]']
    assert {k[1] for k in stored} == {"MAIN"}


def test_openedc_booleans_stay_booleans(app, make_study, tmp_path):
    """OpenEDC writes booleans 0/1: they become ecrf's yes/no, 1 -> Y and 0 -> N."""
    result, study, _path, _report = _import("openedc", tmp_path, make_study)
    crf = yaml.safe_load(result.folder_content["crfs/BASIS_DATA.yaml"])
    pregnant = next(i for g in crf["groups"] for i in g["items"] if i["oid"] == "PREGNANT")
    assert pregnant["type"] == "yes_no"
    target = result.source_map.translate_item("F.1", "IG.1", "Pregnant")
    assert (target.item, dict(target.codes)) == (
        "PREGNANT", {"1": "Y", "0": "N", "true": "Y", "false": "N"})
    values = {v for k, v in _stored(study).items() if k[6] == "PREGNANT"}
    assert values <= {"Y", "N"} and values


def test_openclinica_sites_and_relaxed_rules():
    """The extract's data sits under the site studies' OIDs; the rules its own data breaks
    are relaxed, each listed."""
    result = import_metadata(io.BytesIO(_bytes("openclinica3_extract.xml.gz")),
                             study_oid="S_R0112345")
    assert dict(result.source_map.study) == {
        oid: result.study_oid for oid in ("S_R0112345", "S_R0112345_6657", "S_R0112345_7640",
                                          "S_R0112345_7258", "S_R0112345_8478")}
    notes = "\n".join(result.unsupported)
    assert "PULSE: hard range {'min': 60, 'max': 100} made a soft range" in notes
    assert "SKIN_COMMENTS: show_if 'SKIN = \"4\"' removed" in notes
    assert "ItemDef I_PHYSI_BREAST: codes found in the file's ClinicalData but not in its " \
           "code list were added: 99" in notes


@pytest.mark.parametrize(("old", "new", "problem"), [
    ("implied_event: MAIN", "implied_event: VISIT", "no event VISIT in study.yaml"),
    ("first_name: FIRST_NAME", "first_name: FIRSTNAME",
     "no item FIRSTNAME in group DEMOGRAPHICS_FIRST_NAME of form DEMOGRAPHICS"),
    ("      oid: DEMOGRAPHICS\n", "      oid: DEMOG\n", "no form DEMOG in crfs/"),
    ("{first_name: FIRST_NAME}", "{first_name: {item: FIRST_NAME, choice: '1'}}",
     "choice '1' is not a code of the multiple-choice item FIRST_NAME"),
    ("sex: SEX", "sex: {item: SEX, codes: {M: '7'}}", "'7' is not a code of SEX"),
    ("system: REDCap 11.2.3", "sistem: REDCap", "unknown key 'sistem'"),
    ("PYCAPTESTSIMPLEPROJECT}", "OTHER}", "OTHER is not this study (PYCAPTESTSIMPLEPROJECT)"),
    ("record_id: {skip:", "record_id: {item: X, skip:", "skip takes a reason"),
])
def test_source_map_is_checked_with_the_study(old, new, problem, tmp_path):
    result = import_metadata(REAL / "redcap_classic.xml")
    folder = write_folder(result, tmp_path / "study")
    path = folder / "source_map.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    problems = [str(p) for p in check_study(folder)]
    assert any(problem in p and "source_map.yaml" in p for p in problems), problems


def test_command_prints_the_map_and_the_data_goes_in(runner, make_study, tmp_path):
    """`ecrf import odm-metadata --show-map`, `ecrf study load`, then `ecrf import odm` of
    the same REDCap classic file: the 3 records arrive in the implied event."""
    folder = tmp_path / "pycap"
    source = str(REAL / "redcap_classic.xml")
    done = runner.invoke(args=["import", "odm-metadata", source, "-o", str(folder),
                               "--show-map"])
    assert done.exit_code == 0, done.output
    assert ("source map (source_map.yaml): 1 events, 1 forms, 4 groups, 15 items, 0 codes; "
            "2 item(s) skipped on purpose") in done.output
    for line in ("study Project.PyCapTestSimpleProject -> PYCAPTESTSIMPLEPROJECT",
                 "event (none in the source) -> MAIN", "form Form.demographics -> DEMOGRAPHICS",
                 "item record_id skipped: REDCap record ID: it is the subject key",
                 "group demographics.demographics_complete (no item imported)"):
        assert f"  {line}\n" in done.output
    study = make_study("PYCAPTESTSIMPLEPROJECT", sites=("S01",))
    loaded = runner.invoke(args=["study", "load", str(folder)])
    assert loaded.exit_code == 0, loaded.output
    imported = runner.invoke(args=["import", "odm", source, "--study", "PYCAPTESTSIMPLEPROJECT",
                                   "--site", "S01"])
    assert imported.exit_code == 0, imported.output
    stored = _stored(study)
    assert {(k[0], k[1], k[3]) for k in stored} == {(key, "MAIN", "DEMOGRAPHICS")
                                                    for key in ("1", "2", "3")}
    assert stored[("2", "MAIN", 1, "DEMOGRAPHICS", "DEMOGRAPHICS_LAST_NAME", 1, "WEIGHT")] \
        == "101"
