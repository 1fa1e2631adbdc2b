"""Validating one submitted form against its definition.

Input: the raw strings a user (or an API client) submitted, keyed ``(group, row, item)``,
the ``FormDef`` and an ``EntryContext`` (other forms of the event, subject fields, anchor
dates, parameters, today). Output: typed and canonical values, per-field errors, required
items left blank, failing edit checks and soft-range warnings. Pure: no Flask, no
SQLAlchemy, no clock (``today`` comes in the context).

Rules applied here:

- show_if: a hidden item has no value; a value posted for it anyway is an error (never
  stored). Visibility and calculated items are settled together until nothing changes
  (the checker guarantees show_if conditions have no cycles).
- Hard ranges, text length, types and choices are field errors: the value is not accepted.
- Soft ranges and warning checks are issues to acknowledge; error checks block completion.
- Checks fire on values, not on blanks: a check whose answer is unknown (null, because a
  value it compares is blank) passes, as one left undecided by a partial date does. A
  blank that matters is a required item, asked for when the form is marked complete.
- Partial dates are never imputed: an expression touching an incomplete partial date is
  evaluated at both ends of its possible range and only an answer every reading agrees
  on is used ("2024-03" >= "2024-03-15" is undecided, so a check on it does not fire).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property

from ecrf.domain.ctcae import LabGrade, grade_lab
from ecrf.domain.expressions import ExpressionError, compile_cached

from .definition import NY, CheckDef, CodeList, FormDef, GroupDef, ItemDef, ItemType, Severity
from .naming import ConditionText, Name
from .partials import UNDECIDED, evaluate_partial
from .values import (
    N_,
    InvalidValue,
    Message,
    Raw,
    is_blank_raw,
    parse_raw,
    to_canonical,
)

log = logging.getLogger(__name__)

Key = tuple[str, int, str]  # (group OID, row, item OID); row 1 outside repeating groups
IssueKey = tuple[str, int]  # (check OID or ITEM.soft_range, row; 0 outside repeating groups)




@dataclass(frozen=True)
class EntryContext:
    """What a form's expressions may read besides the form itself."""

    today: dt.date
    timezone: str = "UTC"
    codelists: Mapping[str, CodeList] = field(default_factory=dict)
    other_forms: Mapping[tuple[str, str], object] = field(default_factory=dict)
    subject: Mapping[str, object] = field(default_factory=dict)
    anchors: Mapping[str, dt.date] = field(default_factory=dict)
    params: Mapping[str, object] = field(default_factory=dict)
    forms: Mapping[str, FormDef] = field(default_factory=dict)  # to name FORM.ITEM references


@dataclass(frozen=True)
class Issue:
    """A failing edit check or a value outside its soft range."""

    id: str
    row: int
    severity: Severity
    message: Message
    keys: tuple[Key, ...] = ()
    group: str | None = None

    @property
    def key(self) -> IssueKey:
        return (self.id, self.row)

    @property
    def is_warning(self) -> bool:
        return self.severity is Severity.WARNING


