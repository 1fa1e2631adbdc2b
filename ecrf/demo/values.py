"""Demo: plausible values for one form, the trial's script first, then generic ones.

Generic values are derived from each item's definition (type, ranges, code lists, lab
test) and adjusted greedily until the form's own edit checks pass. ``owner`` is the demo
subject being filled (``data``): its dates, birth date, number and definition.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from decimal import Decimal

from ecrf.crf import FormDef, ItemDef, ItemType
from ecrf.crf.validation import Key, codes_for, validate_form
from ecrf.demo.scripts import BLANK, FormScript

log = logging.getLogger(__name__)

# Normal values of graded laboratory tests, in the grader's base unit.
LAB_NORMALS = {"NEUT": "3.5", "PLAT": "215", "WBC": "6.2", "LYM": "1.8", "HGB": "128",
               "ALT": "24", "AST": "22", "BILI": "9", "CREAT": "72"}
ADVERSE_WORDS = ("serious", "death", "died", "pregnan", "toxicit", "dlt", "deviation",
                 "hospital", "withdr", "progress", "relapse", "infection", "bleed", "fever")
TERMS = ("Nausea", "Fatigue", "Febrile neutropenia")
MAX_ROUNDS = 15


class FormValues:
    """Plausible raw values for a form, adjusted until its checks pass."""

    def __init__(self, owner, form: FormDef, day: dt.date,
                 rows: dict[str, tuple[int, ...]], script: FormScript | None = None,
                 repeat: int = 1):
        self.owner, self.form, self.day, self.rows = owner, form, day, rows
        self.keys: list[tuple[Key, ItemDef]] = [
            ((g.oid, r, i.oid), i) for g in form.groups
            for r in (rows[g.oid] if g.repeating else (1,)) for i in g.items
            if i.type is not ItemType.CALCULATED and not i.system]
        self.choice = {key: 0 for key, _ in self.keys}
        # The trial's script first: the generic values are only its fallbacks.
        dates = owner.dates(day, repeat)
        self.scripted: dict[Key, object] = {}
        for key, item in self.keys:
            value = (script or FormScript()).value(item.oid, item.type, key[1], dates)
            if value is not None:
                self.scripted[key] = value

        # History forms list their dates in clinical order (diagnosis, induction, remission,
        # relapse): earlier items default to earlier dates, a month apart.
        self.day_of: dict[str, dt.date] = {}
        for group in form.groups:
            dated = [i.oid for i in group.items if i.type in (ItemType.DATE, ItemType.PARTIAL_DATE)]
            for position, oid in enumerate(dated):
                self.day_of[oid] = day - dt.timedelta(days=30 * (len(dated) - 1 - position))

    def candidates(self, key: Key, item: ItemDef) -> list:
        generic = _candidates(item, self.owner, self.day_of.get(item.oid, self.day), key[1])
        scripted = self.scripted.get(key)
        if scripted is None or scripted is BLANK:
            return generic
        return [scripted, *(g for g in generic if g != scripted)]

    def settle(self, context) -> dict:
        values = {key: self.candidates(key, item)[0] for key, item in self.keys
                  if self.scripted.get(key) is not BLANK}
        for _round in range(MAX_ROUNDS):
            result = validate_form(self.form, values, context, rows=self.rows)
            changed = False
            for key in list(values):
                if key not in result.visible:
                    del values[key]
                    changed = True
            for key in result.errors:
                if self._next(values, key):
                    changed = True
            for key in result.missing:
                item = self.form.item(key[2])
                if key not in values and not item.system:  # the system fills its own
                    values[key] = self.candidates(key, item)[0]
                    changed = True
            failing = result.failing_errors
            if failing and self._repair(values, failing[0].keys, context, len(failing)):
                changed = True
            if not changed:
                break
        return values

    def report(self, values: dict, where: str) -> None:
        """Say which scripted values the form's checks did not let through."""
        lost = [f"{k[2]}[{k[1]}]={v!r} (saved {values.get(k)!r})"
                for k, v in self.scripted.items()
                if v is not BLANK and k in values and values[k] != v]
        if lost:
            log.warning("demo script: %s: values replaced to pass the checks: %s", where,
                        ", ".join(lost))

    def _next(self, values: dict, key: Key) -> bool:
        item = self.form.item(key[2])
        options = self.candidates(key, item)
        self.choice[key] = self.choice.get(key, 0) + 1
        if self.choice[key] >= len(options):
            values.pop(key, None)
            return True
        values[key] = options[self.choice[key]]
        return True

    def _repair(self, values: dict, keys, context, failing: int) -> bool:
        for key in keys:
            item = self.form.item(key[2])
            if item.type is ItemType.CALCULATED or item.system:
                continue
            for option in self.candidates(key, item):
                trial = dict(values)
                trial[key] = option
                result = validate_form(self.form, trial, context, rows=self.rows)
                if len(result.failing_errors) < failing and not result.errors:
                    values[key] = option
                    return True
        return False


