"""ODM metadata import: REDCap, OpenClinica 3.x and OpenEDC files become valid study folders
with what could not be imported listed; ecrf's own exports come back whole."""

from __future__ import annotations

import io

import pytest
import yaml
from lxml import etree

from ecrf.core.extensions import db
from ecrf.crf import check_study, load_study
from ecrf.outputs.odm.importer import OdmImportError, import_metadata, write_folder
from ecrf.outputs.odm.importer.support import FolderWriteError, pick_oid, to_oid, unwrap_negation
from ecrf.outputs.odm.study import export_odm_metadata, validate_odm
from tests.outputs import FIXTURES, NS, STUDY_FOLDER, canonical_mdv, load_fixture_study

VENDORS = {
    "redcap": FIXTURES / "redcap_aml_registry.xml",
    "openclinica": FIXTURES / "openclinica3_dexaml_pilot.xml",
    "openedc": FIXTURES / "openedc_vitals_project.xml",
}

# Each fixture's constructs ecrf cannot express, as the notes must name them.
EXPECTED_NOTES = {
    "redcap": [
        "MethodDef MT.BMI: Context 'REDCap' formal expression not translated",
        "ItemDef pregnant: REDCap branching logic \"[sex] = '1'\" not translated",
        "ItemDef demographics_intro: REDCap descriptive text",
        "ItemDef record_id: REDCap record ID field not imported",
        "vendor extension redcap:FieldAnnotation not imported (ItemDef consent_date)",
        "REDCap form status fields not imported",
        "FormDef Form.adverse_events: repeating forms are not supported",
        "GlobalVariables: vendor settings not imported: redcap:RecordAutonumberingEnabled",
        "custom range error messages not imported (weight, height)",
    ],
    "openclinica": [
        "ItemDef I_DEMOG_WEIGHT: Hard RangeCheck GT 20: strict bound imported as inclusive",
        "ItemDef I_DEMOG_BMI: OpenClinica calculation",
        "StudyEventDef SE_CYCLE: repeating Scheduled event has no interval in ODM",
        "StudyEventDef SE_ADVERSEEVENTS: repeating Common event imported as a log",
        "vendor extension OpenClinica:StudyGroupClassList not imported",
        "vendor extension OpenClinica:StudyDetails not imported",
        "StudyEventDef SE_SCREENING: ODM carries no visit timing",
    ],
    "openedc": [
        "MethodDef M.1: Context 'default' formal expression not translated (used by ItemDef I.4)",
        "ConditionDef C.1: Context 'default' formal expression not translated",
        "ItemGroupRef IG.2 in F.1: group-level collection exception condition C.2",
        "Alias Context 'OpenEDC' not imported (ItemDef I.9)",
        "AdminData: users and locations are managed in ecrf, not imported",
    ],
}


def _crf(result, oid):
    return yaml.safe_load(result.folder_content[f"crfs/{oid}.yaml"])


def _item(crf, oid):
    return next(i for g in crf["groups"] for i in g["items"] if i["oid"] == oid)


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_vendor_files_become_valid_study_folders(vendor, tmp_path):
    result = import_metadata(VENDORS[vendor])
    folder = write_folder(result, tmp_path / vendor)
    assert check_study(folder) == []
    assert load_study(folder).definition.oid == result.study_oid
    for expected in EXPECTED_NOTES[vendor]:
        assert any(expected in note for note in result.unsupported), \
            f"{expected!r} not listed in {result.unsupported}"
    # The notes are kept with the study, at the top of study.yaml.
    header = (folder / "study.yaml").read_text().split("format: 1")[0]
    assert all(line.startswith("#") for line in header.splitlines())
    assert EXPECTED_NOTES[vendor][0] in header