@dataclass
class ValidationResult:
    rows: dict[str, tuple[int, ...]]
    typed: dict[Key, object] = field(default_factory=dict)
    canonical: dict[Key, str | None] = field(default_factory=dict)
    visible: set[Key] = field(default_factory=set)
    required: set[Key] = field(default_factory=set)
    errors: dict[Key, list[Message]] = field(default_factory=dict)
    form_errors: list[Message] = field(default_factory=list)
    missing: list[Key] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    grades: dict[Key, LabGrade] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No value was refused: the submission may be stored (as a draft at least)."""
        return not self.errors and not self.form_errors

    def error(self, key: Key, message: Message) -> None:
        self.errors.setdefault(key, []).append(message)

    @property
    def failing_errors(self) -> list[Issue]:
        return [i for i in self.issues if not i.is_warning]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.is_warning]


def codes_for(item: ItemDef, codelists: Mapping[str, CodeList]) -> CodeList | None:
    if item.type is ItemType.YES_NO:
        return codelists.get("NY", NY)
    if item.choices is not None:
        return item.choices
    return codelists.get(item.codelist) if item.codelist else None


def soft_range_id(item_oid: str) -> str:
    return f"{item_oid}.soft_range"


def keys_of(form: FormDef, rows: Mapping[str, Sequence[int]]) -> list[Key]:
    """Every (group, row, item) of the form for the given rows, in display order."""
    return [(group.oid, row, item.oid) for group in form.groups
            for row in (rows.get(group.oid, ()) if group.repeating else (1,))
            for item in group.items]


def rows_in(form: FormDef, raw: Mapping[Key, Raw]) -> dict[str, tuple[int, ...]]:
    """Rows named by the submitted keys (repeating groups) or row 1 (the others)."""
    found: dict[str, set[int]] = {g.oid: set() for g in form.groups if g.repeating}
    for group, row, _item in raw:
        if group in found and row >= 1:
            found[group].add(row)
    return {g.oid: tuple(sorted(found[g.oid])) if g.repeating else (1,) for g in form.groups}


def validate_form(form: FormDef, raw: Mapping[Key, Raw], context: EntryContext, *,
                  rows: Mapping[str, Sequence[int]] | None = None) -> ValidationResult:
    """Validate a whole form; ``rows`` lists the live rows of each repeating group."""
    given_rows = rows_in(form, raw) if rows is None else rows
    all_rows = {g.oid: tuple(given_rows.get(g.oid, ())) if g.repeating else (1,)
                for g in form.groups}
    result = ValidationResult(rows=all_rows)
    engine = _Engine(form, context, result)
    engine.parse(raw)
    engine.settle()
    engine.finish(raw)
    engine.run_checks()
    for group in form.groups:
        count = len(all_rows[group.oid])
        if group.repeating and group.max_rows is not None and count > group.max_rows:
            result.form_errors.append(Message(
                N_("%(group)s allows at most %(n)s rows; remove %(extra)s."),
                {"group": group.label or group.oid, "n": group.max_rows,
                 "extra": count - group.max_rows}))
    return result


def _name(item: ItemDef) -> Name:
    """An item in a message: its label, said in the reader's language."""
    return Name(item.label, item.labels, item.oid)


def completion_problems(form: FormDef, result: ValidationResult) -> list[Message]:
    """Form-level reasons (other than items and checks) why the form cannot be complete."""
    problems = []
    for group in form.groups:
        if group.repeating and group.min_rows and len(result.rows[group.oid]) < group.min_rows:
            problems.append(Message(N_("%(group)s needs at least %(n)s rows."),
                                    {"group": group.label or group.oid, "n": group.min_rows}))
    return problems


