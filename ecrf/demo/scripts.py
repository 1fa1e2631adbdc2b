"""Demo scripts: per-trial values the demo generator uses before its generic ones.

A trial folder may hold ``demo.yaml`` beside ``study.yaml``. The study loader never reads
it (only study.yaml, codelists.yaml and crfs/*.yaml make a study version), so editing it
changes no content hash. The format is described at the top of each demo.yaml and in
forms/README.md ("Demo data (optional)"). In short::

    format: 1
    forms:                     # any event
      FORM: {ITEM: value, rows: 1}
    events:                    # one event (overrides forms:)
      EVENT: {FORM: {ITEM: value}}
    subjects:                  # one subject (overrides both)
      SUBJECT-KEY: {FORM: {ITEM: value}}

A value is text or a number, null (leave blank), a list (multiple choice codes),
``{each: [...]}`` (picked by the subject's index in the study, modulo the list length),
``{rows: [...]}`` (one per row of a repeating group) or, for date items, a date expression
``day``, ``enrolment`` or ``today`` followed by offsets such as ``-400``, ``+3d``, ``-2w``,
``+1m``, ``-52y`` (and, for date-times, a time: ``day+1 10:20``). In text, ``{repeat}``
or ``{repeat+1}`` is the event's repeat number (a cycle number, say).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecrf.crf import ItemType, StudyDefinition, UnknownOidError
from ecrf.crf.yaml_lines import Document, read_yaml_file
from ecrf.domain.dates import add_months

SCRIPT_FILE = "demo.yaml"
FORMAT = 1
_DIRECTIVES = ("rows",)
_DATE_TYPES = (ItemType.DATE, ItemType.PARTIAL_DATE, ItemType.DATETIME)
_DATE = re.compile(r"^(day|enrolment|today)((?:\s*[+-]\s*\d+\s*[dwmy]?)*)"
                   r"(?:[ T](\d{2}:\d{2}))?$")
_OFFSET = re.compile(r"([+-])\s*(\d+)\s*([dwmy]?)")
_REPEAT = re.compile(r"\{repeat(?:([+-])(\d+))?\}")
BLANK = object()  # a scripted blank: the item is left empty


class DemoScriptError(ValueError):
    """A demo.yaml that cannot be used; the message names the file, line and path."""


@dataclass(frozen=True)
class Dates:
    """The days a date expression may start from, and the event's repeat number."""

    day: dt.date  # the event's day (its planned date, within enrolment and today)
    enrolment: dt.date
    today: dt.date
    repeat: int = 1


@dataclass(frozen=True)
class FormScript:
    """The scripted values of one form for one subject and event."""

    items: dict[str, Any] = field(default_factory=dict)  # item OID -> resolved spec
    rows: int | None = None

    def __bool__(self) -> bool:
        return bool(self.items) or self.rows is not None

    def value(self, item_oid: str, item_type: ItemType, row: int, dates: Dates) -> Any:
        """The scripted value of an item in a row: None when not scripted, BLANK for an
        explicit blank, otherwise text (or a list of codes)."""
        if item_oid not in self.items:
            return None
        spec = self.items[item_oid]
        if isinstance(spec, dict):  # {rows: [...]}
            values = spec["rows"]
            if row > len(values):
                return None
            spec = values[row - 1]
        if spec is None:
            return BLANK
        if isinstance(spec, list):
            return [str(code) for code in spec]
        text = _text(spec)
        if item_type in _DATE_TYPES and _DATE.match(text):
            return resolve_date(text, dates, with_time=item_type is ItemType.DATETIME)
        return _REPEAT.sub(lambda m: str(dates.repeat + (int(m[2]) if m[1] == "+" else
                                                         -int(m[2]) if m[1] else 0)), text)


@dataclass(frozen=True)
class DemoScript:
    study_oid: str
    file: str
    forms: dict[str, dict[str, Any]]
    events: dict[str, dict[str, dict[str, Any]]]
    subjects: dict[str, dict[str, dict[str, Any]]]

    def form(self, subject_key: str, index: int, event_oid: str, form_oid: str) -> FormScript:
        merged: dict[str, Any] = {}
        for layer in (self.forms.get(form_oid), self.events.get(event_oid, {}).get(form_oid),
                      self.subjects.get(subject_key, {}).get(form_oid)):
            merged.update(layer or {})
        rows = merged.pop("rows", None)
        items = {oid: _pick(spec, index) for oid, spec in merged.items()}
        return FormScript(items, None if rows is None else int(_pick(rows, index)))

    def scripted_for_subject(self, subject_key: str) -> set[str]:
        """Forms the script names for this very subject (its own stories)."""
        return set(self.subjects.get(subject_key, {}))


def resolve_date(text: str, dates: Dates, *, with_time: bool = False) -> str:
    match = _DATE.match(text.strip())
    if match is None:
        raise DemoScriptError(f"{text!r} is not a date expression")
    base, offsets, clock = match.groups()
    day = {"day": dates.day, "enrolment": dates.enrolment, "today": dates.today}[base]
    for sign, number, unit in _OFFSET.findall(offsets or ""):
        amount = int(number) * (1 if sign == "+" else -1)
        if unit == "m":
            day = add_months(day, amount)
        elif unit == "y":
            day = add_months(day, 12 * amount)
        else:
            day += dt.timedelta(days=amount * (7 if unit == "w" else 1))
    # A demo cannot record the future: the subject's story is clipped at today.
    day = min(day, dates.today)
    if with_time:
        return f"{day.isoformat()}T{clock or '10:00'}"
    return day.isoformat()


