"""The source map's translation of another system's OIDs (ecrf.crf.source_map)."""

from __future__ import annotations

import pytest

from ecrf.crf.source_map import SourceMap, parse_source_map

MAP, PROBLEMS = parse_source_map({"source_map": {
    "system": "REDCap 14.0.5",
    "study": {"Project.Demo": "DEMO"},
    "implied_event": "MAIN",
    "events": {"Event.baseline_arm_1": "BASELINE_ARM_1"},
    "forms": {"Form.demographics": {"oid": "DEMOGRAPHICS", "groups": {
        "demographics.age": {"oid": "DEMOG", "items": {
            "age": "AGE",
            "race___1": {"item": "RACE", "choice": "1"},
            "pregnant": {"item": "PREGNANT", "codes": {"1": "Y", "0": "N"}},
            "record_id": {"skip": "the subject key"}}},
        "demographics.meds___1": {"oid": "MEDS_GROUP", "items": {
            "meds___1": {"item": "MEDS", "choice": "1"}}}}}},
}})
EMPTY = SourceMap()


def test_the_example_map_is_well_formed():
    assert PROBLEMS == []


@pytest.mark.parametrize(("smap", "source", "expected"), [
    (MAP, "Event.baseline_arm_1", "BASELINE_ARM_1"),
    (MAP, None, "MAIN"),  # FormData outside any event
    (EMPTY, "SE.SCREEN", "SCREEN"),  # ecrf's own OIDs
    (EMPTY, "SCREEN", "SCREEN"),
])
def test_event(smap, source, expected):
    assert smap.translate_event(source) == expected


@pytest.mark.parametrize(("smap", "form", "group", "item", "expected"), [
    (MAP, "Form.demographics", "demographics.age", "age", ("DEMOG", "AGE", None, {})),
    (MAP, "Form.demographics", "demographics.age", "race___1", ("DEMOG", "RACE", "1", {})),
    (MAP, "Form.demographics", "demographics.age", "pregnant",
     ("DEMOG", "PREGNANT", None, {"1": "Y", "0": "N"})),
    # Given in another ItemGroupData than the metadata declares: found in the form.
    (MAP, "Form.demographics", "demographics.age", "meds___1", ("MEDS_GROUP", "MEDS", "1", {})),
    (EMPTY, "F.VS", "IG.VS.MAIN", "I.VS.WEIGHT", ("MAIN", "WEIGHT", None, {})),
])
def test_item(smap, form, group, item, expected):
    oid, target = smap.locate_item(form, group, item)
    assert (oid, target.item, target.choice, dict(target.codes)) == expected


def test_skipped_item_and_study():
    assert MAP.translate_item("Form.demographics", "demographics.age", "record_id").skip \
        == "the subject key"
    assert (MAP.translate_study("Project.Demo"), MAP.translate_study("Other")) == ("DEMO", None)
    assert MAP.counts() == {"events": 2, "forms": 1, "groups": 2, "items": 4, "skipped": 1,
                            "codes": 2}


@pytest.mark.parametrize(("data", "message"), [
    ({}, "must hold one key, source_map"),
    ({"source_map": {"events": {"a": 3}}}, "must be an ecrf OID (text)"),
    ({"source_map": {"forms": {"F": {"groups": {}}}}}, "oid (the ecrf form) is required"),
    ({"source_map": {"forms": {"F": {"oid": "X", "groups": {"G": {"items": {"i": 5}}}}}}},
     "must be an item OID or a mapping with item or skip"),
    ({"source_map": {"forms": {"F": {"oid": "X", "groups": {"G": {"items": {
        "i": {"item": "A", "colour": "red"}}}}}}}}, "unknown key 'colour'"),
])
def test_malformed_maps_are_named(data, message):
    _smap, problems = parse_source_map(data)
    assert any(message in p.message for p in problems), problems
