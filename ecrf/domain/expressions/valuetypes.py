"""Value types of the expression language and the Python values that represent them."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from ecrf.domain.dates import PartialDate

from .errors import ValueProblem


class ValueType(enum.Enum):
    INTEGER = "integer"
    DECIMAL = "decimal"
    NUMBER = "number"  # integer or decimal, not known which
    TEXT = "text"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    TIME = "time"
    MULTI = "multi"  # multi-choice answer: a set of codes
    NULL = "null"
    ANY = "any"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    ValueType.INTEGER: "integer",
    ValueType.DECIMAL: "decimal",
    ValueType.NUMBER: "number",
    ValueType.TEXT: "text",
    ValueType.BOOLEAN: "true/false",
    ValueType.DATE: "date",
    ValueType.DATETIME: "date-time",
    ValueType.TIME: "time",
    ValueType.MULTI: "multi-choice",
    ValueType.NULL: "null",
    ValueType.ANY: "any value",
}

NUMERIC_TYPES = frozenset({ValueType.INTEGER, ValueType.DECIMAL, ValueType.NUMBER})
UNKNOWN_TYPES = frozenset({ValueType.ANY, ValueType.NULL})


def family(value_type: ValueType) -> str:
    """Types in the same family can be compared with each other."""
    return "number" if value_type in NUMERIC_TYPES else value_type.value


def numeric_join(*types: ValueType) -> ValueType:
    if all(t is ValueType.INTEGER for t in types):
        return ValueType.INTEGER
    if ValueType.DECIMAL in types:
        return ValueType.DECIMAL
    return ValueType.NUMBER


_RUNTIME_TYPES: dict[type, ValueType] = {
    PartialDate: ValueType.DATE,
    type(None): ValueType.NULL,
    bool: ValueType.BOOLEAN,
    int: ValueType.INTEGER,
    Decimal: ValueType.DECIMAL,
    str: ValueType.TEXT,
    dt.date: ValueType.DATE,
    dt.datetime: ValueType.DATETIME,
    dt.time: ValueType.TIME,
    frozenset: ValueType.MULTI,
}


def runtime_type(value: object) -> ValueType:
    """Type of a normalized value (see ``normalize``)."""
    try:
        return _RUNTIME_TYPES[type(value)]
    except KeyError:
        raise ValueProblem(f"unsupported value {value!r} of Python type "
                           f"{type(value).__name__}") from None


def describe(value: object) -> str:
    """Short human description of a value for error messages: ``text 'abc'``."""
    if value is None:
        return "null"
    try:
        label = runtime_type(value).label
    except ValueProblem:
        return f"{value!r} ({type(value).__name__})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"{label} {shown!r}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, frozenset):
        return f"{label} {{{', '.join(sorted(value))}}}"
    if isinstance(value, dt.date | dt.time | PartialDate):
        return f"{label} {value.isoformat()}"
    return f"{label} {value}"


def is_blank(value: object) -> bool:
    return value is None or value == "" or (type(value) is frozenset and not value)


def _finite_decimal(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueProblem(f"the number {value} is not finite")
    return value


def _from_float(value: float) -> Decimal:
    # Going through str keeps what the user saw (0.1 stays 0.1, not 0.1000000000000000055...).
    return _finite_decimal(Decimal(str(value)))


def _from_set(value: set | frozenset) -> frozenset[str] | None:
    for code in value:
        if type(code) is not str:
            raise ValueProblem(f"a multi-choice value must hold text codes, found {code!r} "
                               f"({type(code).__name__})")
    return frozenset(value) or None


_PASSTHROUGH = frozenset({type(None), bool, int, dt.date, dt.datetime, dt.time})

def _from_partial(value: PartialDate) -> dt.date | PartialDate:
    # A complete partial date is an ordinary date; an incomplete one stays partial so that
    # comparisons can answer "certainly before", "certainly after" or "unknown".
    return value.to_date() if value.is_complete else value


_NORMALIZERS = {
    PartialDate: _from_partial,
    str: lambda v: v or None,
    Decimal: _finite_decimal,
    float: _from_float,
    frozenset: _from_set,
    set: _from_set,
}


def normalize(value: object) -> object:
    """Bring a value from a resolver into the language's representation.

    Blank answers (empty text, empty multi-choice set) become None so that every operator
    treats them as unknown. Raises ValueProblem for an unsupported Python type.
    """
    kind = type(value)
    if kind in _PASSTHROUGH:
        return value
    normalizer = _NORMALIZERS.get(kind)
    if normalizer is not None:
        return normalizer(value)
    return _normalize_subclass(value)


def _normalize_subclass(value: object) -> object:
    # Subclasses (IntEnum, pandas Timestamp, StrEnum...) are reduced to the base type so that
    # the evaluator can dispatch on exact types.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, Decimal):
        return _finite_decimal(Decimal(value))
    if isinstance(value, float):
        return _from_float(float(value))
    if isinstance(value, str):
        return str(value) or None
    if isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, value.hour, value.minute,
                           value.second, value.microsecond, value.tzinfo, fold=value.fold)
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    if isinstance(value, dt.time):
        return dt.time(value.hour, value.minute, value.second, value.microsecond,
                       value.tzinfo, fold=value.fold)
    if isinstance(value, set | frozenset):
        return _from_set(value)
    raise ValueProblem(f"unsupported value {value!r} of Python type {type(value).__name__}")
