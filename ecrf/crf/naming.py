"""What people read instead of OIDs: events, forms, items, codes and conditions named in the
reader's language.

A ``Reader`` says who reads: their language, the translation function of the web layer
(none here: the crf package knows no Flask) and whether they asked to see OIDs beside the
labels (data managers do). ``Naming`` names a study definition's parts for one reader.

Messages (``ecrf.crf.values.Message``) keep their parameters untranslated until they are
shown; a parameter that is one of the ``Named`` classes below is said in the reader's
language at that moment (``Message.render(reader=...)``), and as its English default
everywhere else (logs, the audit trail).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ecrf.domain.expressions import ExpressionError, compile_cached
from ecrf.domain.expressions.nodes import (
    And,
    Call,
    Comparison,
    Literal,
    Membership,
    Node,
    Not,
    Or,
    Reference,
)
from ecrf.domain.schedule import EventKind

from .definition import CodeList, FormDef, ItemType, StudyDefinition
from .problems import UnknownOidError
from .values import N_

__all__ = [
    "ConditionText", "FormPlace", "ItemName", "Name", "Named", "Names", "Naming", "Reader",
    "describe_condition",
]


@dataclass(frozen=True)
class Reader:
    language: str | None = None
    gettext: Callable[[str], str] | None = None
    show_oids: bool = False

    def say(self, template: str, **params) -> str:
        text = self.gettext(template) if self.gettext else template
        return text % params if params else text


PLAIN = Reader()


class Named:
    """A message parameter said in the reader's language."""

    def text_in(self, reader: Reader) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.text_in(PLAIN)


@dataclass(frozen=True)
class Name(Named):
    """A label with its translations, and the OID it stands for."""

    default: str
    labels: Mapping[str, str] = field(default_factory=dict)
    oid: str | None = None

    def text_in(self, reader: Reader) -> str:
        language = reader.language
        text = self.default
        if language:
            text = self.labels.get(language) or self.labels.get(language.split("_")[0]) \
                or text
        if reader.show_oids and self.oid and self.oid != text:
            text = f"{text} [{self.oid}]"
        return text


@dataclass(frozen=True)
class ItemName(Named):
    """An item of a form: "Form — Item (row 2)"; the form and the row are optional."""

    item: Name
    form: Name | None = None
    row: int | None = None

    def text_in(self, reader: Reader) -> str:
        text = self.item.text_in(reader)
        if self.form is not None:
            text = f"{self.form.text_in(reader)} — {text}"
        if self.row is not None:
            text = reader.say(N_("%(item)s (row %(row)s)"), item=text, row=self.row)
        return text


@dataclass(frozen=True)
class Names(Named):
    """Several names, comma-separated."""

    names: tuple[Named, ...]

    def text_in(self, reader: Reader) -> str:
        return ", ".join(n.text_in(reader) for n in self.names)


@dataclass(frozen=True)
class FormPlace(Named):
    """A form of an event: "Azacitidine cycle 2 onwards, #5 · Haematology"."""

    event: Name
    repeat: int | None
    form: Name | None = None
    numbered: bool = False  # the event repeats: say which one

    def text_in(self, reader: Reader) -> str:
        text = self.event.text_in(reader)
        if self.repeat is not None and (self.numbered or self.repeat > 1):
            text = f"{text}, #{self.repeat}"
        if self.form is not None:
            text = f"{text} · {self.form.text_in(reader)}"
        return text


@dataclass(frozen=True)
class ConditionText(Named):
    """A condition of a form (show-if, required-if) as a phrase; its source for OIDs."""

    source: str
    form: FormDef | None
    codelists: Mapping[str, CodeList] = field(default_factory=dict)
    forms: Mapping[str, FormDef] = field(default_factory=dict)  # for FORM.ITEM references

    def text_in(self, reader: Reader) -> str:
        text = describe_condition(self.source, self.form, self.codelists, self.forms, reader)
        if reader.show_oids and text != self.source:
            text = f"{text} [{self.source}]"
        return text


# --- a study's parts -------------------------------------------------------------------------


