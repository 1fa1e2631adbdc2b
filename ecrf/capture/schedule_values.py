"""Recorded item values as schedule expressions see them.

A stored ``ItemValue`` keeps canonical text plus typed shadows (number, date, UTC
datetime); an expression needs a typed Python value: Decimal or int for numbers, a date
(never a partial one), a datetime, text codes, or a frozenset of codes for a multiple
choice. The item's type in the definition decides which.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo

from ecrf.domain.expressions import ValueType


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True, slots=True)
class StoredValue:
    """One recorded value of a subject, with its typed shadows and its recency."""

    form: str
    item: str
    value: str
    number: Decimal | None
    day: dt.date | None
    moment: dt.datetime | None
    order: tuple  # most recent last


def as_date(row: StoredValue, tz: str | None) -> dt.date | None:
    if row.day is not None:
        return row.day
    if row.moment is not None:
        return row.moment.astimezone(zone(tz or "UTC")).date()
    text = row.value
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        if len(text) > 10:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None
    return None


def _number(row: StoredValue, integer: bool) -> object:
    try:
        value = Decimal(row.value)
    except InvalidOperation:
        value = row.number
    if value is None:
        return None
    if integer and value == value.to_integral_value():
        return int(value)
    return value


def typed_value(row: StoredValue, value_type: ValueType, tz: str | None) -> object:
    """The value an expression sees: Decimal/int, date, datetime, str or a set of codes."""
    if value_type in (ValueType.TEXT, ValueType.ANY):
        return row.value
    if value_type is ValueType.INTEGER:
        return _number(row, True)
    if value_type in (ValueType.DECIMAL, ValueType.NUMBER):
        return _number(row, False)
    if value_type is ValueType.DATE:
        # A partial date has no single day: unknown to a schedule condition.
        return as_date(row, tz)
    if value_type is ValueType.DATETIME:
        if row.moment is not None:
            return row.moment
        try:
            return dt.datetime.fromisoformat(row.value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if value_type is ValueType.MULTI:
        try:
            codes = json.loads(row.value)
        except ValueError:
            return None
        return frozenset(str(c) for c in codes) if isinstance(codes, list) else None
    if value_type is ValueType.TIME:
        try:
            return dt.time.fromisoformat(row.value)
        except ValueError:
            return None
    if value_type is ValueType.BOOLEAN:
        return row.value.strip().lower() in ("true", "1", "y", "yes")
    return row.value
