import json
from datetime import date
from decimal import Decimal

import pytest
import yaml

from ecrf.crf import (
    NY,
    LoadedStudy,
    Problem,
    StudyDefinitionError,
    UnknownOidError,
    check_study,
    definition_from_content,
    load_study,
)
from ecrf.crf.definition import EscalationDesign, ItemType, Severity
from ecrf.domain.dates import Period
from ecrf.domain.expressions import ValueType, check, parse
from ecrf.domain.schedule import EventKind, ScheduleDefinition, Window

from .conftest import FIXTURES


@pytest.fixture(scope="module")
def full() -> LoadedStudy:
    return load_study(FIXTURES / "full")


def test_minimal_study_loads():
    loaded = load_study(FIXTURES / "minimal")
    definition = loaded.definition
    assert definition.oid == "MINI"
    assert [e.oid for e in definition.events] == ["BASE"]
    assert definition.event("BASE").anchor == "enrolment"
    assert definition.event("BASE").window == Window(Period(0, "d"), Period(0, "d"))
    assert definition.item("DEMOG", "BRTHDT").type is ItemType.DATE
    assert definition.codelist("NY") == NY
    assert definition.languages == ("en",)
    assert len(loaded.content_hash) == 64
    assert set(loaded.content) == {"study", "codelists", "crfs"}
    assert loaded.content["codelists"] == {}


def test_full_study_builds_the_schedule_objects(full):
    schedule = full.definition.schedule
    assert isinstance(schedule, ScheduleDefinition)
    assert schedule.stop.anchors == ("death", "withdrawal")
    cycle = full.definition.event("CYCLE")
    assert cycle.kind is EventKind.REPEATING
    assert cycle.repeat.every == Period(28, "d")
    assert cycle.repeat.count == 3
    assert cycle.repeat.from_actual is True
    assert cycle.repeat.until == "not is_blank(anchor.progression)"
    assert cycle.stop_at == ("progression",)
    assert cycle.forms == ("TREAT", "HEMATO")
    assert cycle.window == Window(Period(0, "d"), Period(7, "d"))
    rando = full.definition.event("RANDO")
    assert rando.window == Window(Period(7, "d"), Period(7, "d"))
    assert rando.offset == Period(7, "d")
    follow_up = full.definition.event("FU")
    assert follow_up.repeat.from_actual is False and follow_up.repeat.count is None
    assert full.definition.event("UNSCHED").anchor is None
    assert full.definition.event("LOGS").kind is EventKind.LOG
    assert full.definition.event_date_items == {"RANDO": ("RAND", "RANDDT")}
    assert full.definition.study_end == "param.study_end_date"


def test_full_study_definition_helpers(full):
    d = full.definition
    assert d.anchors["consent"] == ("CONSENT", "CONSDT")
    assert [i.oid for i in d.items_of("DEMOG")] == [
        "BRTHDT", "SEX", "AGE", "WEIGHT", "HEIGHT", "BMI", "INITIALS", "PREGNANT", "RACE",
        "VISITTM"]
    assert d.items_of(d.form("AE")) == d.form("AE").items
    weight = d.item("DEMOG", "WEIGHT")
    assert weight.range.min == Decimal("20") and weight.soft_range.max == Decimal("150")
    assert weight.range.contains(Decimal("20")) and not weight.range.contains(Decimal("300.1"))
    assert weight.precision == 1 and weight.unit == "kg"
    assert d.item("AE", "AETERM").repeating and d.item("AE", "AETERM").group == "AE_LINE"
    assert d.choices_of("DEMOG", "SEX").codes == ("F", "M")
    assert d.choices_of("DEMOG", "SEX").label_of("F", "fr") == "Femme"
    assert d.choices_of("DEMOG", "PREGNANT").label_of("N", "fr") == "Non"
    assert d.choices_of("DEMOG", "RACE").oid == "RACE"
    assert d.choices_of("DEMOG", "WEIGHT") is None
    assert d.codelist("AEGRADE").codes == ("1", "2", "3", "4", "5")
    assert d.form("CONSENT").name_in("fr") == "Consentement éclairé"
    assert d.form("CONSENT").name_in("zh") == "Informed consent"
    assert d.item("DEMOG", "INITIALS").help_labels["fr"].startswith("Premières")
    check_def = d.form("AE").checks[0]
    assert check_def.group == "AE_LINE" and check_def.severity is Severity.ERROR
    assert d.form("DEMOG").checks[0].message_in("fr") == "IMC invraisemblable."
    assert [e.oid for e in d.events_with_form("HEMATO")] == ["CYCLE", "UNSCHED"]
    assert [f.oid for f in d.forms_of_event("SCREEN")] == ["CONSENT", "DEMOG", "ELIG"]
    assert d.arm("DEX").labels["fr"].startswith("Rattrapage")
    assert [a.ratio for a in d.arms] == [1, 1]


