"""The pure engine of the laboratory import: unit conversion, mapping by code, matching a
collection date to an event occurrence and a row (tables, no database)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from ecrf.crf import ItemType, load_study
from ecrf.esource.engine import (
    CONFLICT,
    NEW,
    UNCHANGED,
    Mapped,
    Slot,
    StoredRow,
    Target,
    choose_row,
    choose_slot,
    convert,
    factor_for,
    map_observation,
    state_of,
)
from ecrf.esource.parse import Observation, Problem

FORMS = Path(__file__).resolve().parents[2] / "forms"
UCMSC = load_study(FORMS / "ucmscexo").definition
DEX = load_study(FORMS / "dexaml03").definition
COUNTS_UNITS = {"10*9/L": "1", "G/L": "1", "10*3/uL": "1", "/uL": "0.001"}


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


@pytest.mark.parametrize("unit, item_unit, declared, factor", [
    ("10^9/L", "10^9/L", {}, Decimal(1)),          # the item's own unit
    ("10 ^9/L", "10^9/L", {}, Decimal(1)),         # spaces ignored
    ("10*9/L", "10^9/L", COUNTS_UNITS, Decimal(1)),
    ("G/L", "10^9/L", COUNTS_UNITS, Decimal(1)),
    ("/µL", "10^9/L", COUNTS_UNITS, Decimal("0.001")),
    ("/μL", "10^9/L", COUNTS_UNITS, Decimal("0.001")),  # Greek mu
    ("/uL", "10^9/L", COUNTS_UNITS, Decimal("0.001")),
    ("g/L", "10^9/L", COUNTS_UNITS, None),         # grams per litre is not giga per litre
    ("g/l", "g/L", {}, None),                      # case counts
    ("g/dL", "g/L", {"g/dL": "10"}, Decimal(10)),
    ("mmol/L", "g/L", {"g/dL": "10"}, None),
    ("", "g/L", {"g/dL": "10"}, None),
])
def test_factors(unit, item_unit, declared, factor):
    assert factor_for(unit, item_unit, declared) == factor


@pytest.mark.parametrize("value, factor, item_type, precision, expected", [
    ("1.45", "1", ItemType.DECIMAL, 2, "1.45"),
    ("1.4", "1", ItemType.DECIMAL, 2, "1.40"),
    ("1.455", "1", ItemType.DECIMAL, 2, "1.46"),      # half up
    ("1.445", "1", ItemType.DECIMAL, 2, "1.45"),
    ("1450", "0.001", ItemType.DECIMAL, 2, "1.45"),   # /uL -> 10^9/L
    ("25", "0.001", ItemType.DECIMAL, 2, "0.03"),     # 0.025 rounds half up
    ("4", "0.001", ItemType.DECIMAL, 2, "0.00"),
    ("10.4", "10", ItemType.INTEGER, None, "104"),    # g/dL -> g/L
    ("9.85", "10", ItemType.INTEGER, None, "99"),     # 98.5 half up
    ("9.84", "10", ItemType.INTEGER, None, "98"),
    ("152000", "0.001", ItemType.INTEGER, None, "152"),
    ("151500", "0.001", ItemType.INTEGER, None, "152"),
    ("0.4", "1", ItemType.INTEGER, None, "0"),
    ("-0.4", "1", ItemType.INTEGER, None, "0"),
    ("37.25", "1", ItemType.DECIMAL, 1, "37.3"),
    ("1.50", "1", ItemType.DECIMAL, None, "1.5"),     # no precision: as exact as given
    ("1.5e3", "1", ItemType.DECIMAL, None, "1500"),
])
def test_conversion_to_the_item_unit(value, factor, item_type, precision, expected):
    assert convert(Decimal(value), Decimal(factor), item_type, precision) == expected


def _obs(code: str, value: str, unit: str, *more: str) -> Observation:
    return Observation("line 2", ("S-1",), d("2026-01-05"), (code, *more), Decimal(value),
                       unit)


@pytest.mark.parametrize("definition, observation, expected", [
    (UCMSC, _obs("751-8", "1.45", "10*9/L"), ("ANC", "1.45")),
    (UCMSC, _obs("26499-4", "800", "/µL"), ("ANC", "0.80")),
    (UCMSC, _obs("718-7", "10.4", "g/dL"), ("HGB", "104")),
    (UCMSC, _obs("718-7", "98", "g/L"), ("HGB", "98")),
    (UCMSC, _obs("777-3", "152", "K/uL"), ("PLT", "152")),
    (UCMSC, _obs("26515-7", "98", "10^9/L"), ("PLT", "98")),
    (UCMSC, _obs("6690-2", "3.2", "G/L"), ("WBC", "3.20")),
    (UCMSC, _obs("TMAX24H", "38.45", "Cel"), ("TMAX", "38.5")),
    (UCMSC, _obs("LOCAL-HB", "10.4", "g/dL", "718-7"), ("HGB", "104")),  # alternate code
    (DEX, _obs("731-0", "1200", "/mm3"), ("LYM", "1.20")),
    (DEX, _obs("718-7", "9.8", "g/dl"), ("HGB", "98")),
    (UCMSC, _obs("731-0", "1.2", "G/L"), None),                      # not taken by UCMSC-Exo
    (UCMSC, _obs("1988-5", "12", "mg/L"), None),
    (UCMSC, _obs("718-7", "6.1", "mmol/L"),
     "unit mmol/L of 718-7 has no conversion to g/L (HGB); the study accepts g/L, g/dL, g/dl"),
    (UCMSC, _obs("751-8", "1.45", ""), "no unit for 751-8 (ANC is in 10^9/L)"),
])
def test_mapping_by_code_and_unit(definition, observation, expected):
    labs = definition.labs
    found = map_observation(labs, definition.form(labs.form), observation)
    if expected is None:
        assert found is None
    elif isinstance(expected, str):
        assert found == Problem("line 2", expected)
    else:
        assert isinstance(found, Mapped)
        assert (found.item, found.value) == expected


# HEMOBS of UCMSC-Exo: one occurrence, day 1 (5 January) to day 49 (22 February).
HEMOBS = [Slot("HEMOBS", 1, d("2026-01-05"), d("2026-02-22"), d("2026-02-15"))]
# DEXAML-03 visits, each taking one blood count: SCREEN (28-day window), INDUCT, then
# consolidation cycles with overlapping windows.
VISITS = [Slot("SCREEN", 1, d("2026-01-01"), d("2026-01-29"), d("2026-01-01"), True),
          Slot("INDUCT", 1, d("2026-01-20"), d("2026-01-27"), d("2026-01-20"), True),
          Slot("CONS", 1, d("2026-02-24"), d("2026-03-17"), d("2026-03-03")),
          Slot("CONS", 2, d("2026-03-10"), d("2026-04-21"), d("2026-04-07"))]


@pytest.mark.parametrize("slots, rows, repeating, collected, expected", [
    (HEMOBS, [], True, "2026-01-05", ("HEMOBS", 1)),       # first day of the window
    (HEMOBS, [], True, "2026-02-22", ("HEMOBS", 1)),       # last day
    (HEMOBS, [], True, "2026-01-04",
     "no occurrence of the lab events has a window holding 2026-01-04"),
    (HEMOBS, [], True, "2026-02-23",
     "no occurrence of the lab events has a window holding 2026-02-23"),
    ([Slot("HEMOBS", 1, None, None)], [], True, "2026-01-10",
     "no occurrence of the lab events has a window holding 2026-01-10"),
    (VISITS, [], False, "2026-01-01", ("SCREEN", 1)),
    # In both SCREEN's and INDUCT's windows: the nearest planned date wins...
    (VISITS, [], False, "2026-01-21", ("INDUCT", 1)),
    # ... unless a visit already holds a count of that date...
    (VISITS, [StoredRow("SCREEN", 1, 1, d("2026-01-21"))], False, "2026-01-21",
     ("SCREEN", 1)),
    # ... and a visit holding a count of another date is not a candidate.
    (VISITS, [StoredRow("INDUCT", 1, 1, d("2026-01-20"))], False, "2026-01-21",
     ("SCREEN", 1)),
    (VISITS, [StoredRow("SCREEN", 1, 1, d("2026-01-02")),
              StoredRow("INDUCT", 1, 1, d("2026-01-20"))], False, "2026-01-21",
     "every occurrence whose window holds 2026-01-21 already holds a count of another "
     "date: SCREEN[1] (2026-01-02), INDUCT[1] (2026-01-20)"),
    (VISITS, [], False, "2026-03-17", ("CONS", 1)),  # 14 days after CONS 1, 21 before CONS 2
    (VISITS, [], False, "2026-03-20", ("CONS", 2)),
    ([Slot("A", 1, d("2026-01-01"), d("2026-01-31"), d("2026-01-10")),
      Slot("B", 1, d("2026-01-01"), d("2026-01-31"), d("2026-01-20"))], [], False,
     "2026-01-15", "2026-01-15 fits A[1], B[1] equally; enter it by hand"),
])
def test_matching_a_collection_date_to_an_occurrence(slots, rows, repeating, collected,
                                                     expected):
    found = choose_slot(slots, rows, d(collected), repeating)
    assert (found if isinstance(found, str) else (found.event, found.repeat)) == expected


def test_rows_of_a_daily_log():
    slot = HEMOBS[0]
    rows = [StoredRow("HEMOBS", 1, 1, d("2026-01-05")), StoredRow("HEMOBS", 1, 3,
                                                                  d("2026-01-07"))]
    used = {1, 2, 3}  # row 2 was removed
    planned: dict = {}
    assert choose_row(slot, rows, used, d("2026-01-05"), True, planned) == \
        Target("HEMOBS", 1, 1, False)
    assert choose_row(slot, rows, used, d("2026-01-07"), True, planned) == \
        Target("HEMOBS", 1, 3, False)
    assert choose_row(slot, rows, used, d("2026-01-06"), True, planned) == \
        Target("HEMOBS", 1, 4, True)
    assert choose_row(slot, rows, used, d("2026-01-08"), True, planned) == \
        Target("HEMOBS", 1, 5, True)
    assert choose_row(slot, rows, used, d("2026-01-06"), True, planned) == \
        Target("HEMOBS", 1, 4, True)  # the same new row for the same date
    assert choose_row(slot, [], set(), d("2026-01-06"), True, {}) == \
        Target("HEMOBS", 1, 1, True)


def test_a_visit_takes_row_1():
    slot = VISITS[0]
    assert choose_row(slot, [], set(), d("2026-01-02"), False, {}) == \
        Target("SCREEN", 1, 1, True)
    assert choose_row(slot, [StoredRow("SCREEN", 1, 1, d("2026-01-02"))], {1},
                      d("2026-01-02"), False, {}) == Target("SCREEN", 1, 1, False)


@pytest.mark.parametrize("stored, new, state", [
    (None, "1.45", NEW), ("", "1.45", NEW), ("1.45", "1.45", UNCHANGED),
    ("1.450", "1.45", UNCHANGED), ("104", "104", UNCHANGED), ("1.50", "1.45", CONFLICT),
    ("103", "104", CONFLICT),
])
def test_new_unchanged_or_conflicting(stored, new, state):
    assert state_of(stored, new) == state
