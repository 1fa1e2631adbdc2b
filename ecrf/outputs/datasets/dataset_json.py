"""CDISC Dataset-JSON v1.1 (the JSON successor of SAS transport files) of one dataset.

A file is one JSON object: the dataset's metadata (``itemGroupOID``, ``name``, ``label``,
``records``, creation time, study), one ``columns`` entry per variable (``itemOID``,
``name``, ``label``, ``dataType``, ``length`` for text, ``displayFormat`` for numbers
shown as dates, ``keySequence`` for key variables) and ``rows``, one array of values per
record in the column order, ``null`` where a value is missing.

Types follow the specification: text is ``string``; numbers are ``integer`` or
``double`` (``Column.data_type`` says which, ``double`` by default); dates, date-times and
times are ``date``/``datetime``/``time`` ISO 8601 strings (date-times in UTC, as in the
SAS and SPSS files). Labels are kept whole, in UTF-8: the file is what define.xml
describes, not cut to the 40 ASCII characters of a transport file.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

from ecrf.core import VERSION
from ecrf.outputs.datasets.formats import Column

DATASET_JSON_VERSION = "1.1.0"
_TYPES = {"char": "string", "date": "date", "datetime": "datetime", "time": "time"}
_DISPLAY = {"date": "E8601DA.", "datetime": "E8601DT.", "time": "E8601TM."}


def _value(column: Column, value):
    if value is None:
        return None
    if column.kind == "char":
        return str(value)
    if column.kind == "date":
        return value.isoformat()
    if column.kind == "datetime":
        naive = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
        return naive.isoformat(timespec="seconds")
    if column.kind == "time":
        return value.replace(tzinfo=None).isoformat(timespec="seconds")
    if column.data_type == "integer":
        return int(value)
    return float(value)


def _column(dataset: str, column: Column, key: int | None) -> dict:
    data_type = _TYPES.get(column.kind) or column.data_type or "double"
    described = {"itemOID": f"IT.{dataset}.{column.name}", "name": column.name,
                 "label": column.label, "dataType": data_type}
    if column.kind == "char":
        described["length"] = max([1, *(len(str(v)) for v in column.values
                                         if v is not None)])
    if column.kind in _DISPLAY:
        described["displayFormat"] = _DISPLAY[column.kind]
    if key is not None:
        described["keySequence"] = key
    return described


def dataset_json(name: str, label: str, columns: Sequence[Column], *,
                 created: dt.datetime | None = None, study_oid: str | None = None,
                 metadata_version_oid: str | None = None,
                 keys: Sequence[str] = (), item_group_oid: str | None = None,
                 originator: str = "ecrf") -> dict:
    """The Dataset-JSON v1.1 object of a dataset (``columns`` of equal length)."""
    created = (created or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    rows = len(columns[0].values) if columns else 0
    if any(len(c.values) != rows for c in columns):
        raise ValueError(f"the columns of {name} do not have the same number of values")
    order = {key: n for n, key in enumerate(keys, start=1)}
    document: dict = {
        "datasetJSONCreationDateTime": created.replace(tzinfo=None).isoformat(
            timespec="seconds") + "Z",
        "datasetJSONVersion": DATASET_JSON_VERSION,
        "fileOID": f"{study_oid or 'ecrf'}.{name}.{created:%Y%m%dT%H%M%S}",
        "originator": originator,
        "sourceSystem": {"name": "ecrf", "version": VERSION},
        "itemGroupOID": item_group_oid or f"IG.{name}",
        "records": rows,
        "name": name,
        "label": label,
        "columns": [_column(name, c, order.get(c.name)) for c in columns],
        "rows": [[_value(c, c.values[row]) for c in columns] for row in range(rows)],
    }
    if study_oid:
        document["studyOID"] = study_oid
    if metadata_version_oid:
        document["metaDataVersionOID"] = metadata_version_oid
    return document


def write_dataset_json(path: Path, name: str, label: str, columns: Sequence[Column],
                       **options) -> Path:
    """Write ``dataset_json(name, label, columns, **options)`` to ``path`` (UTF-8)."""
    document = dataset_json(name, label, columns, **options)
    with path.open("w", encoding="utf-8") as handle:
        json.dump(document, handle, ensure_ascii=False, separators=(",", ":"))
    return path


__all__ = ["DATASET_JSON_VERSION", "dataset_json", "write_dataset_json"]
