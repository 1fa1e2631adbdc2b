"""The body of a form save (PUT), read into a capture ``Submission``.

One shape, flat, the same as the ``values`` of a form read with GET:

    {"version": 3,                              # the version read; null if not started
     "values": {"VS.1.WEIGHT": "72.5",          # GROUP.ROW.ITEM -> value
                "VS.1.RACE": ["ASIAN"],         # multiple choice: a list of codes
                "AE_LINE.2.AESTDTC": "2024-03"},  # partial date: truncated ISO 8601
     "reasons": {"VS.1.WEIGHT": "transcription error"},   # changed saved values
     "acknowledgements": {"VS_BMI.0": "confirmed", "WEIGHT.soft_range.0": "..."},
     "removed_rows": {"AE_LINE.3": "entered twice"},
     "complete": false,                          # mark complete (default false)
     "partial": false}                           # true: absent items keep saved values

Values are strings (numbers may also be JSON numbers; they are read exactly, never
through binary floating point), lists of strings for multiple choice, or null (blank).
Row is 1 outside repeating groups; an acknowledgement's row is 0 outside them. Reasons and
justifications hold at most MAX_REASON characters (a longer one is refused, never cut).
Anything else is refused with the place it was found, before the capture service sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from flask_babel import gettext as _

from ecrf.api.common import json_kind
from ecrf.capture import MAX_REASON, Submission
from ecrf.crf import FormDef
from ecrf.crf.validation import IssueKey, Key
from ecrf.crf.values import Raw

FIELDS = ("version", "values", "reasons", "acknowledgements", "removed_rows", "complete",
          "partial")
_KEY = re.compile(r"([A-Z][A-Z0-9_]*)\.([0-9]{1,9})\.([A-Z][A-Z0-9_]*)")
_ROW = re.compile(r"([A-Z][A-Z0-9_]*)\.([0-9]{1,9})")
_CHECK = re.compile(r"(.+?)(?:\.([0-9]{1,9}))?")


def key_text(key: Key) -> str:
    group, row, item = key
    return f"{group}.{row}.{item}"


def issue_text(key: IssueKey) -> str:
    check, row = key
    return f"{check}.{row}"


@dataclass
class SaveRequest:
    submission: Submission
    base_version: int | None
    complete: bool
    errors: dict[str, list[str]] = field(default_factory=dict)


def read_save(form: FormDef, data: dict) -> SaveRequest:
    """The save asked for by ``data``; ``errors`` (location -> messages) when it is refused."""
    errors: dict[str, list[str]] = {}

    def fail(where: str, message: str) -> None:
        errors.setdefault(where, []).append(message)

    for name in data:
        if name not in FIELDS:
            fail(name, _("Unknown field; the fields are: %(fields)s.", fields=", ".join(FIELDS)))
    base_version = None
    if "version" not in data:
        fail("version", _("Required: the version of the form you read (null for a form not "
                          "started yet), so that a save never overwrites another one."))
    else:
        version = data["version"]
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                    or version < 1):
            fail("version", _("Give a whole number of 1 or more, or null, not %(kind)s.",
                              kind=json_kind(version)))
        else:
            base_version = version
    flags = {}
    for name in ("complete", "partial"):
        flag = data.get(name, False)
        if not isinstance(flag, bool):
            fail(name, _("Give true or false, not %(kind)s.", kind=json_kind(flag)))
        flags[name] = flag is True
    values = _values(form, _mapping(data, "values", fail), fail)
    reasons = _texts(form, _mapping(data, "reasons", fail), "reasons", fail)
    acks = _acknowledgements(form, _mapping(data, "acknowledgements", fail), fail)
    removed = _removed_rows(form, _mapping(data, "removed_rows", fail), fail)
    submission = Submission(values=values, reasons=reasons, acknowledgements=acks,
                            removed_rows=removed, partial=flags["partial"])
    return SaveRequest(submission, base_version, flags["complete"], errors)


def _mapping(data: dict, name: str, fail) -> dict:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        fail(name, _("Give an object, not %(kind)s.", kind=json_kind(value)))
        return {}
    return value


def _item_key(form: FormDef, text: str, where: str, fail) -> Key | None:
    match = _KEY.fullmatch(text)
    if match is None:
        fail(where, _("Name items as GROUP.ROW.ITEM, such as VS.1.WEIGHT."))
        return None
    group_oid, row, item_oid = match.group(1), int(match.group(2)), match.group(3)
    group = next((g for g in form.groups if g.oid == group_oid), None)
    if group is None:
        fail(where, _("%(form)s has no group %(group)s.", form=form.oid, group=group_oid))
        return None
    if not any(i.oid == item_oid for i in group.items):
        fail(where, _("Group %(group)s has no item %(item)s.", group=group_oid, item=item_oid))
        return None
    if not _row_ok(group.repeating, row, where, group_oid, fail):
        return None
    return (group_oid, row, item_oid)


def _row_ok(repeating: bool, row: int, where: str, group_oid: str, fail) -> bool:
    if not repeating and row != 1:
        fail(where, _("%(group)s is not a repeating group: its row is 1.", group=group_oid))
        return False
    if row < 1:
        fail(where, _("Rows are numbered from 1."))
        return False
    return True


def _values(form: FormDef, given: dict, fail) -> dict[Key, Raw]:
    values: dict[Key, Raw] = {}
    for text, value in given.items():
        where = f"values.{text}"
        key = _item_key(form, text, where, fail)
        if key is None:
            continue
        raw = _raw(value, where, fail)
        if raw is not _BAD:
            values[key] = raw
    return values


_BAD = object()


def _raw(value: object, where: str, fail) -> Raw | object:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        fail(where, _("Give a string, not a boolean (yes/no items take \"Y\" or \"N\")."))
        return _BAD
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v for v in value]
    fail(where, _("Give a string, a number, a list of codes or null, not %(kind)s.",
                  kind=json_kind(value) if not isinstance(value, list)
                  else _("a list holding something other than strings")))
    return _BAD


def _texts(form: FormDef, given: dict, name: str, fail) -> dict[Key, str]:
    found: dict[Key, str] = {}
    for text, value in given.items():
        where = f"{name}.{text}"
        key = _item_key(form, text, where, fail)
        if key is None:
            continue
        if not isinstance(value, str):
            fail(where, _("Give the reason as a string, not %(kind)s.", kind=json_kind(value)))
            continue
        if _too_long(value, where, fail):
            continue
        found[key] = value
    return found


def _too_long(text: str, where: str, fail) -> bool:
    """Whether ``text`` is longer than a reason may be (said through ``fail``)."""
    if len(text.strip()) <= MAX_REASON:
        return False
    fail(where, _("The reason is %(n)s characters long; at most %(limit)s are allowed.",
                  n=len(text.strip()), limit=MAX_REASON))
    return True


def _acknowledgements(form: FormDef, given: dict, fail) -> dict[IssueKey, str]:
    checks = {c.oid for c in form.checks} | {f"{i.oid}.soft_range" for i in form.items
                                             if i.soft_range is not None}
    found: dict[IssueKey, str] = {}
    for text, value in given.items():
        where = f"acknowledgements.{text}"
        match = _CHECK.fullmatch(text)
        check, row = (match.group(1), int(match.group(2) or 0)) if match else (text, 0)
        if check not in checks:
            fail(where, _("%(form)s has no warning %(check)s (name it CHECK.ROW, row 0 "
                          "outside repeating groups).", form=form.oid, check=check))
            continue
        if not isinstance(value, str):
            fail(where, _("Give the justification as a string, not %(kind)s.",
                          kind=json_kind(value)))
            continue
        if _too_long(value, where, fail):
            continue
        found[(check, row)] = value
    return found


def _removed_rows(form: FormDef, given: dict, fail) -> dict[tuple[str, int], str]:
    repeating = {g.oid for g in form.groups if g.repeating}
    found: dict[tuple[str, int], str] = {}
    for text, value in given.items():
        where = f"removed_rows.{text}"
        match = _ROW.fullmatch(text)
        if match is None or match.group(1) not in repeating:
            fail(where, _("Name a row of a repeating group as GROUP.ROW (repeating groups of "
                          "%(form)s: %(groups)s).", form=form.oid,
                          groups=", ".join(sorted(repeating)) or _("none")))
            continue
        if not _row_ok(True, int(match.group(2)), where, match.group(1), fail):
            continue
        if not isinstance(value, str):
            fail(where, _("Give the reason as a string, not %(kind)s.", kind=json_kind(value)))
            continue
        if _too_long(value, where, fail):
            continue
        found[(match.group(1), int(match.group(2)))] = value
    return found
