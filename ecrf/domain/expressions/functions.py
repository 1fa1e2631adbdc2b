"""Function registry: adding a function is one FUNCTIONS entry with its signature.

Each FunctionSpec says which argument types the static checker accepts, how the result
type follows from the argument types, and how the value is computed. The same parameter
declarations validate argument values at run time.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .errors import SignatureMismatch, ValueProblem
from .operations import DECIMAL_CONTEXT, compare, shift_date, whole_number
from .valuetypes import (
    NUMERIC_TYPES,
    UNKNOWN_TYPES,
    ValueType,
    describe,
    family,
    is_blank,
    numeric_join,
    runtime_type,
)

T = ValueType


@dataclass(frozen=True)
class Param:
    """One parameter: the types it accepts (None = anything) and how to name them."""

    label: str  # "a date", used as "argument 1 of add_days must be a date"
    types: frozenset[ValueType] | None = None
    # Problem with a literal argument (e.g. a malformed ISO date), found at check time.
    literal_problem: Callable[[object], str | None] | None = None
    hint: str = ""

    def accepts_type(self, value_type: ValueType) -> bool:
        if self.types is None or value_type in UNKNOWN_TYPES or value_type in self.types:
            return True
        # "number" may hold integers, so it passes where an integer is needed; the run-time
        # check then insists on a whole value.
        return value_type is T.NUMBER and bool(self.types & NUMERIC_TYPES)

    def accept_value(self, value: object) -> object:
        """The value to pass to the implementation; raises ValueProblem if unsuitable."""
        if self.types is None or value is None:
            return value
        value_type = runtime_type(value)
        if value_type in self.types:
            return value
        if T.INTEGER in self.types and value_type is T.DECIMAL:
            whole = whole_number(value)
            if whole is not None:
                return whole
        raise ValueProblem(f"must be {self.label}, got {describe(value)}{self.hint}")


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    params: tuple[Param, ...]
    implementation: Callable[[Sequence[object], dt.date], object]
    # A ValueType, or a function of the argument types raising SignatureMismatch.
    result: ValueType | Callable[[Sequence[ValueType]], ValueType]
    summary: str
    min_args: int | None = None  # defaults to len(params); fewer means optional trailing
    rest: Param | None = None  # repeated parameter for variadic functions
    # A blank argument makes the result blank without calling the implementation.
    propagates_null: bool = True

    @property
    def minimum(self) -> int:
        return len(self.params) if self.min_args is None else self.min_args

    @property
    def maximum(self) -> int | None:
        return None if self.rest is not None else len(self.params)

    def param(self, index: int) -> Param:
        return self.params[index] if index < len(self.params) else self.rest  # type: ignore

    def arity_problem(self, count: int) -> str | None:
        low, high = self.minimum, self.maximum
        if low <= count and (high is None or count <= high):
            return None
        if high is None:
            expected = f"at least {low} argument{'s' if low != 1 else ''}"
        elif low == high:
            expected = f"{low} argument{'s' if low != 1 else ''}" if low else "no arguments"
        else:
            expected = f"{low} to {high} arguments"
        return f"{self.name}() takes {expected}, got {count}"

    def result_type(self, arg_types: Sequence[ValueType]) -> ValueType:
        if isinstance(self.result, ValueType):
            return self.result
        return self.result(arg_types)


# -- parameter kinds -----------------------------------------------------------------------

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_iso_date(text: str) -> dt.date:
    # Strict YYYY-MM-DD: date.fromisoformat would also take week dates and compact forms.
    if not _ISO_DATE.fullmatch(text):
        raise ValueProblem(f"'{text}' is not a date in the form YYYY-MM-DD")
    try:
        return dt.date(int(text[:4]), int(text[5:7]), int(text[8:]))
    except ValueError as exc:
        raise ValueProblem(f"'{text}' is not a valid date: {exc}") from None


def _iso_date_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        parse_iso_date(value)
    except ValueProblem as problem:
        return str(problem)
    return None


def _digits_problem(value: object) -> str | None:
    if type(value) is int and not 0 <= value <= MAX_ROUND_DIGITS:
        return f"round() keeps 0 to {MAX_ROUND_DIGITS} decimal places, not {value}"
    return None


MAX_ROUND_DIGITS = 20

ANYTHING = Param("any value")
NUMBER = Param("a number", NUMERIC_TYPES)
WHOLE = Param("a whole number", frozenset({T.INTEGER}))
DIGITS = Param("a whole number of decimal places", frozenset({T.INTEGER}),
               literal_problem=_digits_problem)
DATE = Param("a date", frozenset({T.DATE}))
DATE_OR_DATETIME = Param("a date or date-time", frozenset({T.DATE, T.DATETIME}))
TEXT = Param("text", frozenset({T.TEXT}))
ISO_TEXT = Param("text of the form YYYY-MM-DD", frozenset({T.TEXT}),
                 literal_problem=_iso_date_problem)
MULTI = Param("a multi-choice value", frozenset({T.MULTI}),
              hint=" (for a single-choice item compare it: X = \"CODE\")")
BOOLEAN = Param("true/false", frozenset({T.BOOLEAN}))
ORDERED = Param("a number, text, date, date-time or time", frozenset(
    {T.INTEGER, T.DECIMAL, T.NUMBER, T.TEXT, T.DATE, T.DATETIME, T.TIME}))


# -- result types --------------------------------------------------------------------------

def _common_type(name: str) -> Callable[[Sequence[ValueType]], ValueType]:
    def result(arg_types: Sequence[ValueType]) -> ValueType:
        known = [t for t in arg_types if t not in UNKNOWN_TYPES]
        if not known:
            return T.ANY if T.ANY in arg_types else T.NULL
        if len({family(t) for t in known}) > 1:
            kinds = ", ".join(dict.fromkeys(t.label for t in known))
            raise SignatureMismatch(f"the arguments of {name}() must all be the same kind of "
                                    f"value, got {kinds}")
        return numeric_join(*known) if known[0] in NUMERIC_TYPES else known[0]
    return result


def _same_number(arg_types: Sequence[ValueType]) -> ValueType:
    return arg_types[0] if arg_types[0] in NUMERIC_TYPES else T.NUMBER


# -- implementations -----------------------------------------------------------------------

def _date_part(value: dt.date) -> dt.date:
    return value.date() if type(value) is dt.datetime else value  # type: ignore[union-attr]


def add_months(day: dt.date, months: int) -> dt.date:
    """Calendar month arithmetic, clamped to the end of a shorter month (Jan 31 -> Feb 28/29)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    if not dt.MINYEAR <= year <= dt.MAXYEAR:
        raise ValueProblem(f"{describe(day)} moved by {months} months is outside the calendar")
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