def test_lab_and_calculated_items(full):
    d = full.definition
    neut = d.item("HEMATO", "NEUT")
    assert (neut.lab.test, neut.lab.unit, neut.lab.lln) == ("NEUT", "10^9/L", "1.8")
    assert d.item("HEMATO", "PLAT").lab.lln == "param.max_cycles * 30"
    assert d.item("HEMATO", "HGB").lab.unit == "g/dL"
    bmi = d.item("DEMOG", "BMI")
    assert bmi.type is ItemType.CALCULATED and bmi.value_type is ValueType.DECIMAL
    assert d.item("DEMOG", "AGE").value_type is ValueType.INTEGER
    assert d.item("DEMOG", "BRTHDT").value_type is ValueType.DATE
    assert d.item("DEMOG", "RACE").value_type is ValueType.MULTI


def test_parameters_are_typed(full):
    d = full.definition
    assert d.parameter_values() == {
        "study_end_date": None, "severe_anemia_hgb": Decimal("60"), "max_cycles": 4,
        "site_label": "main", "strict": True}
    overridden = d.parameter_values({"study_end_date": date(2030, 1, 1)})
    assert overridden["study_end_date"] == date(2030, 1, 1)
    with pytest.raises(UnknownOidError, match="unknown parameter 'nope'"):
        d.parameter_values({"nope": 1})
    assert d.parameter("severe_anemia_hgb").unit == "g/L"


def test_allocation_definitions(full):
    d = full.definition
    rand = d.randomization
    assert rand.block_sizes == (2, 4)
    assert [(s.name, s.form, s.item) for s in rand.strata] == [
        ("salvage", "ELIG", "SALVTYPE"), ("status", "ELIG", "RELAPSE")]
    assert rand.eligibility == ("ELIG", "ELIGIBLE")
    assert rand.date_item == ("RAND", "RANDDT")
    esc = d.dose_escalation
    assert esc.design is EscalationDesign.BOIN
    assert esc.target_dlt_rate == Decimal("0.30")
    assert esc.dlt_window == Period(14, "d") and esc.dlt_anchor == "c1d1"
    assert esc.level(2).labels == {"fr": "Niveau de dose 2"}
    assert (esc.cohort_size, esc.max_subjects, esc.start_level) == (3, 18, 1)
    with pytest.raises(UnknownOidError):
        esc.level(3)


@pytest.mark.parametrize(("lookup", "message"), [
    (lambda d: d.form("NOPE"), "unknown form 'NOPE'"),
    (lambda d: d.event("NOPE"), "unknown event 'NOPE'"),
    (lambda d: d.item("DEMOG", "NOPE"), "unknown item of form DEMOG 'NOPE'"),
    (lambda d: d.item("NOPE", "X"), "unknown form 'NOPE'"),
    (lambda d: d.codelist("NOPE"), "unknown code list 'NOPE'"),
    (lambda d: d.arm("NOPE"), "unknown arm 'NOPE'"),
    (lambda d: d.parameter("nope"), "unknown parameter 'nope'"),
    (lambda d: d.form("DEMOG").group("NOPE"), "unknown group of form DEMOG 'NOPE'"),
    (lambda d: d.codelist("NY").label_of("X"), "unknown code in code list NY 'X'"),
])
def test_unknown_lookups_name_the_oid(full, lookup, message):
    with pytest.raises(UnknownOidError) as info:
        lookup(full.definition)
    assert str(info.value) == message


@pytest.mark.parametrize(("form", "group", "parts", "expected"), [
    ("DEMOG", None, ("SEX",), ValueType.TEXT),
    ("DEMOG", None, ("CONSENT", "CONSDT"), ValueType.DATE),
    ("DEMOG", None, ("subject", "arm"), ValueType.TEXT),
    ("DEMOG", None, ("subject", "dose_level"), ValueType.TEXT),
    ("DEMOG", None, ("subject", "site"), ValueType.TEXT),
    ("DEMOG", None, ("anchor", "consent"), ValueType.DATE),
    ("DEMOG", None, ("anchor", "enrolment"), ValueType.DATE),
    ("DEMOG", None, ("param", "severe_anemia_hgb"), ValueType.DECIMAL),
    ("DEMOG", None, ("param", "strict"), ValueType.BOOLEAN),
    ("DEMOG", None, ("NOPE",), None),
    ("DEMOG", None, ("AE", "AETERM"), None),        # a repeating item from outside its row
    ("AE", None, ("AETERM",), None),                # same form but not per row
    ("AE", "AE_LINE", ("AETERM",), ValueType.TEXT),
    ("AE", "AE_LINE", ("AE", "AETERM"), ValueType.TEXT),
    ("HEMATO", "HEMATO_DAY", ("TREAT", "C1D1DT"), ValueType.DATE),
    ("DEMOG", None, ("anchor", "nope"), None),
    ("DEMOG", None, ("param", "nope"), None),
    ("DEMOG", None, ("subject", "nope"), None),
    ("DEMOG", None, ("a", "b", "c"), None),
])
def test_form_type_of(full, form, group, parts, expected):
    assert full.definition.form_type_of(form, group)(parts) is expected


