"""The tables every flat and statistical export holds: one per form with the items of its
non-repeating groups, one per repeating group in long format, each starting with the
same key columns; and their SAS names (at most 8 characters), which the XPORT files use
and the data dictionary lists."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ecrf.crf import ItemDef
from ecrf.outputs.rows import FormLayout, FormRecord

KEY_COLUMNS = ("subject", "site", "event", "event_repeat", "form_status", "study_version")
GROUP_KEY = "group_repeat"


@dataclass(frozen=True)
class Dataset:
    """One flat table: a form's main items, or one repeating group of it."""

    name: str  # FORM or FORM__GROUP
    form: str
    group: str | None  # the repeating group, None for the main table
    items: tuple[ItemDef, ...]

    @property
    def key_columns(self) -> tuple[str, ...]:
        return KEY_COLUMNS + ((GROUP_KEY,) if self.group else ())

    @property
    def columns(self) -> tuple[str, ...]:
        return self.key_columns + tuple(i.oid for i in self.items)


def datasets_of(layout: FormLayout) -> list[Dataset]:
    found = [Dataset(layout.oid, layout.oid, None, layout.main)]
    for group, items in layout.repeating:
        found.append(Dataset(f"{layout.oid}__{group.oid}", layout.oid, group.oid, items))
    return found


def dataset_rows(record: FormRecord, dataset: Dataset, version_label: str
                 ) -> Iterator[tuple[dict[str, object], dict[str, str | None]]]:
    """(key columns, canonical values by item OID) of each row of ``dataset``."""
    keys: dict[str, object] = {
        "subject": record.subject_key, "site": record.site_code, "event": record.event_oid,
        "event_repeat": record.repeat, "form_status": record.status,
        "study_version": version_label,
    }
    if dataset.group is None:
        wanted = {(i.group, i.oid) for i in dataset.items}
        yield keys, {item: found.value for (group, _row, item), found in record.values.items()
                     if (group, item) in wanted}
        return
    for row in record.rows_of(dataset.group):
        values = {item: found.value for (group, r, item), found in record.values.items()
                  if group == dataset.group and r == row}
        yield {**keys, GROUP_KEY: row}, values


KEY_XPT = {"subject": "SUBJECT", "site": "SITE", "event": "EVENT", "event_repeat": "EVENTRPT",
           "form_status": "FORMSTAT", "study_version": "STUDYVER", GROUP_KEY: "GROUPRPT"}


class Names:
    """Unique SAS names of at most 8 characters."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self.taken = set(taken)

    def __call__(self, wanted: str, index: int | None = None) -> str:
        base = re.sub(r"[^A-Z0-9_]", "_", wanted.upper())[:8] or "V"
        if not (base[0].isalpha() or base[0] == "_"):
            base = ("V" + base)[:8]
        name, n = base, index or 1
        if index is not None or name in self.taken:
            while True:
                suffix = str(n)
                name = base[:8 - len(suffix)] + suffix
                if name not in self.taken:
                    break
                n += 1
        self.taken.add(name)
        return name


def xpt_names(layouts: list[FormLayout]) -> dict[str, tuple[str, dict[str, str]]]:
    """dataset -> (XPT dataset name, item OID -> XPT variable name), deterministic."""
    datasets = Names()
    found = {}
    for layout in layouts:
        for d in datasets_of(layout):
            member = datasets(d.group or d.form)
            variables = Names(KEY_XPT.values())
            found[d.name] = (member, {i.oid: variables(i.oid) for i in d.items})
    return found
