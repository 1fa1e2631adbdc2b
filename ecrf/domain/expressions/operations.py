"""Run-time operators on normalized values (see valuetypes.normalize).

None (blank / unknown) never reaches these functions for binary operators: the evaluator
propagates it first. Type errors raise ValueProblem; the evaluator adds the position.
"""

from __future__ import annotations

import datetime as dt
import operator
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow

from ecrf.domain.dates import PartialDate

from .errors import ValueProblem
from .valuetypes import describe

# A private context: results must not depend on whatever decimal context the caller's thread
# happens to have. Enough precision that clinical arithmetic is exact in practice.
DECIMAL_CONTEXT = Context(prec=34, traps=[InvalidOperation, DivisionByZero, Overflow])

_NUMBERS = (int, Decimal)
_MICROSECONDS_PER_DAY = Decimal(86_400_000_000)

_COMPARE = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_DECIMAL_OPS = {
    "+": DECIMAL_CONTEXT.add,
    "-": DECIMAL_CONTEXT.subtract,
    "*": DECIMAL_CONTEXT.multiply,
    "/": DECIMAL_CONTEXT.divide,
}
_INT_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def _bounds(value: object) -> tuple[dt.date, dt.date] | None:
    if type(value) is PartialDate:
        return value.earliest(), value.latest()  # type: ignore[union-attr]
    if type(value) is dt.date:
        return value, value  # type: ignore[return-value]
    return None


def _compare_partial(op: str, left: object, right: object) -> bool | None:
    """Compare dates of which at least one is partial, as intervals of possible days.

    The answer is definite only when every possible pair of days agrees: '2024-02' is
    certainly before 2024-03-10, while '2024-03' may fall on either side (None). Nothing is
    ever imputed.
    """
    a, b = _bounds(left), _bounds(right)
    if a is None or b is None:
        raise ValueProblem(f"cannot compare {describe(left)} with {describe(right)}")
    (alo, ahi), (blo, bhi) = a, b
    if op in ("=", "!="):
        if ahi < blo or bhi < alo:
            equal: bool | None = False
        elif alo == ahi == blo == bhi:
            equal = True
        else:
            equal = None
        return equal if op == "=" or equal is None else not equal
    if op in (">", ">="):
        (alo, ahi), (blo, bhi) = (blo, bhi), (alo, ahi)
        op = "<" if op == ">" else "<="
    if op == "<":
        return True if ahi < blo else False if alo >= bhi else None
    return True if ahi <= blo else False if alo > bhi else None


def compare(op: str, left: object, right: object) -> bool | None:
    kind = type(left)
    if kind is PartialDate or type(right) is PartialDate:
        return _compare_partial(op, left, right)
    if kind is not type(right):
        if not (kind in _NUMBERS and type(right) in _NUMBERS):
            raise ValueProblem(f"cannot compare {describe(left)} with {describe(right)}")
    elif kind is frozenset:
        raise ValueProblem(f"cannot compare multi-choice values with '{op}'; "
                           "use contains(X, \"CODE\")")
    elif kind is bool and op != "=" and op != "!=":
        raise ValueProblem(f"true/false values can only be compared with '=' or '!=', "
                           f"not '{op}'")
    try:
        return _COMPARE[op](left, right)
    except TypeError as exc:  # e.g. naive and time-zone aware date-times
        raise ValueProblem(f"cannot compare {describe(left)} with {describe(right)}: "
                           f"{exc}") from None


def whole_number(value: object) -> int | None:
    """The value as an int if it is a whole number (int or integral Decimal), else None."""
    kind = type(value)
    if kind is int:
        return value  # type: ignore[return-value]
    if kind is Decimal and value == value.to_integral_value():  # type: ignore[union-attr]
        return int(value)  # type: ignore[arg-type]
    return None


def shift_date(day: dt.date, days: int) -> dt.date:
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        raise ValueProblem(f"{describe(day)} moved by {days} days is outside the calendar"
                           ) from None


def arithmetic(op: str, left: object, right: object) -> object:
    """``left op right`` for non-None operands; None for a division by zero, and for date
    arithmetic on an incomplete partial date (the exact day is unknown)."""
    lkind, rkind = type(left), type(right)
    if lkind is PartialDate or rkind is PartialDate:
        if op in ("+", "-"):
            return None
        raise ValueProblem(f"cannot apply '{op}' to {describe(left)} and {describe(right)}")
    if lkind is int and rkind is int and op != "/":
        return _INT_OPS[op](left, right)
    if lkind in _NUMBERS and rkind in _NUMBERS:
        if op == "/" and right == 0:
            # Documented: a ratio with a zero denominator is unknown, not a crash.
            return None
        try:
            return _DECIMAL_OPS[op](left, right)
        except ArithmeticError as exc:
            raise ValueProblem(f"{describe(left)} {op} {describe(right)} is out of range: "
                               f"{exc.__class__.__name__}") from None
    if op == "+" or op == "-":
        result = _date_arithmetic(op, left, right)
        if result is not None:
            return result
    raise ValueProblem(f"cannot apply '{op}' to {describe(left)} and {describe(right)}")


def _date_arithmetic(op: str, left: object, right: object) -> object:
    lkind, rkind = type(left), type(right)
    if lkind is dt.date:
        days = whole_number(right)
        if days is not None:
            return shift_date(left, days if op == "+" else -days)  # type: ignore[arg-type]
        if op == "-" and rkind is dt.date:
            return (left - right).days  # type: ignore[operator]
        return None
    if op == "+" and rkind is dt.date:
        days = whole_number(left)
        return None if days is None else shift_date(right, days)  # type: ignore[arg-type]
    if op == "-" and lkind is dt.datetime and rkind is dt.datetime:
        try:
            delta = left - right  # type: ignore[operator]
        except TypeError as exc:
            raise ValueProblem(f"cannot subtract {describe(right)} from {describe(left)}: "
                               f"{exc}") from None
        micro = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return DECIMAL_CONTEXT.divide(Decimal(micro), _MICROSECONDS_PER_DAY)
    return None


def negate(value: object) -> object:
    kind = type(value)
    if kind is int:
        return -value  # type: ignore[operator]
    if kind is Decimal:
        return value.copy_negate()  # type: ignore[union-attr]
    raise ValueProblem(f"'-' needs a number, got {describe(value)}")