class Naming:
    """Names of a definition's events, forms and items for one reader."""

    def __init__(self, definition: StudyDefinition | None, reader: Reader = PLAIN) -> None:
        self.definition, self.reader = definition, reader

    def _say(self, name: Named) -> str:
        return name.text_in(self.reader)

    def event_name(self, oid: str) -> Name:
        if self.definition is None:
            return Name(oid)
        try:
            rule = self.definition.event(oid)
        except UnknownOidError:
            return Name(oid)
        return Name(rule.name, self.definition.event_labels.get(oid, {}), oid)

    def form_name(self, oid: str) -> Name:
        if self.definition is None or oid not in self.definition.forms:
            return Name(oid)
        form = self.definition.forms[oid]
        return Name(form.name, form.labels, oid)

    def item_name(self, form_oid: str, item_oid: str, *, row: int | None = None,
                  with_form: bool = True) -> ItemName:
        form = self.form_name(form_oid) if with_form else None
        try:
            item = self.definition.item(form_oid, item_oid) if self.definition else None
        except UnknownOidError:
            item = None
        name = Name(item.label, item.labels, item_oid) if item else Name(item_oid)
        return ItemName(name, form, row)

    def form_place(self, event_oid: str, repeat: int | None,
                   form_oid: str | None = None) -> FormPlace:
        return FormPlace(self.event_name(event_oid), repeat,
                         self.form_name(form_oid) if form_oid else None,
                         self._repeats(event_oid))

    def event(self, oid: str, repeat: int | None = None) -> str:
        """"Azacitidine cycle 2 onwards, #5": the number only for events that repeat."""
        return self._say(self.form_place(oid, repeat))

    def _repeats(self, oid: str) -> bool:
        try:
            kind = self.definition.event(oid).kind if self.definition else None
        except UnknownOidError:
            return False
        return kind in (EventKind.REPEATING, EventKind.UNSCHEDULED)

    def form(self, oid: str) -> str:
        return self._say(self.form_name(oid))

    def item(self, form_oid: str, item_oid: str, row: int | None = None, *,
             with_form: bool = True) -> str:
        return self._say(self.item_name(form_oid, item_oid, row=row, with_form=with_form))

    def place(self, event_oid: str | None, repeat: int | None, form_oid: str | None = None,
              item_oid: str | None = None, row: int | None = None, *,
              repeating_row: bool = False) -> str:
        """"Event · Form · Item (row n)": as much of it as is given."""
        parts = []
        if event_oid:
            parts.append(self.event(event_oid, repeat))
        if form_oid:
            parts.append(self.form(form_oid))
            if item_oid:
                parts.append(self.item(form_oid, item_oid,
                                       row if repeating_row or (row and row > 1) else None,
                                       with_form=False))
        return " · ".join(parts)

    def arm(self, code: str | None) -> str:
        """An arm by its name in the reader's language ("Salvage therapy alone"), its code
        beside it when OIDs are shown."""
        if not code:
            return ""
        try:
            arm = self.definition.arm(code) if self.definition else None
        except UnknownOidError:
            arm = None
        return self._say(Name(arm.name, arm.labels, code)) if arm else code

    def condition(self, source: str | None) -> str:
        """A schedule or status condition (any form's items, the strata used at
        randomization) as a phrase in the reader's language; its source beside it for a
        reader who shows OIDs, or instead of it when it is too complex to say."""
        if not source:
            return ""
        d = self.definition
        if d is None:
            return source
        strata = {s.name: (s.form, s.item) for s in (d.randomization.strata
                                                       if d.randomization else ())}
        text = describe_condition(source, None, d.codelists, d.forms, self.reader, strata)
        if self.reader.show_oids and text != source:
            text = f"{text} [{source}]"
        return text

    def anchor(self, name: str) -> str:
        """An anchor by the form that dates it ("End of treatment", "Death"); other names
        (the enrolment, the study end) as they are."""
        d = self.definition
        if d is None or name not in d.anchors:
            return name.replace("_", " ")
        text = self.form(d.anchors[name][0])
        return f"{text} [{name}]" if self.reader.show_oids else text

    def code(self, codelist: CodeList | None, code: str) -> str:
        if codelist is None:
            return code
        try:
            return codelist.label_of(code, self.reader.language)
        except UnknownOidError:
            return code


# --- conditions ------------------------------------------------------------------------------


_COMPARISONS = {
    "=": N_("%(a)s is %(b)s"), "!=": N_("%(a)s is not %(b)s"),
    "<": N_("%(a)s is before or below %(b)s"), "<=": N_("%(a)s is at most %(b)s"),
    ">": N_("%(a)s is after or above %(b)s"), ">=": N_("%(a)s is at least %(b)s"),
}


