"""One item value: raw input -> typed value -> canonical text, and back.

Canonical text is what ``ItemValue.value`` stores and the audit trail shows: ``"72.5"``,
``"2024-03"``, ``"Y"``, ``'["ASIAN","WHITE"]'``, ``"2024-03-15T14:05+01:00"``. It is parsed
back with ``from_canonical``. Pure: no Flask, no SQLAlchemy. Messages are ``Message``
objects (an English template plus parameters) that the web layer translates.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from ecrf.domain.dates import PartialDate, PartialDateError

from .definition import CodeList, ItemDef, ItemType

Raw = str | Sequence[str] | None


def N_(text: str) -> str:
    """Marks a message template for translation; translated when rendered."""
    return text


@dataclass(frozen=True)
class Message:
    """A user-facing message: an English template with named parameters.

    Kept untranslated so that pure code needs no Flask; ``render(gettext)`` translates the
    template first and then fills in the parameters (which are data, never translated).
    """

    template: str
    params: Mapping[str, object] = field(default_factory=dict)

    def render(self, gettext=None, reader=None) -> str:
        """``reader`` (an ``ecrf.crf.naming.Reader``): parameters that name study parts
        (items, forms, conditions) are said in its language, with OIDs if it asks."""
        if reader is not None and gettext is None:
            gettext = reader.gettext
        template = gettext(self.template) if gettext else self.template
        if not self.params:
            return template
        params = {k: v.text_in(reader) if reader is not None and hasattr(v, "text_in") else v
                  for k, v in self.params.items()}
        return template % params

    def __str__(self) -> str:
        return self.render()

    def text_in(self, reader) -> str:
        """A message as the parameter of another, said for the same reader."""
        return self.render(reader=reader)


class InvalidValue(ValueError):
    """Internal: a raw value that cannot be read; carries the message."""

    def __init__(self, message: Message):
        super().__init__(str(message))
        self.message = message


def _fail(template: str, **params) -> InvalidValue:
    return InvalidValue(Message(template, params))


_INT_RE = re.compile(r"[+-]?[0-9]+")
_DEC_RE = re.compile(r"[+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)")
_TIME_RE = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME_RE = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}:[0-9]{2}(?::[0-9]{2})?)(Z|[+-][0-9]{2}:[0-9]{2})?")
MAX_DIGITS = 18  # integer digits accepted; Numeric(28, 10) holds them exactly


def is_blank_raw(raw: Raw) -> bool:
    if raw is None:
        return True
    if isinstance(raw, str):
        return not raw.strip()
    return not any(isinstance(v, str) and v.strip() for v in raw)


def _single(raw: Raw) -> str:
    if isinstance(raw, str):
        return raw.strip()
    values = [v.strip() for v in raw or () if isinstance(v, str) and v.strip()]
    if len(values) > 1:
        raise _fail(N_("Give a single value, not %(n)s."), n=len(values))
    return values[0] if values else ""


def parse_raw(item: ItemDef, raw: Raw, codes: CodeList | None, tz: str = "UTC") -> object:
    """The typed value of a non-blank raw input; raises InvalidValue with a clear message."""
    kind = item.type
    if kind is ItemType.MULTIPLE_CHOICE:
        return _parse_multi(raw, codes)
    text = _single(raw)
    if kind is ItemType.TEXT:
        return text.replace("\r\n", "\n")
    if kind is ItemType.INTEGER:
        return _parse_integer(text)
    if kind is ItemType.DECIMAL:
        return _parse_decimal(text, item.precision)
    if kind is ItemType.DATE:
        return _parse_date(text)
    if kind is ItemType.PARTIAL_DATE:
        return _parse_partial(text)
    if kind is ItemType.TIME:
        return _parse_time(text)
    if kind is ItemType.DATETIME:
        return _parse_datetime(text, tz)
    if kind in (ItemType.SINGLE_CHOICE, ItemType.YES_NO):
        if codes is None or text not in codes.codes:
            allowed = ", ".join(codes.codes) if codes else ""
            raise _fail(N_("'%(value)s' is not one of the choices (%(allowed)s)."),
                        value=text[:40], allowed=allowed)
        return text
    raise _fail(N_("This value is calculated and cannot be entered."))


def _parse_integer(text: str) -> int:
    if not _INT_RE.fullmatch(text):
        raise _fail(N_("Enter a whole number, such as 42 (you entered '%(value)s')."),
                    value=text[:40])
    if len(text.lstrip("+-")) > MAX_DIGITS:
        raise _fail(N_("This number is too long (at most %(n)s digits)."), n=MAX_DIGITS)
    return int(text)


def _parse_decimal(text: str, precision: int | None) -> Decimal:
    if not _DEC_RE.fullmatch(text) or text.count(",") + text.count(".") > 1:
        raise _fail(N_("Enter a number, such as 72.5 (you entered '%(value)s')."),
                    value=text[:40])
    number = Decimal(text.replace(",", "."))
    places = max(0, -number.as_tuple().exponent)  # type: ignore[operator]
    if precision is not None and places > precision:
        if precision == 0:
            raise _fail(N_("Enter a whole number (no decimal places)."))
        raise _fail(N_("At most %(n)s decimal place(s) are allowed (you entered %(value)s)."),
                    n=precision, value=text[:40])
    if len(number.as_tuple().digits) - places > MAX_DIGITS:
        raise _fail(N_("This number is too long (at most %(n)s digits)."), n=MAX_DIGITS)
    return number


def _parse_date(text: str) -> dt.date:
    if not _DATE_RE.fullmatch(text):
        raise _fail(N_("Enter the date as YYYY-MM-DD (you entered '%(value)s')."),
                    value=text[:40])
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise _fail(N_("%(value)s is not a real date."), value=text) from None


def _parse_partial(text: str) -> PartialDate:
    try:
        return PartialDate.parse(text)
    except PartialDateError as exc:
        raise _fail(N_("Not a valid date: %(problem)s."), problem=str(exc)) from None


def _parse_time(text: str) -> dt.time:
    match = _TIME_RE.fullmatch(text)
    if match is None:
        raise _fail(N_("Enter the time as HH:MM, 24-hour clock (you entered '%(value)s')."),
                    value=text[:40])
    hour, minute, second = match.groups()
    return dt.time(int(hour), int(minute), int(second or 0))


def _parse_datetime(text: str, tz: str) -> dt.datetime:
    match = _DATETIME_RE.fullmatch(text)
    if match is None:
        raise _fail(N_("Enter the date and time as YYYY-MM-DD HH:MM (you entered "
                       "'%(value)s')."), value=text[:40])
    day_text, time_text, offset = match.groups()
    day = _parse_date(day_text)
    clock = _parse_time(time_text)
    naive = dt.datetime.combine(day, clock)
    if offset:
        return dt.datetime.fromisoformat(f"{day_text}T{time_text}{offset.replace('Z', '+00:00')}")
    zone = ZoneInfo(tz)
    local = naive.replace(tzinfo=zone)
    # A wall time skipped by a clock change does not survive the round trip through UTC.
    if local.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise _fail(N_("%(value)s does not exist in %(tz)s (the clocks changed)."),
                    value=text, tz=tz)
    return local


def _parse_multi(raw: Raw, codes: CodeList | None) -> frozenset[str]:
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                values = json.loads(text)
            except ValueError:
                raise _fail(N_("Choose one or more of the options.")) from None
        else:
            values = [part for part in text.split(",")]
    else:
        values = list(raw or ())
    chosen = [v.strip() for v in values if isinstance(v, str) and v.strip()]
    allowed = codes.codes if codes else ()
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        raise _fail(N_("'%(value)s' is not one of the choices (%(allowed)s)."),
                    value=unknown[0][:40], allowed=", ".join(allowed))
    return frozenset(chosen)


# --- canonical text ------------------------------------------------------------------------

def _datetime_text(value: dt.datetime) -> str:
    text = value.isoformat(timespec="seconds" if value.second else "minutes")
    return text.replace("+00:00", "Z") if value.utcoffset() == dt.timedelta(0) else text


def to_canonical(item: ItemDef, value: object, codes: CodeList | None = None) -> str | None:
    """Canonical text of a typed value (None for blank)."""
    if value is None or value == "" or value == frozenset():
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, frozenset):
        order = {code: i for i, code in enumerate(codes.codes)} if codes else {}
        ordered = sorted(value, key=lambda c: (order.get(c, len(order)), c))
        return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, Decimal):
        if item.precision is not None:
            value = value.quantize(Decimal(1).scaleb(-item.precision), rounding=ROUND_HALF_UP) \
                if _places(value) > item.precision else value
        text = format(value, "f")
        return "0" if text in ("-0", "+0") else text
    if isinstance(value, dt.datetime):
        return _datetime_text(value)
    if isinstance(value, dt.time):
        return value.isoformat(timespec="seconds" if value.second else "minutes")
    if isinstance(value, dt.date | PartialDate):
        return value.isoformat()
    return str(value)


def _places(value: Decimal) -> int:
    return max(0, -value.as_tuple().exponent)  # type: ignore[operator]


def result_kind(item: ItemDef) -> str:
    """The type a stored value of the item is read as: its type, or its result type."""
    if item.type is ItemType.CALCULATED:
        return item.result_type or "text"
    return item.type.value


def from_canonical(item: ItemDef, text: str | None) -> object:
    """The typed value of stored canonical text (None for blank)."""
    if text is None or text == "":
        return None
    kind = result_kind(item)
    try:
        if kind == "integer":
            return int(text)
        if kind == "decimal":
            return Decimal(text)
        if kind == "date":
            return dt.date.fromisoformat(text)
        if kind == "partial_date":
            return PartialDate.parse(text)
        if kind == "time":
            return dt.time.fromisoformat(text)
        if kind == "datetime":
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if kind == "boolean":
            return text == "true"
        if kind == "multiple_choice":
            return frozenset(json.loads(text))
    except (ValueError, InvalidOperation, PartialDateError):
        return None  # stored under another definition: shown as text, never guessed
    return text


@dataclass(frozen=True)
class Shadows:
    """Typed copies kept beside the canonical text for queries and exports."""

    number: Decimal | None = None
    date: dt.date | None = None
    datetime: dt.datetime | None = None


def shadows_of(value: object) -> Shadows:
    if isinstance(value, bool) or value is None:
        return Shadows()
    if isinstance(value, int | Decimal):
        return Shadows(number=Decimal(value))
    if isinstance(value, dt.datetime):
        return Shadows(datetime=value.astimezone(dt.UTC), date=value.date())
    if isinstance(value, dt.date):
        return Shadows(date=value)
    if isinstance(value, PartialDate) and value.is_complete:
        return Shadows(date=value.to_date())
    return Shadows()


def display(item: ItemDef, text: str | None, codes: CodeList | None = None,
            language: str | None = None) -> str:
    """Canonical text as a person reads it: choice labels, units, partial dates."""
    if text is None:
        return ""
    if item.type in (ItemType.SINGLE_CHOICE, ItemType.YES_NO) and codes is not None:
        return _label(codes, text, language)
    if item.type is ItemType.MULTIPLE_CHOICE and codes is not None:
        try:
            chosen = json.loads(text)
        except ValueError:
            return text
        return "; ".join(_label(codes, code, language) for code in chosen)
    if item.unit and item.is_numeric:
        return f"{text} {item.unit}"
    return text


def _label(codes: CodeList, code: str, language: str | None) -> str:
    for choice in codes.items:
        if choice.code == code:
            return f"{choice.label_in(language)} ({code})"
    return code
