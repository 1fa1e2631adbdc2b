"""CTCAE v5.0 laboratory grading and febrile neutropenia.

Every comparison runs on Decimal so that a value sitting exactly on a band edge lands in the
band the CTCAE interval notation says ("<A - B" is B <= value < A, ">A - B" is
A < value <= B), never in a neighbour because of binary floating point.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

CTCAE_VERSION = "CTCAE v5.0"

# Products such as 20 x ULN must be exact; the default context (28 digits) already is for
# clinical magnitudes, but a private context keeps a caller's global context out of it.
_CTX = decimal.Context(prec=50)


class GradingError(Exception):
    """A programming error: an unknown test code or criteria set, not bad clinical data."""


class UnitError(ValueError):
    """A unit that is unknown for, or incompatible with, the test."""


class _NotGradable(Exception):
    """Internal: carries the reason a single input cannot be graded."""


@dataclass(frozen=True)
class LabGrade:
    test: str
    grade: int | None
    term: str | None
    version: str
    basis: str
    gradable: bool
    value_si: Decimal | None
    unit_si: str | None


@dataclass(frozen=True)
class _LabTest:
    code: str
    term: str
    unit_si: str
    shown_unit: str
    factors: dict[str, Decimal]
    # Decreased terms: absolute lower edges of grades 1..n-1, highest first.
    low_edges: tuple[Decimal, ...] = ()
    # Increased terms: (grade, multiple, inclusive) against ULN / baseline.
    uln_bands: tuple[tuple[int, Decimal, bool], ...] = ()
    abnormal_bl_bands: tuple[tuple[int, Decimal, bool], ...] = ()
    bl_bands: tuple[tuple[int, Decimal, bool], ...] = ()
    # Said when the lowest absolute band is the worst grade a lab value alone can give.
    worst_band_note: str | None = None

    @property
    def decreased(self) -> bool:
        return bool(self.low_edges)


def _d(text: str) -> Decimal:
    return Decimal(text)


_ONE = _d("1")
_PER_UL = _d("0.001")
_COUNT_UNITS = {
    "109/l": _ONE, "10e9/l": _ONE, "g/l": _ONE, "gpt/l": _ONE,
    "103/ul": _ONE, "10e3/ul": _ONE, "k/ul": _ONE, "103/mm3": _ONE,
    "cells/ul": _PER_UL, "/ul": _PER_UL, "cells/mm3": _PER_UL, "/mm3": _PER_UL,
}
_TRANSAMINASE_UNITS = {"u/l": _ONE, "iu/l": _ONE, "ukat/l": _d("60")}


def _bands(*rows: tuple[int, str, bool]) -> tuple[tuple[int, Decimal, bool], ...]:
    return tuple((grade, _d(mult), inclusive) for grade, mult, inclusive in rows)


_ALT_AST_NORMAL = _bands((1, "1", False), (2, "3.0", False), (3, "5.0", False), (4, "20.0", False))
# Baseline-abnormal grade 1 is written "1.5 - 3.0 x BL": 1.5 x BL itself is grade 1.
_ALT_AST_ABNORMAL = _bands((1, "1.5", True), (2, "3.0", False), (3, "5.0", False),
                           (4, "20.0", False))


def _count(code: str, term: str, *edges: str) -> _LabTest:
    return _LabTest(code, term, "10^9/L", "x10^9/L", _COUNT_UNITS,
                    low_edges=tuple(_d(e) for e in edges))


_TESTS: dict[str, _LabTest] = {
    t.code: t
    for t in (
        _count("NEUT", "Neutrophil count decreased", "1.5", "1.0", "0.5"),
        _count("PLAT", "Platelet count decreased", "75", "50", "25"),
        _count("WBC", "White blood cell decreased", "3.0", "2.0", "1.0"),
        _count("LYM", "Lymphocyte count decreased", "0.8", "0.5", "0.2"),
        _LabTest("HGB", "Anemia", "g/L", "g/L",
                 {"g/l": _ONE, "g/dl": _d("10"), "mmol/l": _d("16.1")},
                 low_edges=(_d("100"), _d("80")),
                 worst_band_note="lab grading stops at grade 3 (transfusion indicated and "
                                 "grade 4 life-threatening consequences are clinical "
                                 "judgements)"),
        _LabTest("ALT", "Alanine aminotransferase increased", "U/L", "U/L", _TRANSAMINASE_UNITS,
                 uln_bands=_ALT_AST_NORMAL, abnormal_bl_bands=_ALT_AST_ABNORMAL),
        _LabTest("AST", "Aspartate aminotransferase increased", "U/L", "U/L",
                 _TRANSAMINASE_UNITS,
                 uln_bands=_ALT_AST_NORMAL, abnormal_bl_bands=_ALT_AST_ABNORMAL),
        _LabTest("BILI", "Blood bilirubin increased", "umol/L", "umol/L",
                 {"umol/l": _ONE, "mg/dl": _d("17.1")},
                 uln_bands=_bands((1, "1", False), (2, "1.5", False), (3, "3.0", False),
                                  (4, "10.0", False)),
                 abnormal_bl_bands=_bands((1, "1.0", False), (2, "1.5", False),
                                          (3, "3.0", False), (4, "10.0", False))),
        _LabTest("CREAT", "Creatinine increased", "umol/L", "umol/L",
                 {"umol/l": _ONE, "mg/dl": _d("88.4")},
                 uln_bands=_bands((1, "1", False), (2, "1.5", False), (3, "3.0", False),
                                  (4, "6.0", False)),
                 bl_bands=_bands((2, "1.5", False), (3, "3.0", False))),
    )
}


def _lab_test(test: object) -> _LabTest:
    code = test.strip().upper() if isinstance(test, str) else None
    if code not in _TESTS:
        raise GradingError(f"unknown lab test code {test!r}; known: {', '.join(_TESTS)}")
    return _TESTS[code]


def _unit_key(unit: str) -> str:
    key = unit.strip().lower()
    for old, new in (("µ", "u"), ("μ", "u"), ("×", "x"), ("⁹", "9"), ("³", "3")):
        key = key.replace(old, new)
    key = key.replace(" ", "").replace("^", "").replace("*", "")
    return key[1:] if key.startswith("x10") else key


def convert_unit(test: str, value: Decimal, unit: str) -> tuple[Decimal, str]:
    """Convert ``value`` in ``unit`` to the unit CTCAE grading uses for ``test``."""
    spec = _lab_test(test)
    if not isinstance(unit, str) or not unit.strip():
        raise UnitError(f"no unit given for {spec.code}")
    factor = spec.factors.get(_unit_key(unit))
    if factor is None:
        raise UnitError(f"unit {unit!r} not recognised for {spec.code}")
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return _CTX.multiply(number, factor), spec.unit_si


def _number(raw: object, name: str) -> Decimal:
    if raw is None:
        raise _NotGradable(f"no {name} given")
    if isinstance(raw, bool):
        raise _NotGradable(f"{name} {raw!r} is not a number")
    try:
        number = raw if isinstance(raw, Decimal) else Decimal(str(raw).strip())
    except (decimal.InvalidOperation, ValueError):
        raise _NotGradable(f"{name} {raw!r} is not a number") from None
    if not number.is_finite():
        raise _NotGradable(f"{name} {raw!r} is not a finite number")
    if number < 0:
        raise _NotGradable(f"{name} {raw!r} is negative")
    return number


def _fmt(number: Decimal) -> str:
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _ratio(value: Decimal, ref: Decimal) -> str:
    exact = _CTX.divide(value, ref)
    rounded = exact.quantize(Decimal("0.01"), rounding=decimal.ROUND_HALF_EVEN)
    # Say when the shown ratio is rounded: 120.01 / 40 shown bare as "3" would hide why the
    # grade is the one above the 3.0 x ULN edge.
    return _fmt(exact) if rounded == exact else f"~{rounded}"


def _band_grade(value: Decimal, ref: Decimal, bands: tuple[tuple[int, Decimal, bool], ...]) -> int:
    grade = 0
    for band_grade, multiple, inclusive in bands:
        limit = _CTX.multiply(multiple, ref)
        if value > limit or (inclusive and value == limit):
            grade = band_grade
    return grade


def grade_lab(test: str, value, unit: str, *, lln=None, uln=None, baseline=None) -> LabGrade:
    """Grade one laboratory value by CTCAE v5.0.

    ``lln``, ``uln`` and ``baseline`` are in the same unit as ``value``. Bad clinical input
    gives a not-gradable result with the reason; only an unknown test code raises.
    """
    spec = _lab_test(test)

    def result(grade: int | None, basis: str, value_si: Decimal | None = None) -> LabGrade:
        return LabGrade(spec.code, grade, spec.term, CTCAE_VERSION, basis, grade is not None,
                        value_si, spec.unit_si if value_si is not None else None)

    value_si: Decimal | None = None
    try:
        number = _number(value, "value")
        if not isinstance(unit, str) or not unit.strip():
            raise _NotGradable(f"no unit given for {spec.code}")
        try:
            value_si, _ = convert_unit(spec.code, number, unit)
        except UnitError as exc:
            raise _NotGradable(str(exc)) from None

        def reference(raw: object, name: str) -> Decimal | None:
            if raw is None:
                return None
            ref = _number(raw, name)
            if ref == 0:
                raise _NotGradable(f"{name} {raw!r} must be greater than zero")
            return convert_unit(spec.code, ref, unit)[0]

        if spec.decreased:
            grade, basis = _grade_decreased(spec, value_si, reference(lln, "LLN"))
        else:
            uln_si = reference(uln, "ULN")
            bl_si = reference(baseline, "baseline")
            if spec.bl_bands:
                grade, basis = _grade_creatinine(spec, value_si, uln_si, bl_si)
            else:
                grade, basis = _grade_increased(spec, value_si, uln_si, bl_si)
    except _NotGradable as exc:
        return result(None, f"not gradable: {exc}", value_si)
    return result(grade, basis, value_si)


def _grade_decreased(spec: _LabTest, value: Decimal, lln: Decimal | None
                     ) -> tuple[int | None, str]:
    shown = f"{_fmt(value)} {spec.shown_unit}"
    below = [edge for edge in spec.low_edges if value < edge]
    if below:
        # Grades 2 and worse are absolute bands; the table applies them even when a lab's
        # LLN happens to lie under the grade-1 edge.
        grade = 1 + len(below)
        basis = f"absolute: {shown} < {below[-1]}"
        if spec.worst_band_note and len(below) == len(spec.low_edges):
            basis += f"; {spec.worst_band_note}"
        if lln is not None and value >= lln:
            basis += f" (although >= LLN {_fmt(lln)})"
        return grade, basis
    if lln is None:
        raise _NotGradable(f"{shown} is not below {spec.low_edges[0]}; "
                           "grade-1 band needs the lab's LLN")
    if value < lln:
        return 1, f"LLN-based: {shown} < LLN {_fmt(lln)}, >= {spec.low_edges[0]}"
    return 0, f"within limits: {shown} >= LLN {_fmt(lln)}"


def _uln_basis(spec: _LabTest, value: Decimal, uln: Decimal) -> str:
    return f"ULN-based: {_ratio(value, uln)} x ULN (ULN {_fmt(uln)} {spec.shown_unit})"


def _grade_increased(spec: _LabTest, value: Decimal, uln: Decimal | None,
                     baseline: Decimal | None) -> tuple[int, str]:
    unit = spec.shown_unit
    if uln is None:
        # Whichever the ULN, a value not above the baseline is grade 0 in both forms: if the
        # baseline was normal the value is within the ULN, if abnormal it is <= 1.0 x BL.
        if baseline is not None and value <= baseline:
            return 0, (f"baseline-based: {_fmt(value)} {unit} <= baseline {_fmt(baseline)} "
                       f"{unit}, grade 0 whatever the ULN (no ULN given)")
        raise _NotGradable(f"no ULN given for {spec.code}")
    if baseline is not None and baseline > uln:
        grade = _band_grade(value, baseline, spec.abnormal_bl_bands)
        return grade, (f"baseline-based: {_ratio(value, baseline)} x BL (BL {_fmt(baseline)} "
                       f"{unit}, abnormal: > ULN {_fmt(uln)} {unit})")
    return _band_grade(value, uln, spec.uln_bands), _uln_basis(spec, value, uln)


def _grade_creatinine(spec: _LabTest, value: Decimal, uln: Decimal | None,
                      baseline: Decimal | None) -> tuple[int, str]:
    if uln is None:
        hint = ""
        if baseline is not None:
            floor = _band_grade(value, baseline, spec.bl_bands)
            hint = f" (baseline-based alone: grade {floor}, ULN-based could be worse)"
        raise _NotGradable(f"no ULN given for {spec.code}{hint}")
    uln_grade = _band_grade(value, uln, spec.uln_bands)
    uln_text = _uln_basis(spec, value, uln)
    if baseline is None:
        return uln_grade, uln_text
    bl_grade = _band_grade(value, baseline, spec.bl_bands)
    bl_text = (f"baseline-based: {_ratio(value, baseline)} x BL "
               f"(BL {_fmt(baseline)} {spec.shown_unit})")
    return max(uln_grade, bl_grade), (
        f"worse of {uln_text} -> grade {uln_grade} and {bl_text} -> grade {bl_grade}")


# --- Febrile neutropenia -----------------------------------------------------------------

Criteria = Literal["ctcae", "idsa"]
_SUSTAINED_C = Decimal("38.0")
_SUSTAINED_FOR = timedelta(hours=1)


@dataclass(frozen=True)
class _FnRule:
    anc_below: Decimal
    single: Decimal
    single_inclusive: bool
    label: str


_FN_RULES: dict[str, _FnRule] = {
    "ctcae": _FnRule(Decimal("1.0"), Decimal("38.3"), False, CTCAE_VERSION),
    "idsa": _FnRule(Decimal("0.5"), Decimal("38.3"), True, "IDSA"),
}


@dataclass(frozen=True)
class TemperatureReading:
    at: datetime
    celsius: Decimal

    def __post_init__(self) -> None:
        if not isinstance(self.at, datetime):
            raise GradingError(f"temperature time {self.at!r} is not a datetime")
        try:
            celsius = _number(self.celsius, "temperature")
        except _NotGradable as exc:
            raise GradingError(str(exc)) from None
        object.__setattr__(self, "celsius", celsius)


@dataclass(frozen=True)
class FebrileNeutropeniaResult:
    present: bool
    grade: int | None
    basis: str
    criteria: str
    assessable: bool = True
    version: str = CTCAE_VERSION


def _sustained_fever(readings: Sequence[TemperatureReading]
                     ) -> tuple[datetime, datetime] | None:
    by_time: dict[datetime, bool] = {}
    for reading in readings:
        febrile = reading.celsius >= _SUSTAINED_C
        # Two readings at the same instant: one below 38.0 breaks any span through it.
        by_time[reading.at] = by_time.get(reading.at, True) and febrile
    start: datetime | None = None
    for at in sorted(by_time):
        if not by_time[at]:
            start = None
            continue
        start = at if start is None else start
        if at - start >= _SUSTAINED_FOR:
            return start, at
    return None


def febrile_neutropenia(anc, readings: Sequence[TemperatureReading], *,
                        criteria: Criteria = "ctcae",
                        anc_unit: str = "10^9/L") -> FebrileNeutropeniaResult:
    """Febrile neutropenia from an ANC and the temperatures around it.

    Grade 3 is the most a lab-and-thermometer rule can say; grade 4 (life-threatening) and
    grade 5 are the investigator's.
    """
    rule = _FN_RULES.get(criteria)
    if rule is None:
        raise GradingError(f"unknown febrile neutropenia criteria {criteria!r}")
    readings = tuple(readings)
    if len({r.at.tzinfo is None for r in readings}) > 1:
        raise GradingError("temperature readings mix naive and timezone-aware times")

    def outcome(present: bool, basis: str, assessable: bool = True) -> FebrileNeutropeniaResult:
        return FebrileNeutropeniaResult(present, 3 if present else None,
                                        f"{rule.label}: {basis}", criteria, assessable)

    try:
        try:
            anc_value = convert_unit("NEUT", _number(anc, "ANC"), anc_unit)[0]
        except UnitError as exc:
            raise _NotGradable(str(exc)) from None
    except _NotGradable as exc:
        return outcome(False, f"not assessable: {exc}", assessable=False)
    anc_text = f"ANC {_fmt(anc_value)} x10^9/L"
    if anc_value >= rule.anc_below:
        return outcome(False, f"{anc_text} is not < {rule.anc_below}")
    operator = ">=" if rule.single_inclusive else ">"
    for reading in sorted(readings, key=lambda r: r.at):
        hot = reading.celsius >= rule.single if rule.single_inclusive else (
            reading.celsius > rule.single)
        if hot:
            return outcome(True, f"{anc_text} < {rule.anc_below} and a single temperature "
                                 f"{_fmt(reading.celsius)} C {operator} {rule.single} C at "
                                 f"{reading.at.isoformat()}")
    span = _sustained_fever(readings)
    if span is not None:
        return outcome(True, f"{anc_text} < {rule.anc_below} and temperature >= "
                             f"{_SUSTAINED_C} C sustained from {span[0].isoformat()} to "
                             f"{span[1].isoformat()} (>= 1 hour)")
    return outcome(False, f"{anc_text} < {rule.anc_below} but no temperature {operator} "
                          f"{rule.single} C and none >= {_SUSTAINED_C} C sustained over 1 hour")
