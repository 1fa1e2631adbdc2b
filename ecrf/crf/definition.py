"""A loaded study definition: immutable, typed, and queried by the rest of the app.

Built by ``loader`` from validated content only, so nothing here re-checks what the
checker already guaranteed (every reference resolves, every expression type-checks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cached_property

from ecrf.domain.dates import Period
from ecrf.domain.expressions import ValueType
from ecrf.domain.schedule import EventRule, ScheduleDefinition
from ecrf.domain.subject_status import StatusRule, TaskRule

from .problems import UnknownOidError
from .scope import PARAMETER_VALUE_TYPES, ItemRef, Scope, value_type_of_item
from .source_map import SourceMap
from .sources import (  # noqa: F401  (part of the definition API)
    EPISODE_KINDS,
    SERIOUSNESS_CRITERIA,
    AdverseEventsDef,
    CountsSource,
    EpisodeSource,
    LabAnalyte,
    LabsDef,
    RecoveryEndpointsDef,
    SurvivalDef,
    lab_unit_key,
)

ItemKey = tuple[str, str]  # (form OID, item OID)
Labels = Mapping[str, str]


class ItemType(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"
    DATE = "date"
    PARTIAL_DATE = "partial_date"
    TIME = "time"
    DATETIME = "datetime"
    SINGLE_CHOICE = "single_choice"
    MULTIPLE_CHOICE = "multiple_choice"
    YES_NO = "yes_no"
    CALCULATED = "calculated"


class ParameterType(StrEnum):
    INTEGER = "integer"
    DECIMAL = "decimal"
    TEXT = "text"
    DATE = "date"
    BOOLEAN = "boolean"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class GroupLayout(StrEnum):
    STACK = "stack"  # one block of fields per row
    GRID = "grid"  # one table: a line per row, a column per item


class EscalationDesign(StrEnum):
    THREE_PLUS_THREE = "3+3"
    BOIN = "boin"


def _translated(default: str, labels: Labels, language: str | None) -> str:
    """The text in a language ("zh"), or in its language part for an interface locale
    ("zh_Hans", "zh-Hans"), else the default."""
    if language:
        for key in (language, language.replace("-", "_").split("_")[0]):
            if key in labels:
                return labels[key]
    return default


@dataclass(frozen=True)
class CodeListItem:
    code: str
    label: str
    labels: Labels = field(default_factory=dict)

    def label_in(self, language: str | None = None) -> str:
        return _translated(self.label, self.labels, language)


@dataclass(frozen=True)
class CodeList:
    oid: str
    items: tuple[CodeListItem, ...]

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(i.code for i in self.items)

    def label_of(self, code: str, language: str | None = None) -> str:
        for item in self.items:
            if item.code == code:
                return item.label_in(language)
        raise UnknownOidError(f"code in code list {self.oid}", code)


NY = CodeList("NY", (
    CodeListItem("Y", "Yes", {"fr": "Oui", "zh": "是"}),
    CodeListItem("N", "No", {"fr": "Non", "zh": "否"}),
))


@dataclass(frozen=True)
class Range:
    """Inclusive bounds; either side may be open."""

    min: Decimal | None = None
    max: Decimal | None = None

    def contains(self, value: Decimal | int) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


@dataclass(frozen=True)
class LabSpec:
    """CTCAE grading of a numeric item; ``lln``/``uln`` are expression sources or None."""

    test: str
    unit: str
    lln: str | None = None
    uln: str | None = None


@dataclass(frozen=True)
class ItemDef:
    oid: str
    label: str
    type: ItemType
    form: str
    group: str
    repeating: bool = False
    labels: Labels = field(default_factory=dict)
    codelist: str | None = None
    choices: CodeList | None = None  # inline choices, as a code list named FORM.ITEM
    unit: str | None = None
    precision: int | None = None
    range: Range | None = None
    soft_range: Range | None = None
    length: int | None = None
    required: bool = False
    required_if: str | None = None
    show_if: str | None = None
    expression: str | None = None
    result_type: str | None = None
    help: str | None = None
    help_labels: Labels = field(default_factory=dict)
    sdtm: str | None = None
    critical: bool = False
    lab: LabSpec | None = None
    system: str | None = None  # written by the system: randomization | dose_level | enrolment

    @property
    def value_type(self) -> ValueType:
        value_type = value_type_of_item(self.type, self.result_type)
        assert value_type is not None, "validated by the checker"
        return value_type

    @property
    def is_numeric(self) -> bool:
        return self.value_type in (ValueType.INTEGER, ValueType.DECIMAL)

    def label_in(self, language: str | None = None) -> str:
        return _translated(self.label, self.labels, language)


@dataclass(frozen=True)
class PlannedDays:
    """Rows planned one per study day: the row of day ``d`` (``first`` to ``last``) has
    ``date`` = the anchor's date + (d - 1) days (day 1 is the anchor's day)."""

    date: str  # a date item of the group
    anchor: str
    first: int
    last: int

    def dates(self, day1: date) -> dict[int, date]:
        """Study day -> its date, for an anchor on ``day1``."""
        return {d: day1 + timedelta(days=d - 1) for d in range(self.first, self.last + 1)}


@dataclass(frozen=True)
class GroupDef:
    oid: str
    items: tuple[ItemDef, ...]
    label: str | None = None
    labels: Labels = field(default_factory=dict)
    repeating: bool = False
    min_rows: int | None = None
    max_rows: int | None = None
    layout: GroupLayout = GroupLayout.STACK
    row_label: str | None = None  # grid: the item that names each line (a date, a day)
    planned_days: PlannedDays | None = None  # grid: lines offered one per study day

    @property
    def is_grid(self) -> bool:
        return self.layout is GroupLayout.GRID

    def label_in(self, language: str | None = None) -> str | None:
        return _translated(self.label, self.labels, language) if self.label else None


@dataclass(frozen=True)
class CheckDef:
    oid: str
    expression: str
    message: str
    severity: Severity = Severity.ERROR
    message_labels: Labels = field(default_factory=dict)
    group: str | None = None  # evaluated once per row of this repeating group

    def message_in(self, language: str | None = None) -> str:
        return _translated(self.message, self.message_labels, language)


@dataclass(frozen=True)
class FormDef:
    oid: str
    name: str
    groups: tuple[GroupDef, ...]
    labels: Labels = field(default_factory=dict)
    description: str | None = None
    sdtm_domain: str | None = None
    checks: tuple[CheckDef, ...] = ()

    @property
    def items(self) -> tuple[ItemDef, ...]:
        """Every item of the form, in the order they are shown."""
        return tuple(item for group in self.groups for item in group.items)

    def item(self, oid: str) -> ItemDef:
        for item in self.items:
            if item.oid == oid:
                return item
        raise UnknownOidError(f"item of form {self.oid}", oid)

    def group(self, oid: str) -> GroupDef:
        for group in self.groups:
            if group.oid == oid:
                return group
        raise UnknownOidError(f"group of form {self.oid}", oid)

    def name_in(self, language: str | None = None) -> str:
        return _translated(self.name, self.labels, language)


ParameterValue = int | Decimal | str | date | bool | None


@dataclass(frozen=True)
class Parameter:
    name: str
    type: ParameterType
    default: ParameterValue = None
    unit: str | None = None
    description: str | None = None

    @property
    def value_type(self) -> ValueType:
        return PARAMETER_VALUE_TYPES[self.type]


@dataclass(frozen=True)
class Arm:
    code: str
    name: str
    ratio: int = 1
    labels: Labels = field(default_factory=dict)
    description: str | None = None


@dataclass(frozen=True)
class StratumDef:
    name: str
    form: str
    item: str


@dataclass(frozen=True)
class RandomizationDef:
    block_sizes: tuple[int, ...]
    strata: tuple[StratumDef, ...] = ()
    eligibility: ItemKey | None = None
    date_item: ItemKey | None = None
    number_item: ItemKey | None = None  # where the allocation's sequence number is written


@dataclass(frozen=True)
class DoseLevel:
    level: int
    label: str
    dose: str | None = None
    labels: Labels = field(default_factory=dict)


@dataclass(frozen=True)
class EscalationDef:
    design: EscalationDesign
    dlt_window: Period
    dlt_anchor: str
    levels: tuple[DoseLevel, ...]
    target_dlt_rate: Decimal | None = None  # BOIN only
    start_level: int = 1
    cohort_size: int = 3
    max_subjects: int | None = None
    # Yes/no items that record the DLT assessment: a DLT observed, the full dose received,
    # and the investigator's evaluability ("N": the subject is replaced).
    dlt_item: ItemKey | None = None
    full_dose_item: ItemKey | None = None
    evaluable_item: ItemKey | None = None
    # The study drug (a key of ``adverse_events.causality``) whose investigator causality
    # decides whether an AE is a DLT candidate; None: the AE log is not screened for DLTs.
    dlt_drug: str | None = None

    def level(self, number: int) -> DoseLevel:
        for level in self.levels:
            if level.level == number:
                return level
        raise UnknownOidError("dose level", str(number))


@dataclass(frozen=True)
class StudyDefinition:
    oid: str
    name: str
    schedule: ScheduleDefinition
    forms: Mapping[str, FormDef]
    codelists: Mapping[str, CodeList]  # declared lists plus the built-in NY
    anchors: Mapping[str, ItemKey]  # anchor name -> (form, item); enrolment is implicit
    title: str | None = None
    protocol_id: str | None = None
    sponsor: str | None = None
    protocol_version: str | None = None
    labels: Labels = field(default_factory=dict)
    languages: tuple[str, ...] = ("en",)
    parameters: Mapping[str, Parameter] = field(default_factory=dict)
    arms: tuple[Arm, ...] = ()
    study_end: str | None = None  # expression giving the end of follow-up
    event_date_items: Mapping[str, ItemKey] = field(default_factory=dict)
    randomization: RandomizationDef | None = None
    dose_escalation: EscalationDef | None = None
    recovery_endpoints: RecoveryEndpointsDef | None = None
    adverse_events: AdverseEventsDef | None = None
    survival: SurvivalDef | None = None
    labs: LabsDef | None = None  # laboratory results imported from hospital files
    # Subject status rules in precedence order, and the entries the data asks for.
    status_rules: tuple[StatusRule, ...] = ()
    tasks: tuple[TaskRule, ...] = ()
    event_labels: Mapping[str, Labels] = field(default_factory=dict)  # event OID -> labels
    # Source OID -> ecrf OID of a study imported from another system (source_map.yaml).
    source_map: SourceMap = field(default_factory=SourceMap)

    # --- lookups -------------------------------------------------------------------------

    def form(self, oid: str) -> FormDef:
        try:
            return self.forms[oid]
        except KeyError:
            raise UnknownOidError("form", oid) from None

    def event(self, oid: str) -> EventRule:
        for rule in self.schedule.events:
            if rule.oid == oid:
                return rule
        raise UnknownOidError("event", oid)

    def event_name_in(self, oid: str, language: str | None = None) -> str:
        return _translated(self.event(oid).name, self.event_labels.get(oid, {}), language)

    @property
    def events(self) -> tuple[EventRule, ...]:
        return self.schedule.events

    def item(self, form_oid: str, item_oid: str) -> ItemDef:
        return self.form(form_oid).item(item_oid)

    def items_of(self, form: str | FormDef) -> tuple[ItemDef, ...]:
        return (self.form(form) if isinstance(form, str) else form).items

    def codelist(self, oid: str) -> CodeList:
        try:
            return self.codelists[oid]
        except KeyError:
            raise UnknownOidError("code list", oid) from None

    def choices_of(self, form_oid: str, item_oid: str) -> CodeList | None:
        """The codes an item accepts: its code list, its inline choices, or NY for yes/no."""
        item = self.item(form_oid, item_oid)
        if item.type is ItemType.YES_NO:
            return self.codelist("NY")
        if item.choices is not None:
            return item.choices
        return self.codelist(item.codelist) if item.codelist else None

    def arm(self, code: str) -> Arm:
        for arm in self.arms:
            if arm.code == code:
                return arm
        raise UnknownOidError("arm", code)

    def parameter(self, name: str) -> Parameter:
        try:
            return self.parameters[name]
        except KeyError:
            raise UnknownOidError("parameter", name) from None

    def parameter_values(self, overrides: Mapping[str, ParameterValue] | None = None
                         ) -> dict[str, ParameterValue]:
        """Every parameter's value: its default unless ``overrides`` sets it."""
        values = {name: p.default for name, p in self.parameters.items()}
        for name, value in (overrides or {}).items():
            self.parameter(name)
            values[name] = value
        return values

    def forms_of_event(self, event_oid: str) -> tuple[FormDef, ...]:
        return tuple(self.form(oid) for oid in self.event(event_oid).forms)

    def events_with_form(self, form_oid: str) -> tuple[EventRule, ...]:
        return tuple(rule for rule in self.schedule.events if form_oid in rule.forms)

    def iter_items(self) -> Iterator[ItemDef]:
        for form in self.forms.values():
            yield from form.items

    # --- values the system writes ----------------------------------------------------------

    @cached_property
    def system_items(self) -> Mapping[ItemKey, str]:
        """Items written by the system, never typed in: (form, item) -> source.

        ``randomization.number_item`` and ``date_item`` are the randomization's without
        saying so; any other item says ``system:`` (``dose_level``, ``enrolment``, ...).
        """
        found: dict[ItemKey, str] = {(i.form, i.oid): i.system
                                     for i in self.iter_items() if i.system}
        rand = self.randomization
        if rand is not None:
            for key in (rand.number_item, rand.date_item):
                if key is not None:
                    found.setdefault(key, "randomization")
        return found

    @cached_property
    def allocation_items(self) -> frozenset[ItemKey]:
        """Items holding the date a subject was randomized: the item of the anchor named
        ``randomization``, the randomization's ``date_item`` and any anchor the
        randomization writes (none in a study without arms).

        Only a subject with an allocation in force may hold a value there: the earliest
        value in the study is ``study.first.randomization``, which can set dates of every
        subject (DEXAML-03 ends follow-up 60 months after it).
        """
        if not self.arms:
            return frozenset()
        keys = {key for name, key in self.anchors.items()
                if name == "randomization" or self.system_items.get(key) == "randomization"}
        rand = self.randomization
        if rand is not None and rand.date_item is not None:
            keys.add(rand.date_item)
        return frozenset(keys)

    @cached_property
    def strata_items(self) -> Mapping[ItemKey, str]:
        """Stratification items of the randomization: (form, item) -> stratum name."""
        rand = self.randomization
        return {(s.form, s.item): s.name for s in rand.strata} if rand else {}

    # --- expression context --------------------------------------------------------------

    @cached_property
    def scope(self) -> Scope:
        items = {
            form.oid: {
                item.oid: ItemRef(form.oid, item.oid, item.value_type, item.group, item.repeating)
                for item in form.items
            }
            for form in self.forms.values()
        }
        params = {name: p.value_type for name, p in self.parameters.items()}
        strata = [s.name for s in self.randomization.strata] if self.randomization else []
        return Scope(items, self.anchors, params, strata=strata)

    def form_type_of(self, form_oid: str, group_oid: str | None = None
                     ) -> Callable[[tuple[str, ...]], ValueType | None]:
        """``type_of`` for expressions of a form; pass the group for per-row expressions."""
        self.form(form_oid)
        return self.scope.type_of(form_oid, group_oid)

    def schedule_type_of(self) -> Callable[[tuple[str, ...]], ValueType | None]:
        """``type_of`` for event conditions, ``until`` and the study end."""
        return self.scope.type_of(None, None)
