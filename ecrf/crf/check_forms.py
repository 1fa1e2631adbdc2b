"""Semantic checks of code lists and CRF files: items, groups, show_if, edit checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ecrf.domain.ctcae import GradingError, UnitError, convert_unit
from ecrf.domain.expressions import ExpressionError, ValueType, parse

from .check import BUILTIN_CODELISTS, ItemInfo, StudyChecker, as_dict, dicts, form_of_file, text
from .yaml_lines import Document

CHOICE_TYPES = ("single_choice", "multiple_choice")
NUMERIC = frozenset({ValueType.INTEGER, ValueType.DECIMAL})


def check_forms(c: StudyChecker) -> None:
    if c.codelists_doc is not None:
        _codelists(c.codelists_doc, ("codelists",), c)
    for doc in c.crfs:
        data = as_dict(doc.data)
        oid = text(data.get("oid"))
        if oid is not None and oid != form_of_file(doc):
            c.report(doc, ("oid",), f"form {oid} must be in crfs/{oid}.yaml, "
                                    f"not {doc.file}")
        if oid is None or c.forms.get(oid) is not doc:
            continue
        _codelists(doc, ("codelists",), c)
        for g, group in dicts(data.get("groups")):
            _group(c, doc, ("groups", g), group)
        for info in c.items[oid].values():
            _item(c, info)
        _show_if_cycles(c, oid)
        for k, entry in dicts(data.get("checks")):
            _check(c, doc, oid, ("checks", k), entry)


def _codelists(doc: Document, path: tuple, c: StudyChecker) -> None:
    for oid, entries in as_dict(as_dict(doc.data).get(path[-1])).items():
        _codes(c, doc, (*path, oid), entries)
        expected = BUILTIN_CODELISTS.get(oid)
        codes = tuple(str(e.get("code")) for _, e in dicts(entries))
        if expected is not None and codes != expected:
            c.report(doc, (*path, oid), f"{oid} is built in with codes {', '.join(expected)}; "
                                        f"a redefinition may only translate it, got "
                                        f"{', '.join(codes)}")


def _codes(c: StudyChecker, doc: Document, path: tuple, entries: Any) -> None:
    seen: set[str] = set()
    for index, entry in dicts(entries):
        if "code" not in entry:
            continue
        code = str(entry["code"])
        if code in seen:
            c.report(doc, (*path, index, "code"), f"code {code!r} appears twice")
        seen.add(code)


def _group(c: StudyChecker, doc: Document, path: tuple, group: dict[str, Any]) -> None:
    repeating = group.get("repeating") is True
    for key in ("min_rows", "max_rows"):
        if key in group and not repeating:
            c.report(doc, (*path, key), f"{key} only applies to a repeating group "
                                        "(add repeating: true)")
    low, high = group.get("min_rows"), group.get("max_rows")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        c.report(doc, (*path, "min_rows"), f"min_rows {low} is greater than max_rows {high}")
    _grid(c, doc, path, group)


# A grid cell holds one input: no widget made of several inputs or a list of boxes.
GRID_UNFIT_TYPES = {"multiple_choice": "a multiple_choice item (a list of boxes)",
                    "partial_date": "a partial_date item (three inputs)"}


def _grid(c: StudyChecker, doc: Document, path: tuple, group: dict[str, Any]) -> None:
    grid = group.get("layout") == "grid"
    for key in ("row_label", "planned_days"):
        if key in group and not grid:
            c.report(doc, (*path, key), f"{key} only applies to a grid (add layout: grid)")
    if not grid:
        return
    if group.get("repeating") is not True:
        c.report(doc, (*path, "layout"), "a grid shows the rows of a repeating group: add "
                                         "repeating: true, or leave layout out")
    items = {text(i.get("oid")): (index, i) for index, i in dicts(group.get("items"))}
    for oid, (index, item) in items.items():
        unfit = GRID_UNFIT_TYPES.get(text(item.get("type")) or "")
        if unfit is not None:
            c.report(doc, (*path, "items", index, "type"),
                     f"{oid} is {unfit}; a grid cell holds a single value")
    label = group.get("row_label")
    if isinstance(label, str) and label not in items:
        c.report(doc, (*path, "row_label"), f"row_label {label} is not an item of this group")
    plan = as_dict(group.get("planned_days"))
    if not plan:
        return
    date_item = plan.get("date")
    if isinstance(date_item, str):
        if date_item not in items:
            c.report(doc, (*path, "planned_days", "date"),
                     f"{date_item} is not an item of this group")
        elif items[date_item][1].get("type") != "date":
            c.report(doc, (*path, "planned_days", "date"),
                     f"{date_item} must be a date item to hold the planned day's date")
    c.anchor_exists(doc, (*path, "planned_days", "anchor"), plan.get("anchor"))
    first, last, most = plan.get("first"), plan.get("last"), group.get("max_rows")
    if isinstance(first, int) and isinstance(last, int):
        if first > last:
            c.report(doc, (*path, "planned_days", "first"),
                     f"first day {first} is after last day {last}")
        elif isinstance(most, int) and last - first + 1 > most:
            c.report(doc, (*path, "planned_days", "last"),
                     f"days {first} to {last} are {last - first + 1} rows, more than "
                     f"max_rows {most}")


def _item(c: StudyChecker, info: ItemInfo) -> None:
    doc, path, item, kind = info.doc, info.path, info.data, info.type
    group = info.group if info.repeating else None
    _choices(c, info)
    if kind == "calculated":
        for key in ("expression", "result_type"):
            if key not in item:
                c.report(doc, path, f"a calculated item needs {key}")
        if info.value_type is not None:
            c.expression(doc, (*path, "expression"), item.get("expression"), form=info.form,
                         group=group, expected=info.value_type, what="the expression")
    elif kind is not None:
        for key in ("expression", "result_type"):
            if key in item:
                c.report(doc, (*path, key), f"{key} only applies to calculated items")
    numeric = info.value_type in NUMERIC
    for key in ("unit", "range", "soft_range"):
        if key in item and kind is not None and info.value_type is not None and not numeric:
            c.report(doc, (*path, key), f"{key} only applies to numeric items, not {kind}")
    if "precision" in item and kind is not None and info.value_type is not ValueType.DECIMAL:
        c.report(doc, (*path, "precision"), f"precision only applies to decimal items, "
                                            f"not {kind}")
    if "length" in item and kind not in (None, "text"):
        c.report(doc, (*path, "length"), f"length only applies to text items, not {kind}")
    _ranges(c, doc, path, item)
    if item.get("required") is True and "required_if" in item:
        c.report(doc, (*path, "required_if"), "required: true already makes the item "
                                              "required; remove one of them")
    for key in ("show_if", "required_if"):
        c.expression(doc, (*path, key), item.get(key), form=info.form, group=group,
                     expected=ValueType.BOOLEAN, what=key)
    if isinstance(item.get("lab"), dict):
        _lab(c, info, item["lab"], group)
    if isinstance(item.get("system"), str):
        _system(c, info, item["system"])


# What each system source writes, and the study block it needs.
_SYSTEM_TYPES = {
    "randomization": (("text", "integer", "date", "datetime"), "randomization"),
    "dose_level": (("single_choice", "text", "integer"), "dose_escalation"),
    "enrolment": (("date",), None),
}


def _system(c: StudyChecker, info: ItemInfo, source: str) -> None:
    if source not in _SYSTEM_TYPES:
        return  # the schema reports it
    path = (*info.path, "system")
    types, block = _SYSTEM_TYPES[source]
    if info.type is not None and info.type not in types:
        c.report(info.doc, path, f"system: {source} writes a {' or '.join(types)} item, "
                                 f"not {info.type}")
    if info.repeating:
        c.report(info.doc, path, f"system: {source} cannot be in repeating group {info.group}")
    if block is not None and c.study is not None and block not in c.study_data:
        c.report(info.doc, path, f"system: {source} needs a {block} block in study.yaml")


def _choices(c: StudyChecker, info: ItemInfo) -> None:
    doc, path, item, kind = info.doc, info.path, info.data, info.type
    given = [key for key in ("codelist", "choices") if key in item]
    if kind in CHOICE_TYPES:
        if not given:
            c.report(doc, path, f"a {kind} item needs a codelist or choices")
        elif len(given) == 2:
            c.report(doc, (*path, "choices"), "give either codelist or choices, not both")
    elif kind == "yes_no":
        for key in given:
            c.report(doc, (*path, key), "a yes_no item uses the built-in NY list; use "
                                        "single_choice for other codes")
    elif kind is not None:
        for key in given:
            c.report(doc, (*path, key), f"{key} only applies to choice items, not {kind}")
    codelist = item.get("codelist")
    if isinstance(codelist, str) and codelist not in c.codelists:
        c.report(doc, (*path, "codelist"), f"unknown code list '{codelist}'")
    _codes(c, doc, (*path, "choices"), item.get("choices"))


def _number(value: Any) -> Decimal | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    return None


def _ranges(c: StudyChecker, doc: Document, path: tuple, item: dict[str, Any]) -> None:
    bounds = {}
    for key in ("range", "soft_range"):
        spec = as_dict(item.get(key))
        low, high = _number(spec.get("min")), _number(spec.get("max"))
        bounds[key] = (low, high)
        if low is not None and high is not None and low > high:
            c.report(doc, (*path, key, "min"), f"{key} min {low} is greater than max {high}")
    if "range" not in item or "soft_range" not in item:
        return
    (hard_low, hard_high), (soft_low, soft_high) = bounds["range"], bounds["soft_range"]
    for name, soft in (("min", soft_low), ("max", soft_high)):
        if soft is None:
            continue
        if hard_low is not None and soft < hard_low:
            c.report(doc, (*path, "soft_range", name),
                     f"soft_range {name} {soft} is below range min {hard_low}; the soft "
                     "range must lie inside the hard range")
        if hard_high is not None and soft > hard_high:
            c.report(doc, (*path, "soft_range", name),
                     f"soft_range {name} {soft} is above range max {hard_high}; the soft "
                     "range must lie inside the hard range")


def _lab(c: StudyChecker, info: ItemInfo, lab: dict[str, Any], group: str | None) -> None:
    doc, path, item = info.doc, (*info.path, "lab"), info.data
    if info.value_type is not None and info.value_type not in NUMERIC:
        c.report(doc, path, f"lab grading only applies to numeric items, not {info.type}")
        return
    test = text(lab.get("test"))
    unit = text(lab.get("unit")) or text(item.get("unit"))
    if "unit" in lab and "unit" in item and lab["unit"] != item["unit"]:
        c.report(doc, (*path, "unit"), f"lab unit {lab['unit']!r} differs from the item "
                                       f"unit {item['unit']!r}")
    elif unit is None:
        c.report(doc, path, "lab grading needs a unit (lab.unit or the item's unit)")
    elif test is not None:
        try:
            convert_unit(test, Decimal(1), unit)
        except UnitError as exc:
            c.report(doc, (*path, "unit") if "unit" in lab else (*info.path, "unit"), str(exc))
        except GradingError:
            pass  # an unknown test code: reported by the schema
    for key in ("lln", "uln"):
        value = lab.get(key)
        if isinstance(value, str):
            c.expression(doc, (*path, key), value, form=info.form, group=group,
                         expected=ValueType.DECIMAL, what=f"lab {key}")


def _references_in_form(source: Any, form: str) -> set[str]:
    if not isinstance(source, str):
        return set()
    try:
        expr = parse(source)
    except ExpressionError:
        return set()
    found = set()
    for parts in expr.references:
        if len(parts) == 1:
            found.add(parts[0])
        elif len(parts) == 2 and parts[0] == form:
            found.add(parts[1])
    return found


def _show_if_cycles(c: StudyChecker, form: str) -> None:
    """An item hidden by itself, directly or through others, could never be shown."""
    items = c.items[form]
    edges = {oid: _references_in_form(info.data.get("show_if"), form) & set(items)
             for oid, info in items.items()}
    for oid, targets in edges.items():
        if oid in targets:
            info = items[oid]
            c.report(info.doc, (*info.path, "show_if"), f"show_if of {oid} refers to {oid} "
                                                        "itself")
    reported: set[frozenset[str]] = set()
    for start in items:
        cycle = _cycle_from(start, edges)
        if cycle and frozenset(cycle) not in reported and len(cycle) > 1:
            reported.add(frozenset(cycle))
            info = items[start]
            c.report(info.doc, (*info.path, "show_if"),
                     f"show_if cycle: {' -> '.join([*cycle, cycle[0]])}")


def _cycle_from(start: str, edges: dict[str, set[str]]) -> list[str] | None:
    """The first cycle through ``start`` found by depth-first search, as a path."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    visited: set[str] = set()
    while stack:
        node, trail = stack.pop()
        for target in sorted(edges.get(node, ())):
            if target == start:
                return trail
            if target not in visited:
                visited.add(target)
                stack.append((target, [*trail, target]))
    return None


def _check(c: StudyChecker, doc: Document, form: str, path: tuple,
           entry: dict[str, Any]) -> None:
    group = entry.get("group")
    if isinstance(group, str):
        spec = c.groups[form].get(group)
        if spec is None:
            c.report(doc, (*path, "group"), f"unknown group '{group}' in form {form}")
            return
        if spec.get("repeating") is not True:
            c.report(doc, (*path, "group"), f"group {group} is not repeating; leave group "
                                            "out for a form-level check")
            return
    c.expression(doc, (*path, "expression"), entry.get("expression"), form=form,
                 group=group if isinstance(group, str) else None,
                 expected=ValueType.BOOLEAN, what="a check")