class _Engine:
    def __init__(self, form: FormDef, context: EntryContext, result: ValidationResult):
        self.form = form
        self.ctx = context
        self.result = result
        self.where: dict[str, GroupDef] = {i.oid: g for g in form.groups for i in g.items}
        self.items: dict[str, ItemDef] = {i.oid: i for i in form.items}
        self.parsed: dict[Key, object] = {}
        self.effective: dict[Key, object] = {}
        self.keys = keys_of(form, result.rows)

    # --- expression plumbing -------------------------------------------------------------

    def lookup(self, group: str | None, row: int) -> Callable[[tuple[str, ...]], object]:
        ctx, effective, where, form_oid = self.ctx, self.effective, self.where, self.form.oid

        def resolve(parts: tuple[str, ...]) -> object:
            if len(parts) == 3 and parts[:2] == ("subject", "stratum"):
                return ctx.subject.get(f"stratum.{parts[2]}")
            if len(parts) == 2:
                space, name = parts
                if space == "subject":
                    return ctx.subject.get(name)
                if space == "anchor":
                    return ctx.anchors.get(name)
                if space == "param":
                    return ctx.params.get(name)
                if space != form_oid:
                    return ctx.other_forms.get((space, name))
                parts = (name,)
            owner = where.get(parts[0])
            if owner is None:
                return None
            return effective.get((owner.oid, row if owner.repeating else 1, parts[0]))

        return resolve

    def value(self, source: str, group: str | None, row: int) -> object:
        """The expression's value, or UNDECIDED when partial dates leave it open."""
        return evaluate_partial(source, self.lookup(group, row), self.ctx.today)

    def condition(self, source: str, group: str | None, row: int, *, undecided: bool) -> bool:
        try:
            value = self.value(source, group, row)
        except ExpressionError as exc:
            log.warning("condition %r failed on %s row %s: %s", source, self.form.oid, row, exc)
            return undecided
        if value is UNDECIDED:
            return undecided
        return value is True

    # --- steps ---------------------------------------------------------------------------

    def parse(self, raw: Mapping[Key, Raw]) -> None:
        codelists = self.ctx.codelists
        for key in self.keys:
            item = self.items[key[2]]
            given = raw.get(key)
            if item.type is ItemType.CALCULATED or is_blank_raw(given):
                continue
            try:
                value = parse_raw(item, given, codes_for(item, codelists), self.ctx.timezone)
            except InvalidValue as exc:
                self.result.error(key, exc.message)
                continue
            problem = _bounds_problem(item, value)
            if problem is not None:
                self.result.error(key, problem)
                continue
            self.parsed[key] = value

    def settle(self) -> None:
        """Visibility and calculated values, repeated until they stop changing."""
        calculated = [k for k in self.keys if self.items[k[2]].type is ItemType.CALCULATED]
        self.effective = dict(self.parsed)
        visible: set[Key] = set()
        for _round in range(len(self.keys) + 1):
            visible = {k for k in self.keys if self._shown(k)}
            effective = {k: v for k, v in self.parsed.items() if k in visible}
            for key in calculated:
                if key in visible:
                    effective[key] = self._calculate(key)
            if effective == self.effective:
                break
            self.effective = effective
        self.result.visible = visible

    def _shown(self, key: Key) -> bool:
        item = self.items[key[2]]
        if not item.show_if:
            return True
        group, row, _ = key
        # An undecidable condition shows the item: asking is safer than hiding.
        return self.condition(item.show_if, group, row, undecided=True)

    def _calculate(self, key: Key) -> object:
        item = self.items[key[2]]
        try:
            value = self.value(item.expression or "", key[0], key[1])
        except ExpressionError as exc:
            log.warning("calculation of %s.%s failed: %s", self.form.oid, item.oid, exc)
            return None
        if value is UNDECIDED:
            return None
        return _as_result_type(item, value)

    def finish(self, raw: Mapping[Key, Raw]) -> None:
        result, codelists = self.result, self.ctx.codelists
        for key in self.keys:
            item = self.items[key[2]]
            shown = key in result.visible
            given = raw.get(key)
            value = self.effective.get(key) if shown else None
            codes = codes_for(item, codelists)
            if item.type is ItemType.CALCULATED:
                computed = to_canonical(item, value, codes)
                entered = given.strip() if isinstance(given, str) else given
                if not is_blank_raw(given) and entered != computed:
                    result.error(key, Message(N_("%(label)s is calculated; it cannot be entered."),
                                              {"label": _name(item)}))
            elif not shown and not is_blank_raw(given):
                result.error(key, Message(
                    N_("%(label)s is not asked here: it only applies when %(condition)s. "
                       "Clear it."), {"label": _name(item), "condition": ConditionText(
                           item.show_if or "", self.form, codelists, self.ctx.forms)}))
            result.typed[key] = value
            result.canonical[key] = to_canonical(item, value, codes)
            if not shown or key in result.errors:
                continue
            if item.required or (item.required_if and self.condition(
                    item.required_if, key[0], key[1], undecided=False)):
                result.required.add(key)
                if value is None and item.type is not ItemType.CALCULATED:
                    result.missing.append(key)
            if value is not None and item.soft_range and item.is_numeric \
                    and not item.soft_range.contains(value):
                result.issues.append(Issue(
                    soft_range_id(item.oid), key[1] if self.where[item.oid].repeating else 0,
                    Severity.WARNING, _range_message(item, value, item.soft_range, soft=True),
                    (key,), key[0] if self.where[item.oid].repeating else None))
            if value is not None and item.lab is not None:
                grade = self._grade(key, item, value)
                if grade is not None:
                    result.grades[key] = grade

    def _grade(self, key: Key, item: ItemDef, value: object) -> LabGrade | None:
        lab = item.lab
        assert lab is not None
        limits = {}
        for name in ("lln", "uln"):
            source = getattr(lab, name)
            if source is None:
                continue
            try:
                limits[name] = self.value(source, key[0], key[1])
            except ExpressionError:
                limits[name] = None
            if limits[name] is UNDECIDED:
                limits[name] = None
        return grade_lab(lab.test, value, lab.unit or item.unit or "", **limits)

    def run_checks(self) -> None:
        for check in self.form.checks:
            if check.group:
                group = self.form.group(check.group)
                for row in self.result.rows[group.oid]:
                    self._check(check, group, row)
            else:
                self._check(check, None, 0)

    def _check(self, check: CheckDef, group: GroupDef | None, row: int) -> None:
        keys = self._check_keys(check, group, row)
        if any(k in self.result.errors for k in keys):
            return  # the field error already says what is wrong
        message = Message(check.message, {})
        try:
            value = self.value(check.expression, group.oid if group else None, row or 1)
        except ExpressionError as exc:
            value = False
            message = Message(N_("%(message)s (the check could not be evaluated: %(problem)s)"),
                              {"message": check.message, "problem": str(exc)})
        if value is True or value is None or value is UNDECIDED:
            return  # checks fire on values: a check left unknown by a blank passes
        self.result.issues.append(Issue(check.oid, row, check.severity, message, keys,
                                        group.oid if group else None))

    def _check_keys(self, check: CheckDef, group: GroupDef | None, row: int) -> tuple[Key, ...]:
        keys = []
        for parts in compile_cached(check.expression).references:
            name = parts[-1] if len(parts) == 2 and parts[0] == self.form.oid else parts[0]
            owner = self.where.get(name) if len(parts) == 1 or parts[0] == self.form.oid else None
            if owner is not None:
                keys.append((owner.oid, row if owner.repeating else 1, name))
        order = self.key_order
        return tuple(sorted(set(keys), key=lambda k: order.get(k, 0)))

    @cached_property
    def key_order(self) -> dict[Key, int]:
        """Display position of every key (built once: checks run once per row)."""
        return {k: i for i, k in enumerate(self.keys)}


