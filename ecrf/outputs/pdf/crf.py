"""Blank and annotated CRFs of a study version, as one printable PDF.

The blank CRF is what a site prints when the system is down: every form on its own pages,
boxes to write in, tick boxes for choices, units and help. The annotated CRF is the same
pages with what a reviewer or an SDTM programmer needs beside each question: the item and
ODM OIDs, the SDTM DOMAIN.VARIABLE, code list codes, ranges, and the show_if, required_if
and calculation expressions, plus each form's edit checks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from ecrf.core import format_day, ui_locale
from ecrf.crf import FormDef, ItemDef, ItemType, Range, StudyDefinition
from ecrf.outputs.odm.common import codelist_oid, event_oid, form_oid, group_oid, item_oid
from ecrf.outputs.odm.metadata import VersionRef, number_text
from ecrf.outputs.pdf.render import Progress, write_pdf

_DEFAULT_DIGITS = 4
_TABLE_ROWS = 8  # blank rows printed for a repeating group laid out as a table
_TABLE_MAX_COLUMNS = 6  # wider repeating groups print as one block per entry
_ENTRY_BLOCKS = 2


def _digits(bounds: Range | None) -> tuple[int, bool]:
    """Boxes for the integer part (enough for the largest allowed value) and a sign box."""
    if bounds is None or (bounds.min is None and bounds.max is None):
        return _DEFAULT_DIGITS, False
    widest = max(abs(int(v)) for v in (bounds.min, bounds.max) if v is not None)
    negative = bounds.min is not None and bounds.min < 0
    return max(1, len(str(widest))), negative


def _range_text(bounds: Range | None, unit: str | None) -> str | None:
    if bounds is None:
        return None
    low = number_text(bounds.min) if bounds.min is not None else None
    high = number_text(bounds.max) if bounds.max is not None else None
    suffix = f" {unit}" if unit else ""
    if low is not None and high is not None:
        return f"{low} – {high}{suffix}"
    if low is not None:
        return f"≥ {low}{suffix}"
    return f"≤ {high}{suffix}"


def _widget(item: ItemDef) -> dict[str, Any]:
    kind = item.type
    if kind is ItemType.CALCULATED:
        return {"kind": "calculated"}
    if kind in (ItemType.SINGLE_CHOICE, ItemType.YES_NO, ItemType.MULTIPLE_CHOICE):
        return {"kind": "multi" if kind is ItemType.MULTIPLE_CHOICE else "choice"}
    if kind in (ItemType.INTEGER, ItemType.DECIMAL):
        digits, negative = _digits(item.range)
        decimals = (item.precision if item.precision is not None else 2) \
            if kind is ItemType.DECIMAL else 0
        return {"kind": "number", "digits": digits, "decimals": decimals, "negative": negative}
    if kind is ItemType.TEXT:
        if item.length is not None and item.length <= 20:
            return {"kind": "boxes", "count": item.length}
        return {"kind": "area" if (item.length or 0) > 200 else "line"}
    return {"kind": kind.value}  # date, partial_date, time, datetime


class CrfModel:
    """What the templates show, computed once (no logic in the templates)."""

    def __init__(self, definition: StudyDefinition, content: dict[str, Any],
                 language: str | None) -> None:
        self.d = definition
        self.language = language
        self.event_labels = {e["oid"]: (e.get("labels") or {}).get(language or "", e["name"])
                             for e in content["study"]["events"]}

    def item(self, form: FormDef, item: ItemDef) -> dict[str, Any]:
        lang = self.language
        choices = self.d.choices_of(form.oid, item.oid)
        if item.type is ItemType.YES_NO:
            list_oid = codelist_oid("NY")
        elif item.choices is not None:
            list_oid = codelist_oid(f"{form.oid}.{item.oid}")
        else:
            list_oid = codelist_oid(item.codelist) if item.codelist else None
        help_text = item.help_labels.get(lang or "", item.help) if item.help else None
        entries = [{"code": c.code, "label": c.label_in(lang)} for c in choices.items] \
            if choices else []
        widget = _widget(item)
        # Short lists (Yes/No) on one line: a paper form stays compact.
        widget["inline"] = len(entries) <= 3 and sum(len(c["label"]) for c in entries) <= 30
        return {
            "oid": item.oid,
            "odm_oid": item_oid(form.oid, item.oid),
            "label": item.label_in(lang),
            "type": item.type.value,
            "result_type": item.result_type,
            "widget": widget,
            "required": item.required,
            "required_if": item.required_if,
            "show_if": item.show_if,
            "expression": item.expression,
            "help": help_text,
            "unit": item.unit if item.is_numeric else None,
            "length": item.length,
            "precision": item.precision,
            "choices": entries,
            "codelist_oid": list_oid,
            "range": _range_text(item.range, item.unit),
            "soft_range": _range_text(item.soft_range, item.unit),
            "sdtm": item.sdtm,
            "critical": item.critical,
            "lab": item.lab,
        }

    def form(self, form: FormDef) -> dict[str, Any]:
        groups = []
        for group in form.groups:
            rows = min(group.max_rows or _TABLE_ROWS, _TABLE_ROWS)
            layout = "items"
            if group.repeating:
                layout = "table" if len(group.items) <= _TABLE_MAX_COLUMNS else "entries"
            groups.append({
                "layout": layout,
                "entries": range(min(group.max_rows or _ENTRY_BLOCKS, _ENTRY_BLOCKS)),
                "oid": group.oid,
                "odm_oid": group_oid(form.oid, group.oid),
                "label": group.labels.get(self.language or "", group.label) if group.label
                else None,
                "repeating": group.repeating,
                "min_rows": group.min_rows,
                "max_rows": group.max_rows,
                "rows": range(max(rows, group.min_rows or 0, 1)),
                "fields": [self.item(form, item) for item in group.items],
            })
        return {
            "oid": form.oid,
            "odm_oid": form_oid(form.oid),
            "anchor": f"form-{form.oid}",
            "name": form.name_in(self.language),
            "description": form.description,
            "sdtm_domain": form.sdtm_domain,
            "events": [self.event_labels[e.oid] for e in self.d.events_with_form(form.oid)],
            "groups": groups,
            "checks": [{"oid": c.oid, "expression": c.expression, "severity": c.severity.value,
                        "message": c.message_in(self.language), "group": c.group}
                       for c in form.checks],
        }

    def forms_in_order(self) -> list[FormDef]:
        seen: dict[str, FormDef] = {}
        for event in self.d.events:
            for oid in event.forms:
                seen.setdefault(oid, self.d.form(oid))
        return list(seen.values())

    def schedule(self) -> dict[str, Any]:
        events = [{"oid": e.oid, "odm_oid": event_oid(e.oid), "name": self.event_labels[e.oid],
                   "kind": e.kind.value, "forms": set(e.forms)} for e in self.d.events]
        return {"events": events}


def crf_pdf(definition: StudyDefinition, content: dict[str, Any], version: VersionRef, *,
            annotated: bool, generated_by: str, generated_at: dt.datetime | None = None,
            language: str | None = None, target: str | Path | IO[bytes] | None = None,
            progress: Progress | None = None,
            check_cancel: Callable[[], None] | None = None,
            pages: dict[str, int] | None = None) -> bytes | None:
    """Render the blank (or annotated) CRF of a study version; bytes unless ``target``.

    ``pages``, when given, receives the first page of every form (by form OID)."""
    generated_at = generated_at or dt.datetime.now(dt.UTC)
    language = language if language in definition.languages and language != "en" else None
    report = progress or (lambda percent, message: None)
    model = CrfModel(definition, content, language)
    forms_order = model.forms_in_order()
    forms = []
    for index, form in enumerate(forms_order):
        forms.append(model.form(form))
        report(5 + int(35 * (index + 1) / max(len(forms_order), 1)),
               f"prepared form {form.oid} ({index + 1} of {len(forms_order)})")
        if check_cancel:
            check_cancel()
    moment = generated_at.astimezone(dt.UTC)
    with force_locale(ui_locale(language)):
        variant = _("Annotated CRF") if annotated else _("Blank CRF")
        # The app's environment (autoescape on .html, gettext), without the page context
        # processors: a job renders outside any request.
        html = current_app.jinja_env.get_template("pdf/crf.html").render(
            annotated=annotated, variant=variant, d=definition, forms=forms,
            schedule=model.schedule(), version=version, language=language or "en",
            generated_at=f"{format_day(moment.date())} {moment:%H:%M:%S} UTC",
            generated_by=generated_by, study_odm_oid=definition.oid,
        )
    report(45, "laying out pages")
    if check_cancel:
        check_cancel()
    anchors: dict[str, int] = {}
    made = write_pdf(html, target, progress=report, pages=anchors)
    if pages is not None:
        pages.update({name.removeprefix("form-"): number for name, number in anchors.items()
                      if name.startswith("form-")})
    return made
