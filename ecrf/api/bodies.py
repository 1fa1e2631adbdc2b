"""Reading JSON request bodies of writes: known fields only, typed, bounded; each problem
a 422 naming the field (``errors`` map), as in the review module."""

from __future__ import annotations

import datetime as dt

from flask import request
from flask_babel import gettext as _

from ecrf.api.common import json_body, json_kind
from ecrf.api.errors import ApiProblem


def invalid(where: str, message: str) -> ApiProblem:
    return ApiProblem(422, _("Nothing was done: %(problem)s", problem=message),
                      errors={where: [message]})


def body_of(allowed: set[str], *, optional: bool = False) -> dict:
    """The JSON object sent, refused (422) if it has a field not in ``allowed``; ``{}``
    when ``optional`` and no body is sent at all."""
    if optional and not request.content_length and not request.mimetype:
        return {}
    data = json_body()
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiProblem(422, _("Unknown field(s): %(names)s; the fields are: %(allowed)s.",
                                names=", ".join(n[:40] for n in unknown[:5]),
                                allowed=", ".join(sorted(allowed)) or _("none")),
                         errors={n[:40]: [_("Unknown field.")] for n in unknown[:20]})
    return data


def no_nul(where: str, text: str) -> str:
    """``text``, refused (400) when it holds a NUL character (no database stores one)."""
    if "\x00" in text:
        raise ApiProblem(400, _("'%(field)s' contains a NUL character.", field=where))
    return text


def text_field(data: dict, name: str, limit: int) -> str | None:
    """A string field (None when absent or null), refused if longer than ``limit``."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(name, _("'%(field)s' must be a string, not %(kind)s.", field=name,
                              kind=json_kind(value)))
    no_nul(name, value)
    if len(value.strip()) > limit:
        raise invalid(name, _("'%(field)s' is %(n)s characters long; at most %(limit)s "
                              "are allowed.", field=name, n=len(value.strip()), limit=limit))
    return value


def date_field(data: dict, name: str) -> dt.date | None:
    """A date as YYYY-MM-DD (None when absent, null or blank)."""
    text = text_field(data, name, 40)
    if text is None or not text.strip():
        return None
    try:
        if len(text.strip()) != 10:
            raise ValueError
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise invalid(name, _("Enter the date as YYYY-MM-DD (you entered '%(value)s').",
                              value=text[:40])) from None


def flag_field(data: dict, name: str, default: bool = False) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise invalid(name, _("'%(field)s' must be true or false, not %(kind)s.",
                              field=name, kind=json_kind(value)))
    return value
