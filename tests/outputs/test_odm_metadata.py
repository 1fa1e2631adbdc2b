"""ODM 1.3.2 metadata export: valid against the official XSD, every construct present."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from lxml import etree
from sqlalchemy import select

from ecrf.accounts.models import RoleGrant
from ecrf.core.audit.models import AuditEvent
from ecrf.core.audit.trail import verify_chain
from ecrf.core.extensions import db
from ecrf.outputs.odm.common import odm_schema, reference_errors
from ecrf.outputs.odm.study import admin_info, export_odm_metadata, validate_odm
from tests.outputs import NS, load_fixture_study


def _xpath(root, path: str) -> list:
    return root.xpath(path, namespaces=NS)


def _one(root, path: str):
    found = _xpath(root, path)
    assert len(found) == 1, f"{path}: {len(found)} matches"
    return found[0]


def _texts(el, tag: str) -> dict[str, str]:
    return {tt.get("{http://www.w3.org/XML/1998/namespace}lang"): tt.text
            for tt in _xpath(el, f"odm:{tag}/odm:TranslatedText")}


@pytest.fixture
def exported(app, make_user, make_site):
    study, version = load_fixture_study()
    make_site("S01", name="Toulouse University Hospital")
    make_user("inv.one", role="investigator", study="ODMTEST", site="S01",
              full_name="Irène Joliot-Curie")
    make_user("dm.one", role="data_manager", study="ODMTEST", full_name="Dora Manager")
    buffer = io.BytesIO()
    export_odm_metadata(db.session, study, version, buffer)
    assert validate_odm(buffer.getvalue()) == []  # every export the tests make
    return buffer.getvalue()


def test_export_is_valid_against_the_official_xsd(exported):
    assert validate_odm(exported) == []
    assert reference_errors(exported) == []


def test_the_schema_comes_from_odmlib():
    schema = odm_schema()
    assert isinstance(schema, etree.XMLSchema)


def test_root_identifies_a_utc_snapshot_written_by_ecrf(exported):
    root = etree.fromstring(exported)
    assert root.get("FileType") == "Snapshot" and root.get("ODMVersion") == "1.3.2"
    assert root.get("Originator") == "ecrf" and root.get("FileOID").startswith("ecrf.ODMTEST.")
    created = dt.datetime.fromisoformat(root.get("CreationDateTime").replace("Z", "+00:00"))
    assert created.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - created) < dt.timedelta(minutes=5)
    assert _one(root, "//odm:GlobalVariables/odm:StudyName").text == "ODM test study"
    assert _one(root, "//odm:GlobalVariables/odm:ProtocolName").text == "NCT09999999"


def test_units_events_and_protocol_order(exported):
    root = etree.fromstring(exported)
    units = {mu.get("Name"): mu.get("OID") for mu in _xpath(root, "//odm:MeasurementUnit")}
    assert set(units) == {"kg", "cm", "kg/m2", "10^9/L", "g/L"}
    mdv = _one(root, "//odm:MetaDataVersion")
    assert mdv.get("OID") == "MDV.ODMTEST.1" and mdv.get("Name") == "v1 (protocol 1.2)"
    refs = _xpath(mdv, "odm:Protocol/odm:StudyEventRef")
    assert [r.get("StudyEventOID") for r in refs] == ["SE.SCREEN", "SE.CYCLE", "SE.UNSCHED",
                                                      "SE.LOGS"]
    assert [r.get("OrderNumber") for r in refs] == ["1", "2", "3", "4"]
    kinds = {e.get("OID"): (e.get("Type"), e.get("Repeating"))
             for e in _xpath(mdv, "odm:StudyEventDef")}
    assert kinds == {"SE.SCREEN": ("Scheduled", "No"), "SE.CYCLE": ("Scheduled", "Yes"),
                     "SE.UNSCHED": ("Unscheduled", "Yes"), "SE.LOGS": ("Common", "No")}
    screen = _one(mdv, "odm:StudyEventDef[@OID='SE.SCREEN']")
    assert [f.get("FormOID") for f in _xpath(screen, "odm:FormRef")] == ["F.CONSENT", "F.DEMOG"]
    assert _texts(screen, "Description") == {"en": "Screening", "fr": "Sélection"}
    cycle_ref = _one(mdv, "odm:Protocol/odm:StudyEventRef[@StudyEventOID='SE.CYCLE']")
    condition = _one(mdv, f"odm:ConditionDef[@OID='{cycle_ref.get('CollectionExceptionConditionOID')}']")
    assert _one(condition, "odm:FormalExpression").text == \
        'not (subject.arm = "A" and param.strict)'
    schedule = json.loads(_one(mdv, "odm:StudyEventDef[@OID='SE.CYCLE']/"
                                    "odm:Alias[@Context='ecrf:schedule']").get("Name"))
    assert schedule["anchor"] == "consent" and schedule["offset"] == "7d"
    assert schedule["repeat"]["until"] == "CD.SE.CYCLE.UNTIL"


def test_forms_groups_and_item_refs(exported):
    mdv = _one(etree.fromstring(exported), "//odm:MetaDataVersion")
    # Forms in the order the schedule first uses them.
    assert [f.get("OID") for f in _xpath(mdv, "odm:FormDef")] == \
        ["F.CONSENT", "F.DEMOG", "F.LAB", "F.AE", "F.EOS"]
    demog = _one(mdv, "odm:FormDef[@OID='F.DEMOG']")
    assert _texts(demog, "Description") == {"en": "Demographics", "fr": "Données démographiques"}
    assert _one(demog, "odm:ItemGroupRef").get("ItemGroupOID") == "IG.DEMOG.DEMOG_MAIN"
    ae = _one(mdv, "odm:ItemGroupDef[@OID='IG.AE.AE_LINE']")
    assert (ae.get("Repeating"), ae.get("Domain"), ae.get("SASDatasetName")) == ("Yes", "AE", "AE")
    assert _one(ae, "odm:Alias[@Context='ecrf:max_rows']").get("Name") == "100"
    group = _one(mdv, "odm:ItemGroupDef[@OID='IG.DEMOG.DEMOG_MAIN']")
    refs = {r.get("ItemOID"): r for r in _xpath(group, "odm:ItemRef")}
    assert refs["I.DEMOG.SEX"].get("Mandatory") == "Yes"
    assert refs["I.DEMOG.WEIGHT"].get("Mandatory") == "No"
    hidden = refs["I.DEMOG.PREGNANT"].get("CollectionExceptionConditionOID")
    condition = _one(mdv, f"odm:ConditionDef[@OID='{hidden}']")
    assert _one(condition, "odm:FormalExpression").get("Context") == "ecrf"
    assert _one(condition, "odm:FormalExpression").text == 'not (SEX = "F")'
    method = _one(mdv, f"odm:MethodDef[@OID='{refs['I.DEMOG.BMI'].get('MethodOID')}']")
    assert method.get("Type") == "Computation"
    assert _one(method, "odm:FormalExpression").text == \
        "round(WEIGHT / (HEIGHT * HEIGHT) * 10000, 1)"


@pytest.mark.parametrize("oid, data_type, extra", [
    ("I.DEMOG.BRTHDTC", "partialDate", {}),
    ("I.DEMOG.WEIGHT", "float", {"SignificantDigits": "1", "SDSVarName": "VSORRES"}),
    ("I.DEMOG.HEIGHT", "integer", {"SASFieldName": "HEIGHT"}),
    ("I.DEMOG.BMI", "float", {"SignificantDigits": "1"}),
    ("I.DEMOG.INITIALS", "text", {"Length": "3"}),
    ("I.DEMOG.PREGNANT", "text", {}),
    ("I.DEMOG.VISITTM", "time", {}),
    ("I.DEMOG.SAMPLEDTM", "datetime", {}),
    ("I.CONSENT.CONSDT", "date", {"SDSVarName": "DSSTDTC"}),
    ("I.EOS.FLAG", "boolean", {}),
])
def test_item_data_types(exported, oid, data_type, extra):
    item = _one(etree.fromstring(exported), f"//odm:ItemDef[@OID='{oid}']")
    assert item.get("DataType") == data_type
    for attr, value in extra.items():
        assert item.get(attr) == value


def test_item_texts_units_ranges_code_lists_and_aliases(exported):
    mdv = _one(etree.fromstring(exported), "//odm:MetaDataVersion")
    weight = _one(mdv, "odm:ItemDef[@OID='I.DEMOG.WEIGHT']")
    assert _texts(weight, "Question") == {"en": "Weight", "fr": "Poids"}
    assert _texts(weight, "Description") == {"en": "Without shoes.", "fr": "Sans chaussures."}
    unit = _one(weight, "odm:MeasurementUnitRef").get("MeasurementUnitOID")
    assert _one(mdv, f"//odm:MeasurementUnit[@OID='{unit}']").get("Name") == "kg"
    checks = [(rc.get("SoftHard"), rc.get("Comparator"), _one(rc, "odm:CheckValue").text)
              for rc in _xpath(weight, "odm:RangeCheck")]
    assert checks == [("Hard", "GE", "20"), ("Hard", "LE", "300"), ("Soft", "GE", "35.5"),
                      ("Soft", "LE", "150")]
    assert _texts(_xpath(weight, "odm:RangeCheck")[0], "ErrorMessage")["en"] == \
        "Weight must be at least 20 kg."
    assert _one(weight, "odm:Alias[@Context='SDTM']").get("Name") == "VS.VSORRES"
    pregnant = _one(mdv, "odm:ItemDef[@OID='I.DEMOG.PREGNANT']")
    assert _one(pregnant, "odm:CodeListRef").get("CodeListOID") == "CL.NY"
    assert _one(pregnant, "odm:Alias[@Context='ecrf:type']").get("Name") == "yes_no"
    required = _one(pregnant, "odm:Alias[@Context='ecrf:required_if']").get("Name")
    assert _one(mdv, f"odm:ConditionDef[@OID='{required}']/odm:FormalExpression").text == \
        'SEX = "F" and HEIGHT < 200'
    lab = json.loads(_one(mdv, "odm:ItemDef[@OID='I.LAB.NEUT']/odm:Alias[@Context='ecrf:lab']")
                     .get("Name"))
    assert lab == {"test": "NEUT", "lln": 1.8}
    assert _one(mdv, "odm:ItemDef[@OID='I.CONSENT.CONSDT']/odm:Alias[@Context='ecrf:critical']"
                ).get("Name") == "Yes"
    grade = _one(mdv, "odm:CodeList[@OID='CL.AEGRADE']")
    items = _xpath(grade, "odm:CodeListItem")
    assert [i.get("CodedValue") for i in items] == ["1", "2", "3", "4", "5"]
    assert {t.get("{http://www.w3.org/XML/1998/namespace}lang"): t.text
            for t in _xpath(items[0], "odm:Decode/odm:TranslatedText")} == {"en": "Mild",
                                                                              "fr": "Léger"}
    sex = _one(mdv, "odm:CodeList[@OID='CL.DEMOG.SEX']")
    assert [i.get("CodedValue") for i in _xpath(sex, "odm:CodeListItem")] == ["F", "M"]
    assert _one(mdv, "odm:ItemDef[@OID='I.DEMOG.SEX']/odm:CodeListRef").get("CodeListOID") == \
        "CL.DEMOG.SEX"


def test_edit_checks_are_method_defs_with_their_messages(exported):
    mdv = _one(etree.fromstring(exported), "//odm:MetaDataVersion")
    check = _one(mdv, "odm:MethodDef[@OID='EC.AE.AE_END_AFTER_START']")
    assert check.get("Type") == "Other"
    assert _one(check, "odm:FormalExpression").text == "is_blank(AEENDTC) or AEENDTC >= AESTDTC"
    assert _texts(check, "Description") == {"en": "Resolution date is before onset.",
                                            "fr": "La date de résolution précède le début."}
    aliases = {a.get("Context"): a.get("Name") for a in _xpath(check, "odm:Alias")}
    assert aliases["ecrf:group"] == "AE_LINE" and aliases["ecrf:severity"] == "error"
    warning = _one(mdv, "odm:MethodDef[@OID='EC.DEMOG.DEMOG_BMI']/odm:Alias[@Context='ecrf:severity']")
    assert warning.get("Name") == "warning"


def test_admin_data_users_sites_and_signature_meanings(exported):
    root = etree.fromstring(exported)
    admin = _one(root, "odm:AdminData")
    assert admin.get("StudyOID") == "ODMTEST"
    users = {u.get("OID"): u for u in _xpath(admin, "odm:User")}
    investigator = users["USR.inv.one"]
    assert _one(investigator, "odm:FullName").text == "Irène Joliot-Curie"
    assert investigator.get("UserType") == "Investigator"
    assert _one(investigator, "odm:LocationRef").get("LocationOID") == "LOC.S01"
    assert users["USR.dm.one"].get("UserType") == "Sponsor"
    location = _one(admin, "odm:Location[@OID='LOC.S01']")
    assert location.get("Name") == "Toulouse University Hospital"
    ref = _one(location, "odm:MetaDataVersionRef")
    assert (ref.get("StudyOID"), ref.get("MetaDataVersionOID")) == ("ODMTEST", "MDV.ODMTEST.1")
    approval = _one(admin, "odm:SignatureDef[@OID='SD.APPROVAL']")
    assert _one(approval, "odm:Meaning").text == "Approval"
    assert "21 CFR 11.50" in _one(approval, "odm:LegalReason").text


def test_revoked_users_stay_in_admin_data(app, make_user):
    study, _version = load_fixture_study()
    user = make_user("former", role="monitor", study="ODMTEST", full_name="Former Monitor")
    grant = db.session.scalar(select(RoleGrant).where(RoleGrant.user_id == user.id))
    grant.revoked_at = dt.datetime.now(dt.UTC)
    db.session.commit()
    assert "former" in {u.username for u in admin_info(db.session, study).users}


class _CountingSink(io.RawIOBase):
    def __init__(self):
        self.writes = 0
        self.largest = 0
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, chunk):
        self.writes += 1
        self.largest = max(self.largest, len(chunk))
        self.data += chunk
        return len(chunk)


def test_the_writer_streams_in_chunks(app):
    study, version = load_fixture_study()
    sink = _CountingSink()
    export_odm_metadata(db.session, study, version, sink)
    # Buffered pieces of the document, never the whole file held as one string.
    assert sink.writes >= 4 and sink.largest < len(sink.data) / 2
    assert validate_odm(bytes(sink.data)) == []


def test_validate_odm_names_the_line_of_each_schema_error(exported):
    broken = exported.replace(b'DataType="partialDate"', b'DataType="fuzzyDate"', 1)
    errors = validate_odm(broken)
    assert errors and errors[0].startswith("line ") and "fuzzyDate" in errors[0]
    assert validate_odm(b"<ODM")[0].startswith("line 1: not well-formed XML")


def test_cli_export_writes_a_valid_file_and_audits_it(app, runner, tmp_path):
    load_fixture_study()
    target = tmp_path / "odmtest.xml"
    result = runner.invoke(args=["export", "odm-metadata", "odmtest", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "valid against the XSD" in result.output
    assert validate_odm(target) == []
    row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "export.created"))
    assert row.study_oid == "ODMTEST" and row.new_value == "odmtest.xml"
    assert row.study_version == "v1 (protocol 1.2)" and row.username.startswith("cli:")
    assert json.loads(row.details)["what"] == "odm_metadata"
    assert verify_chain(db.session).ok


def test_cli_export_refuses_an_unknown_study_or_version(app, runner, tmp_path):
    load_fixture_study()
    unknown = runner.invoke(args=["export", "odm-metadata", "NOPE", "-o", str(tmp_path / "x")])
    assert unknown.exit_code != 0 and "no study with OID 'NOPE'" in unknown.output
    missing = runner.invoke(args=["export", "odm-metadata", "ODMTEST", "--version", "7",
                                  "-o", str(tmp_path / "x")])
    assert missing.exit_code != 0 and "has no version 7 (stored: v1)" in missing.output
