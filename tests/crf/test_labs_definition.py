"""The ``labs`` block of study.yaml: checked where it is written (items, units, events,
codes), built into the definition (both seed trials declare one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ecrf.crf import LabAnalyte, check_study, definition_from_content, load_study
from ecrf.crf.definition import lab_unit_key

from .conftest import line_of

FORMS = Path(__file__).resolve().parents[2] / "forms"
S = "study.yaml"

CASES = [
    ("unknown-group", [("group: COUNTS.CNT_DAY\n", "group: COUNTS.CNT_DAYS\n")],
     "group: COUNTS.CNT_DAYS", "unknown group 'COUNTS.CNT_DAYS' (groups of COUNTS: "
                               "CNT_DAY, CNT_GF)"),
    ("unknown-form", [("group: COUNTS.CNT_DAY\n", "group: COUNT.CNT_DAY\n")],
     "group: COUNT.CNT_DAY", "unknown form 'COUNT' in 'COUNT.CNT_DAY'"),
    ("date-not-a-date", [("  date: LBDT\n", "  date: STUDYDY\n")], "date: STUDYDY",
     "STUDYDY must be a date item, not calculated"),
    ("date-unknown", [("  date: LBDT\n", "  date: LBDTC\n")], "date: LBDTC",
     "unknown item 'LBDTC' in form COUNTS"),
    ("unknown-event", [("events: [HEMOBS]", "events: [HEMOBSX]")], "events:",
     "unknown event 'HEMOBSX'"),
    ("event-without-form", [("events: [HEMOBS]", "events: [D28]")], "events:",
     "event D28 has no form COUNTS"),
    ("unknown-item", [("- item: ANC\n", "- item: ANCX\n")], "- item: ANCX",
     "unknown item 'ANCX' in form COUNTS"),
    ("item-not-numeric", [("- item: TMAX\n", "- item: RBCTX\n")], "- item: RBCTX",
     "RBCTX must be an integer or decimal item, not yes_no"),
    ("item-other-group", [("- item: TMAX\n", "- item: GCSF\n")], "- item: GCSF",
     "GCSF is in group COUNTS.CNT_GF, not in COUNTS.CNT_DAY"),
    ("item-without-unit", [("- item: TMAX\n", "- item: STUDYDY\n")], "- item: STUDYDY",
     "STUDYDY has no unit: give it one in its form"),
    ("item-twice", [("- item: TMAX\n", "- item: ANC\n")], "- item: ANC\n      codes: [\"TMAX",
     "ANC is already fed by analyte 2"),
    ("code-twice", [('codes: ["718-7"]', 'codes: ["751-8"]')], 'codes: ["751-8"]',
     "code 751-8 already feeds analyte 2"),
    ("own-unit-not-1", [('{"g/dL": 10, "g/dl": 10}', '{"g/dL": 10, "g/L": 2}')],
     '"g/L": 2', "g/L is the unit of HGB; its factor must be 1, not 2"),
    ("unit-twice", [('{"g/dL": 10, "g/dl": 10}', '{"g/dL": 10, "g / dL": 10}')],
     '"g / dL": 10', "unit g / dL is the same as g/dL"),
    ("factor-negative", [('{"g/dL": 10, "g/dl": 10}', '{"g/dL": -10}')], '"g/dL": -10',
     "-10"),
    ("factor-text", [('{"g/dL": 10, "g/dl": 10}', '{"g/dL": ten}')], '"g/dL": ten', "ten"),
    ("identifier-not-text", [("  date: LBDT\n", "  date: LBDT\n  identifier: COUNTS.ANC\n")],
     "identifier: COUNTS.ANC", "COUNTS.ANC must be a text item outside repeating groups"),
    ("missing-events", [("  events: [HEMOBS]\n", "")], "labs:",
     "missing required attribute 'events'"),
]


@pytest.fixture
def ucmsc_copy(tmp_path):
    target = tmp_path / "ucmscexo"
    shutil.copytree(FORMS / "ucmscexo", target)
    return target


def _mutate(folder: Path, replacements) -> str:
    path = folder / S
    text = path.read_text(encoding="utf-8")
    start = text.index("\nlabs:")
    head, tail = text[:start], text[start:]
    for old, new in replacements:
        assert old in tail, old
        tail = tail.replace(old, new, 1)
    path.write_text(head + tail, encoding="utf-8")
    return head + tail


@pytest.mark.parametrize(("replacements", "marker", "fragment"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_broken_labs_block_is_reported_where_it_is(ucmsc_copy, replacements, marker,
                                                     fragment):
    text = _mutate(ucmsc_copy, replacements)
    problems = check_study(ucmsc_copy)
    matching = [p for p in problems if fragment in p.message]
    assert matching, "\n".join(str(p) for p in problems)
    start = text.index("\nlabs:")
    expected = line_of(text[start:], marker) + text.count("\n", 0, start)
    assert (S, expected) in {(p.file, p.line) for p in matching}, \
        f"expected {S}:{expected}; got " + "; ".join(str(p) for p in matching)
    assert all(p.path.startswith("labs") for p in matching)


def test_both_seed_trials_declare_their_blood_counts():
    ucmsc = load_study(FORMS / "ucmscexo")
    labs = ucmsc.definition.labs
    assert definition_from_content(ucmsc.content) == ucmsc.definition
    assert (labs.form, labs.group, labs.date, labs.events) == ("COUNTS", "CNT_DAY", "LBDT",
                                                               ("HEMOBS",))
    assert [a.item for a in labs.analytes] == ["WBC", "ANC", "HGB", "PLT", "TMAX"]
    assert labs.analyte_for("26499-4") == labs.analyte_for("751-8") == labs.analytes[1]
    assert labs.analytes[2] == LabAnalyte("HGB", ("718-7",), {"g/dL": "10", "g/dl": "10"})
    assert labs.analyte_for("1988-5") is None
    dex = load_study(FORMS / "dexaml03").definition.labs
    assert (dex.form, dex.group) == ("HEMATO", "HEMATO_CBC")
    assert dex.events == ("SCREEN", "INDUCT", "RESP_IND", "CONS", "AZA_C1", "AZA_CYC",
                          "RESP_AZA")
    assert [a.item for a in dex.analytes] == ["WBC", "ANC", "LYM", "HGB", "PLT"]


def test_a_study_without_the_block_has_no_labs(ucmsc_copy):
    text = (ucmsc_copy / S).read_text(encoding="utf-8")
    (ucmsc_copy / S).write_text(text[:text.index("\n# Laboratory results")] + "\n",
                                encoding="utf-8")
    assert check_study(ucmsc_copy) == []
    assert load_study(ucmsc_copy).definition.labs is None


@pytest.mark.parametrize("unit, key", [
    ("10^9/L", "10^9/L"), ("10 ^9 / L", "10^9/L"), ("/µL", "/uL"), ("/μL", "/uL"),
    ("G/L", "G/L"), ("g/L", "g/L"), ("g/dL", "g/dL"), ("K/uL", "K/uL"),
])
def test_units_compare_without_spaces_and_micro_signs_but_with_case(unit, key):
    assert lab_unit_key(unit) == key
