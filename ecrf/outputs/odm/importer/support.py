"""Helpers of the ODM importer: ecrf identifiers from foreign OIDs, data types, translated
texts, and the list of what could not be imported."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from lxml import etree

from ecrf.crf.schema import LANGUAGE_PATTERN

IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_LANGUAGE = re.compile(LANGUAGE_PATTERN)
MAX_OID = 32


def sanitize(raw: str) -> str:
    """Upper-case letters, digits and underscores: ``baseline_arm_1`` -> ``BASELINE_ARM_1``."""
    return re.sub(r"_+", "_", re.sub(r"[^A-Z0-9]+", "_", raw.upper())).strip("_")


def strip_prefix(raw: str, prefixes: Iterable[str]) -> str:
    for prefix in prefixes:
        if raw.lower().startswith(prefix.lower()) and len(raw) > len(prefix):
            return raw[len(prefix):]
    return raw


def to_oid(raw: str, prefixes: Iterable[str] = (), fallback: str = "X") -> str:
    """An ecrf OID for a foreign identifier; the type prefix is dropped when what is left
    is still a name (``SE_SCREENING`` -> ``SCREENING``, ``I.1`` -> ``I_1``)."""
    stripped = sanitize(strip_prefix(raw, prefixes))
    if stripped and stripped[0].isalpha():
        return stripped[:MAX_OID]
    whole = sanitize(raw)
    if whole and whole[0].isalpha():
        return whole[:MAX_OID]
    return f"{fallback}_{whole}"[:MAX_OID] if whole else fallback


def pick_oid(raw_oid: str, name: str | None, prefixes: Iterable[str], *,
             prefer_name: bool = False) -> str:
    """The ecrf OID of a definition: its name when asked and it is an identifier, else its
    OID, unless the OID is opaque (OpenEDC numbers its definitions: ``I.12``), in which case
    the name, even a phrase (``Date of visit`` -> ``DATE_OF_VISIT``), says more."""
    name = (name or "").strip()
    if prefer_name and IDENTIFIER.match(name):
        return to_oid(name)
    opaque = sanitize(strip_prefix(raw_oid, prefixes)).replace("_", "").isdigit()
    if opaque and name and sanitize(name)[:1].isalpha():
        return to_oid(name)
    return to_oid(raw_oid, prefixes)


class Namer:
    """Hands out unique OIDs within one namespace (events, forms, items of a form...)."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self.taken: set[str] = set(reserved)

    def claim(self, wanted: str) -> str:
        oid, n = wanted, 2
        while oid in self.taken:
            suffix = f"_{n}"
            oid, n = wanted[: MAX_OID - len(suffix)] + suffix, n + 1
        self.taken.add(oid)
        return oid


def language_code(raw: str | None) -> str | None:
    """xml:lang as ecrf writes it (``EN`` -> ``en``, ``de-DE`` kept); None if unusable."""
    if not raw:
        return "en"
    parts = raw.strip().replace("_", "-").split("-")
    code = "-".join([parts[0].lower(), *parts[1:]])
    return code if _LANGUAGE.match(code) else None


def split_texts(pairs: list[tuple[str, str]]) -> tuple[str | None, dict[str, str]]:
    """First English text (or the first text) as the label, the others as translations."""
    if not pairs:
        return None, {}
    primary = next((p for p in pairs if p[0] == "en"), pairs[0])
    labels = {}
    for lang, text in pairs:
        if lang != primary[0] and lang not in labels:
            labels[lang] = text
    return primary[1], labels


