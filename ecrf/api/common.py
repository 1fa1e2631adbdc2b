"""Helpers shared by the API modules: JSON bodies, query arguments, times, subjects."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import g, request
from flask_babel import gettext as _
from flask_login import current_user

from ecrf import capture
from ecrf.api.errors import ApiProblem
from ecrf.capture import Subject
from ecrf.core import db
from ecrf.studies import StudyVersion

MAX_PER_PAGE = 500
MAX_AUDIT_LIMIT = 5000


def iso(value: dt.datetime | dt.date | None) -> str | None:
    """ISO 8601; points in time in UTC with a Z."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def version_json(version: StudyVersion | None) -> dict | None:
    if version is None:
        return None
    return {"number": version.number, "label": version.label,
            "protocol_version": version.protocol_version,
            "content_hash": version.content_hash, "loaded_at": iso(version.loaded_at)}


def json_body() -> dict:
    """The request's JSON object. Decimals stay exact (parsed as Decimal, never float)."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiProblem(415, _("Send the body as JSON with 'Content-Type: application/json' "
                                "(got '%(type)s').", type=mimetype or _("none")))
    raw = request.get_data(cache=False)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiProblem(400, _("The body is not UTF-8 text (byte %(pos)s).",
                                pos=exc.start)) from None
    if not text.strip():
        raise ApiProblem(400, _("The body is empty: send a JSON object."))
    try:
        data = json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ApiProblem(400, _("The body is not valid JSON: %(problem)s.",
                                problem=str(exc))) from None
    if not isinstance(data, dict):
        raise ApiProblem(400, _("The body must be a JSON object, not %(kind)s.",
                                kind=json_kind(data)))
    return data


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def int_arg(name: str, default: int, *, minimum: int = 1, maximum: int | None = None) -> int:
    text = request.args.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < minimum or (maximum is not None and int(text) > maximum):
        bound = _("from %(min)s to %(max)s", min=minimum, max=maximum) if maximum is not None \
            else _("%(min)s or more", min=minimum)
        raise ApiProblem(400, _("The query argument '%(name)s' must be a whole number %(bound)s "
                                "(got '%(value)s').", name=name, bound=bound,
                                value=text[:40]))
    return int(text)


def time_arg(name: str, tz: str, *, end: bool = False) -> dt.datetime | None:
    """A date (a whole day in ``tz``; ``end`` gives the next midnight) or a date and time
    with its offset (UTC without one)."""
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            if end:
                day += dt.timedelta(days=1)
            return dt.datetime.combine(day, dt.time(), ZoneInfo(tz))
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiProblem(400, _("The query argument '%(name)s' must be a date (YYYY-MM-DD) or a "
                                "date and time (YYYY-MM-DDTHH:MM:SSZ), not '%(value)s'.",
                                name=name, value=text[:40])) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def subject_or_404(subject_key: str, action: str) -> Subject:
    """The subject, if it is at a site where the user may do ``action`` (else 404: a subject
    of another site is simply not there for this user)."""
    found = capture.visible_subject(db.session, current_user, g.study, subject_key, action)
    if found is None:
        raise ApiProblem(404, _("There is no subject %(key)s in %(study)s at your sites.",
                                key=subject_key, study=g.study.oid))
    return found


def page_of(items: list, *, page: int, per_page: int, total: int) -> dict:
    pages = max(1, -(-total // per_page))
    return {"items": items, "page": page, "per_page": per_page, "total": total, "pages": pages}