def test_redcap_mapping():
    result = import_metadata(VENDORS["redcap"])
    assert result.source == "REDCap 14.5.8" and result.study_oid == "AMLREGISTRYTOULOUSE"
    study = yaml.safe_load(result.folder_content["study.yaml"])
    baseline, follow_up = study["events"]
    assert baseline["forms"] == ["ENROLMENT", "DEMOGRAPHICS"]
    assert (follow_up["kind"], follow_up["offset"], follow_up["window"]) == \
        ("scheduled", "90d", {"before": "14d", "after": "14d"})
    demog = _crf(result, "DEMOGRAPHICS")
    race = _item(demog, "RACE")
    assert race["type"] == "multiple_choice"
    assert [(c["code"], c["label"]) for c in race["choices"]] == [
        ("1", "White"), ("2", "Black or African American"), ("3", "Asian"),
        ("99", "Other or not reported")]
    weight = _item(demog, "WEIGHT")
    assert (weight["type"], weight["precision"], weight["soft_range"], weight["help"]) == \
        ("decimal", 1, {"min": 30, "max": 250}, "kg, without shoes")
    assert _item(demog, "SEX")["required"] is True
    assert _item(demog, "BMI")["type"] == "decimal"  # its REDCap calculation is listed
    ae = _crf(result, "ADVERSE_EVENTS")
    assert ae["groups"][0]["repeating"] is True
    assert _item(ae, "AE_ONSET")["type"] == "datetime"
    assert "RECORD_ID" not in {i["oid"] for g in _crf(result, "ENROLMENT")["groups"]
                               for i in g["items"]}


def test_openclinica_mapping():
    result = import_metadata(VENDORS["openclinica"])
    assert result.source == "OpenClinica" and result.study_oid == "DEXPILOT"
    demog = _crf(result, "DEMOGRAPHICS_V12")
    assert _item(demog, "BRTHDAT")["type"] == "partial_date"
    assert _item(demog, "PREGNANT")["show_if"] == 'SEX = "F"'
    assert _item(demog, "PREGNANT")["codelist"] == "YESNO"
    race = _item(demog, "RACE")
    assert race["type"] == "multiple_choice" and len(race["choices"]) == 4
    assert _item(demog, "WEIGHT")["range"] == {"min": 20, "max": 250}
    # Strict integer bounds become inclusive ones: > 99 and < 251 is 100..250.
    assert _item(demog, "HEIGHT")["range"] == {"min": 100, "max": 250}
    assert _item(demog, "HEIGHT")["unit"] == "cm"
    labs = _crf(result, "LABS_V10")
    neut = _item(labs, "NEUT")
    assert (neut["type"], neut["precision"], neut["unit"], neut["range"]) == \
        ("decimal", 2, "10^9/L", {"min": 0})
    assert _item(labs, "HGB")["soft_range"] == {"min": 40}
    ae = _crf(result, "ADVERSEEVEN_V20")
    assert ae["groups"][0]["repeating"] is True and ae["groups"][0]["max_rows"] == 40
    codelists = yaml.safe_load(result.folder_content["codelists.yaml"])["codelists"]
    assert [e["code"] for e in codelists["YESNO"]] == ["Y", "N"]


def test_openedc_mapping():
    result = import_metadata(VENDORS["openedc"])
    assert result.source == "OpenEDC 2.4.0" and result.study_oid == "VITAL_SIGNS_REGISTRY"
    study = yaml.safe_load(result.folder_content["study.yaml"])
    assert study["languages"] == ["en", "de"]
    assert [e["oid"] for e in study["events"]] == ["BASELINE", "FOLLOW_UP"]
    assert study["events"][1]["labels"] == {"de": "Nachsorge"}
    vitals = _crf(result, "VITAL_SIGNS")
    assert vitals["labels"] == {"de": "Vitalparameter"}
    weight = _item(vitals, "WEIGHT")
    assert (weight["label"], weight["labels"], weight["unit"], weight["range"]) == \
        ("Body weight", {"de": "Körpergewicht"}, "kg", {"min": 25, "max": 250})
    assert _item(vitals, "DATE_OF_VISIT")["type"] == "date"
    assert _item(vitals, "TEMPERATURE")["unit"] == "°C"
    assert _item(vitals, "SMOKER")["type"] == "yes_no"
    assert "show_if" not in _item(vitals, "FEVER_ONSET")  # foreign expression, listed
    transfusion = _item(_crf(result, "BLOOD_COUNT"), "TRANSFUSION")
    assert transfusion["choices"][1] == {"code": "1", "label": "Red cells",
                                         "labels": {"de": "Erythrozyten"}}