class Notes:
    """What the importer could not express, each naming the construct and where it was."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.grouped: dict[str, list[str]] = {}

    def add(self, where: str, message: str) -> None:
        note = f"{where}: {message}" if where else message
        if note not in self.items:
            self.items.append(note)

    def group(self, what: str, where: str) -> None:
        """Repetitive notes (a vendor attribute on every item) are listed once, with places."""
        places = self.grouped.setdefault(what, [])
        if where not in places:
            places.append(where)

    def render(self) -> list[str]:
        result = list(self.items)
        for what, places in self.grouped.items():
            shown = ", ".join(places[:8])
            more = f" and {len(places) - 8} more" if len(places) > 8 else ""
            result.append(f"{what} ({shown}{more})")
        return result


class OdmImportError(ValueError):
    """A file that cannot be imported (not ODM, no study, ambiguous study...)."""


class FolderWriteError(OSError):
    """The imported study cannot be written where asked."""


DATA_TYPES = {  # ODM DataType -> (ecrf type, note when only approximate)
    "text": ("text", None), "string": ("text", None), "integer": ("integer", None),
    "float": ("decimal", None), "double": ("decimal", None), "date": ("date", None),
    "partialDate": ("partial_date", None), "incompleteDate": ("partial_date", None),
    "time": ("time", None), "datetime": ("datetime", None),
    "partialDatetime": ("datetime", "partial date-times are not supported: imported as datetime"),
    "incompleteDatetime": ("datetime",
                           "partial date-times are not supported: imported as datetime"),
    "partialTime": ("time", "partial times are not supported: imported as time"),
    "incompleteTime": ("time", "partial times are not supported: imported as time"),
    "boolean": ("yes_no", None),  # the source map turns 1/0, true/false into Y/N
}
RESULT_TYPES = {"text": "text", "string": "text", "integer": "integer", "float": "decimal",
                "double": "decimal", "date": "date", "datetime": "datetime", "time": "time",
                "boolean": "boolean"}
NUMERIC = frozenset({"integer", "decimal"})
ECRF_TYPES = frozenset({"single_choice", "multiple_choice", "yes_no", "calculated"})


def order_key(el: Any) -> int:
    """Sort key of an element by its OrderNumber; missing or malformed ones sort first, in
    document order (the sorts are stable)."""
    try:
        return int(el.get("OrderNumber") or 0)
    except ValueError:
        return 0


def json_alias(text: str | None, where: str, notes: Notes) -> Any:
    """The value of an ``ecrf:`` alias holding JSON; None (and a note) if it is damaged."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        notes.add(where, f"damaged ecrf alias value {text[:60]!r} not imported")
        return None


def yaml_number(value: Decimal) -> int | float:
    """An int when written without decimals, so that ``1.0`` stays ``1.0`` in YAML."""
    exponent = value.as_tuple().exponent
    return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)


def decimal_or_none(text: str | None) -> Decimal | None:
    try:
        value = Decimal((text or "").strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def unwrap_negation(expression: str) -> str | None:
    """``not (X)`` -> ``X`` when the parentheses enclose the whole rest of the text."""
    text = expression.strip()
    if not (text.startswith("not (") and text.endswith(")")):
        return None
    inner, depth, quote = text[5:-1], 0, None
    for char in inner:
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return None
    return inner if depth == 0 else None


class ImporterState(Protocol):
    """What the item builder and the vendor dialects read from the importer running them
    (the importer's XML helpers and what it has gathered so far)."""

    notes: Notes
    study: etree._Element
    mdv: etree._Element
    defs: dict[str, dict[str, etree._Element]]
    units: dict[str, str | None]
    ecrf_origin: bool
    record_id: str | None
    list_refs: dict[str, int]
    used_conditions: set[str]
    group_namer: Namer
    group_names: dict[tuple[str, str], str]
    form_map: dict[str, dict[str, Any]]
    choice_entries: dict[str, list[dict[str, Any]]]
    codelists: dict[str, list[dict[str, Any]]]

    def t(self, tag: str) -> str: ...

    def _children(self, el: etree._Element, tag: str) -> list[etree._Element]: ...

    def _label(self, el: etree._Element, tag: str) -> tuple[str | None, dict[str, str]]: ...

    def _first_text(self, el: etree._Element, tag: str) -> str | None: ...

    def _aliases(self, el: etree._Element) -> dict[str, str]: ...

    def _other_aliases(self, el: etree._Element, where: str, used: set[str]) -> None: ...

    def _extensions(self, el: etree._Element, where: str,
                    handled: frozenset[str] = frozenset()) -> None: ...

    def _expression(self, kind: str, oid: str | None, where: str) -> str | None: ...

    def consume_list(self, oid: str | None) -> None: ...

    def codelist_entries(self, el: etree._Element) -> list[dict[str, Any]] | None: ...

    def named_list(self, raw_oid: str, el: etree._Element) -> str | None: ...
