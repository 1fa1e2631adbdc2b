"""The order a subject's forms are imported in: a form whose calculated items read
another form (``ELIG.PBBLDISP = HEMATO.PBBLAST``) after that form, so that data capture
computes them from the imported values, as it did when they were entered."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, TypeVar

from ecrf.crf import ItemType, StudyDefinition

_REFERENCE = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)\.[A-Za-z]")


class _Form(Protocol):
    form: str


F = TypeVar("F", bound=_Form)


def read_forms(definition: StudyDefinition, form_oid: str) -> set[str]:
    """Other forms the calculated items of ``form_oid`` read."""
    form = definition.forms.get(form_oid)
    if form is None:
        return set()
    found: set[str] = set()
    for item in form.items:
        if item.type is ItemType.CALCULATED and item.expression:
            found |= {m for m in _REFERENCE.findall(item.expression)
                      if m != form_oid and m in definition.forms}
    return found


def dependency_order(definition: StudyDefinition, forms: Sequence[F]) -> list[F]:
    """``forms`` with every form after the forms its calculated items read (file order
    otherwise kept; a cycle keeps file order)."""
    depth: dict[str, int] = {}

    def depth_of(oid: str, seen: frozenset[str] = frozenset()) -> int:
        if oid not in depth:
            reads = read_forms(definition, oid) - seen - {oid}
            depth[oid] = 1 + max((depth_of(r, seen | {oid}) for r in reads), default=-1)
        return depth[oid]

    return sorted(forms, key=lambda f: depth_of(f.form))
