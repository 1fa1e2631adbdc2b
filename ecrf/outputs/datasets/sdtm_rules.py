"""The derivation rules of the SDTM datasets, as pure functions (no database, no study).

- **Study day** (``--DY``): the day of a full date counted from the reference start date
  RFSTDTC, day 1 being RFSTDTC itself and the day before it day -1: there is no day 0. A
  partial date (year or year-month) or a missing reference gives no study day.
- **AEREL**: the investigator's causality is recorded per study drug; AEREL is
  ``RELATED`` when the causality for any drug is one the study counts as related
  (possible, probable, definite by default), ``NOT RELATED`` when at least one causality
  is answered and none is related, and empty when none is answered.
- **AESER**: as recorded; when not recorded, ``Y`` if any seriousness criterion is ``Y``
  and ``N`` if every criterion is answered ``N``.
- **--NRIND**: ``LOW`` below the lower limit, ``HIGH`` above the upper limit, ``NORMAL``
  within them (both limits inclusive), empty without a value or without any limit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from ecrf.domain.adverse_events import DEFAULT_RELATED

RELATED = "RELATED"
NOT_RELATED = "NOT RELATED"


def full_date(text: str | None) -> dt.date | None:
    """The date of an ISO 8601 value known to the day (a date or a date-time), else None."""
    if not text or len(text) < 10:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def study_day(value: str | None, reference: str | None) -> int | None:
    """--DY of ``value`` against RFSTDTC ``reference`` (no day 0, partial dates give None)."""
    day, start = full_date(value), full_date(reference)
    if day is None or start is None:
        return None
    delta = (day - start).days
    return delta + 1 if delta >= 0 else delta


def derive_aerel(causalities: Iterable[str | None],
                 related: Iterable[str] = DEFAULT_RELATED) -> str | None:
    """AEREL from the per-drug causalities (module docstring)."""
    answered = [c for c in causalities if c]
    if not answered:
        return None
    related_codes = {str(r).lower() for r in related}
    if any(c.lower() in related_codes for c in answered):
        return RELATED
    return NOT_RELATED


def derive_aeser(recorded: str | None, criteria: Iterable[str | None]) -> str | None:
    """AESER: the recorded answer, else derived from the seriousness criteria."""
    if recorded:
        return recorded
    answers = list(criteria)
    if any(a == "Y" for a in answers):
        return "Y"
    if answers and all(a == "N" for a in answers):
        return "N"
    return None


def range_indicator(value: Decimal | None, low: Decimal | None,
                    high: Decimal | None) -> str | None:
    """--NRIND of a numeric result against its reference range."""
    if value is None or (low is None and high is None):
        return None
    if low is not None and value < low:
        return "LOW"
    if high is not None and value > high:
        return "HIGH"
    return "NORMAL"