def _export(study, version) -> bytes:
    buffer = io.BytesIO()
    export_odm_metadata(db.session, study, version, buffer)
    assert validate_odm(buffer.getvalue()) == []  # every export the tests make
    return buffer.getvalue()


def test_round_trip_reproduces_the_metadata(app, tmp_path):
    study, version = load_fixture_study()
    first = _export(study, version)
    result = import_metadata(first)
    assert result.source.startswith("ecrf")
    assert result.unsupported == ["AdminData: users and locations are managed in ecrf, "
                                  "not imported"]
    folder = write_folder(result, tmp_path / "odmtest")
    assert check_study(folder) == []
    # Same study OID: loading the imported folder stores a second version of it.
    reloaded_study, reloaded = load_fixture_study(folder)
    assert reloaded_study.id == study.id and reloaded.number == 2
    second = _export(study, reloaded)
    assert validate_odm(second) == []
    assert canonical_mdv(second) == canonical_mdv(first)
    # The same, spelled out for a readable failure: events, forms, items, types, lists.
    root1, root2 = etree.fromstring(first), etree.fromstring(second)
    for path in ("//odm:StudyEventDef/@OID", "//odm:FormDef/@OID", "//odm:ItemGroupDef/@OID",
                 "//odm:ItemDef/@OID", "//odm:ItemDef/@DataType", "//odm:CodeList/@OID",
                 "//odm:CodeListItem/@CodedValue", "//odm:RangeCheck/odm:CheckValue/text()",
                 "//odm:ConditionDef/odm:FormalExpression/text()",
                 "//odm:MethodDef/odm:FormalExpression/text()"):
        assert root1.xpath(path, namespaces=NS) == root2.xpath(path, namespaces=NS), path
    # Study-wide settings come back too (parameters, arms, randomization).
    definition = load_study(folder).definition
    assert set(definition.parameters) == {"hgb_threshold", "strict"}
    assert [a.code for a in definition.arms] == ["A", "B"]
    assert definition.randomization is not None


def test_an_expression_that_cannot_stand_is_removed_and_listed(app, tmp_path):
    study, version = load_fixture_study()
    broken = _export(study, version).replace(b'not (SEX = "F")', b'not (NOSUCH = "F")')
    assert b"NOSUCH" in broken
    result = import_metadata(broken)
    folder = write_folder(result, tmp_path / "odmtest")
    assert check_study(folder) == []
    assert "show_if" not in _item(_crf(result, "DEMOG"), "PREGNANT")
    assert any("crfs/DEMOG.yaml" in n and "show_if" in n and "removed" in n
               for n in result.unsupported), result.unsupported


def test_cli_import_writes_the_folder_and_refuses_to_overwrite(runner, tmp_path):
    target = tmp_path / "forms" / "registry"
    result = runner.invoke(args=["import", "odm-metadata", str(VENDORS["redcap"]), "-o",
                                 str(target)])
    assert result.exit_code == 0, result.output
    assert "passes `ecrf study check`" in result.output
    assert "MethodDef MT.BMI: Context 'REDCap' formal expression not translated" in result.output
    assert check_study(target) == []
    again = runner.invoke(args=["import", "odm-metadata", str(VENDORS["openedc"]), "-o",
                                str(target)])
    assert again.exit_code != 0 and "already exists" in again.output
    assert load_study(target).definition.oid == "AMLREGISTRYTOULOUSE"
    forced = runner.invoke(args=["import", "odm-metadata", str(VENDORS["openedc"]), "-o",
                                 str(target), "--force"])
    assert forced.exit_code == 0, forced.output
    assert check_study(target) == []
    assert load_study(target).definition.oid == "VITAL_SIGNS_REGISTRY"
    assert not (target / "crfs" / "DEMOGRAPHICS.yaml").exists()


def test_write_folder_refuses_an_existing_folder(tmp_path):
    result = import_metadata(VENDORS["openedc"])
    (tmp_path / "taken").mkdir()
    with pytest.raises(FolderWriteError, match="already exists"):
        write_folder(result, tmp_path / "taken")


