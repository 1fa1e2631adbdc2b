"""The pure part of the laboratory import: a result's code and unit to an item and a value
in the item's unit, a collection date to an event occurrence and a row, and what the
stored form already holds to new, unchanged or conflicting. No database: the caller
gives the subject's schedule and stored rows as plain data (``Slot``, ``StoredRow``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from ecrf.crf import FormDef, ItemType, LabsDef
from ecrf.crf.sources import lab_unit_key

from .parse import Observation, Problem

NEW, UNCHANGED, CONFLICT = "new", "unchanged", "conflict"


@dataclass(frozen=True)
class Mapped:
    """A result mapped to an item, its value converted to the item's unit and written as
    the form stores it."""

    observation: Observation
    item: str
    value: str

    @property
    def where(self) -> str:
        return self.observation.where


def convert(value: Decimal, factor: Decimal, item_type: ItemType, precision: int | None
            ) -> str:
    """``value`` x ``factor``, rounded half up to the item's precision (whole numbers for
    an integer item), written without exponent."""
    converted = value * factor
    places = 0 if item_type is ItemType.INTEGER else precision
    if places is not None:
        converted = converted.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = format(converted, "f")
    if places is None and "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def factor_for(labs_unit: str | None, item_unit: str, declared: dict[str, str]
               ) -> Decimal | None:
    """The factor converting ``labs_unit`` to the item's unit, or None when the study
    declares none."""
    if labs_unit is None:
        return None
    key = lab_unit_key(labs_unit)
    if key == lab_unit_key(item_unit):
        return Decimal(1)
    for unit, factor in declared.items():
        if lab_unit_key(unit) == key:
            try:
                return Decimal(factor)
            except InvalidOperation:
                return None
    return None


def map_observation(labs: LabsDef, form: FormDef, observation: Observation
                    ) -> Mapped | Problem | None:
    """The item and converted value of a result; None for a code the study does not
    declare (skipped, not a problem: a laboratory file carries other tests too)."""
    analyte = next((a for code in observation.codes if (a := labs.analyte_for(code))), None)
    if analyte is None:
        return None
    item = form.item(analyte.item)
    if not observation.unit:
        return Problem(observation.where, f"no unit for {observation.codes[0]} "
                                          f"({analyte.item} is in {item.unit})")
    factor = factor_for(observation.unit, item.unit or "", dict(analyte.units))
    if factor is None:
        accepted = ", ".join(dict.fromkeys([item.unit or "", *analyte.units]))
        return Problem(observation.where,
                       f"unit {observation.unit} of {observation.codes[0]} has no conversion "
                       f"to {item.unit} ({analyte.item}); the study accepts {accepted}")
    return Mapped(observation, analyte.item,
                  convert(observation.value, factor, item.type, item.precision))


# --- matching -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """An occurrence of one of the study's lab events in the subject's schedule."""

    event: str
    repeat: int
    window_start: dt.date | None
    window_end: dt.date | None
    planned: dt.date | None = None
    started: bool = False


@dataclass(frozen=True)
class StoredRow:
    """A live row of the labs group as stored: its date and its item values."""

    event: str
    repeat: int
    row: int
    date: dt.date | None
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    event: str
    repeat: int
    row: int
    new_row: bool


def choose_slot(slots: list[Slot], rows: list[StoredRow], collected: dt.date,
                repeating: bool) -> Slot | str:
    """The occurrence whose window holds ``collected``. A visit (not a daily log) already
    holding a count of another date is not a candidate. Among several, the one holding
    a row of that date, else the nearest planned date; a tie is refused."""
    holding = [s for s in slots if s.window_start is not None and s.window_end is not None
               and s.window_start <= collected <= s.window_end]
    if not holding:
        return f"no occurrence of the lab events has a window holding {collected.isoformat()}"
    dated = {(r.event, r.repeat): r.date for r in rows}
    if not repeating:
        free = [s for s in holding if dated.get((s.event, s.repeat)) in (None, collected)]
        if not free:
            taken = ", ".join(f"{s.event}[{s.repeat}] ({dated[(s.event, s.repeat)]})"
                              for s in holding)
            return (f"every occurrence whose window holds {collected.isoformat()} already "
                    f"holds a count of another date: {taken}")
        holding = free
    same_day = [s for s in holding if any(r.event == s.event and r.repeat == s.repeat
                                          and r.date == collected for r in rows)]
    if len(same_day) == 1:
        return same_day[0]
    if len(holding) == 1:
        return holding[0]

    def distance(slot: Slot) -> int:
        return abs((slot.planned - collected).days) if slot.planned else 10**6

    best = sorted(holding, key=distance)
    if distance(best[0]) == distance(best[1]):
        names = ", ".join(f"{s.event}[{s.repeat}]" for s in best if
                          distance(s) == distance(best[0]))
        return f"{collected.isoformat()} fits {names} equally; enter it by hand"
    return best[0]


def choose_row(slot: Slot, rows: list[StoredRow], used_rows: set[int], collected: dt.date,
               repeating: bool, planned_new: dict[dt.date, int]) -> Target:
    """The row of ``collected`` in the occurrence: the live row of that date, else a new
    row after every row used so far (removed ones included); one new row per date."""
    if not repeating:
        existing = any(r.event == slot.event and r.repeat == slot.repeat for r in rows)
        return Target(slot.event, slot.repeat, 1, new_row=not existing)
    for r in rows:
        if r.event == slot.event and r.repeat == slot.repeat and r.date == collected:
            return Target(slot.event, slot.repeat, r.row, new_row=False)
    if collected not in planned_new:
        planned_new[collected] = max(used_rows | set(planned_new.values()), default=0) + 1
    return Target(slot.event, slot.repeat, planned_new[collected], new_row=True)


def same_value(stored: str | None, new: str) -> bool:
    if stored is None:
        return False
    try:
        return Decimal(stored) == Decimal(new)
    except InvalidOperation:
        return stored == new


def state_of(stored: str | None, new: str) -> str:
    if stored is None or stored == "":
        return NEW
    return UNCHANGED if same_value(stored, new) else CONFLICT
