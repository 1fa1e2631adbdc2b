"""Multiple-choice values as ecrf exports them: one boolean ItemData per code of the
item's list (``I.<FORM>.<ITEM>.<CODE>``, "1" selected, "0" not; see ``odm.metadata``),
folded back into the item's one value, the list of its selected codes."""

from __future__ import annotations

from ecrf.crf import ItemType, StudyDefinition, UnknownOidError

SELECTED = frozenset({"1", "true"})

Key = tuple[str, int, str]


def fold_choices(definition: StudyDefinition, form_oid: str,
                 values: dict[Key, str | list[str] | None]) -> None:
    """Replace the per-code values of each multiple-choice item of ``values`` (keyed
    (group, row, ``ITEM.CODE``)) by the item's value: its selected codes, or None when
    every code was removed. Anything else is left for the caller to judge."""
    try:
        form = definition.form(form_oid)
    except UnknownOidError:
        return
    multiple = {i.oid for i in form.items if i.type is ItemType.MULTIPLE_CHOICE}
    states: dict[Key, dict[str, str | None]] = {}
    for key in [k for k in values if "." in k[2]]:
        item, _, code = key[2].partition(".")
        if item in multiple:
            states.setdefault((key[0], key[1], item), {})[code] = values.pop(key)
    for key, codes in states.items():
        if all(value is None for value in codes.values()):
            values[key] = None
        else:
            values[key] = [code for code, value in codes.items()
                           if (value or "").strip().lower() in SELECTED]
