"""SAS XPORT (.xpt) and SPSS (.sav) files of every form, the same tables as the CSV export.

Numbers are numeric, dates, date-times (UTC) and times are numbers with a date format,
everything else (codes, partial dates, text) is text; every variable carries its label.
XPORT names are at most 8 characters: key columns are SUBJECT, SITE, EVENT, EVENTRPT,
FORMSTAT, STUDYVER and GROUPRPT, items keep their OID when it fits and are shortened
otherwise (``xpt_names``; the data dictionary gives the mapping). SPSS keeps the CSV
names. Text longer than a format allows continues in extra variables (NOTES, NOTES1...).
A multiple-choice item is one 0/1 indicator per code (see ``tables``). SPSS files carry
the code lists as value labels (``Male`` for ``M``; ``Yes``/``No`` for an indicator).
XPORT labels are ASCII by the rule of ``formats.ascii_label``; each XPORT file has a
Dataset-JSON v1.1 file beside it with the same variables and the full labels.

A dataset is built in memory one form at a time (both formats need the column widths
before the first row), so memory follows the largest form, not the study.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from ecrf.crf import ItemDef
from ecrf.crf.definition import CodeListItem
from ecrf.crf.values import from_canonical, result_kind
from ecrf.outputs.datasets.dataset_json import write_dataset_json
from ecrf.outputs.datasets.formats import (
    SAV_TEXT_MAX,
    XPT_TEXT_MAX,
    Column,
    split_long,
    write_sav,
    write_xpt,
)
from ecrf.outputs.datasets.tables import (
    GROUP_KEY,
    KEY_XPT,
    Codes,
    Dataset,
    Names,
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
from ecrf.outputs.rows import (
    Scope,
    definitions_newest_first,
    form_layouts,
    form_records,
    item_rows,
)

Progress = Callable[[int, str], None]
KEY_LABELS = {"subject": "Subject", "site": "Site", "event": "Event OID",
              "event_repeat": "Event repeat", "form_status": "Form status",
              "study_version": "Study version", GROUP_KEY: "Row of the repeating group"}
_KINDS = {"integer": "num", "decimal": "num", "date": "date", "datetime": "datetime",
          "time": "time"}


def _kind(item: ItemDef) -> str:
    return _KINDS.get(result_kind(item), "char")


def _typed(item: ItemDef, text: str | None, kind: str):
    if text is None:
        return None
    value = from_canonical(item, text)
    if kind == "num":
        return float(value) if value is not None else None
    if kind in ("date", "datetime", "time"):
        return value
    return text


def item_label(item: ItemDef) -> str:
    """The full label of an item's variable (its unit after it)."""
    return item.label + (f" ({item.unit})" if item.unit else "")


INDICATOR_LABELS = {1.0: "Yes", 0.0: "No"}


def _value_labels(item: ItemDef, kind: str, codes: tuple[CodeListItem, ...]) -> dict:
    if kind == "char":
        return {c.code: c.label for c in codes}
    if kind != "num":
        return {}
    found = {}
    for code in codes:
        try:
            found[float(code.code)] = code.label
        except ValueError:
            continue
    return found


def _item_columns(item: ItemDef, dataset: Dataset, names: dict[str, str], codes: Codes,
                  indicators: dict[tuple[str, str], str], *, xpt: bool
                  ) -> list[tuple[Column, str | None]]:
    """The columns of one item: itself, or one indicator per code (then the code)."""
    kind = _kind(item)
    english = english_label(item)
    if is_multiple(item):
        return [(Column(names[indicator_key(item.oid, c.code)] if xpt
                        else indicators[(item.oid, c.code)],
                        indicator_label(item.label, c.label), "num",
                        value_labels=dict(INDICATOR_LABELS), data_type="integer",
                        english=indicator_label(english, c.label) if english else ""), c.code)
                for c in codes.get((dataset.form, item.oid), ())]
    return [(Column(names[item.oid] if xpt else item.oid, item_label(item), kind,
                    value_labels=_value_labels(item, kind,
                                               codes.get((dataset.form, item.oid), ())),
                    data_type="integer" if result_kind(item) == "integer" else None,
                    english=english + (f" ({item.unit})" if english and item.unit else "")),
             None)]


