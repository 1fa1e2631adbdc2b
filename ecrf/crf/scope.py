"""What a name in an expression refers to, and its type.

Shared by the checker (which works on raw YAML data) and by the loaded definition (which
gives the same answers to the evaluator), so that a definition that passed the check never
meets an unknown reference at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from ecrf.domain.expressions import ValueType

BUILTIN_ANCHOR = "enrolment"
SUBJECT_FIELDS = ("arm", "dose_level", "site")

ITEM_VALUE_TYPES: dict[str, ValueType] = {
    "text": ValueType.TEXT,
    "integer": ValueType.INTEGER,
    "decimal": ValueType.DECIMAL,
    "date": ValueType.DATE,
    # The expression language has no partial-date type: comparisons of partial dates are
    # the evaluator's business (through their earliest/latest bounds).
    "partial_date": ValueType.DATE,
    "time": ValueType.TIME,
    "datetime": ValueType.DATETIME,
    "single_choice": ValueType.TEXT,
    "yes_no": ValueType.TEXT,
    "multiple_choice": ValueType.MULTI,
}

RESULT_VALUE_TYPES: dict[str, ValueType] = {
    "text": ValueType.TEXT,
    "integer": ValueType.INTEGER,
    "decimal": ValueType.DECIMAL,
    "date": ValueType.DATE,
    "datetime": ValueType.DATETIME,
    "time": ValueType.TIME,
    "boolean": ValueType.BOOLEAN,
}

PARAMETER_VALUE_TYPES: dict[str, ValueType] = {
    "integer": ValueType.INTEGER,
    "decimal": ValueType.DECIMAL,
    "text": ValueType.TEXT,
    "date": ValueType.DATE,
    "boolean": ValueType.BOOLEAN,
}

_UNKNOWN = frozenset({ValueType.ANY, ValueType.NULL})
_NUMBERS = frozenset({ValueType.INTEGER, ValueType.DECIMAL, ValueType.NUMBER})

# What an expression of a given type may produce for each declared result type.
_COMPATIBLE: dict[ValueType, frozenset[ValueType]] = {
    ValueType.INTEGER: frozenset({ValueType.INTEGER, ValueType.NUMBER}),
    ValueType.DECIMAL: _NUMBERS,
}


def value_type_of_item(item_type: str, result_type: str | None = None) -> ValueType | None:
    if item_type == "calculated":
        return RESULT_VALUE_TYPES.get(result_type or "")
    return ITEM_VALUE_TYPES.get(item_type)


def compatible(declared: ValueType, actual: ValueType) -> bool:
    """Whether an expression of type ``actual`` may feed a slot of type ``declared``."""
    if actual in _UNKNOWN or declared is ValueType.ANY:
        return True
    return actual in _COMPATIBLE.get(declared, frozenset({declared}))


class UnresolvedReference(LookupError):
    """A name in an expression that means nothing in its context."""

    def __init__(self, reference: str, message: str) -> None:
        self.reference = reference
        super().__init__(message)


@dataclass(frozen=True)
class ItemRef:
    form: str
    item: str
    value_type: ValueType
    group: str
    repeating: bool


class Scope:
    """Names visible to expressions of one study.

    ``form``/``group`` say where an expression lives: a form-level expression (item
    ``show_if``, a check without ``group``) has ``group=None``; one evaluated per row of a
    repeating group has that group. ``form=None`` is the schedule context (event
    conditions, ``until``, study end), where only ``FORM.ITEM`` names items.
    """

    def __init__(self, items: Mapping[str, Mapping[str, ItemRef]], anchors: Collection[str],
                 params: Mapping[str, ValueType], *, lenient: bool = False,
                 strata: Collection[str] = ()) -> None:
        self.items = items
        # Randomization strata: subject.stratum.NAME is the level used at randomization.
        self.strata = frozenset(strata)
        self.anchors = frozenset(anchors) | {BUILTIN_ANCHOR}
        self.params = params
        # When study.yaml could not be read, anchors and parameters are unknown rather than
        # absent: accept them instead of burying the real problems under false ones.
        self.lenient = lenient

    def resolve(self, parts: tuple[str, ...], *, form: str | None = None,
                group: str | None = None) -> ValueType:
        name = ".".join(parts)
        if len(parts) == 2 and parts[0] in ("subject", "anchor", "param"):
            return self._namespaced(parts[0], parts[1], name)
        if len(parts) == 3 and parts[:2] == ("subject", "stratum"):
            # The level the subject was randomized in (blank before randomization): unlike
            # the stratification item, it does not move if that item is corrected later.
            if parts[2] not in self.strata and not self.lenient:
                known = ", ".join(sorted(self.strata)) or "none declared"
                raise UnresolvedReference(name, f"unknown stratum '{parts[2]}' in '{name}' "
                                                f"(randomization strata: {known})")
            return ValueType.TEXT
        if len(parts) == 3 and parts[:2] == ("study", "first"):
            # The earliest value of an anchor across all subjects of the study, e.g. the
            # first randomization, from which a protocol counts its end of study.
            if parts[2] not in self.anchors and not self.lenient:
                raise UnresolvedReference(name, f"unknown anchor '{parts[2]}' in '{name}'")
            return ValueType.DATE
        if len(parts) == 1:
            if form is None:
                raise UnresolvedReference(
                    name, f"unknown name '{name}': outside a form, write FORM.{name}")
            ref = self.items.get(form, {}).get(parts[0])
            if ref is None:
                raise UnresolvedReference(name, f"unknown item '{name}'")
            return self._visible(ref, name, form, group)
        if len(parts) == 2:
            form_items = self.items.get(parts[0])
            if form_items is None:
                raise UnresolvedReference(name, f"unknown form '{parts[0]}' in '{name}'")
            ref = form_items.get(parts[1])
            if ref is None:
                raise UnresolvedReference(name, f"unknown item '{name}'")
            return self._visible(ref, name, form, group)
        raise UnresolvedReference(name, f"unknown reference '{name}'")

    def _namespaced(self, namespace: str, key: str, name: str) -> ValueType:
        if namespace == "subject":
            if key not in SUBJECT_FIELDS:
                known = ", ".join(f"subject.{f}" for f in SUBJECT_FIELDS)
                raise UnresolvedReference(name, f"unknown subject field '{name}' ({known})")
            return ValueType.TEXT
        if namespace == "anchor":
            if key not in self.anchors and not self.lenient:
                raise UnresolvedReference(name, f"unknown anchor '{key}' in '{name}'")
            return ValueType.DATE
        if key not in self.params:
            if self.lenient:
                return ValueType.ANY
            raise UnresolvedReference(name, f"unknown parameter '{key}' in '{name}'")
        return self.params[key]

    @staticmethod
    def _visible(ref: ItemRef, name: str, form: str | None, group: str | None) -> ValueType:
        # A repeating item has one value per row; only an expression evaluated on that
        # very row (same form, same group) knows which one to read.
        if ref.repeating and (ref.form != form or ref.group != group):
            raise UnresolvedReference(
                name, f"item '{name}' is in repeating group {ref.group}; only expressions "
                      f"evaluated per row of {ref.group} can use it")
        return ref.value_type

    def type_of(self, form: str | None = None,
                group: str | None = None) -> Callable[[tuple[str, ...]], ValueType | None]:
        """A resolver for ``expressions.check``: None for anything unknown."""

        def resolve(parts: tuple[str, ...]) -> ValueType | None:
            try:
                return self.resolve(tuple(parts), form=form, group=group)
            except UnresolvedReference:
                return None

        return resolve
