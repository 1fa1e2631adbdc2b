"""The data-entry page as the template sees it: groups, rows, fields with their labels,
errors, notes, reason boxes and history links; and the submission read back from a POST.

Kept apart from the routes so that those stay thin: parse, call the capture service,
commit or roll back, render.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from flask_babel import gettext
from werkzeug.datastructures import MultiDict
from wtforms import Field
from wtforms.form import BaseForm

from ecrf.capture.operations import OpenForm, SaveResult, Submission
from ecrf.capture.system_values import system_source, system_value
from ecrf.core.web import say
from ecrf.crf import FormDef, GroupDef, ItemDef, ItemType
from ecrf.crf.fields import REGISTRY, field_name
from ecrf.crf.validation import Key, ValidationResult, codes_for
from ecrf.crf.values import display
from ecrf.domain.expressions import compile_cached
from ecrf.domain.expressions.nodes import (
    And,
    Call,
    Comparison,
    Literal,
    Membership,
    Negate,
    Not,
    Or,
    Reference,
)

MAX_ROWS_SHOWN = 500


@dataclass
class FieldView:
    key: Key
    name: str
    item: ItemDef
    widget: str
    field: Field | None
    label: str
    help: str | None
    unit: str | None
    required: bool
    visible: bool
    show_if: str | None
    saved: str | None
    saved_display: str
    display: str
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reason: str = ""
    reason_open: bool = False
    history_url: str | None = None

    @property
    def described_by(self) -> str:
        ids = []
        if self.unit:
            ids.append(f"{self.name}-unit")
        if self.help:
            ids.append(f"{self.name}-help")
        if self.errors:
            ids.append(f"{self.name}-error")
        if self.notes:
            ids.append(f"{self.name}-note")
        return " ".join(ids)

    @property
    def option_attrs(self) -> dict:
        """Attributes of each input (an option of a choice, or a part of a date)."""
        attrs: dict = {}
        if self.errors:
            attrs["aria-invalid"] = "true"
        if not (self.visible or self.errors):
            attrs["disabled"] = True  # a hidden item is not submitted
        return attrs

    @property
    def html_attrs(self) -> dict:
        attrs = self.option_attrs
        if self.described_by:
            attrs["aria-describedby"] = self.described_by
        if self.required:
            attrs["aria-required"] = "true"
        return attrs


@dataclass
class RowView:
    group: str
    row: int
    fields: list[FieldView]
    saved: bool
    removed: object | None = None  # the GroupRow of a removed row
    remove: bool = False
    remove_reason: str = ""
    errors: list[str] = field(default_factory=list)


@dataclass
class GroupView:
    oid: str
    label: str | None
    repeating: bool
    rows: list[RowView]
    removed: list[RowView]
    can_add: bool


@dataclass
class IssueView:
    id: str
    row: int
    warning: bool
    message: str
    target: str | None
    ack_name: str
    ack_value: str
    acknowledged: str | None
    needs_ack: bool


@dataclass
class EntryPage:
    groups: list[GroupView]
    issues: list[IssueView]
    blockers: list[str]
    form_errors: list[str]
    rows: dict[str, str]  # hidden inputs: group -> "1,2,3"
    focus: str | None = None  # the id of the element to focus (a row just added)


def items_for(form: FormDef, rows: Mapping[str, tuple[int, ...]]) -> dict[Key, ItemDef]:
    return {(g.oid, r, i.oid): i for g in form.groups
            for r in (rows.get(g.oid, ()) if g.repeating else (1,)) for i in g.items}


def posted_number(text: str | None, digits: int = 9) -> int | None:
    """A whole number a page posted (a row, a version, a count), or None: ASCII digits
    only, and not so long that reading it costs anything (``"²"`` and a 5,000-digit row
    number are simply not numbers)."""
    text = (text or "").strip()
    if text.isascii() and text.isdigit() and len(text) <= digits:
        return int(text)
    return None


def posted_rows(form: FormDef, data: MultiDict) -> dict[str, tuple[int, ...]]:
    """Rows the page held, from its ``rows-GROUP`` inputs ("1,2,5")."""
    rows = {}
    for group in form.groups:
        if not group.repeating:
            continue
        numbers = set()
        for part in data.get(f"rows-{group.oid}", "").split(","):
            if (number := posted_number(part)) is not None:
                numbers.add(number)
        rows[group.oid] = tuple(sorted(numbers))[:MAX_ROWS_SHOWN]
    return rows


def read_submission(form: FormDef, data: MultiDict, raw: dict, rows: Mapping[str, tuple]
                    ) -> Submission:
    reasons, acks, removed = {}, {}, {}
    for name, value in data.items():
        value = value.strip()
        if name.startswith("reason-") and value:
            parts = name[len("reason-"):].split("-")
            if len(parts) == 3 and (number := posted_number(parts[1])) is not None:
                reasons[(parts[0], number, parts[2])] = value
        elif name.startswith("ack-") and value:
            check, _, row = name[len("ack-"):].rpartition("-")
            if (number := posted_number(row)) is not None:
                acks[(check, number)] = value
        elif name.startswith("remove-"):
            group, _, row = name[len("remove-"):].rpartition("-")
            if (number := posted_number(row)) is not None:
                removed[(group, number)] = data.get(f"remove_reason-{group}-{row}", "").strip()
    return Submission(values=raw, reasons=reasons, acknowledgements=acks, removed_rows=removed,
                      rows={g: list(r) for g, r in rows.items()})


def build_page(opened: OpenForm, form: BaseForm, rows: Mapping[str, tuple[int, ...]], *,
               language: str | None, validation: ValidationResult,
               result: SaveResult | None = None, posted: MultiDict | None = None,
               problems: Mapping[Key, list[str]] | None = None, show_reason_errors: bool = True,
               history_url: Callable[[Key], str] | None = None,
               can_add: bool = True, show_missing: bool = False,
               quiet: bool = False) -> EntryPage:
    """The page of a form. Blank required items are named only when the user asked to
    mark the form complete (``show_missing``); ``quiet`` (a form never saved, opened for
    the first time) shows no checks at all."""
    definition, form_def = opened.definition, opened.form
    codelists = definition.codelists
    errors: dict[Key, list[str]] = {}
    if result is not None:
        needed = set(result.reasons_needed)
        for key, messages in result.errors.items():
            if key in needed and not show_reason_errors:
                continue
            errors.setdefault(key, []).extend(say(m) for m in messages)
    for key, messages in (problems or {}).items():
        errors.setdefault(key, []).extend(str(m) for m in messages)
    notes: dict[Key, list[str]] = {}
    issues = [] if quiet else _issues(opened, validation, result, posted, language)
    for issue, view in zip(validation.issues if not quiet else (), issues, strict=True):
        for key in issue.keys:
            notes.setdefault(key, []).append(view.message)
    for key in (result.missing if result is not None and show_missing else ()):
        notes.setdefault(key, []).append(gettext("Required to mark the form complete."))
    for key, grade in validation.grades.items():
        if grade.gradable and grade.grade:
            notes.setdefault(key, []).append(gettext("%(version)s grade %(grade)s: %(term)s",
                                                     version=grade.version, grade=grade.grade,
                                                     term=grade.term or ""))
    reasons_needed = set(result.reasons_needed) if result else set()
    groups = []
    for group in form_def.groups:
        live = rows.get(group.oid, ()) if group.repeating else (1,)
        row_views = []
        for number in live:
            saved_row = not group.repeating or any(
                (group.oid, number, i.oid) in opened.values for i in group.items)
            fields = [_field(opened, form, group, number, item, validation, errors, notes,
                             posted, reasons_needed, history_url, language, codelists)
                      for item in group.items]
            remove = bool(posted and posted.get(f"remove-{group.oid}-{number}"))
            row_errors = list(errors.get((group.oid, number, ""), []))
            row_views.append(RowView(group.oid, number, fields, saved_row, None, remove,
                                     (posted.get(f"remove_reason-{group.oid}-{number}", "")
                                      if posted else ""), row_errors))
        removed = [_removed_row(opened, group, number, record, language, codelists)
                   for (oid, number), record in sorted(opened.removed.items())
                   if oid == group.oid]
        limit = group.max_rows
        groups.append(GroupView(group.oid, group.label_in(language), group.repeating, row_views, removed,
                                can_add and (limit is None or len(live) < limit)))
    blockers = completion_blockers(form_def, result, language) if result is not None else []
    form_errors = [say(m) for m in result.form_errors] if result is not None else []
    hidden_rows = {g: ",".join(str(r) for r in rows.get(g, ())) for g in rows}
    return EntryPage(groups, issues, blockers, form_errors, hidden_rows)


def completion_blockers(form: FormDef, result: SaveResult, language: str | None) -> list[str]:
    """Why the form is not complete, naming the items (the service's list says how many)."""
    found = []
    if result.missing:
        names = []
        for group, row, item in result.missing:
            label = form.item(item).label_in(language)
            names.append(label if not form.group(group).repeating
                         else gettext("%(label)s (row %(row)s)", label=label, row=row))
        found.append(gettext("Required but blank: %(items)s.", items=", ".join(names)))
    found += [say(i.message) for i in result.check_errors]
    found += [gettext("Warning to acknowledge: %(message)s", message=say(i.message))
              for i in result.unacknowledged]
    return found + [say(m) for m in result.completion_problems]


def _field(opened: OpenForm, form: BaseForm, group: GroupDef, row: int, item: ItemDef,
           validation: ValidationResult, errors, notes, posted, reasons_needed, history_url,
           language, codelists) -> FieldView:
    key = (group.oid, row, item.oid)
    name = field_name(key)
    codes = codes_for(item, codelists)
    saved = opened.values.get(key)
    bound = form[name] if name in form else None
    reason = posted.get(f"reason-{name}", "").strip() if posted else ""
    current = validation.canonical.get(key)
    widget = REGISTRY[item.type].widget
    source = system_source(opened.definition, opened.form, item)
    if source is not None:
        # Written by the system, shown as it stands (never an input, so never posted).
        widget = "system"
        current = system_value(source, opened.event.subject, saved) if row == 1 else None
    return FieldView(
        key=key, name=name, item=item, widget=widget, field=bound,
        label=item.label_in(language),
        help=item.help_labels.get(language or "", item.help) if item.help else None,
        unit=item.unit, required=key in validation.required or item.required,
        visible=key in validation.visible, show_if=show_if_json(item, group, row, opened.form),
        saved=saved, saved_display=display(item, saved, codes, language),
        display=display(item, current, codes, language),
        errors=errors.get(key, []), notes=notes.get(key, []), reason=reason,
        reason_open=bool(reason) or key in reasons_needed,
        history_url=history_url(key) if history_url and key in opened.values else None,
    )


def _removed_row(opened: OpenForm, group: GroupDef, number: int, record, language, codelists
                 ) -> RowView:
    fields = []
    for item in group.items:
        key = (group.oid, number, item.oid)
        text = opened.values.get(key)
        shown = display(item, text, codes_for(item, codelists), language)
        fields.append(FieldView(key, field_name(key), item, "readonly", None,
                                item.label_in(language), None, item.unit, False, True, None,
                                text, shown, shown))
    return RowView(group.oid, number, fields, True, record)


def _issues(opened: OpenForm, validation: ValidationResult, result: SaveResult | None,
            posted: MultiDict | None, language: str | None) -> list[IssueView]:
    checks = {c.oid: c for c in opened.form.checks}
    unacknowledged = {i.key for i in result.unacknowledged} if result is not None else None
    views = []
    for issue in validation.issues:
        check = checks.get(issue.id)
        text = check.message_in(language) if check and not issue.message.params \
            else say(issue.message)
        ack_name = f"ack-{issue.id}-{issue.row}"
        existing = opened.acknowledgements.get(issue.key)
        needs = issue.is_warning and (
            issue.key in unacknowledged if unacknowledged is not None else existing is None)
        views.append(IssueView(
            issue.id, issue.row, issue.is_warning, text,
            field_name(issue.keys[0]) if issue.keys else None, ack_name,
            posted.get(ack_name, "") if posted else "",
            existing.justification if existing is not None else None, needs))
    return views


# --- show_if in the browser -------------------------------------------------------------------


def show_if_json(item: ItemDef, group: GroupDef, row: int, form: FormDef) -> str | None:
    """The condition as a small JSON tree the browser can evaluate, or None when it is not
    simple enough (the server then decides, on save or "Update").

    Operands are ``{"f": field name, "k": kind}`` (kind: text, codes, int, dec or date;
    numbers may carry their hard range, outside which the server refuses the value, so the
    browser too reads it as blank) or ``{"v": literal}``; numbers travel as text so that
    decimals stay exact enough to compare.
    """
    if not item.show_if:
        return None
    where = {i.oid: g for g in form.groups for i in g.items}
    kinds = {ItemType.INTEGER: "int", ItemType.DECIMAL: "dec", ItemType.DATE: "date",
             ItemType.TEXT: "text", ItemType.SINGLE_CHOICE: "text", ItemType.YES_NO: "text",
             ItemType.MULTIPLE_CHOICE: "codes"}

    def ref(node) -> dict | None:
        if not isinstance(node, Reference):
            return None
        parts = node.parts
        if len(parts) == 2 and parts[0] == form.oid:
            parts = parts[1:]
        if len(parts) != 1 or parts[0] not in where:
            return None
        owner = where[parts[0]]
        target = form.item(parts[0])
        kind = kinds.get(target.type)
        if kind is None:
            return None
        found: dict = {"f": field_name((owner.oid, row if owner.repeating else 1, parts[0])),
                       "k": kind}
        if kind in ("int", "dec") and target.range is not None:
            if target.range.min is not None:
                found["min"] = str(target.range.min)
            if target.range.max is not None:
                found["max"] = str(target.range.max)
        return found

    def literal(node) -> dict | None:
        if isinstance(node, Negate) and isinstance(node.operand, Literal):
            inner = literal(node.operand)
            return {"v": f"-{inner['v']}", "num": True} if inner and inner.get("num") else None
        if isinstance(node, Call) and node.name == "date" and len(node.arguments) == 1:
            inner = literal(node.arguments[0])
            return {"v": inner["v"], "date": True} if inner and not inner.get("num") else None
        if not isinstance(node, Literal) or isinstance(node.value, bool):
            return None
        if isinstance(node.value, str):
            return {"v": node.value}
        if isinstance(node.value, int | Decimal):
            return {"v": str(node.value), "num": True}
        return None

    def text(node) -> str | None:
        found = literal(node)
        return found["v"] if found and not found.get("num") and not found.get("date") else None

    def operand(node) -> dict | None:
        return ref(node) or literal(node)

    def fits(field: dict, value: dict) -> bool:
        """Whether the literal has the field's type (else the server decides)."""
        if "f" in value:
            numeric = {"int", "dec"}
            return field["k"] == value["k"] or {field["k"], value["k"]} <= numeric
        if field["k"] in ("int", "dec"):
            return bool(value.get("num"))
        if field["k"] == "date":
            return bool(value.get("date"))
        return field["k"] == "text" and not value.get("num") and not value.get("date")

    def convert(node):
        if isinstance(node, And | Or):
            parts = [convert(n) for n in node.operands]
            return None if None in parts else {"op": "and" if isinstance(node, And) else "or",
                                                 "args": parts}
        if isinstance(node, Not):
            inner = convert(node.operand)
            return None if inner is None else {"op": "not", "args": [inner]}
        if isinstance(node, Comparison):
            left, right = operand(node.left), operand(node.right)
            if left is None or right is None:
                return None
            if "f" not in left:
                left, right = right, left
                operator = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(node.operator,
                                                                             node.operator)
            else:
                operator = node.operator
            if "f" not in left or left["k"] == "codes" or not fits(left, right):
                return None
            if left["k"] == "text" and operator not in ("=", "!="):
                return None
            return {"op": "cmp", "cmp": operator, "a": left, "b": right}
        if isinstance(node, Membership):
            field = ref(node.operand)
            values = [text(o) for o in node.options]
            if field is None or field["k"] != "text" or None in values:
                return None
            return {"op": "nin" if node.negated else "in", "a": field, "values": values}
        if isinstance(node, Call) and node.name in ("is_blank", "contains"):
            field = ref(node.arguments[0]) if node.arguments else None
            if field is None:
                return None
            if node.name == "is_blank" and len(node.arguments) == 1:
                return {"op": "blank", "a": field}
            value = text(node.arguments[1]) if len(node.arguments) == 2 else None
            if value is None or field["k"] != "codes":
                return None
            return {"op": "has", "a": field, "value": value}
        return None

    tree = convert(compile_cached(item.show_if).root)
    return json.dumps(tree, separators=(",", ":")) if tree is not None else None
