"""Fitting an imported study to the data its source system holds.

Another system may have let its own data break the rules its metadata declares: a value
outside a hard range (accepted there with a note), a value kept in an item its display
condition now hides (OpenClinica hides, it does not clear). ecrf would refuse such forms on
import, so the importer, given the system's ClinicalData, relaxes exactly those rules: the
hard range becomes a soft range (a warning to acknowledge), the condition is dropped. Each
change names the item and is listed with the other notes of the import.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from lxml import etree

from ecrf.crf import definition_from_content
from ecrf.crf.validation import EntryContext, validate_form
from ecrf.outputs.odm.common import q
from ecrf.outputs.odm.importer.source_data import source_reader
from ecrf.outputs.odm.importer.support import Notes

_ROUNDS = 5


def _forms(roots: Iterable[etree._Element], definition) -> Iterable[tuple[str, dict]]:
    reader = source_reader(definition)
    for root in roots:
        for subject in root.iter(q("SubjectData")):
            forms: dict[tuple[str, int, str], dict] = {}
            for sed, event, repeat in reader.events(subject):
                for fd in sed.iterfind(q("FormData")):
                    form = reader.form(fd.get("FormOID"))
                    raw = forms.setdefault((event, repeat, form), {})
                    for igd in fd.iterfind(q("ItemGroupData")):
                        row = int(igd.get("ItemGroupRepeatKey") or 1)
                        for group, item, value in reader.values(fd.get("FormOID"), igd):
                            if value is not None:
                                raw[(group, row, item)] = value
            for (_event, _repeat, form), raw in forms.items():
                yield form, raw


def _item(content: dict[str, Any], form: str, group: str, oid: str) -> dict[str, Any] | None:
    for g in content["crfs"].get(form, {}).get("groups", []):
        if g["oid"] == group:
            return next((i for i in g["items"] if i["oid"] == oid), None)
    return None


def fit_to_data(content: dict[str, Any], roots: list[etree._Element], notes: Notes) -> None:
    """Relax the ranges and conditions the source's own data breaks (listed in ``notes``)."""
    if not roots:
        return
    for _ in range(_ROUNDS):
        definition = definition_from_content(content)
        context = EntryContext(today=dt.date.today(), codelists=definition.codelists,
                               forms=definition.forms)
        changed = False
        for form, raw in _forms(roots, definition):
            fdef = definition.forms.get(form)
            if fdef is None or not raw:
                continue
            result = validate_form(fdef, raw, context)
            for key in result.errors:
                item = _item(content, form, key[0], key[2])
                if item is None:
                    continue
                where = f"crfs/{form}.yaml {key[2]}"
                if key not in result.visible and "show_if" in item:
                    notes.add(where, f"show_if {item.pop('show_if')!r} removed: the file's "
                                     "data holds values the condition hides")
                    changed = True
                elif "range" in item:
                    bounds = item.pop("range")
                    item.setdefault("soft_range", bounds)
                    notes.add(where, f"hard range {bounds} made a soft range (a warning): "
                                     "the file's data holds values outside it")
                    changed = True
        if not changed:
            return
