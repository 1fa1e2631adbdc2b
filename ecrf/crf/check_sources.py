"""Semantic checks of the study.yaml blocks that tell safety where its data
is: ``recovery_endpoints`` (daily counts and episode forms), ``adverse_events`` (the AE log)
and ``dose_escalation.dlt_drug``.

Items inside these blocks are bare OIDs of the block's group, so each is checked against
that group: it exists, it is in the group (the services read it row by row), and its type
is one the service can read; choice items must use the codes the safety rules understand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecrf.domain.adverse_events import Causality, Outcome
from ecrf.domain.expressions import ValueType
from ecrf.domain.hematology import RECOVERY_RUNS

from .check import ItemInfo, StudyChecker, as_dict, as_list, dicts, text
from .problems import PathParts
from .yaml_lines import Document

Where = tuple[str, str]  # (form, group)


@dataclass(frozen=True)
class _Kind:
    words: str
    accepts: Callable[[ItemInfo], bool]


DAY = _Kind("a date or partial_date item", lambda i: i.value_type is ValueType.DATE)
MOMENT = _Kind("a date, partial_date or datetime item",
               lambda i: i.value_type in (ValueType.DATE, ValueType.DATETIME))
DATETIME = _Kind("a datetime item", lambda i: i.value_type is ValueType.DATETIME)
NUMBER = _Kind("a numeric (integer or decimal) item",
               lambda i: i.value_type in (ValueType.INTEGER, ValueType.DECIMAL,
                                          ValueType.NUMBER))
YES_NO = _Kind("a yes_no item", lambda i: i.type == "yes_no")
TERM = _Kind("a text or single_choice item", lambda i: i.type in ("text", "single_choice"))
CHOICE = _Kind("a single_choice item", lambda i: i.type == "single_choice")
GRADE = _Kind("an integer or single_choice item",
              lambda i: i.type in ("integer", "single_choice"))

COUNT_ROLES = {"date": DAY, "anc": NUMBER, "platelets": NUMBER, "hemoglobin": NUMBER,
               "wbc": NUMBER, "max_temperature": NUMBER, "platelet_transfusion": YES_NO,
               "red_cell_transfusion": YES_NO}
EPISODE_ROLES = {"start": DAY, "end": DAY, "ongoing": YES_NO}
AE_ROLES = {"term": TERM, "onset": MOMENT, "end": MOMENT, "grade": GRADE, "serious": YES_NO,
            "outcome": CHOICE, "expectedness": CHOICE, "awareness": DATETIME,
            "sponsor_report": DATETIME, "sponsor_causality": CHOICE, "death_date": DAY}
CAUSALITY_CODES = tuple(c.value for c in Causality)
OUTCOME_CODES = tuple(o.value for o in Outcome)
EXPECTEDNESS_CODES = ("EXPECTED", "UNEXPECTED")


def _group(c: StudyChecker, doc: Document, path: PathParts, value: Any,
           purpose: str) -> Where | None:
    """Resolve FORM.GROUP; it must be a repeating group (reported, but still returned so
    its items are checked too)."""
    if not isinstance(value, str) or value.count(".") != 1:
        return None
    form, group = value.split(".")
    if form not in c.groups:
        c.report(doc, path, f"unknown form '{form}' in '{value}'")
        return None
    spec = c.groups[form].get(group)
    if spec is None:
        known = ", ".join(g for g in c.groups[form] if not g.startswith("#"))
        c.report(doc, path, f"unknown group '{value}' (groups of {form}: {known})")
        return None
    if spec.get("repeating") is not True:
        c.report(doc, path, f"{value} must be a repeating group ({purpose})")
    return form, group


def _member(c: StudyChecker, doc: Document, path: PathParts, value: Any, where: Where | None,
            kind: _Kind) -> ItemInfo | None:
    """An item OID of the group ``where``, of an accepted type."""
    if where is None or not isinstance(value, str):
        return None
    form, group = where
    info = c.items[form].get(value)
    if info is None:
        c.report(doc, path, f"unknown item '{value}' in form {form}")
        return None
    if info.group != group:
        c.report(doc, path, f"{value} is in group {form}.{info.group}, not in {form}.{group} "
                            "(the items are read on each row of that group)")
        return None
    if not kind.accepts(info):
        c.report(doc, path, f"{value} must be {kind.words}, not {info.type}")
        return None
    return info


def _codes(c: StudyChecker, info: ItemInfo) -> tuple[str, ...] | None:
    if "choices" in info.data:
        return tuple(str(e.get("code")) for _, e in dicts(info.data["choices"]))
    name = text(info.data.get("codelist"))
    return c.codelists.get(name) if name else None


def _codes_within(c: StudyChecker, doc: Document, path: PathParts, info: ItemInfo | None,
                  allowed: tuple[str, ...], meaning: str) -> None:
    codes = _codes(c, info) if info is not None else None
    if codes is None:
        return
    unknown = [code for code in codes if code not in allowed]
    if unknown:
        c.report(doc, path, f"{info.oid} has codes the safety rules cannot read "
                            f"({', '.join(unknown)}); {meaning} codes are "
                            f"{', '.join(allowed)}")


# --- recovery_endpoints -----------------------------------------------------------------------


def check_recovery_endpoints(c: StudyChecker, doc: Document, spec: dict[str, Any]) -> None:
    path = ("recovery_endpoints",)
    c.anchor_exists(doc, (*path, "day1_anchor"), spec.get("day1_anchor"))
    counts = as_dict(spec.get("counts"))
    where = _group(c, doc, (*path, "counts", "group"), counts.get("group"),
                   "one row per measurement day")
    for role, kind in COUNT_ROLES.items():
        _member(c, doc, (*path, "counts", role), counts.get(role), where, kind)
    for name, episode in as_dict(spec.get("episodes")).items():
        episode = as_dict(episode)
        at = (*path, "episodes", name)
        where = _group(c, doc, (*at, "group"), episode.get("group"), "one row per episode")
        for role, kind in EPISODE_ROLES.items():
            _member(c, doc, (*at, role), episode.get(role), where, kind)
        if where is not None and "any_episode" in episode:
            _any_episode(c, doc, (*at, "any_episode"), episode["any_episode"], where)


# Recovery parameters with a fixed type or set of values (the others are plain numbers).
_RECOVERY_PARAMETER_TYPES = {"recovery_run": "text", "transfusion_free_whole_run": "boolean"}


def check_recovery_parameters(c: StudyChecker, doc: Document, parameters: dict[str, Any]
                              ) -> None:
    """``recovery_run`` is text, measurements or calendar_days; ``transfusion_free_whole_run``
    a boolean."""
    for name, kind in _RECOVERY_PARAMETER_TYPES.items():
        spec = parameters.get(name)
        if not isinstance(spec, dict):
            continue
        path = ("parameters", name)
        if spec.get("type") != kind:
            c.report(doc, (*path, "type"), f"{name} must be a {kind} parameter")
            continue
        default = spec.get("default")
        if name == "recovery_run" and default is not None and default not in RECOVERY_RUNS:
            c.report(doc, (*path, "default"),
                     f"recovery_run must be one of {', '.join(RECOVERY_RUNS)}, not {default!r}")


def _any_episode(c: StudyChecker, doc: Document, path: PathParts, value: Any,
                 where: Where) -> None:
    """A yes/no "any episode?" question of the episode form, outside its repeating group."""
    if not isinstance(value, str):
        return
    form, group = where
    info = c.items[form].get(value)
    if info is None:
        c.report(doc, path, f"unknown item '{value}' in form {form}")
    elif info.repeating:
        c.report(doc, path, f"{value} is in repeating group {form}.{info.group}; the "
                            "'any episode' question is asked once, outside the episode rows")
    elif not YES_NO.accepts(info):
        c.report(doc, path, f"{value} must be {YES_NO.words}, not {info.type}")


# --- adverse_events and dlt_drug ---------------------------------------------------------------


def check_adverse_events(c: StudyChecker, doc: Document, spec: dict[str, Any]) -> None:
    path = ("adverse_events",)
    where = _group(c, doc, (*path, "group"), spec.get("group"), "one row per adverse event")
    found = {role: _member(c, doc, (*path, role), spec.get(role), where, kind)
             for role, kind in AE_ROLES.items()}
    grade = found["grade"]
    if grade is not None and grade.type == "single_choice":
        codes = _codes(c, grade) or ()
        wrong = [code for code in codes if not code.isdigit()]
        if wrong:
            c.report(doc, (*path, "grade"), f"{grade.oid} has codes that are not grades "
                                            f"({', '.join(wrong)}); grade codes are whole "
                                            "numbers such as 1 to 5")
    _codes_within(c, doc, (*path, "outcome"), found["outcome"], OUTCOME_CODES,
                  "outcome (CDISC OUT)")
    _codes_within(c, doc, (*path, "expectedness"), found["expectedness"], EXPECTEDNESS_CODES,
                  "expectedness")
    _codes_within(c, doc, (*path, "sponsor_causality"), found["sponsor_causality"],
                  CAUSALITY_CODES, "causality")
    for name, item in as_dict(spec.get("criteria")).items():
        _member(c, doc, (*path, "criteria", name), item, where, YES_NO)
    causality = as_dict(spec.get("causality"))
    for drug, item in causality.items():
        at = (*path, "causality", drug)
        info = _member(c, doc, at, item, where, CHOICE)
        _codes_within(c, doc, at, info, CAUSALITY_CODES, "causality")
        if item is not None and item == spec.get("sponsor_causality"):
            c.report(doc, at, f"{item} is the sponsor's causality (sponsor_causality); an "
                              "investigator causality item must be another item")
    for index, drug in enumerate(as_list(spec.get("susar_drugs"))):
        if isinstance(drug, str) and drug not in causality:
            c.report(doc, (*path, "susar_drugs", index),
                     f"unknown drug '{drug}' (drugs of adverse_events.causality: "
                     f"{', '.join(causality) or 'none'})")


def check_dlt_drug(c: StudyChecker, doc: Document, escalation: dict[str, Any],
                   adverse_events: Any) -> None:
    drug = escalation.get("dlt_drug")
    if not isinstance(drug, str):
        return
    path = ("dose_escalation", "dlt_drug")
    if not isinstance(adverse_events, dict):
        c.report(doc, path, "dlt_drug needs an adverse_events block whose causality names "
                            "this drug")
        return
    causality = as_dict(adverse_events.get("causality"))
    if drug not in causality:
        c.report(doc, path, f"unknown drug '{drug}' (drugs of adverse_events.causality: "
                            f"{', '.join(causality) or 'none'})")


# --- survival -----------------------------------------------------------------------------------


def check_survival(c: StudyChecker, doc: Document, spec: dict[str, Any]) -> None:
    """Anchors that exist, date items known alive, a date parameter as cut-off."""
    path = ("survival",)
    for role in ("origin", "event"):
        c.anchor_exists(doc, (*path, role), spec.get(role))
    if isinstance(spec.get("origin"), str) and spec.get("origin") == spec.get("event"):
        c.report(doc, (*path, "event"), "the event anchor must differ from the origin")
    for index, name in enumerate(as_list(spec.get("censor_at"))):
        c.anchor_exists(doc, (*path, "censor_at", index), name)
        if isinstance(name, str) and name in (spec.get("origin"), spec.get("event")):
            c.report(doc, (*path, "censor_at", index),
                     f"'{name}' is the origin or the event; a censoring anchor is another "
                     "date that ends follow-up without the event")
    for index, ref in enumerate(as_list(spec.get("last_known_alive"))):
        info = c.item_ref(doc, (*path, "last_known_alive", index), ref)
        if info is not None and info.type not in ("date", "datetime"):
            c.report(doc, (*path, "last_known_alive", index),
                     f"{ref} must be a date or datetime item (a date the subject was known "
                     f"alive), not {info.type}")
    cutoff = spec.get("cutoff")
    if isinstance(cutoff, str):
        kind = as_dict(as_dict(c.study_data.get("parameters")).get(cutoff)).get("type")
        if kind is None:
            c.report(doc, (*path, "cutoff"), f"unknown parameter '{cutoff}' (the cut-off is "
                                             "a date parameter of this study)")
        elif kind != "date":
            c.report(doc, (*path, "cutoff"), f"parameter '{cutoff}' must be of type date, "
                                             f"not {kind}")
    if spec.get("by") == "arm" and not as_list(c.study_data.get("arms")):
        c.report(doc, (*path, "by"), "by: arm needs the study's arms")