@pytest.mark.parametrize("content, message", [
    (b"<notodm/>", "not an ODM file: the root element is <notodm>"),
    (b"<ODM xmlns='http://www.cdisc.org/ns/odm/v1.3'/>", "holds no Study"),
    (b"<ODM", "cannot read the file as XML"),
])
def test_files_that_cannot_be_imported(content, message):
    with pytest.raises(OdmImportError, match=message):
        import_metadata(content)


def test_a_file_with_several_studies_needs_a_choice():
    text = VENDORS["openedc"].read_bytes()
    study = text[text.index(b"<Study "):text.index(b"</Study>") + len(b"</Study>")]
    doubled = text.replace(b"</Study>", b"</Study>" + study.replace(b'OID="S.1"', b'OID="S.2"'), 1)
    with pytest.raises(OdmImportError, match=r"several studies \(S.1, S.2\)"):
        import_metadata(doubled)
    assert import_metadata(doubled, study_oid="S.2").study_oid == "VITAL_SIGNS_REGISTRY"
    with pytest.raises(OdmImportError, match="no study 'S.3'"):
        import_metadata(doubled, study_oid="S.3")


def test_entities_are_not_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    text = VENDORS["openedc"].read_text(encoding="utf-8")
    text = text.replace('<?xml version="1.0" encoding="UTF-8"?>',
                        f'<?xml version="1.0"?>\n<!DOCTYPE ODM [<!ENTITY xxe SYSTEM '
                        f'"file://{secret}">]>')
    text = text.replace("<StudyName>Vital signs registry</StudyName>",
                        "<StudyName>Vital signs registry&xxe;</StudyName>")
    result = import_metadata(text.encode())
    assert all("TOP-SECRET-VALUE" not in body for body in result.folder_content.values())


@pytest.mark.parametrize("raw, prefixes, expected", [
    ("SE_SCREENING", ["SE_"], "SCREENING"),
    ("Event.baseline_arm_1", ["Event."], "BASELINE_ARM_1"),
    ("I.1", ["I."], "I_1"),
    ("1abc", [], "X_1ABC"),
    ("a" * 40, [], "A" * 32),
])
def test_foreign_oids_become_ecrf_identifiers(raw, prefixes, expected):
    assert to_oid(raw, prefixes) == expected


def test_opaque_oids_take_the_definition_name():
    assert pick_oid("I.12", "Date of visit", ["I."]) == "DATE_OF_VISIT"
    assert pick_oid("I_DEMOG_SEX", "SEX", ["I_"], prefer_name=True) == "SEX"
    assert pick_oid("F_DEMOG_V1", "Demographics - v1", ["F_"]) == "DEMOG_V1"


@pytest.mark.parametrize("expression, inner", [
    ('not (SEX = "F")', 'SEX = "F"'),
    ("not (A) and (B)", None),
    ('not (X = ")")', 'X = ")"'),
    ("A = 1", None),
])
def test_negations_are_unwrapped_only_when_whole(expression, inner):
    assert unwrap_negation(expression) == inner


def test_the_fixture_study_itself_is_valid():
    assert check_study(STUDY_FOLDER) == []


def test_damaged_attributes_and_aliases_do_not_stop_the_import(app, tmp_path):
    study, version = load_fixture_study()
    text = _export(study, version)
    text = text.replace(b'OrderNumber="2"', b'OrderNumber="second"')
    text = text.replace(b'Context="ecrf:schedule" Name="{', b'Context="ecrf:schedule" Name="{{', 1)
    result = import_metadata(text)
    assert check_study(write_folder(result, tmp_path / "damaged")) == []
    assert any("StudyEventDef SE.SCREEN: damaged ecrf alias value" in note
               for note in result.unsupported), result.unsupported


def test_the_openedc_fixture_is_plain_odm_132():
    # OpenEDC writes ODM 1.3.2 without vendor namespaces: the official schema accepts it.
    assert validate_odm(VENDORS["openedc"]) == []
