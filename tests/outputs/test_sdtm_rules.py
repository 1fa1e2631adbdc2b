"""The SDTM derivation rules as tables: study day, AEREL, AESER and LBNRIND."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ecrf.outputs.datasets.sdtm_rules import (
    derive_aerel,
    derive_aeser,
    range_indicator,
    study_day,
)


@pytest.mark.parametrize(("value", "reference", "expected"), [
    ("2025-03-10", "2025-03-10", 1),                 # the reference day is day 1
    ("2025-03-11", "2025-03-10", 2),
    ("2025-03-09", "2025-03-10", -1),                # the day before is -1: no day 0
    ("2025-03-01", "2025-03-10", -9),
    ("2025-04-09", "2025-03-10", 31),
    ("2024-03-01", "2024-02-28", 3),                 # leap year
    ("2025-03-10T23:59:00", "2025-03-10T08:00", 1),  # date-times count by date
    ("2025-03", "2025-03-10", None),                 # partial dates give no study day
    ("2025", "2025-03-10", None),
    ("2025-03-10", "2025-03", None),
    ("2025-03-10", None, None),                      # no reference start
    (None, "2025-03-10", None),
    ("", "2025-03-10", None),
])
def test_study_day(value, reference, expected):
    assert study_day(value, reference) == expected


@pytest.mark.parametrize(("causalities", "expected"), [
    (["possible"], "RELATED"),
    (["unrelated", "probable"], "RELATED"),         # related to any study drug
    (["unrelated", None, "definite"], "RELATED"),
    (["unrelated", "unlikely"], "NOT RELATED"),
    (["unlikely", None], "NOT RELATED"),            # one answer suffices
    ([None, None], None),                           # nothing answered
    ([], None),
])
def test_aerel_from_per_drug_causality(causalities, expected):
    assert derive_aerel(causalities) == expected


def test_aerel_with_a_study_definition_of_related():
    assert derive_aerel(["unlikely"], related={"unlikely", "possible"}) == "RELATED"
    assert derive_aerel(["possible"], related={"probable"}) == "NOT RELATED"


@pytest.mark.parametrize(("recorded", "criteria", "expected"), [
    ("Y", ["N", "Y", "N"], "Y"),
    ("N", [None, None], "N"),                        # recorded answer stands
    (None, ["N", "Y", None], "Y"),                   # any criterion makes it serious
    (None, ["N", "N", "N"], "N"),
    (None, ["N", None], None),                       # not every criterion answered
    (None, [], None),
])
def test_aeser(recorded, criteria, expected):
    assert derive_aeser(recorded, criteria) == expected


D = Decimal


@pytest.mark.parametrize(("value", "low", "high", "expected"), [
    (D("1.7"), D("1.8"), None, "LOW"),
    (D("1.8"), D("1.8"), None, "NORMAL"),            # limits are inclusive
    (D("40"), None, D("40"), "NORMAL"),
    (D("40.1"), None, D("40"), "HIGH"),
    (D("3"), D("1.8"), D("7.5"), "NORMAL"),
    (D("0"), D("1.8"), D("7.5"), "LOW"),
    (D("7.6"), D("1.8"), D("7.5"), "HIGH"),
    (D("5"), None, None, None),                      # no range, no indicator
    (None, D("1.8"), D("7.5"), None),
])
def test_range_indicator(value, low, high, expected):
    assert range_indicator(value, low, high) == expected
