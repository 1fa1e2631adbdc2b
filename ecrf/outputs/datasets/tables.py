"""The tables every flat and statistical export holds: one per form with the items of its
non-repeating groups, one per repeating group in long format, each starting with the
same key columns; and their SAS names (at most 8 characters), which the XPORT files use
and the data dictionary lists.

A multiple-choice item becomes one 0/1 indicator variable per code of its list (as REDCap
and OpenClinica export them): ``OTHMUT_ASXL1`` in CSV and SPSS, a SAS name made of the
start of the item's name and the code (``OTHASXL1``) in XPORT, labelled
"<item label>: <code label>"; 1 when the code was ticked, 0 when the item was answered
without it, missing when the item is empty."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from ecrf.crf import ItemDef, ItemType, StudyDefinition
from ecrf.crf.definition import CodeListItem
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


Codes = Mapping[tuple[str, str], tuple[CodeListItem, ...]]


def item_codes(definitions: Sequence[StudyDefinition], layouts: Sequence[FormLayout]
               ) -> dict[tuple[str, str], tuple[CodeListItem, ...]]:
    """(form, item) -> the codes of every coded item over all versions (``definitions``
    newest first): the newest version's codes in its order, then codes only older
    versions had, so that no stored code lacks a label or an indicator."""
    found: dict[tuple[str, str], dict[str, CodeListItem]] = {}
    for definition in definitions:
        for layout in layouts:
            if layout.oid not in definition.forms:
                continue
            present = {i.oid for i in definition.form(layout.oid).items}
            for _group, item in layout.items():
                if item.oid not in present:
                    continue
                codes = definition.choices_of(layout.oid, item.oid)
                if codes is None:
                    continue
                entry = found.setdefault((layout.oid, item.oid), {})
                for code in codes.items:
                    entry.setdefault(code.code, code)
    return {key: tuple(codes.values()) for key, codes in found.items()}


def is_multiple(item: ItemDef) -> bool:
    return item.type is ItemType.MULTIPLE_CHOICE


def indicator_name(item_oid: str, code: str) -> str:
    """The CSV and SPSS name of the indicator of ``code``: ``OTHMUT_ASXL1``."""
    return f"{item_oid}_{re.sub(r'[^A-Za-z0-9_]', '_', code)}"


def indicator_names(dataset: Dataset, codes: Codes) -> dict[tuple[str, str], str]:
    """(item, code) -> the CSV and SPSS name of each indicator of ``dataset``, unique in
    it (``_2``, ``_3``... after a name that an item or another code already has)."""
    taken = set(dataset.columns)
    found = {}
    for item in dataset.items:
        if not is_multiple(item):
            continue
        for code in codes.get((dataset.form, item.oid), ()):
            base = name = indicator_name(item.oid, code.code)
            n = 2
            while name in taken:
                name, n = f"{base}_{n}", n + 1
            taken.add(name)
            found[(item.oid, code.code)] = name
    return found


def english_label(item: ItemDef) -> str:
    """The item's English translation, when the study gives one beside its label."""
    return item.labels.get("en", "")


def indicator_key(item_oid: str, code: str) -> str:
    """Where ``xpt_names`` keeps the XPORT name of an indicator."""
    return f"{item_oid}={code}"


def indicator_label(item_label: str, code_label: str) -> str:
    return f"{item_label}: {code_label}"


def xpt_names(layouts: list[FormLayout], codes: Codes | None = None
              ) -> dict[str, tuple[str, dict[str, str]]]:
    """dataset -> (XPT dataset name, item OID -> XPT variable name), deterministic. With
    ``codes``, the indicators of multiple-choice items are named too (after every item,
    under ``indicator_key``), so that adding them changes no other name."""
    datasets = Names()
    found = {}
    for layout in layouts:
        for d in datasets_of(layout):
            member = datasets(d.group or d.form)
            variables = Names(KEY_XPT.values())
            names = {i.oid: variables(i.oid) for i in d.items}
            for item in d.items:
                if codes is None or not is_multiple(item):
                    continue
                for code in codes.get((d.form, item.oid), ()):
                    tail = re.sub(r"[^A-Z0-9_]", "", code.code.upper()) or "V"
                    head = names[item.oid][:max(8 - len(tail), 3)]
                    names[indicator_key(item.oid, code.code)] = variables((head + tail)[:8])
            found[d.name] = (member, names)
    return found
