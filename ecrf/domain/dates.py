"""Calendar periods and partial dates.

Periods (``0d``, ``14d``, ``-28d``, ``2w``, ``3m``, ``1y``) are the offsets, windows and
repeat intervals of a study schedule. Days and weeks are exact. Months and years are
calendar arithmetic that clamps to the month end: 31 January + 1m is 29 February in a leap
year and 28 February otherwise. ``Period.add_to(d, times)`` adds ``amount * times`` units in
one step, so a repeat counted from its anchor never drifts: 31 January + 2m is 31 March,
whereas two clamped steps of 1m would give 29 (or 28) March.

Partial dates follow ISO 8601 truncated on the right (``2024``, ``2024-03``,
``2024-03-15``). They are never imputed: ``to_date`` refuses an incomplete date, and
comparisons go through the bounds of the possible range (``earliest``/``latest``), so that
``certainly_before`` only answers True when every possible reading agrees.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

_PERIOD_RE = re.compile(r"(-?)(0|[1-9][0-9]*)([dwmy])")
_UNITS = ("d", "w", "m", "y")
_PARTIAL_RE = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")


class PeriodError(ValueError):
    """A period that cannot be parsed, built or applied."""


def add_months(d: date, months: int) -> date:
    """Add calendar months, clamping the day to the last day of the target month."""
    years, month_index = divmod(d.month - 1 + months, 12)
    year = d.year + years
    if not date.min.year <= year <= date.max.year:
        raise OverflowError(f"{d.isoformat()} + {months} months is outside the calendar")
    month = month_index + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


@dataclass(frozen=True)
class Period:
    """An integer number of days, weeks, months or years; the amount may be negative."""

    amount: int
    unit: str

    def __post_init__(self) -> None:
        # bool is an int subclass; True days would be a silent loader bug.
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise PeriodError(f"period amount must be an integer, got {self.amount!r}")
        if self.unit not in _UNITS:
            raise PeriodError(f"period unit must be one of d, w, m, y, got {self.unit!r}")

    @classmethod
    def parse(cls, text: str) -> Period:
        if not isinstance(text, str):
            raise PeriodError(f"period must be text such as '14d' or '3m', got {text!r}")
        match = _PERIOD_RE.fullmatch(text)
        if match is None:
            raise PeriodError(f"invalid period {text!r}: expected an integer and d, w, m or y")
        sign, digits, unit = match.groups()
        amount = int(digits)
        return cls(-amount if sign else amount, unit)

    @property
    def is_negative(self) -> bool:
        return self.amount < 0

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    @property
    def months(self) -> int:
        """Calendar-month part of the period (0 for days and weeks)."""
        return self.amount * {"m": 1, "y": 12}.get(self.unit, 0)

    @property
    def days(self) -> int:
        """Exact-day part of the period (0 for months and years)."""
        return self.amount * {"d": 1, "w": 7}.get(self.unit, 0)

    def add_to(self, d: date, times: int = 1) -> date:
        return shift(d, months=self.months * times, days=self.days * times)

    def __neg__(self) -> Period:
        return Period(-self.amount, self.unit)

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def shift(d: date, *, months: int = 0, days: int = 0) -> date:
    """Move a date by whole months (clamped) and then by exact days, in one step.

    Summing the parts before applying them is what keeps repeats free of month-end drift.
    """
    try:
        moved = add_months(d, months) if months else d
        return moved + timedelta(days=days) if days else moved
    except OverflowError as exc:
        raise PeriodError(
            f"{d.isoformat()} moved by {months} months and {days} days is outside the calendar"
        ) from exc


class PartialDateError(ValueError):
    """A partial date that is malformed, impossible, or used where a full date is needed."""


@dataclass(frozen=True, order=False)
class PartialDate:
    """A date known to the year, the month or the day; nothing is ever imputed."""

    year: int
    month: int | None = None
    day: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.year <= 9999:
            raise PartialDateError(f"year out of range 1-9999: {self.year!r}")
        if self.month is None:
            if self.day is not None:
                raise PartialDateError(
                    f"a day without a month is not a partial date: {self.year}--{self.day}"
                )
            return
        if not 1 <= self.month <= 12:
            raise PartialDateError(f"month out of range 1-12: {self.year}-{self.month!r}")
        if self.day is not None:
            last = calendar.monthrange(self.year, self.month)[1]
            if not 1 <= self.day <= last:
                raise PartialDateError(
                    f"no day {self.day} in {self.year:04d}-{self.month:02d} (last day {last})"
                )

    @classmethod
    def parse(cls, text: str) -> PartialDate:
        if not isinstance(text, str):
            raise PartialDateError(f"partial date must be text, got {text!r}")
        match = _PARTIAL_RE.fullmatch(text)
        if match is None:
            raise PartialDateError(
                f"invalid partial date {text!r}: expected YYYY, YYYY-MM or YYYY-MM-DD"
            )
        year, month, day = (int(part) if part is not None else None for part in match.groups())
        assert year is not None  # the pattern makes the year mandatory
        try:
            return cls(year, month, day)
        except PartialDateError as exc:
            raise PartialDateError(f"invalid partial date {text!r}: {exc}") from None

    @classmethod
    def from_date(cls, d: date) -> PartialDate:
        return cls(d.year, d.month, d.day)

    def isoformat(self) -> str:
        text = f"{self.year:04d}"
        if self.month is not None:
            text += f"-{self.month:02d}"
            if self.day is not None:
                text += f"-{self.day:02d}"
        return text

    def __str__(self) -> str:
        return self.isoformat()

    @property
    def is_complete(self) -> bool:
        return self.day is not None

    def to_date(self) -> date:
        if self.month is None or self.day is None:
            raise PartialDateError(f"partial date {self.isoformat()} has no exact day")
        return date(self.year, self.month, self.day)

    def earliest(self) -> date:
        return date(self.year, self.month or 1, self.day or 1)

    def latest(self) -> date:
        month = self.month or 12
        return date(self.year, month, self.day or calendar.monthrange(self.year, month)[1])


def _bounds(value: PartialDate | date) -> tuple[date, date]:
    if isinstance(value, PartialDate):
        return value.earliest(), value.latest()
    if isinstance(value, date):
        return value, value
    raise PartialDateError(f"expected a date or partial date, got {value!r}")


def certainly_before(a: PartialDate | date, b: PartialDate | date) -> bool:
    """True only when every possible reading of ``a`` falls strictly before ``b``."""
    return _bounds(a)[1] < _bounds(b)[0]