def _bounds_problem(item: ItemDef, value) -> Message | None:
    if item.type is ItemType.TEXT and item.length is not None and len(value) > item.length:
        return Message(N_("At most %(n)s characters (you entered %(count)s)."),
                       {"n": item.length, "count": len(value)})
    if item.range is not None and item.is_numeric and not item.range.contains(value):
        return _range_message(item, value, item.range, soft=False)
    return None


def _range_message(item: ItemDef, value: object, bounds, *, soft: bool) -> Message:
    unit = f" {item.unit}" if item.unit else ""
    params = {"value": f"{value}{unit}", "min": f"{bounds.min}{unit}",
              "max": f"{bounds.max}{unit}", "label": _name(item)}
    if bounds.min is not None and bounds.max is not None:
        template = (N_("%(label)s %(value)s is outside the expected range %(min)s to %(max)s; "
                       "check it and confirm.") if soft else
                    N_("%(value)s is impossible: enter a value from %(min)s to %(max)s."))
    elif bounds.min is not None:
        template = (N_("%(label)s %(value)s is below the expected minimum %(min)s; check it "
                       "and confirm.") if soft else
                    N_("%(value)s is impossible: the minimum is %(min)s."))
    else:
        template = (N_("%(label)s %(value)s is above the expected maximum %(max)s; check it "
                       "and confirm.") if soft else
                    N_("%(value)s is impossible: the maximum is %(max)s."))
    return Message(template, params)


def _as_result_type(item: ItemDef, value: object) -> object:
    kind = item.result_type
    if value is None:
        return None
    if kind == "decimal" and isinstance(value, int | Decimal) and not isinstance(value, bool):
        number = Decimal(value)
        if item.precision is not None and -number.as_tuple().exponent > item.precision:
            number = number.quantize(Decimal(1).scaleb(-item.precision), rounding=ROUND_HALF_UP)
        return number
    if kind == "integer" and isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value