def _text(spec: Any) -> str:
    if isinstance(spec, bool):
        return "Y" if spec else "N"
    return str(spec)


def _pick(spec: Any, index: int) -> Any:
    if isinstance(spec, dict) and "each" in spec:
        options = spec["each"]
        return options[index % len(options)]
    return spec


# --- loading ------------------------------------------------------------------------------


def load_script(folder: str | Path, definition: StudyDefinition) -> DemoScript | None:
    """The folder's demo.yaml checked against the study definition; None when absent."""
    path = Path(folder) / SCRIPT_FILE
    if not path.is_file():
        return None
    name = str(path)
    doc, problems = read_yaml_file(path, name)
    if problems or doc is None:
        raise DemoScriptError("; ".join(str(p) for p in problems) or f"{name}: empty file")
    return _Checker(doc, definition).script()


class _Checker:
    def __init__(self, doc: Document, definition: StudyDefinition) -> None:
        self.doc, self.definition = doc, definition

    def fail(self, path: tuple, message: str) -> DemoScriptError:
        line = self.doc.line(path)
        where = ".".join(str(p) for p in path) or "top level"
        return DemoScriptError(f"{self.doc.file}{f':{line}' if line else ''}: {where}: "
                               f"{message}")

    def mapping(self, value: Any, path: tuple) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping")
        return value

    def script(self) -> DemoScript:
        data = self.mapping(self.doc.data, ())
        unknown = set(data) - {"format", "forms", "events", "subjects"}
        if unknown:
            raise self.fail((sorted(unknown)[0],), "unknown key (use format, forms, events, "
                                                   "subjects)")
        if data.get("format") != FORMAT:
            raise self.fail(("format",), f"must be {FORMAT}")
        forms = {oid: self.form(oid, items, ("forms", oid))
                 for oid, items in self.mapping(data.get("forms"), ("forms",)).items()}
        events = {}
        for event_oid, per_form in self.mapping(data.get("events"), ("events",)).items():
            try:
                rule = self.definition.event(event_oid)
            except UnknownOidError:
                raise self.fail(("events", event_oid), "unknown event") from None
            path = ("events", event_oid)
            events[event_oid] = {}
            for form_oid, items in self.mapping(per_form, path).items():
                if form_oid not in rule.forms:
                    raise self.fail((*path, form_oid), f"event {event_oid} has no such form")
                events[event_oid][form_oid] = self.form(form_oid, items, (*path, form_oid))
        subjects = {}
        for key, per_form in self.mapping(data.get("subjects"), ("subjects",)).items():
            path = ("subjects", str(key))
            subjects[str(key)] = {f: self.form(f, items, (*path, f))
                                  for f, items in self.mapping(per_form, path).items()}
        return DemoScript(self.definition.oid, self.doc.file, forms, events, subjects)

    def form(self, form_oid: str, items: Any, path: tuple) -> dict[str, Any]:
        try:
            form = self.definition.form(form_oid)
        except UnknownOidError:
            raise self.fail(path, "unknown form") from None
        checked = {}
        for oid, spec in self.mapping(items, path).items():
            if oid in _DIRECTIVES:
                self.rows(spec, (*path, oid))
            else:
                try:
                    item = form.item(oid)
                except UnknownOidError:
                    raise self.fail((*path, oid), f"form {form_oid} has no such item") from None
                if item.type is ItemType.CALCULATED:
                    raise self.fail((*path, oid), "a calculated item cannot be given a value")
                self.spec(spec, item.type, (*path, oid))
            checked[oid] = spec
        return checked

    def rows(self, spec: Any, path: tuple) -> None:
        options = spec["each"] if isinstance(spec, dict) and set(spec) == {"each"} else [spec]
        if not options or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                  for n in options):
            raise self.fail(path, "rows must be a number of rows (or {each: [numbers]})")

    def spec(self, spec: Any, item_type: ItemType, path: tuple, *, nested: bool = False
             ) -> None:
        if isinstance(spec, dict):
            if nested or len(spec) != 1 or not set(spec) <= {"each", "rows"}:
                raise self.fail(path, "a mapping value must be {each: [...]} or "
                                      "{rows: [...]}, used once")
            (kind, options), = spec.items()
            if not isinstance(options, list) or not options:
                raise self.fail(path, f"{kind} needs a non-empty list")
            for number, option in enumerate(options):
                self.spec(option, item_type, (*path, kind, number), nested=True)
            return
        if isinstance(spec, list):
            if item_type is not ItemType.MULTIPLE_CHOICE:
                raise self.fail(path, "a list of codes is for multiple-choice items only")
            return
        if item_type in _DATE_TYPES and isinstance(spec, str) and spec[:1].isalpha() \
                and not _DATE.match(spec.strip()):
            raise self.fail(path, f"{spec!r} is not a date expression (day, enrolment or "
                                  f"today with offsets such as -400, +3d, -2w, +1m, -52y)")