class _Complex(Exception):
    """The expression is beyond what the phrase renderer says well."""


def describe_condition(source: str, form: FormDef | None, codelists: Mapping[str, CodeList],
                       forms: Mapping[str, FormDef] | None = None,
                       reader: Reader = PLAIN,
                       strata: Mapping[str, tuple[str, str]] | None = None) -> str:
    """A condition as a phrase with the items' labels and the codes' labels ("Salvage
    therapy type is Azacitidine"); the source itself when it is too complex to say.
    ``strata`` maps a stratum name to its (form, item), for ``subject.stratum.NAME``."""
    try:
        root = compile_cached(source).root
        return _Phrase(form, codelists, forms or {}, reader, strata or {}).say(root)
    except (ExpressionError, _Complex):
        return source


class _Phrase:
    def __init__(self, form: FormDef | None, codelists: Mapping[str, CodeList],
                 forms: Mapping[str, FormDef], reader: Reader,
                 strata: Mapping[str, tuple[str, str]] | None = None):
        self.form, self.codelists, self.forms, self.reader = form, codelists, forms, reader
        self.strata = strata or {}

    def say(self, node: Node) -> str:
        r = self.reader
        if isinstance(node, And):
            return r.say(N_("%(a)s and %(b)s"), a=", ".join(self.say(o) for o in
                                                            node.operands[:-1]),
                         b=self.say(node.operands[-1]))
        if isinstance(node, Or):
            return r.say(N_("%(a)s or %(b)s"), a=", ".join(self.say(o) for o in
                                                           node.operands[:-1]),
                         b=self.say(node.operands[-1]))
        if isinstance(node, Not) and isinstance(node.operand, Call) \
                and node.operand.name == "is_blank" and len(node.operand.arguments) == 1:
            return r.say(N_("%(a)s is given"), a=self.operand(node.operand.arguments[0]))
        if isinstance(node, Call) and node.name == "is_blank" and len(node.arguments) == 1:
            return r.say(N_("%(a)s is blank"), a=self.operand(node.arguments[0]))
        if isinstance(node, Comparison):
            item = self._item(node.left)
            return r.say(_COMPARISONS[node.operator], a=self.operand(node.left),
                         b=self.operand(node.right, item))
        if isinstance(node, Membership):
            item = self._item(node.operand)
            options = [self.operand(o, item) for o in node.options]
            template = N_("%(a)s is not one of %(b)s") if node.negated \
                else N_("%(a)s is one of %(b)s")
            return r.say(template, a=self.operand(node.operand), b=", ".join(options))
        raise _Complex

    def _stratum(self, node: Node) -> tuple[str, str] | None:
        if isinstance(node, Reference) and len(node.parts) == 3 \
                and node.parts[:2] == ("subject", "stratum"):
            return self.strata.get(node.parts[2])
        return None

    def _item(self, node: Node):
        if not isinstance(node, Reference):
            return None
        stratum = self._stratum(node)
        if stratum is not None:
            node = Reference(stratum, node.position)
        try:
            if len(node.parts) == 1 and self.form is not None:
                return self.form.item(node.parts[0])
            if len(node.parts) == 2 and node.parts[0] in self.forms:
                return self.forms[node.parts[0]].item(node.parts[1])
        except UnknownOidError:
            return None
        return None

    def operand(self, node: Node, item=None) -> str:
        if isinstance(node, Reference):
            found = self._item(node)
            if found is None:
                raise _Complex
            name = Name(found.label, found.labels, found.oid).text_in(self.reader)
            if self._stratum(node) is not None:  # the value used at randomization
                return self.reader.say(N_("%(item)s at randomization"), item=name)
            return name
        if isinstance(node, Literal):
            if isinstance(node.value, str):
                return self._code(item, node.value)
            if isinstance(node.value, bool) or node.value is None:
                raise _Complex
            return str(node.value)
        raise _Complex

    def _code(self, item, code: str) -> str:
        codelist = None
        if item is not None:
            if item.type is ItemType.YES_NO:
                codelist = self.codelists.get("NY")
            elif item.choices is not None:
                codelist = item.choices
            elif item.codelist:
                codelist = self.codelists.get(item.codelist)
        if codelist is None:
            return f"“{code}”"
        try:
            return codelist.label_of(code, self.reader.language)
        except UnknownOidError:
            return f"“{code}”"


def join_names(names: Sequence[Named]) -> Names:
    return Names(tuple(names))
