"""A registry of field types: WTForms fields built at runtime from item definitions.

One entry per ``ItemType`` says how to build the field, which template widget renders it,
and how to read the raw submitted value back. Values are never converted here: the raw
text goes to ``crf.validation``, which alone decides what is valid, so the browser, the
API and the tests all get the same answers.

Field names are ``GROUP-ROW-ITEM`` (OIDs never contain ``-``), so one page can hold many
rows of a repeating group.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from wtforms import Field, RadioField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.fields.core import UnboundField
from wtforms.form import BaseForm
from wtforms.utils import unset_value
from wtforms.widgets import CheckboxInput, ListWidget

from .definition import CodeList, ItemDef, ItemType
from .validation import Key, codes_for
from .values import Raw

UNKNOWN = "UK"
LONG_TEXT = 200  # longer texts get a text area


def field_name(key: Key) -> str:
    group, row, item = key
    return f"{group}-{row}-{item}"


class PartialDateField(Field):
    """A date known to the year, month or day: three inputs, the user says which parts are
    unknown. Submits ``NAME-y``, ``NAME-m``, ``NAME-d``; ``data`` is ``2024``, ``2024-03``
    or ``2024-03-15`` (or blank), handed to validation unchanged."""

    PARTS = ("y", "m", "d")

    def process(self, formdata, data=unset_value, extra_filters=None):
        self.process_errors = []
        self.raw_data = []
        names = [f"{self.name}-{p}" for p in self.PARTS]
        if formdata is not None and any(n in formdata for n in names):
            self.year, self.month, self.day = (formdata.get(n, "").strip() for n in names)
            try:
                self.data = compose_partial(self.year, self.month, self.day)
            except ValueError as exc:
                self.data = None
                self.process_errors.append(exc.args[0])
            return
        value = "" if data is unset_value or data is None else str(data)
        self.data = value
        self.year, self.month, self.day = split_partial(value)

    def _value(self) -> str:
        return self.data or ""


def compose_partial(year: str, month: str, day: str) -> str:
    """The ISO 8601 truncated text of the three parts; ValueError names what is missing."""
    if not year and month in ("", UNKNOWN) and day in ("", UNKNOWN):
        return ""
    if not year:
        raise ValueError(_l("Enter the year: a date needs at least its year."))
    if not (len(year) == 4 and year.isdigit()):
        raise ValueError(_l("The year has four digits, such as 2024."))
    if month == "":
        raise ValueError(_l("Choose the month, or Unknown."))
    if month == UNKNOWN:
        if day not in ("", UNKNOWN):
            raise ValueError(_l("A day without a month is not a date: choose the month."))
        return year
    if day == "":
        raise ValueError(_l("Choose the day, or Unknown."))
    if day == UNKNOWN:
        return f"{year}-{month}"
    return f"{year}-{month}-{day}"


def split_partial(text: str) -> tuple[str, str, str]:
    parts = (text or "").split("-")
    if not text:
        return "", "", ""
    year = parts[0]
    month = parts[1] if len(parts) > 1 else UNKNOWN
    day = parts[2] if len(parts) > 2 else UNKNOWN
    return year, month, day


@dataclass(frozen=True)
class BuildSpec:
    label: str
    codes: CodeList | None
    language: str | None


@dataclass(frozen=True)
class FieldType:
    """How one item type becomes a form field.

    ``widget`` names the macro of templates/entry/_fields.html that renders it; ``make``
    returns the unbound field (None: nothing to submit, e.g. a calculated item);
    ``raw`` reads the submitted value from the bound field; ``initial`` turns stored
    canonical text into the field's data.
    """

    widget: str
    make: Callable[[ItemDef, BuildSpec], UnboundField | None]
    raw: Callable[[Field], Raw] = lambda field: field.data
    initial: Callable[[ItemDef, str | None], object] = lambda item, text: text


def _choices(spec: BuildSpec) -> list[SelectChoice]:
    return [SelectChoice(c.code, c.label_in(spec.language))
            for c in (spec.codes.items if spec.codes else ())]


def _text(item: ItemDef, spec: BuildSpec) -> UnboundField:
    attrs = {"maxlength": item.length} if item.length else {}
    if item.length is None or item.length > LONG_TEXT:
        return TextAreaField(spec.label, render_kw={**attrs, "rows": 3})
    return StringField(spec.label, render_kw={**attrs, "autocomplete": "off"})


def _typed_input(html_type: str, **attrs) -> Callable[[ItemDef, BuildSpec], UnboundField]:
    def make(item: ItemDef, spec: BuildSpec) -> UnboundField:
        # Numbers stay text inputs: a number input would silently drop "72,5" or "12a"
        # instead of letting the server say what is wrong with it.
        return StringField(spec.label, render_kw={"type": html_type, "autocomplete": "off",
                                                  **attrs})
    return make


def _radios(item: ItemDef, spec: BuildSpec) -> UnboundField:
    # The empty choice lets a keyboard or mouse user take an answer back.
    return RadioField(spec.label, choices=[*_choices(spec), SelectChoice("", _l("No answer"))],
                      validate_choice=False, coerce=str)


def _select(item: ItemDef, spec: BuildSpec) -> UnboundField:
    return SelectField(spec.label, choices=[SelectChoice("", _l("(choose)")), *_choices(spec)],
                       validate_choice=False, coerce=str)


def _single_choice(item: ItemDef, spec: BuildSpec) -> UnboundField:
    many = spec.codes is not None and len(spec.codes.items) > 5
    return _select(item, spec) if many else _radios(item, spec)


def _checkboxes(item: ItemDef, spec: BuildSpec) -> UnboundField:
    return SelectMultipleField(spec.label, choices=_choices(spec), validate_choice=False,
                               coerce=str, widget=ListWidget(prefix_label=False),
                               option_widget=CheckboxInput())


def _multi_initial(item: ItemDef, text: str | None) -> list[str]:
    try:
        return list(json.loads(text)) if text else []
    except ValueError:
        return []


REGISTRY: dict[ItemType, FieldType] = {}


def register(item_type: ItemType, field_type: FieldType) -> None:
    REGISTRY[item_type] = field_type


register(ItemType.TEXT, FieldType("input", _text))
register(ItemType.INTEGER, FieldType("input", _typed_input("text", inputmode="numeric")))
register(ItemType.DECIMAL, FieldType("input", _typed_input("text", inputmode="decimal")))
register(ItemType.DATE, FieldType("input", _typed_input("date")))
register(ItemType.TIME, FieldType("input", _typed_input("time")))
register(ItemType.DATETIME, FieldType(
    "input", _typed_input("datetime-local"),
    # The stored text carries the zone offset; the input shows the wall-clock time.
    initial=lambda item, text: text[:16] if text else text))
register(ItemType.PARTIAL_DATE, FieldType(
    "partial_date", lambda item, spec: PartialDateField(spec.label)))
register(ItemType.SINGLE_CHOICE, FieldType("choice", _single_choice))
register(ItemType.YES_NO, FieldType("choice", _radios))
register(ItemType.MULTIPLE_CHOICE, FieldType("checkboxes", _checkboxes, initial=_multi_initial))
register(ItemType.CALCULATED, FieldType("calculated", lambda item, spec: None))


def build_form(items: Mapping[Key, ItemDef], codelists: Mapping[str, CodeList],
               language: str | None) -> BaseForm:
    """An unprocessed WTForms form holding one field per (group, row, item) to enter."""
    fields = []
    for key, item in items.items():
        spec = BuildSpec(item.label_in(language), codes_for(item, codelists), language)
        unbound = REGISTRY[item.type].make(item, spec)
        if unbound is not None:
            fields.append((field_name(key), unbound))
    return BaseForm(fields)


def initial_data(items: Mapping[Key, ItemDef], values: Mapping[Key, str | None]) -> dict:
    return {field_name(key): REGISTRY[item.type].initial(item, values.get(key))
            for key, item in items.items()}


def read_raw(form: BaseForm, items: Mapping[Key, ItemDef]
             ) -> tuple[dict[Key, Raw], dict[Key, list[str]]]:
    """Raw submitted values, and problems found while reading them (partial dates)."""
    values: dict[Key, Raw] = {}
    problems: dict[Key, list[str]] = {}
    for key, item in items.items():
        name = field_name(key)
        if name not in form:
            continue
        field = form[name]
        if field.process_errors:
            problems[key] = [str(e) for e in field.process_errors]
            continue
        raw = REGISTRY[item.type].raw(field)
        if raw not in (None, "", []):
            values[key] = raw
    return values, problems