@pytest.mark.parametrize(("parts", "expected"), [
    (("ELIG", "SALVTYPE"), ValueType.TEXT),
    (("anchor", "progression"), ValueType.DATE),
    (("subject", "arm"), ValueType.TEXT),
    (("SALVTYPE",), None),
    (("HEMATO", "NEUT"), None),
])
def test_schedule_type_of(full, parts, expected):
    assert full.definition.schedule_type_of()(parts) is expected


def test_type_of_feeds_the_expression_checker(full):
    type_of = full.definition.form_type_of("AE", "AE_LINE")
    assert check(parse('AESER = "Y" and AETOXGR in ("3", "4")'), type_of) is ValueType.BOOLEAN


def test_content_round_trips_through_json(full):
    stored = json.loads(json.dumps(full.content))
    assert stored == full.content
    rebuilt = definition_from_content(stored)
    assert rebuilt == full.definition
    assert rebuilt.parameter_values() == full.definition.parameter_values()


def test_definition_from_content_validates(full):
    broken = json.loads(json.dumps(full.content))
    broken["crfs"]["DEMOG"]["groups"][0]["items"][8]["codelist"] = "MISSING"
    with pytest.raises(StudyDefinitionError) as info:
        definition_from_content(broken)
    [problem] = info.value.problems
    assert problem == Problem("crfs/DEMOG.yaml", None, "groups[0].items[8].codelist",
                              "unknown code list 'MISSING'")
    assert "crfs/DEMOG.yaml: groups[0].items[8].codelist: unknown code list" in str(info.value)


@pytest.mark.parametrize("content", [[], {}, {"study": {}, "crfs": []}, {"crfs": "AE"}])
def test_definition_from_content_rejects_a_malformed_envelope(content):
    with pytest.raises(StudyDefinitionError, match="content must be a mapping with a 'crfs'"):
        definition_from_content(content)


def test_definition_from_content_reports_a_missing_study():
    with pytest.raises(StudyDefinitionError) as info:
        definition_from_content({"crfs": {}})
    assert "study.yaml: expected a mapping, got nothing (null)" in str(info.value)


def test_load_study_raises_with_every_problem(study_copy):
    folder = study_copy()
    (folder / "crfs" / "RESP.yaml").write_text("oid: RESP\nname: Response\n")
    with pytest.raises(StudyDefinitionError) as info:
        load_study(folder)
    assert [str(p) for p in info.value.problems] == [
        "study.yaml:45: anchors.progression: unknown item 'RESP.PROGDT'",
        "crfs/RESP.yaml:1: missing required attribute 'groups'",
    ]
    assert str(info.value).startswith(f"{folder}: 2 problems\n")


# --- content hash ------------------------------------------------------------------------


def _hash(folder):
    return load_study(folder).content_hash


def test_hash_ignores_formatting_comments_and_key_order(study_copy, full):
    folder = study_copy()
    for path in [folder / "study.yaml", folder / "codelists.yaml",
                 *sorted((folder / "crfs").glob("*.yaml"))]:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        # Block style, keys sorted, a comment on top: nothing the content should see.
        text = yaml.safe_dump(data, sort_keys=True, allow_unicode=True, default_flow_style=False,
                              indent=4)
        path.write_text("# reformatted\n" + text, encoding="utf-8")
    assert _hash(folder) == full.content_hash


def test_hash_ignores_quoting_and_flow_style(study_copy, full):
    folder = study_copy()
    path = folder / "crfs" / "RESP.yaml"
    path.write_text('{"oid": "RESP", name: "Response", groups: [{oid: RESP_MAIN, items: ['
                    '{oid: PROGDT, label: "Date of progression", type: date}]}]}\n')
    assert _hash(folder) == full.content_hash


@pytest.mark.parametrize(("file", "old", "new"), [
    ("study.yaml", "offset: 7d", "offset: 8d"),
    ("study.yaml", "target_dlt_rate: 0.30", "target_dlt_rate: 0.25"),
    ("study.yaml", "name: Salvage alone", "name: Salvage only"),
    ("codelists.yaml", "label: Mild", "label: Mild (grade 1)"),
    ("crfs/DEMOG.yaml", "max: 300", "max: 301"),
    ("crfs/AE.yaml", "max_rows: 200", "max_rows: 199"),
])
def test_hash_changes_with_any_value(study_copy, full, file, old, new):
    folder = study_copy()
    path = folder / file
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    assert _hash(folder) != full.content_hash


def test_full_fixture_has_no_problems():
    assert check_study(FIXTURES / "full") == []
    assert check_study(FIXTURES / "minimal") == []