def completed_years(birth: dt.date, on: dt.date) -> int:
    """Age in completed years. Someone born on 29 February turns a year older on 1 March in
    common years (the day after 28 February), as the anniversary has not been completed before.
    """
    birth, on = _date_part(birth), _date_part(on)
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _round(args: Sequence[object], today: dt.date) -> Decimal:
    value = args[0]
    digits = args[1] if len(args) > 1 else 0
    if not 0 <= digits <= MAX_ROUND_DIGITS:  # type: ignore[operator]
        raise ValueProblem(f"round() keeps 0 to {MAX_ROUND_DIGITS} decimal places, "
                           f"not {digits}")
    try:
        return Decimal(value).quantize(Decimal(1).scaleb(-digits),  # type: ignore
                                       rounding=ROUND_HALF_UP, context=DECIMAL_CONTEXT)
    except InvalidOperation:
        raise ValueProblem(f"cannot round {describe(value)} to {digits} places") from None


def _extreme(op: str) -> Callable[[Sequence[object], dt.date], object]:
    def pick(args: Sequence[object], today: dt.date) -> object:
        best = args[0]
        for value in args[1:]:
            if compare(op, value, best):
                best = value
        return best
    return pick


def _abs(args: Sequence[object], today: dt.date) -> object:
    value = args[0]
    return value.copy_abs() if type(value) is Decimal else abs(value)  # type: ignore


def _coalesce(args: Sequence[object], today: dt.date) -> object:
    for value in args:
        if not is_blank(value):
            return value
    return None


def _date(args: Sequence[object], today: dt.date) -> dt.date:
    return parse_iso_date(args[0])  # type: ignore[arg-type]


FUNCTIONS: dict[str, FunctionSpec] = {spec.name: spec for spec in (
    FunctionSpec("days_between", (DATE_OR_DATETIME, DATE_OR_DATETIME),
                 lambda a, today: (_date_part(a[1]) - _date_part(a[0])).days, T.INTEGER,
                 "days from a to b (b - a); date-times count by their date"),
    FunctionSpec("add_days", (DATE, WHOLE),
                 lambda a, today: shift_date(a[0], a[1]), T.DATE,
                 "the date n days later (earlier if n is negative)"),
    FunctionSpec("add_months", (DATE, WHOLE), lambda a, today: add_months(a[0], a[1]),
                 T.DATE, "the date n calendar months later, clamped to the month's end"),
    FunctionSpec("today", (), lambda a, today: today, T.DATE,
                 "the evaluation date given by the caller"),
    FunctionSpec("age", (DATE_OR_DATETIME, DATE_OR_DATETIME),
                 lambda a, today: completed_years(a[0], a[1]), T.INTEGER,
                 "completed years from birth_date to on_date"),
    FunctionSpec("is_blank", (ANYTHING,), lambda a, today: is_blank(a[0]), T.BOOLEAN,
                 "true if the value is null, empty text or an empty multi-choice",
                 propagates_null=False),
    FunctionSpec("coalesce", (ANYTHING, ANYTHING), _coalesce, _common_type("coalesce"),
                 "the first argument that is not blank", rest=ANYTHING,
                 propagates_null=False),
    FunctionSpec("min", (ORDERED, ORDERED), _extreme("<"), _common_type("min"),
                 "the smallest argument (blank if any is blank)", rest=ORDERED),
    FunctionSpec("max", (ORDERED, ORDERED), _extreme(">"), _common_type("max"),
                 "the largest argument (blank if any is blank)", rest=ORDERED),
    FunctionSpec("abs", (NUMBER,), _abs, _same_number, "absolute value"),
    FunctionSpec("round", (NUMBER, DIGITS), _round, T.DECIMAL,
                 "rounded to the given decimal places (default 0), halves away from zero",
                 min_args=1),
    FunctionSpec("contains", (MULTI, TEXT), lambda a, today: a[1] in a[0], T.BOOLEAN,
                 "true if the multi-choice value includes the code"),
    FunctionSpec("count_true", (BOOLEAN,), lambda a, today: sum(v is True for v in a),
                 T.INTEGER, "how many arguments are true (blank counts as not true)",
                 rest=BOOLEAN, propagates_null=False),
    FunctionSpec("date", (ISO_TEXT,), _date, T.DATE, "the date written as 'YYYY-MM-DD'"),
)}
