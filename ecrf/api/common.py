"""Helpers shared by the API modules: JSON bodies, query arguments, times, subjects."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import g, request
from flask_babel import gettext as _
from flask_login import current_user

from ecrf import capture
from ecrf.api.errors import ApiProblem
from ecrf.capture import Subject
from ecrf.core import MAX_ID as MAX_ID  # the API modules read it here
from ecrf.core import (
    MAX_SEQ,
    bounded_day,
    bounded_moment,
    db,
    json_problems,
    load_json,
    whole_number,
)
from ecrf.studies import StudyVersion

MAX_PER_PAGE = 500
MAX_AUDIT_LIMIT = 5000
MAX_JSON_BYTES = 2 * 1024 * 1024  # a JSON body; files (laboratory results) may be larger


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
    if (request.content_length or 0) > MAX_JSON_BYTES:
        raise ApiProblem(413, _("The body is %(n)s bytes long; a JSON body may be at most "
                                "%(limit)s bytes.", n=request.content_length,
                                limit=MAX_JSON_BYTES))
    raw = request.get_data(cache=False)
    if len(raw) > MAX_JSON_BYTES:
        raise ApiProblem(413, _("The body is %(n)s bytes long; a JSON body may be at most "
                                "%(limit)s bytes.", n=len(raw), limit=MAX_JSON_BYTES))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiProblem(400, _("The body is not UTF-8 text (byte %(pos)s).",
                                pos=exc.start)) from None
    if not text.strip():
        raise ApiProblem(400, _("The body is empty: send a JSON object."))
    try:
        data = load_json(text)
    except ValueError as exc:
        raise ApiProblem(400, _("The body is not valid JSON: %(problem)s.",
                                problem=str(exc))) from None
    if not isinstance(data, dict):
        raise ApiProblem(400, _("The body must be a JSON object, not %(kind)s.",
                                kind=json_kind(data)))
    problems = dict(list(json_problems(data))[:20])
    if problems:
        place, problem = next(iter(problems.items()))
        raise ApiProblem(400, _("'%(field)s' %(problem)s Nothing was done.", field=place[:80],
                                problem=problem),
                         errors={k[:80]: [v] for k, v in problems.items()})
    return data


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
    number = whole_number(text, maximum=maximum if maximum is not None else MAX_SEQ)
    if number is None or number < minimum:
        bound = _("from %(min)s to %(max)s", min=minimum, max=maximum) if maximum is not None \
            else _("%(min)s or more", min=minimum)
        raise ApiProblem(400, _("The query argument '%(name)s' must be a whole number %(bound)s "
                                "(got '%(value)s').", name=name, bound=bound,
                                value=text[:40]))
    return number


def time_arg(name: str, tz: str, *, end: bool = False) -> dt.datetime | None:
    """A date (a whole day in ``tz``; ``end`` gives the next midnight) or a date and time
    with its offset (UTC without one)."""
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = bounded_day(dt.date.fromisoformat(text))
            if day is None:
                raise OverflowError
            if end and day == dt.date.max:
                return dt.datetime.max.replace(tzinfo=dt.UTC)  # the end of time
            if end:
                day += dt.timedelta(days=1)
            moment = bounded_moment(dt.datetime.combine(day, dt.time(), ZoneInfo(tz)))
            if moment is None:
                return dt.datetime.max.replace(tzinfo=dt.UTC)
            return moment
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        moment = bounded_moment(moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC))
        if moment is None:
            raise OverflowError
    except OverflowError:
        raise ApiProblem(400, _("The query argument '%(name)s' must fall between the years "
                                "1900 and 9999 (got '%(value)s').", name=name,
                                value=text[:40])) from None
    except ValueError:
        raise ApiProblem(400, _("The query argument '%(name)s' must be a date (YYYY-MM-DD) or a "
                                "date and time (YYYY-MM-DDTHH:MM:SSZ), not '%(value)s'.",
                                name=name, value=text[:40])) from None
    return moment


def subject_or_404(subject_key: str, action: str) -> Subject:
    """The subject, if it is at a site where the user may do ``action`` (else 404: a subject
    of another site is simply not there for this user)."""
    found = capture.visible_subject(db.session, current_user, g.study, subject_key, action)
    if found is None:
        raise ApiProblem(404, _("There is no subject %(key)s in %(study)s at your sites.",
                                key=subject_key, study=g.study.oid))
    return found


def page_of(items: list, *, page: int | None, per_page: int, total: int,
            next_cursor: str | None = None) -> dict:
    """A page of a list: in cursor mode ``page`` and ``pages`` are null."""
    pages = max(1, -(-total // per_page)) if page is not None else None
    return {"items": items, "page": page, "per_page": per_page, "total": total, "pages": pages,
            "next_cursor": next_cursor}


# --- cursor pagination ---------------------------------------------------------------------
#
# Every list of the API is in a stable order that ends on something unique (an id, a key),
# and may be read page by page (``page``) or by cursor (``cursor``): a cursor holds the
# sort key of the last row a page gave, so the next page starts right after that row even
# when rows were added or removed meanwhile (no row is skipped or given twice, unlike
# numbered pages). A cursor is opaque to clients: base64url of a small JSON object naming
# its list.

SortKey = tuple[str | int, ...]
MAX_CURSOR = 2048
MAX_CURSOR_INT = 2**53


def sort_time(value: dt.datetime | dt.date | None) -> str:
    """A point in time as a fixed-width UTC text that sorts as the times do ("" for none,
    first)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return value.strftime("%Y-%m-%dT00:00:00.000000")


