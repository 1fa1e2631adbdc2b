"""Validation of submitted forms: pure, table-driven where it can be."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from ecrf.crf import Severity, load_study
from ecrf.crf.validation import (
    UNDECIDED,
    EntryContext,
    completion_problems,
    evaluate_partial,
    validate_form,
)
from ecrf.crf.values import display, from_canonical, shadows_of, to_canonical
from ecrf.domain.dates import PartialDate

STUDY = load_study(Path(__file__).resolve().parents[1] / "fixtures" / "capture_study").definition
VITALS = STUDY.form("VITALS")
AE = STUDY.form("AE")
TODAY = dt.date(2025, 6, 1)


def ctx(**extra) -> EntryContext:
    base = dict(today=TODAY, timezone="Europe/Paris", codelists=STUDY.codelists,
                params=STUDY.parameter_values(),
                other_forms={("CONSENT", "CONSDT"): dt.date(2025, 5, 1)})
    base.update(extra)
    return EntryContext(**base)


def vitals(**values):
    """Raw submission of VITALS: keyword per item."""
    base = {"VSDT": "2025-05-02", "SEX": "M", "WEIGHT": "72.5", "HEIGHT": "180"}
    base.update(values)
    return {("VS", 1, oid): raw for oid, raw in base.items() if raw is not None}


def key(oid: str, row: int = 1, group: str = "VS"):
    return (group, row, oid)


def errors_of(result, oid, row=1, group="VS") -> list[str]:
    return [str(m) for m in result.errors.get(key(oid, row, group), [])]


# --- one item type at a time --------------------------------------------------------------

ACCEPTED = [
    ("VSDT", "2025-05-02", "2025-05-02", dt.date(2025, 5, 2)),
    ("VSTM", "9:05", "09:05", dt.time(9, 5)),
    ("VSTM", "23:59:30", "23:59:30", dt.time(23, 59, 30)),
    ("SAMPLEDTM", "2025-05-02T14:05", "2025-05-02T14:05+02:00", None),
    ("SAMPLEDTM", "2025-05-02 14:05", "2025-05-02T14:05+02:00", None),
    ("SAMPLEDTM", "2025-05-02T12:05Z", "2025-05-02T12:05Z", None),
    ("BRTHDT", "1970", "1970", PartialDate(1970)),
    ("BRTHDT", "1970-03", "1970-03", PartialDate(1970, 3)),
    ("BRTHDT", "1970-03-15", "1970-03-15", PartialDate(1970, 3, 15)),
    ("SEX", "F", "F", "F"),
    ("RACE", ["WHITE", "ASIAN"], '["WHITE","ASIAN"]', frozenset({"WHITE", "ASIAN"})),
    ("RACE", ["ASIAN", "WHITE"], '["WHITE","ASIAN"]', frozenset({"WHITE", "ASIAN"})),
    ("WEIGHT", "72,5", "72.5", Decimal("72.5")),
    ("WEIGHT", "072.0", "72.0", Decimal("72.0")),
    ("HEIGHT", "+180", "180", 180),
    ("SMOKER", "N", "N", "N"),
    ("INITIALS", "  ABC ", "ABC", "ABC"),
    ("NEUT", "0.45", "0.45", Decimal("0.45")),
]


@pytest.mark.parametrize("oid, raw, canonical, typed", ACCEPTED)
def test_values_are_read_and_made_canonical(oid, raw, canonical, typed):
    result = validate_form(VITALS, vitals(**{oid: raw}), ctx())
    assert result.ok, result.errors
    assert result.canonical[key(oid)] == canonical
    if typed is not None:
        assert result.typed[key(oid)] == typed


REFUSED = [
    ("VSDT", "02/05/2025", "Enter the date as YYYY-MM-DD"),
    ("VSDT", "2025-02-30", "2025-02-30 is not a real date"),
    ("VSTM", "25:00", "Enter the time as HH:MM"),
    ("SAMPLEDTM", "2025-05-02", "Enter the date and time as YYYY-MM-DD HH:MM"),
    ("SAMPLEDTM", "2025-03-30T02:30", "does not exist in Europe/Paris"),
    ("BRTHDT", "2024-02-30", "no day 30 in 2024-02 (last day 29)"),
    ("BRTHDT", "2024-13", "month out of range"),
    ("BRTHDT", "24", "expected YYYY, YYYY-MM or YYYY-MM-DD"),
    ("SEX", "X", "'X' is not one of the choices (F, M)"),
    ("RACE", ["WHITE", "MARTIAN"], "'MARTIAN' is not one of the choices"),
    ("WEIGHT", "72.55", "At most 1 decimal place(s)"),
    ("WEIGHT", "seventy", "Enter a number, such as 72.5"),
    ("WEIGHT", "1e3", "Enter a number"),
    ("WEIGHT", "12.0", "12.0 kg is impossible: enter a value from 20 kg to 300 kg"),
    ("WEIGHT", "301", "impossible"),
    ("HEIGHT", "180.5", "Enter a whole number"),
    ("HEIGHT", "99", "99 cm is impossible"),
    ("SMOKER", "yes", "'yes' is not one of the choices (Y, N)"),
    ("INITIALS", "ABCD", "At most 3 characters (you entered 4)"),
    ("BMI", "30.1", "is calculated; it cannot be entered"),
]


@pytest.mark.parametrize("oid, raw, message", REFUSED)
def test_bad_values_are_refused_with_a_message(oid, raw, message):
    result = validate_form(VITALS, vitals(**{oid: raw}), ctx())
    assert not result.ok
    assert any(message in text for text in errors_of(result, oid)), errors_of(result, oid)
    if oid != "BMI":  # a calculated item keeps its computed value
        assert result.typed[key(oid)] is None


def test_soft_range_is_a_warning_not_an_error():
    result = validate_form(VITALS, vitals(WEIGHT="160.0"), ctx())
    assert result.ok
    [warning] = [i for i in result.issues if i.id == "WEIGHT.soft_range"]
    assert warning.severity is Severity.WARNING and warning.row == 0
    assert "outside the expected range 35 kg to 150 kg" in str(warning.message)
    assert warning.keys == (key("WEIGHT"),)


def test_calculated_items_are_computed_with_their_precision():
    result = validate_form(VITALS, vitals(WEIGHT="72.5", HEIGHT="180"), ctx())
    assert result.typed[key("BMI")] == Decimal("22.4")
    assert result.canonical[key("BMI")] == "22.4"
    result = validate_form(VITALS, vitals(BRTHDT="1970-05-03"), ctx())
    assert result.canonical[key("AGE")] == "54"


def test_calculated_item_is_blank_when_an_input_is_blank():
    result = validate_form(VITALS, vitals(HEIGHT=None), ctx())
    assert result.typed[key("BMI")] is None
    assert key("HEIGHT") in result.missing


def test_partial_dates_are_never_imputed_in_calculations():
    # Born in 1970 and examined in 2025: 54 or 55 depending on the day, so unknown.
    result = validate_form(VITALS, vitals(BRTHDT="1970"), ctx())
    assert result.typed[key("AGE")] is None
    # Born in January 1970: 55 whatever the day.
    result = validate_form(VITALS, vitals(BRTHDT="1970-01"), ctx())
    assert result.typed[key("AGE")] == 55


def test_show_if_hides_and_a_posted_hidden_value_is_refused():
    result = validate_form(VITALS, vitals(SEX="M", PREGNANT="N"), ctx())
    assert key("PREGNANT") not in result.visible
    # The condition is said with the item's and the code's labels, not its source.
    assert "Pregnant is not asked here: it only applies when Sex is Female" in \
        errors_of(result, "PREGNANT")[0]
    assert result.canonical[key("PREGNANT")] is None


def test_required_if_follows_its_condition():
    result = validate_form(VITALS, vitals(SEX="F"), ctx())
    assert key("PREGNANT") in result.visible and key("PREGNANT") in result.missing
    result = validate_form(VITALS, vitals(SEX="F", PREGNANT="N"), ctx())
    assert key("PREGNANT") not in result.missing
    result = validate_form(VITALS, vitals(SMOKER="N"), ctx())
    assert key("PACKYRS") not in result.visible and key("PACKYRS") not in result.required


def test_required_items_blank_are_missing_not_errors():
    result = validate_form(VITALS, {}, ctx())
    assert result.ok
    assert {k[2] for k in result.missing} == {"VSDT", "SEX", "WEIGHT", "HEIGHT"}


def test_checks_reading_another_form_and_parameters():
    result = validate_form(VITALS, vitals(VSDT="2025-04-01"), ctx())
    [failing] = [i for i in result.issues if i.id == "VS_AFTER_CONSENT"]
    assert failing.severity is Severity.ERROR and failing.row == 0
    assert failing.keys == (key("VSDT"),)
    result = validate_form(VITALS, vitals(BRTHDT="2010-01-01"), ctx())
    assert [i.id for i in result.failing_errors] == ["VS_AGE"]
    result = validate_form(VITALS, vitals(), ctx(other_forms={}))
    assert not result.failing_errors  # consent not recorded yet: the check cannot fire


def test_warning_check_on_calculated_value():
    result = validate_form(VITALS, vitals(WEIGHT="140.0", HEIGHT="180"), ctx())
    assert [i.id for i in result.warnings] == ["VS_BMI"]


def test_lab_values_are_graded():
    result = validate_form(VITALS, vitals(NEUT="0.45"), ctx())
    grade = result.grades[key("NEUT")]
    assert grade.grade == 4 and grade.version == "CTCAE v5.0"


def ae_rows(*rows):
    raw = {}
    for number, values in rows:
        for oid, value in values.items():
            raw[("AE_LINE", number, oid)] = value
    return raw


def test_checks_run_per_row_of_a_repeating_group():
    raw = ae_rows(
        (1, {"AETERM": "Nausea", "AESTDTC": "2025-03-10", "AEENDTC": "2025-03-12"}),
        (2, {"AETERM": "Fever", "AESTDTC": "2025-03-10", "AEENDTC": "2025-03-01"}),
        (3, {"AETERM": "Sepsis", "AESTDTC": "2025-03", "AETOXGR": "4", "AESER": "N"}),
    )
    result = validate_form(AE, raw, ctx())
    failing = {(i.id, i.row) for i in result.issues}
    assert failing == {("AE_END_AFTER_START", 2), ("AE_SEVERE_SERIOUS", 3)}
    [error] = result.failing_errors
    assert error.group == "AE_LINE"
    assert error.keys == (("AE_LINE", 2, "AESTDTC"), ("AE_LINE", 2, "AEENDTC"))


def test_partial_date_comparison_that_cannot_be_decided_does_not_fire():
    raw = ae_rows((1, {"AETERM": "Rash", "AESTDTC": "2025-03-15", "AEENDTC": "2025-03"}),
                  (2, {"AETERM": "Cough", "AESTDTC": "2025-03-15", "AEENDTC": "2025-02"}))
    result = validate_form(AE, raw, ctx())
    assert {(i.id, i.row) for i in result.issues} == {("AE_END_AFTER_START", 2)}


def test_show_if_and_required_if_per_row():
    raw = ae_rows((1, {"AETERM": "A", "AESTDTC": "2025", "AESER": "Y"}),
                  (2, {"AETERM": "B", "AESTDTC": "2025", "AESER": "N", "AESHOSP": "Y"}))
    result = validate_form(AE, raw, ctx())
    assert ("AE_LINE", 1, "AESHOSP") in result.missing
    assert errors_of(result, "AESHOSP", 2, "AE_LINE")


def test_rows_come_from_the_keys_or_are_given():
    raw = ae_rows((2, {"AETERM": "A", "AESTDTC": "2025"}))
    assert validate_form(AE, raw, ctx()).rows == {"AE_LINE": (2,)}
    assert validate_form(AE, raw, ctx(), rows={"AE_LINE": [2, 4]}).rows == {"AE_LINE": (2, 4)}


def test_too_many_rows_is_a_form_error_and_min_rows_blocks_completion():
    raw = ae_rows(*[(n, {"AETERM": "X", "AESTDTC": "2025"}) for n in range(1, 7)])
    result = validate_form(AE, raw, ctx())
    assert not result.ok
    assert "at most 5 rows; remove 1" in str(result.form_errors[0])
    assert completion_problems(AE, result) == []


def test_partial_evaluation_helper():
    values = {("A",): PartialDate(2024, 3), ("B",): dt.date(2024, 3, 15),
              ("C",): PartialDate(2024, 3, 20)}
    resolve = values.get
    assert evaluate_partial("A < B", resolve, TODAY) is UNDECIDED
    assert evaluate_partial("C > B", resolve, TODAY) is True
    assert evaluate_partial("A < date(\"2024-05-01\")", resolve, TODAY) is True
    assert evaluate_partial("is_blank(A)", resolve, TODAY) is False


@pytest.mark.parametrize("oid, text", [
    ("WEIGHT", "72.5"), ("HEIGHT", "180"), ("VSDT", "2025-05-02"), ("VSTM", "09:05"),
    ("SAMPLEDTM", "2025-05-02T14:05+02:00"), ("BRTHDT", "1970-03"),
    ("RACE", '["WHITE","ASIAN"]'), ("SEX", "F"), ("BMI", "22.4"), ("AGE", "54"),
])
def test_canonical_text_round_trips(oid, text):
    item = VITALS.item(oid)
    codes = STUDY.choices_of("VITALS", oid)
    assert to_canonical(item, from_canonical(item, text), codes) == text


def test_shadows_and_display():
    item = VITALS.item("SAMPLEDTM")
    shadow = shadows_of(from_canonical(item, "2025-05-02T14:05+02:00"))
    assert shadow.datetime == dt.datetime(2025, 5, 2, 12, 5, tzinfo=dt.UTC)
    assert shadows_of(PartialDate(2024, 3)).date is None
    assert shadows_of(PartialDate(2024, 3, 1)).date == dt.date(2024, 3, 1)
    assert shadows_of(Decimal("1.5")).number == Decimal("1.5")
    sex = STUDY.choices_of("VITALS", "SEX")
    assert display(VITALS.item("SEX"), "F", sex, "fr") == "Femme (F)"
    assert display(VITALS.item("WEIGHT"), "72.5") == "72.5 kg"
    race = STUDY.choices_of("VITALS", "RACE")
    assert display(VITALS.item("RACE"), '["WHITE","ASIAN"]', race) == "White (WHITE); Asian (ASIAN)"
