"""Semantic checks of a study folder: everything the JSON Schema cannot see.

The checks run on the raw YAML data even when the schema already found problems, so that
one run reports everything; hence the defensive ``isinstance`` tests: a node of the wrong
shape has been reported by the schema and is skipped here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from ecrf.domain.dates import Period, PeriodError
from ecrf.domain.expressions import (
    ExpressionSyntaxError,
    ExpressionTypeError,
    ValueType,
    check,
    parse,
)

from .problems import PathParts, Problem, format_path
from .scope import (
    BUILTIN_ANCHOR,
    PARAMETER_VALUE_TYPES,
    ItemRef,
    Scope,
    UnresolvedReference,
    compatible,
    value_type_of_item,
)
from .yaml_lines import Document

BUILTIN_CODELISTS = {"NY": ("Y", "N")}
DATE_TYPES = frozenset({ValueType.DATE, ValueType.DATETIME})


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def dicts(value: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, entry) of the mapping entries of a list; other entries are schema errors."""
    for index, entry in enumerate(as_list(value)):
        if isinstance(entry, dict):
            yield index, entry


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ItemInfo:
    form: str
    oid: str
    group: str
    repeating: bool
    type: str | None
    value_type: ValueType | None
    doc: Document
    path: PathParts
    data: dict[str, Any]


@dataclass(frozen=True)
class Located:
    doc: Document
    path: PathParts