def _candidates(item: ItemDef, owner, day: dt.date, row: int) -> list:
    oid, label = item.oid.upper(), item.label.lower()
    today = owner.today
    if item.type is ItemType.DATE:
        if "BRTH" in oid or "birth" in label:
            return [owner.birth.isoformat()]
        shifts = (0, -1, -7, 1, -28, 3, -90, 7, -365)
        return [min(day + dt.timedelta(days=s), today).isoformat() for s in shifts]
    if item.type is ItemType.PARTIAL_DATE:
        if "BRTH" in oid or "birth" in label:
            return [owner.birth.strftime("%Y-%m"), owner.birth.isoformat()]
        start = day - dt.timedelta(days=3 * row)
        return [start.isoformat(), start.strftime("%Y-%m"), (day - dt.timedelta(days=400)
                                                             ).strftime("%Y")]
    if item.type is ItemType.TIME:
        return ["09:30", "14:15", "08:00"]
    if item.type is ItemType.DATETIME:
        return [f"{day.isoformat()}T10:15", f"{day.isoformat()}T08:00"]
    if item.type in (ItemType.INTEGER, ItemType.DECIMAL):
        return _numbers(item)
    codes = codes_for(item, owner.definition.codelists)
    if item.type is ItemType.YES_NO:
        # Demo subjects meet their trial's criteria: inclusion items (IN01...) are met,
        # exclusion items (EX01...) are not, and the overall decision follows.
        if re.match(r"IN\d", oid) or oid == "ELIGIBLE":
            return ["Y", "N"]
        if re.match(r"EX\d", oid):
            return ["N", "Y"]
        adverse = any(word in label for word in ADVERSE_WORDS)
        return ["N", "Y"] if adverse else ["Y", "N"]
    if item.type is ItemType.SINGLE_CHOICE:
        return list(codes.codes) if codes else [""]
    if item.type is ItemType.MULTIPLE_CHOICE:
        return [[c] for c in codes.codes] if codes else [[]]
    return _texts(item, owner, row)


def _numbers(item: ItemDef) -> list[str]:
    places = (item.precision or 0) if item.type is ItemType.DECIMAL else 0
    options: list[Decimal] = []
    if item.lab is not None and item.lab.test in LAB_NORMALS:
        options.append(Decimal(LAB_NORMALS[item.lab.test]))
    for bounds in (item.soft_range, item.range):
        if bounds is None:
            continue
        low, high = bounds.min, bounds.max
        if low is not None and high is not None:
            options += [low + (high - low) / 4, (low + high) / 2, low, high]
        elif low is not None:
            options += [low + 1, low]
        elif high is not None:
            options += [high / 2, high]
    options += [Decimal(1), Decimal(0), Decimal(2)]
    step = Decimal(1).scaleb(-places)
    texts = []
    for number in options:
        text = format(number.quantize(step), "f")
        if text not in texts and (item.range is None or item.range.contains(Decimal(text))):
            texts.append(text)
    return texts


def _texts(item: ItemDef, owner, row: int) -> list[str]:
    oid, label = item.oid.upper(), item.label.lower()
    if "INIT" in oid:
        options = ["JMD", "AB"]
    elif "TERM" in oid or "event" in label:
        options = [TERMS[(owner.number + row) % len(TERMS)]]
    elif "VER" in oid or "version" in label:
        options = ["v2.1"]
    elif "name" in label or "drug" in label or "medication" in label:
        options = ["Paracetamol", "Ondansetron"]
    else:
        options = ["As recorded in the source document", "See source"]
    limit = item.length or 200
    return [text[:limit] for text in options]