def from_sort_time(text: str) -> dt.datetime:
    """The time a ``sort_time`` text gives (400 for any other text)."""
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=dt.UTC)
    except ValueError:
        raise ApiProblem(400, _("The cursor does not fit this list: leave 'cursor' out to "
                                "start from the beginning.")) from None


def encode_cursor(listing: str, key: Sequence[str | int]) -> str:
    raw = json.dumps({"l": listing, "k": list(key)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_arg(listing: str, shape: Sequence[type]) -> SortKey | None:
    """The ``cursor`` query argument as the sort key it holds (None when absent); 400 for
    a cursor this API did not give out for this list."""
    text = request.args.get("cursor", "").strip()
    if not text:
        return None

    def refuse() -> ApiProblem:
        return ApiProblem(400, _("The cursor '%(cursor)s' was not given out by this list: "
                                 "pass the 'next_cursor' of the previous page unchanged, or "
                                 "leave 'cursor' out to start from the beginning.",
                                 cursor=text[:40]))

    if len(text) > MAX_CURSOR:
        raise refuse()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        raise refuse() from None
    if not isinstance(data, dict) or data.get("l") != listing:
        raise refuse()
    key = data.get("k")
    if not isinstance(key, list) or len(key) != len(shape) or not all(
            isinstance(part, kind) and not isinstance(part, bool)
            and (not isinstance(part, int) or abs(part) <= MAX_CURSOR_INT)
            and (not isinstance(part, str) or "\x00" not in part)
            for part, kind in zip(key, shape, strict=True)):
        raise refuse()
    return tuple(key)


def paging_args(listing: str, shape: Sequence[type], *, default: int = 100
                ) -> tuple[int | None, int, SortKey | None]:
    """(page, per_page, cursor): a page number or a cursor, never both."""
    per_page = int_arg("per_page", default, maximum=MAX_PER_PAGE)
    cursor = cursor_arg(listing, shape)
    if cursor is not None:
        if request.args.get("page", "").strip():
            raise ApiProblem(400, _("Give either 'page' or 'cursor', not both."))
        return None, per_page, cursor
    return int_arg("page", 1, maximum=10**6), per_page, None


def paged(listing: str, rows: Sequence, *, key: Callable[[object], SortKey],
          render: Callable[[object], dict], shape: Sequence[type], descending: bool = False,
          default: int = 100) -> dict:
    """One page of a list computed in memory, in the order of ``key`` (unique per row, of
    the types in ``shape``)."""
    page, per_page, cursor = paging_args(listing, shape, default=default)
    ordered = sorted(rows, key=key, reverse=descending)
    if cursor is not None:
        try:
            start = next((i for i, row in enumerate(ordered)
                          if (key(row) < cursor if descending else key(row) > cursor)),
                         len(ordered))
        except TypeError:
            raise ApiProblem(400, _("The cursor does not fit this list: leave 'cursor' out "
                                    "to start from the beginning.")) from None
    else:
        start = (page - 1) * per_page
    chosen = ordered[start:start + per_page]
    more = start + per_page < len(ordered)
    next_cursor = encode_cursor(listing, key(chosen[-1])) if chosen and more else None
    return page_of([render(row) for row in chosen], page=page, per_page=per_page,
                   total=len(ordered), next_cursor=next_cursor)
