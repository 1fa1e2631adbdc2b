"""Flat exports for statisticians: one CSV per form, repeating groups in long format, and
a data dictionary.

``FORM.csv`` has one row per form instance with the items of the form's non-repeating
groups; each repeating group gets ``FORM__GROUP.csv`` with one row per live row of the
group (its repeat key in ``group_repeat``). Every file starts with the same key columns:
subject, site, event, event_repeat, form_status and study_version. Values are canonical
(``72.5``, ``2024-03``, ``Y``, ``["A","B"]``, ``2024-03-15T14:05+01:00``), blank when
empty; rows removed from a repeating group are left out (the audit trail keeps them). A
text cell that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``) is written with a leading apostrophe, as the audit trail's CSV does.

Files are written one form instance at a time: memory does not grow with the study.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy.orm import Session

from ecrf.core import csv_cell
from ecrf.crf import ItemDef, ItemType, StudyDefinition
from ecrf.outputs.datasets.tables import (
    dataset_rows,
    datasets_of,
    xpt_names,
)
from ecrf.outputs.odm.common import codelist_oid, item_oid
from ecrf.outputs.rows import (
    Scope,
    definitions_newest_first,
    form_layouts,
    form_records,
    item_rows,
)
from ecrf.studies import StudyVersion

Progress = Callable[[int, str], None]


def export_csv(session: Session, scope: Scope, folder: Path, *,
               progress: Progress | None = None) -> list[Path]:
    """Write every dataset of every form (and ``data_dictionary.csv``) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    versions, definitions = definitions_newest_first(session, scope.study)
    labels = {v.id: v.label for v in versions}
    layouts = form_layouts(definitions)
    written: list[Path] = []
    for index, layout in enumerate(layouts):
        datasets = datasets_of(layout)
        files = {d.name: (folder / f"{d.name}.csv").open("w", newline="", encoding="utf-8")
                 for d in datasets}
        try:
            writers = {name: csv.writer(handle, lineterminator="\r\n")
                       for name, handle in files.items()}
            for d in datasets:
                writers[d.name].writerow(d.columns)
            for record in form_records(item_rows(session, scope, form_oid=layout.oid)):
                label = labels.get(record.version_id, "")
                for d in datasets:
                    for keys, values in dataset_rows(record, d, label):
                        writers[d.name].writerow(
                            [keys[c] for c in d.key_columns]
                            + [csv_cell(values.get(i.oid)) for i in d.items])
        finally:
            for handle in files.values():
                handle.close()
        written += [folder / f"{d.name}.csv" for d in datasets]
        if progress:
            progress(5 + 80 * (index + 1) // max(len(layouts), 1),
                     f"wrote {layout.oid} ({index + 1} of {len(layouts)} forms)")
    written.append(write_dictionary(folder / "data_dictionary.csv", versions, definitions))
    return written


# --- the data dictionary ---------------------------------------------------------------------

DICTIONARY_COLUMNS = ("dataset", "form", "form_name", "group", "group_label", "repeating",
                      "item", "label", "type", "unit", "length", "precision", "codelist",
                      "codes", "range", "soft_range", "required", "sdtm", "lab_test",
                      "xpt_dataset", "xpt_name", "odm_oid", "versions")


def _range(bounds) -> str:
    if bounds is None:
        return ""
    low = "" if bounds.min is None else format(bounds.min, "f")
    high = "" if bounds.max is None else format(bounds.max, "f")
    return f"{low}..{high}"


def _type(item: ItemDef) -> str:
    if item.type is ItemType.CALCULATED:
        return f"calculated ({item.result_type or 'text'})"
    return item.type.value


def dictionary_rows(versions: list[StudyVersion], definitions: list[StudyDefinition]
                    ) -> Iterator[dict[str, object]]:
    names = xpt_names(form_layouts(definitions))
    newest = definitions[0]
    for layout in form_layouts(definitions):
        for d in datasets_of(layout):
            for item in d.items:
                group = layout.form.group(item.group) if any(
                    g.oid == item.group for g in layout.form.groups) else None
                codes = _codes(newest, layout.oid, item)
                present = [f"v{v.number}" for v, defn in zip(versions, definitions, strict=True)
                           if layout.oid in defn.forms and any(
                               i.oid == item.oid for i in defn.form(layout.oid).items)]
                yield {
                    "dataset": d.name, "form": layout.oid, "form_name": layout.name,
                    "group": item.group, "group_label": group.label if group else "",
                    "repeating": "Y" if d.group else "N", "item": item.oid,
                    "label": item.label, "type": _type(item), "unit": item.unit or "",
                    "length": item.length or "", "precision": "" if item.precision is None
                    else item.precision,
                    "codelist": codes[0], "codes": codes[1], "range": _range(item.range),
                    "soft_range": _range(item.soft_range),
                    "required": "Y" if item.required else ("if " + item.required_if
                                                           if item.required_if else "N"),
                    "sdtm": item.sdtm or "", "lab_test": item.lab.test if item.lab else "",
                    "xpt_dataset": names[d.name][0], "xpt_name": names[d.name][1][item.oid],
                    "odm_oid": item_oid(layout.oid, item.oid),
                    "versions": " ".join(reversed(present)),
                }


def _codes(definition: StudyDefinition, form: str, item: ItemDef) -> tuple[str, str]:
    if item.type is ItemType.YES_NO:
        oid, codes = "NY", definition.codelist("NY")
    elif item.choices is not None:
        oid, codes = f"{form}.{item.oid}", item.choices
    elif item.codelist:
        oid, codes = item.codelist, definition.codelists.get(item.codelist)
    else:
        return "", ""
    text = " | ".join(f"{c.code}={c.label}" for c in codes.items) if codes else ""
    return codelist_oid(oid), text


def write_dictionary(path: Path, versions: list[StudyVersion],
                     definitions: list[StudyDefinition]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, DICTIONARY_COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        for row in dictionary_rows(versions, definitions):
            writer.writerow({k: csv_cell(v) if isinstance(v, str) else v for k, v in row.items()})
    return path
