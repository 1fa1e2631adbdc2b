"""Semantic checks of study.yaml: parameters, arms, anchors, schedule and allocation."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from ecrf.domain.expressions import ValueType

from .check import DATE_TYPES, StudyChecker, as_dict, as_list, dicts, text
from .check_labs import check_labs
from .check_sources import (
    check_adverse_events,
    check_dlt_drug,
    check_recovery_endpoints,
    check_recovery_parameters,
    check_survival,
)
from .check_status import check_status_and_tasks
from .yaml_lines import Document

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PLANNED_KINDS = ("scheduled", "repeating")


def check_study_file(c: StudyChecker) -> None:
    doc = c.study
    if doc is None:
        return
    data = c.study_data
    _parameters(c, doc, as_dict(data.get("parameters")))
    _arms(c, doc, data.get("arms"))
    _anchors(c, doc, as_dict(data.get("anchors")))
    stop = as_dict(data.get("stop"))
    for index, name in enumerate(as_list(stop.get("anchors"))):
        if isinstance(name, dict):
            c.anchor_exists(doc, ("stop", "anchors", index, "anchor"), name.get("anchor"))
            c.expression(doc, ("stop", "anchors", index, "when"), name.get("when"),
                         expected=ValueType.BOOLEAN, what="a stop condition")
        else:
            c.anchor_exists(doc, ("stop", "anchors", index), name)
    c.expression(doc, ("stop", "study_end"), stop.get("study_end"),
                 expected=ValueType.DATE, what="study_end")
    _events(c, doc, data.get("events"))
    check_status_and_tasks(c, doc, data)
    if isinstance(data.get("randomization"), dict):
        _randomization(c, doc, data["randomization"], data.get("arms"))
    if isinstance(data.get("dose_escalation"), dict):
        _escalation(c, doc, data["dose_escalation"])
        check_dlt_drug(c, doc, data["dose_escalation"], data.get("adverse_events"))
    if isinstance(data.get("recovery_endpoints"), dict):
        check_recovery_endpoints(c, doc, data["recovery_endpoints"])
        check_recovery_parameters(c, doc, as_dict(data.get("parameters")))
    if isinstance(data.get("adverse_events"), dict):
        check_adverse_events(c, doc, data["adverse_events"])
    if isinstance(data.get("survival"), dict):
        check_survival(c, doc, data["survival"])
    if isinstance(data.get("labs"), dict):
        check_labs(c, doc, data["labs"])


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _default_fits(kind: str, value: Any) -> bool:
    if value is None:
        return True
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "decimal":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "text":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "date":
        if not isinstance(value, str) or not _ISO_DATE.match(value):
            return False
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return True
    return True  # unknown type: the schema reported it


def _parameters(c: StudyChecker, doc: Document, parameters: dict[str, Any]) -> None:
    for name, spec in parameters.items():
        spec = as_dict(spec)
        kind = text(spec.get("type"))
        path = ("parameters", name)
        if kind is None:
            continue
        if "default" in spec and not _default_fits(kind, spec["default"]):
            shape = "a date YYYY-MM-DD" if kind == "date" else f"a {kind} value"
            c.report(doc, (*path, "default"),
                     f"default {spec['default']!r} does not match type {kind}: expected {shape}")
        if "unit" in spec and kind not in ("integer", "decimal"):
            c.report(doc, (*path, "unit"), f"unit only applies to numeric parameters, not {kind}")


def _arms(c: StudyChecker, doc: Document, arms: Any) -> None:
    seen: set[str] = set()
    for index, arm in dicts(arms):
        code = text(arm.get("code"))
        if code in seen:
            c.report(doc, ("arms", index, "code"), f"arm code {code} is used twice")
        if code:
            seen.add(code)
        ratio = arm.get("ratio", 1)
        if isinstance(ratio, int) and not isinstance(ratio, bool) and ratio < 1:
            c.report(doc, ("arms", index, "ratio"), f"ratio must be positive, got {ratio}")


def _date_item(c: StudyChecker, doc: Document, path: tuple, value: Any, what: str) -> None:
    """An item that gives a full date: anchors, event dates, the randomization date."""
    info = c.item_ref(doc, path, value)
    if info is None:
        return
    if info.type == "partial_date":
        c.report(doc, path, f"{value} is a partial date; partial dates cannot be {what} "
                            "(a planned date needs a full date)")
    elif info.value_type not in DATE_TYPES:
        c.report(doc, path, f"{value} must be a date or datetime item to be {what}, "
                            f"not {info.type}")
    elif info.repeating:
        c.report(doc, path, f"{value} is in repeating group {info.group}; {what} must be "
                            "a single value")


def _anchors(c: StudyChecker, doc: Document, anchors: dict[str, Any]) -> None:
    for name, ref in anchors.items():
        path = ("anchors", name)
        if name == "enrolment":
            c.report(doc, path, "'enrolment' is built in (the enrolment date); "
                                "choose another name")
            continue
        _date_item(c, doc, path, ref, "an anchor")


def _events(c: StudyChecker, doc: Document, events: Any) -> None:
    seen: set[str] = set()
    used_forms: set[str] = set()
    for index, event in dicts(events):
        path = ("events", index)
        oid = text(event.get("oid"))
        if oid in seen:
            c.report(doc, (*path, "oid"), f"event OID {oid} is used twice")
        if oid:
            seen.add(oid)
        kind = text(event.get("kind"))
        if kind in PLANNED_KINDS:
            if "anchor" not in event:
                c.report(doc, path, f"{_a(kind)} event needs an anchor")
            else:
                c.anchor_exists(doc, (*path, "anchor"), event["anchor"])
            if kind == "repeating" and "repeat" not in event:
                c.report(doc, path, "a repeating event needs repeat: {every: ...}")
        elif kind is not None:
            for key in ("anchor", "offset", "window", "stop_at"):
                if key in event:
                    c.report(doc, (*path, key), f"{key} does not apply to {_a(kind)} event "
                                                "(it has no planned date)")
        if "repeat" in event and kind is not None and kind != "repeating":
            c.report(doc, (*path, "repeat"), f"repeat only applies to repeating events, "
                                             f"not {kind}")
        c.period(doc, (*path, "offset"), event.get("offset"))
        window = event.get("window")
        if isinstance(window, dict):
            for side in ("before", "after"):
                c.period(doc, (*path, "window", side), window.get(side), non_negative=True)
        else:
            c.period(doc, (*path, "window"), window, non_negative=True)
        repeat = as_dict(event.get("repeat"))
        c.period(doc, (*path, "repeat", "every"), repeat.get("every"), positive=True)
        c.expression(doc, (*path, "repeat", "until"), repeat.get("until"),
                     expected=ValueType.BOOLEAN, what="until")
        c.expression(doc, (*path, "condition"), event.get("condition"),
                     expected=ValueType.BOOLEAN, what="condition")
        for i, name in enumerate(as_list(event.get("stop_at"))):
            c.anchor_exists(doc, (*path, "stop_at", i), name)
        forms = [f for f in as_list(event.get("forms")) if isinstance(f, str)]
        for i, form in enumerate(as_list(event.get("forms"))):
            if not isinstance(form, str):
                continue
            if form not in c.forms:
                c.report(doc, (*path, "forms", i), f"unknown form '{form}' (no crfs/{form}.yaml)")
            elif forms.index(form) != i:
                c.report(doc, (*path, "forms", i), f"form {form} is listed twice")
            used_forms.add(form)
        if "date_item" in event:
            _event_date(c, doc, (*path, "date_item"), event["date_item"], forms)
    for form, form_doc in c.forms.items():
        if form not in used_forms:
            c.report(form_doc, ("oid",), f"form {form} is not used by any event")


def _event_date(c: StudyChecker, doc: Document, path: tuple, value: Any,
                forms: list[str]) -> None:
    if isinstance(value, str) and value.split(".")[0] not in forms:
        c.report(doc, path, f"{value} must be an item of one of the event's forms "
                            f"({', '.join(forms)})")
        return
    _date_item(c, doc, path, value, "an event date")


def _randomization(c: StudyChecker, doc: Document, rand: dict[str, Any], arms: Any) -> None:
    path = ("randomization",)
    arm_list = [a for _, a in dicts(arms)]
    if len(arm_list) < 2:
        c.report(doc, path, "randomization needs at least two arms")
    ratios = [a.get("ratio", 1) for a in arm_list]
    total = sum(r for r in ratios if isinstance(r, int) and r > 0)
    for i, size in enumerate(as_list(rand.get("block_sizes"))):
        if isinstance(size, int) and total and size % total:
            c.report(doc, (*path, "block_sizes", i),
                     f"block size {size} is not a multiple of the sum of arm ratios ({total})")
    names: set[str] = set()
    for i, stratum in dicts(rand.get("strata")):
        name = text(stratum.get("name"))
        if name in names:
            c.report(doc, (*path, "strata", i, "name"), f"stratum {name} is declared twice")
        if name:
            names.add(name)
        where = (*path, "strata", i, "item")
        info = c.item_ref(doc, where, stratum.get("item"))
        if info is not None and info.type not in ("single_choice", "yes_no"):
            c.report(doc, where, f"stratification item {stratum['item']} must be "
                                 f"single_choice (or yes_no), not {info.type}")
        elif info is not None and info.repeating:
            c.report(doc, where, f"stratification item {stratum['item']} is in repeating "
                                 f"group {info.group}")
    where = (*path, "eligibility")
    info = c.item_ref(doc, where, rand.get("eligibility"))
    if info is not None and (info.type != "yes_no" or info.repeating):
        c.report(doc, where, f"eligibility item {rand['eligibility']} must be a yes_no item "
                             "outside repeating groups")
    if "date_item" in rand:
        _date_item(c, doc, (*path, "date_item"), rand["date_item"], "the randomization date")
    if "number_item" in rand:
        where = (*path, "number_item")
        info = c.item_ref(doc, where, rand["number_item"])
        if info is not None and (info.type not in ("text", "integer") or info.repeating):
            c.report(doc, where, f"number_item {rand['number_item']} must be a text or integer "
                                 "item outside repeating groups")


def _escalation(c: StudyChecker, doc: Document, esc: dict[str, Any]) -> None:
    path = ("dose_escalation",)
    design = esc.get("design")
    rate = esc.get("target_dlt_rate")
    if design == "boin":
        if "target_dlt_rate" not in esc:
            c.report(doc, path, "boin needs target_dlt_rate (for example 0.30)")
        elif isinstance(rate, int | float) and not 0 < rate < 1:
            c.report(doc, (*path, "target_dlt_rate"),
                     f"target_dlt_rate must be between 0 and 1 (exclusive), got {rate}")
    elif design == "3+3":
        for key in ("target_dlt_rate", "cohort_size"):
            if key in esc:
                c.report(doc, (*path, key), f"{key} only applies to the boin design")
    c.period(doc, (*path, "dlt_window"), esc.get("dlt_window"), positive=True)
    c.anchor_exists(doc, (*path, "dlt_anchor"), esc.get("dlt_anchor"))
    for key in ("dlt_item", "full_dose_item", "evaluable_item"):
        if key in esc:
            info = c.item_ref(doc, (*path, key), esc[key])
            if info is not None and (info.type != "yes_no" or info.repeating):
                c.report(doc, (*path, key), f"{key} {esc[key]} must be a yes_no item outside "
                                            "repeating groups")
    numbers = [lv.get("level") for _, lv in dicts(esc.get("levels"))]
    numbers = [n for n in numbers if isinstance(n, int) and not isinstance(n, bool)]
    if numbers and numbers != list(range(1, len(numbers) + 1)):
        found = ", ".join(str(n) for n in numbers)
        c.report(doc, (*path, "levels"), f"dose levels must be numbered 1 to {len(numbers)} in "
                                         f"order without gaps; found {found}")
    start = esc.get("start_level")
    if isinstance(start, int) and numbers and start not in numbers:
        c.report(doc, (*path, "start_level"), f"start_level {start} is not a declared level")