class StudyChecker:
    """Index of one study's raw data plus the problems found so far.

    ``check_study`` and ``check_forms`` (separate modules) add their problems to it; the
    loader runs them in turn.
    """

    def __init__(self, study: Document | None, codelists: Document | None,
                 crfs: list[Document]) -> None:
        self.study = study
        self.study_data = as_dict(study.data) if study else {}
        self.codelists_doc = codelists
        self.crfs = crfs
        self.problems: list[Problem] = []
        self.languages = {"en"} | {x for x in as_list(self.study_data.get("languages"))
                                   if isinstance(x, str)}
        self.forms: dict[str, Document] = {}
        self.items: dict[str, dict[str, ItemInfo]] = {}
        self.groups: dict[str, dict[str, dict[str, Any]]] = {}
        self.codelists: dict[str, tuple[str, ...]] = dict(BUILTIN_CODELISTS)
        self.codelist_origin: dict[str, Located] = {}
        self.params: dict[str, ValueType] = {}
        self.anchor_names: set[str] = set()
        self.scope = Scope({}, (), {})

    # --- reporting -------------------------------------------------------------------------

    def report(self, doc: Document, path: PathParts, message: str,
               column: int | None = None, line: int | None = None) -> None:
        self.problems.append(Problem(doc.file, line if line is not None else doc.line(path),
                                     format_path(path), message, column))

    def expression(self, doc: Document, path: PathParts, source: Any, *,
                   form: str | None = None, group: str | None = None,
                   expected: ValueType | None = None,
                   what: str = "this expression") -> ValueType | None:
        """Parse and type-check an expression; report and return None if it is wrong."""
        if not isinstance(source, str):
            return None
        try:
            expr = parse(source)
        except ExpressionSyntaxError as exc:
            self._expression_problem(doc, path, exc.message, exc.position)
            return None
        failures: list[UnresolvedReference] = []

        def type_of(parts: tuple[str, ...]) -> ValueType | None:
            try:
                return self.scope.resolve(tuple(parts), form=form, group=group)
            except UnresolvedReference as exc:
                failures.append(exc)
                return None

        try:
            result = check(expr, type_of)
        except ExpressionTypeError as exc:
            message = str(failures[-1]) if failures else exc.message
            self._expression_problem(doc, path, message, exc.position)
            return None
        if expected is not None and not compatible(expected, result):
            self.report(doc, path, f"{what} must give {expected.label}, but the expression "
                                   f"gives {result.label}")
        return result

    def _expression_problem(self, doc: Document, path: PathParts, message: str,
                            position: int | None) -> None:
        line, column = doc.locate(path, position)
        if column is not None:
            message = f"{message} (column {column})"
        self.report(doc, path, message, column=column, line=line)

    def period(self, doc: Document, path: PathParts, value: Any, *,
               non_negative: bool = False, positive: bool = False) -> Period | None:
        if not isinstance(value, str):
            return None
        try:
            period = Period.parse(value)
        except PeriodError as exc:
            self.report(doc, path, str(exc))
            return None
        if non_negative and period.amount < 0:
            self.report(doc, path, f"must not be negative, got {value}")
        if positive and period.amount <= 0:
            self.report(doc, path, f"must be positive, got {value}")
        return period

    def item_ref(self, doc: Document, path: PathParts, value: Any) -> ItemInfo | None:
        """Resolve a FORM.ITEM attribute; report an unknown form or item."""
        if not isinstance(value, str) or value.count(".") != 1:
            return None
        form, item = value.split(".")
        if form not in self.items:
            self.report(doc, path, f"unknown form '{form}' in '{value}'")
            return None
        info = self.items[form].get(item)
        if info is None:
            self.report(doc, path, f"unknown item '{value}'")
        return info

    def anchor_exists(self, doc: Document, path: PathParts, name: Any) -> None:
        if isinstance(name, str) and name not in self.anchor_names:
            known = ", ".join(sorted(self.anchor_names))
            self.report(doc, path, f"unknown anchor '{name}' (known: {known})")

    # --- indexing ---------------------------------------------------------------------------

    def index(self) -> None:
        for name, spec in as_dict(self.study_data.get("parameters")).items():
            value_type = PARAMETER_VALUE_TYPES.get(text(as_dict(spec).get("type")) or "")
            if value_type is not None:
                self.params[name] = value_type
        self.anchor_names = {BUILTIN_ANCHOR} | set(as_dict(self.study_data.get("anchors")))
        if self.codelists_doc is not None:
            self._index_codelists(self.codelists_doc, ("codelists",))
        for doc in self.crfs:
            self._index_form(doc)
        # An item whose type is itself wrong (reported by the schema) still exists: give it
        # any type rather than report every expression that mentions it.
        refs = {form: {oid: ItemRef(info.form, oid, info.value_type or ValueType.ANY,
                                    info.group, info.repeating)
                       for oid, info in items.items()}
                for form, items in self.items.items()}
        strata = [text(as_dict(s).get("name")) for s in
                  as_list(as_dict(self.study_data.get("randomization")).get("strata"))]
        self.scope = Scope(refs, self.anchor_names, self.params, lenient=self.study is None,
                           strata=[s for s in strata if s])

    def _index_codelists(self, doc: Document, path: PathParts) -> None:
        for oid, entries in as_dict(as_dict(doc.data).get(path[-1])).items():
            where = (*path, oid)
            if oid in self.codelist_origin:
                first = self.codelist_origin[oid]
                self.report(doc, where, f"code list {oid} is already defined in "
                                        f"{first.doc.file}:{first.doc.line(first.path)}")
                continue
            self.codelist_origin[oid] = Located(doc, where)
            codes = [str(e.get("code")) for _, e in dicts(entries) if "code" in e]
            self.codelists[oid] = tuple(codes)

    def _index_form(self, doc: Document) -> None:
        data = as_dict(doc.data)
        oid = text(data.get("oid"))
        if oid is None:
            return
        if oid in self.forms:
            self.report(doc, ("oid",), f"form {oid} is already defined in "
                                       f"{self.forms[oid].file}")
            return
        self.forms[oid] = doc
        self._index_codelists(doc, ("codelists",))
        items: dict[str, ItemInfo] = {}
        self.items[oid] = items
        self.groups[oid] = {}
        for g, group in dicts(data.get("groups")):
            group_oid = text(group.get("oid")) or f"#{g}"
            self.groups[oid].setdefault(group_oid, group)
            repeating = group.get("repeating") is True
            for i, item in dicts(group.get("items")):
                item_oid = text(item.get("oid"))
                path = ("groups", g, "items", i)
                if item_oid is None:
                    continue
                if item_oid in items:
                    first = items[item_oid]
                    self.report(doc, (*path, "oid"), f"item {item_oid} is already defined in "
                                                     f"this form (line {doc.line(first.path)})")
                    continue
                item_type = text(item.get("type"))
                value_type = value_type_of_item(item_type or "", text(item.get("result_type")))
                items[item_oid] = ItemInfo(oid, item_oid, group_oid, repeating, item_type,
                                           value_type, doc, path, item)

    # --- checks shared by every file ----------------------------------------------------------

    def check_unique_oids(self) -> None:
        """Group and check OIDs are unique in the study (ODM needs them so)."""
        for kind, list_key in (("group", "groups"), ("check", "checks")):
            seen: dict[str, Located] = {}
            for doc in self.crfs:
                for index, entry in dicts(as_dict(doc.data).get(list_key)):
                    oid = text(entry.get("oid"))
                    path = (list_key, index, "oid")
                    if oid is None:
                        continue
                    if oid in seen:
                        first = seen[oid]
                        self.report(doc, path, f"{kind} OID {oid} is already used at "
                                               f"{first.doc.file}:{first.doc.line(first.path)}")
                    else:
                        seen[oid] = Located(doc, path)

    def check_labels(self, doc: Document) -> None:
        """Translations only in declared languages: a typo (``fe``) would never be shown."""
        declared = ", ".join(sorted(self.languages))
        for path, labels in _label_maps(doc.data, ()):
            for language in labels:
                if language not in self.languages:
                    self.report(doc, (*path, language),
                                f"language '{language}' is not declared in study.yaml "
                                f"languages (declared: {declared})")

    def check_all_labels(self) -> None:
        if self.study is not None:  # otherwise the declared languages are unknown
            for doc in [self.study, self.codelists_doc, *self.crfs]:
                if doc is not None:
                    self.check_labels(doc)


def _label_maps(value: Any, path: PathParts) -> Iterator[tuple[PathParts, dict[str, Any]]]:
    if isinstance(value, dict):
        for key, child in value.items():
            if (key == "labels" or key.endswith("_labels")) and isinstance(child, dict):
                yield (*path, key), child
            else:
                yield from _label_maps(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _label_maps(child, (*path, index))


def form_of_file(doc: Document) -> str:
    return PurePosixPath(doc.file).stem