def build_columns(session: Session, scope: Scope, dataset: Dataset, names: dict[str, str],
                  labels: dict[int, str], *, xpt: bool, codes: Codes | None = None
                  ) -> list[Column]:
    """The columns of one dataset (one SQL statement, one form instance at a time)."""
    codes = codes or {}
    keys = [Column(KEY_XPT[k] if xpt else k, KEY_LABELS[k],
                   "num" if k in ("event_repeat", GROUP_KEY) else "char",
                   data_type="integer" if k in ("event_repeat", GROUP_KEY) else None)
            for k in dataset.key_columns]
    indicators = indicator_names(dataset, codes)
    items = [(item, column, code) for item in dataset.items
             for column, code in _item_columns(item, dataset, names, codes, indicators,
                                               xpt=xpt)]
    for record in form_records(item_rows(session, scope, form_oid=dataset.form)):
        for key_values, values in dataset_rows(record, dataset, labels.get(record.version_id,
                                                                            "")):
            for column, name in zip(keys, dataset.key_columns, strict=True):
                column.values.append(key_values[name])
            for item, column, code in items:
                text = values.get(item.oid)
                if code is None:
                    column.values.append(_typed(item, text, column.kind))
                else:
                    column.values.append(None if text is None else float(
                        code in from_canonical(item, text)))
    return keys + [column for _item, column, _code in items]


def export_stats(session: Session, scope: Scope, folder: Path, fmt: str, *,
                 progress: Progress | None = None,
                 created: dt.datetime | None = None) -> list[Path]:
    """Write one ``.xpt`` (``fmt="xpt"``, with its Dataset-JSON ``.json`` beside it) or
    ``.sav`` (``fmt="sav"``) file per dataset."""
    if fmt not in ("xpt", "sav"):
        raise ValueError(f"unknown statistical format {fmt!r} (xpt or sav)")
    created = created or dt.datetime.now(dt.UTC)
    folder.mkdir(parents=True, exist_ok=True)
    versions, definitions = definitions_newest_first(session, scope.study)
    labels = {v.id: v.label for v in versions}
    layouts = form_layouts(definitions)
    codes = item_codes(definitions, layouts)
    names = xpt_names(layouts, codes)
    written = []
    for index, layout in enumerate(layouts):
        for d in datasets_of(layout):
            member, variables = names[d.name]
            columns = build_columns(session, scope, d, variables, labels, xpt=fmt == "xpt",
                                    codes=codes)
            title = layout.name if d.group is None else f"{layout.name}: {d.group}"
            path = folder / f"{d.name}.{fmt}"
            if fmt == "xpt":
                allocate = Names(c.name for c in columns)
                columns = split_long(columns, XPT_TEXT_MAX, allocate)
                write_xpt(path, member, title, columns, created)
                written.append(path)
                path = folder / f"{d.name}.json"
                write_dataset_json(path, member, title, columns, created=created,
                                   study_oid=scope.study.oid,
                                   keys=[KEY_XPT[k] for k in ("subject", "event",
                                                              "event_repeat")]
                                   + ([KEY_XPT[GROUP_KEY]] if d.group else []))
            else:
                write_sav(path, title, split_long(columns, SAV_TEXT_MAX,
                                                  lambda name, i: f"{name}_{i + 1}"), created)
            written.append(path)
        if progress:
            progress(5 + 85 * (index + 1) // max(len(layouts), 1),
                     f"wrote {layout.oid} ({index + 1} of {len(layouts)} forms)")
    return written


def write_dataset_xpt(path: Path, member: str, label: str, columns: list[Column],
                      created: dt.datetime | None = None) -> None:
    """A dataset made elsewhere (SDTM) as XPORT v5, long text split."""
    allocate = Names(c.name for c in columns)
    write_xpt(path, member, label, split_long(columns, XPT_TEXT_MAX, allocate),
              created or dt.datetime.now(dt.UTC))


__all__ = ["build_columns", "export_stats", "item_label", "write_dataset_xpt"]
