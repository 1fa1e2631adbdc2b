"""Flat exports for statisticians: one CSV per form, repeating groups in long format, and
a data dictionary.

``FORM.csv`` has one row per form instance with the items of the form's non-repeating
groups; each repeating group gets ``FORM__GROUP.csv`` with one row per live row of the
group (its repeat key in ``group_repeat``). Every file starts with the same key columns:
subject, site, event, event_repeat, form_status and study_version. Values are canonical
(``72.5``, ``2024-03``, ``Y``, ``["A","B"]``, ``2024-03-15T14:05+01:00``), blank when
empty; rows removed from a repeating group are left out (the audit trail keeps them). A
text cell that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``) is written with a leading apostrophe, as the audit trail's CSV does. A
multiple-choice item keeps its list column and is followed by one 0/1 indicator column
per code (``OTHMUT_ASXL1``: 1 ticked, 0 not, blank when the item is empty), the form the
SAS and SPSS files hold it in.

Files are written one form instance at a time: memory does not grow with the study.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy.orm import Session

from ecrf.core import csv_cell
from ecrf.crf import ItemDef, ItemType, StudyDefinition
from ecrf.crf.values import from_canonical
from ecrf.outputs.datasets.formats import ascii_label
from ecrf.outputs.datasets.tables import (
    Codes,
    Dataset,
    dataset_rows,
    datasets_of,
    english_label,
    indicator_key,
    indicator_label,
    indicator_names,
    is_multiple,
    item_codes,
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
    codes = item_codes(definitions, layouts)
    written: list[Path] = []
    for index, layout in enumerate(layouts):
        datasets = datasets_of(layout)
        files = {d.name: (folder / f"{d.name}.csv").open("w", newline="", encoding="utf-8")
                 for d in datasets}
        try:
            writers = {name: csv.writer(handle, lineterminator="\r\n")
                       for name, handle in files.items()}
            for d in datasets:
                writers[d.name].writerow(csv_header(d, codes))
            for record in form_records(item_rows(session, scope, form_oid=layout.oid)):
                label = labels.get(record.version_id, "")
                for d in datasets:
                    for keys, values in dataset_rows(record, d, label):
                        writers[d.name].writerow(
                            [keys[c] for c in d.key_columns]
                            + [cell for i in d.items
                               for cell in _cells(i, values.get(i.oid), codes, d.form)])
        finally:
            for handle in files.values():
                handle.close()
        written += [folder / f"{d.name}.csv" for d in datasets]
        if progress:
            progress(5 + 80 * (index + 1) // max(len(layouts), 1),
                     f"wrote {layout.oid} ({index + 1} of {len(layouts)} forms)")
    written.append(write_dictionary(folder / "data_dictionary.csv", versions, definitions))
    return written


def csv_header(dataset: Dataset, codes: Codes) -> list[str]:
    header = list(dataset.key_columns)
    names = indicator_names(dataset, codes)
    for item in dataset.items:
        header.append(item.oid)
        if is_multiple(item):
            header += [names[(item.oid, c.code)]
                       for c in codes.get((dataset.form, item.oid), ())]
    return header


def _cells(item: ItemDef, value: str | None, codes: Codes, form: str) -> list[str]:
    cells = [csv_cell(value)]
    if is_multiple(item):
        ticked = from_canonical(item, value) if value is not None else None
        cells += ["" if ticked is None else str(int(c.code in ticked))
                  for c in codes.get((form, item.oid), ())]
    return cells


# --- the data dictionary ---------------------------------------------------------------------

DICTIONARY_COLUMNS = ("dataset", "form", "form_name", "group", "group_label", "repeating",
                      "item", "label", "type", "unit", "length", "precision", "codelist",
                      "codes", "range", "soft_range", "required", "sdtm", "lab_test",
                      "xpt_dataset", "xpt_name", "xpt_label", "odm_oid", "versions")


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
    layouts = form_layouts(definitions)
    indicators = item_codes(definitions, layouts)
    names = xpt_names(layouts, indicators)
    newest = definitions[0]
    for layout in layouts:
        for d in datasets_of(layout):
            for item in d.items:
                group = layout.form.group(item.group) if any(
                    g.oid == item.group for g in layout.form.groups) else None
                codes = _codes(newest, layout.oid, item)
                present = [f"v{v.number}" for v, defn in zip(versions, definitions, strict=True)
                           if layout.oid in defn.forms and any(
                               i.oid == item.oid for i in defn.form(layout.oid).items)]
                unit = f" ({item.unit})" if item.unit else ""
                full, english = item.label + unit, english_label(item)
                xpt_name = names[d.name][1][item.oid]
                row = {
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
                    "xpt_dataset": names[d.name][0],
                    "xpt_name": "" if is_multiple(item) else xpt_name,
                    "xpt_label": "" if is_multiple(item) else ascii_label(
                        full, english + unit if english else "", xpt_name),
                    "odm_oid": item_oid(layout.oid, item.oid),
                    "versions": " ".join(reversed(present)),
                }
                yield row
                if not is_multiple(item):
                    continue
                columns = indicator_names(d, indicators)
                for code in indicators.get((layout.oid, item.oid), ()):
                    label = indicator_label(item.label, code.label)
                    xpt_name = names[d.name][1][indicator_key(item.oid, code.code)]
                    yield {**row, "item": columns[(item.oid, code.code)],
                           "label": label, "type": f"indicator of {code.code} (1 or 0)",
                           "codelist": "", "codes": "1=Yes | 0=No", "required": "N",
                           "sdtm": "", "xpt_name": xpt_name, "xpt_label": ascii_label(
                               label, indicator_label(english, code.label) if english
                               else "", xpt_name)}


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
