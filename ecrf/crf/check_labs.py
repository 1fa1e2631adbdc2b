"""Semantic checks of the ``labs`` block of study.yaml: where imported laboratory results
go (a group of a form, its date item, the events that hold it) and which codes and units
feed which items. Every unit a file may carry must convert to the item's unit."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from ecrf.domain.expressions import ValueType

from .check import StudyChecker, as_dict, dicts, text
from .sources import lab_unit_key
from .yaml_lines import Document

PLANNED_KINDS = ("scheduled", "repeating")
_NUMBER = (ValueType.INTEGER, ValueType.DECIMAL, ValueType.NUMBER)


def _item_in_group(c: StudyChecker, doc: Document, at: tuple, oid: object, form: str,
                   group: str):
    """The item ``oid`` of ``form`` if it is in ``group``; else reported, and None."""
    info = c.items[form].get(oid) if isinstance(oid, str) else None
    if isinstance(oid, str) and info is None:
        c.report(doc, at, f"unknown item '{oid}' in form {form}")
    elif info is not None and info.group != group:
        c.report(doc, at, f"{oid} is in group {form}.{info.group}, not in {form}.{group}")
        return None
    return info


def check_labs(c: StudyChecker, doc: Document, spec: dict[str, Any]) -> None:
    path = ("labs",)
    where = _group(c, doc, spec.get("group"))
    if where is not None:
        form, group = where
        date = spec.get("date")
        info = _item_in_group(c, doc, (*path, "date"), date, form, group)
        if info is not None and info.type != "date":
            c.report(doc, (*path, "date"), f"{date} must be a date item, not {info.type}")
        _events(c, doc, spec.get("events"), form)
        _analytes(c, doc, spec.get("analytes"), form, group)
    identifier = spec.get("identifier")
    if identifier is not None:
        info = c.item_ref(doc, (*path, "identifier"), identifier)
        if info is not None and (info.type != "text" or info.repeating):
            c.report(doc, (*path, "identifier"),
                     f"{identifier} must be a text item outside repeating groups (the "
                     "hospital's patient number), not "
                     f"{'a repeating ' if info.repeating else ''}{info.type}")


def _group(c: StudyChecker, doc: Document, value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str) or value.count(".") != 1:
        return None
    form, group = value.split(".")
    if form not in c.groups:
        c.report(doc, ("labs", "group"), f"unknown form '{form}' in '{value}'")
        return None
    if group not in c.groups[form]:
        known = ", ".join(g for g in c.groups[form] if not g.startswith("#"))
        c.report(doc, ("labs", "group"), f"unknown group '{value}' (groups of {form}: {known})")
        return None
    return form, group


def _events(c: StudyChecker, doc: Document, events: Any, form: str) -> None:
    declared = {text(e.get("oid")): e for _, e in dicts(c.study_data.get("events"))}
    for index, oid in enumerate(events if isinstance(events, list) else ()):
        at = ("labs", "events", index)
        event = declared.get(oid)
        if event is None:
            c.report(doc, at, f"unknown event '{oid}'")
        elif form not in (event.get("forms") or ()):
            c.report(doc, at, f"event {oid} has no form {form}")
        elif event.get("kind") not in PLANNED_KINDS:
            c.report(doc, at, f"event {oid} is {event.get('kind')}: results are matched to "
                              "an event by its planned window, so it must be scheduled or "
                              "repeating")


def _analytes(c: StudyChecker, doc: Document, analytes: Any, form: str, group: str) -> None:
    codes: dict[str, int] = {}
    items: dict[str, int] = {}
    for index, analyte in dicts(analytes):
        at = ("labs", "analytes", index)
        oid = analyte.get("item")
        info = _item_in_group(c, doc, (*at, "item"), oid, form, group)
        if info is not None and info.value_type not in _NUMBER:
            c.report(doc, (*at, "item"), f"{oid} must be an integer or decimal item, not "
                                         f"{info.type}")
            info = None
        if isinstance(oid, str):
            if oid in items:
                c.report(doc, (*at, "item"), f"{oid} is already fed by analyte {items[oid] + 1}")
            items.setdefault(oid, index)
        for position, code in enumerate(analyte.get("codes") or ()):
            code = str(code)
            if code in codes and codes[code] != index:
                c.report(doc, (*at, "codes", position),
                         f"code {code} already feeds analyte {codes[code] + 1}")
            codes.setdefault(code, index)
        if info is not None:
            _units(c, doc, at, oid, text(info.data.get("unit")), as_dict(analyte.get("units")))


def _units(c: StudyChecker, doc: Document, at: tuple, oid: str, unit: str | None,
           units: dict[str, Any]) -> None:
    if unit is None:
        c.report(doc, (*at, "item"), f"{oid} has no unit: give it one in its form, so that "
                                     "results can be converted to it")
        return
    seen: dict[str, str] = {}
    for name, factor in units.items():
        key = lab_unit_key(str(name))
        try:
            number = Decimal(str(factor))
        except InvalidOperation:
            continue  # the schema reports it
        if key == lab_unit_key(unit) and number != 1:
            c.report(doc, (*at, "units", name), f"{name} is the unit of {oid}; its factor "
                                                f"must be 1, not {factor}")
        if key in seen:
            c.report(doc, (*at, "units", name), f"unit {name} is the same as {seen[key]} "
                                                "(spaces and the micro sign are ignored)")
        seen.setdefault(key, str(name))
