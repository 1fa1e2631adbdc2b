"""The input boundary every request crosses before a view sees it, and its rules for the
API and the command line: no text holding a NUL character or a lone surrogate (no database
stores the first, no encoder writes the second), numbers in paths within the database's
integers, JSON objects no deeper than ``MAX_JSON_DEPTH`` and days within years 1900-9999.

The web forms, the API and the commands all ask ``text_problem``; a refusal names the
field and says what is wrong, and nothing of the request is done.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from decimal import Decimal

from flask import Flask, g, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

MAX_ID = 2**31 - 1  # database integers: a larger id or repeat names nothing (404)
MAX_SEQ = 2**62  # an audit sequence number (a 64-bit column)
MAX_JSON_DEPTH = 64  # arrays and objects inside one another
MAX_ARG_LENGTH = 4000  # one query argument or path segment
MIN_YEAR, MAX_YEAR = 1900, 9999

# Words of the names of posted fields never shown back on an error page.
_SECRET = re.compile(r"password|secret|token|csrf", re.IGNORECASE)
_SURROGATE = re.compile("[\ud800-\udfff]")


class BadInput(BadRequest):
    """A request holding text no field may hold; ``field`` names where it was found."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(_("'%(field)s' %(problem)s Nothing was done.", field=field[:80],
                           problem=problem))
        self.field = field[:80]
        self.problem = problem


def text_problem(text: str) -> str | None:
    """What makes ``text`` unfit to store (None when it is fine)."""
    if "\x00" in text:
        return _("contains a NUL character (\\u0000), which no text may hold.")
    if not text.isascii() and _SURROGATE.search(text):
        return _("contains a lone surrogate (\\ud800-\\udfff), which is not a character.")
    return None


def check_text(field: str, text: str) -> str:
    """``text``, or BadInput naming ``field``."""
    problem = text_problem(text)
    if problem is not None:
        raise BadInput(field, problem)
    return text


def json_problems(value: object, where: str = "") -> Iterator[tuple[str, str]]:
    """(place, problem) for every key and string of a parsed JSON document that
    ``text_problem`` refuses (the document is no deeper than MAX_JSON_DEPTH)."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            yield where or "body", problem
    elif isinstance(value, dict):
        for key, item in value.items():
            place = f"{where}.{key}" if where else str(key)
            problem = text_problem(key)
            if problem is not None:
                yield _shown(place), problem
                continue
            yield from json_problems(item, place)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from json_problems(item, f"{where}[{index}]" if where else f"[{index}]")


def _shown(place: str) -> str:
    return place.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()


_BRACKETS = re.compile(r'[\[\]{}"\\]')


def load_json(text: str):
    """``text`` parsed as JSON, decimals exact; ValueError for invalid JSON, a document
    nested deeper than MAX_JSON_DEPTH or an infinite or NaN constant."""
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(_("arrays and objects are nested more than %(limit)s deep",
                           limit=MAX_JSON_DEPTH))
    return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in the JSON ``text``, read without recursion (a
    document nested 100,000 deep costs a scan, not the stack); the scan stops once past
    MAX_JSON_DEPTH."""
    depth = deepest = 0
    position, length = 0, len(text)
    while True:
        match = _BRACKETS.search(text, position)
        if match is None:
            return deepest
        char, position = match.group(), match.end()
        if char == '"':
            # Skip the string: to the next quote not escaped by a backslash.
            while True:
                end = text.find('"', position)
                if end < 0:
                    return deepest
                backslashes = 0
                while text[end - 1 - backslashes] == "\\":
                    backslashes += 1
                position = end + 1
                if backslashes % 2 == 0:
                    break
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest
        elif char in "]}":
            depth -= 1
        if position >= length:
            return deepest


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def whole_number(text: str, *, maximum: int = MAX_ID) -> int | None:
    """``text`` as a whole number from 0 to ``maximum`` (None for anything else: signs,
    other digits than 0-9, or a number too large for the database)."""
    text = text.strip()
    if not text or len(text) > 20 or not all("0" <= c <= "9" for c in text):
        return None
    number = int(text)
    return number if number <= maximum else None


def bounded_day(day: dt.date) -> dt.date | None:
    """``day`` when its year is within MIN_YEAR..MAX_YEAR (None otherwise)."""
    return day if MIN_YEAR <= day.year <= MAX_YEAR else None


def bounded_moment(moment: dt.datetime) -> dt.datetime | None:
    """``moment`` (aware) when it and its time in UTC fall within years MIN_YEAR..MAX_YEAR,
    else None (never the OverflowError of an offset at the end of time)."""
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        return None
    if moment.tzinfo is not None and moment.year == MAX_YEAR:
        try:
            moment.astimezone(dt.UTC)
        except OverflowError:
            return None
    return moment


class BoundedInt(IntegerConverter):
    """``<int:...>`` in every route: up to MAX_ID, so that a larger number is simply
    not found (404) instead of reaching the database."""

    def __init__(self, map, *args, **kwargs) -> None:  # noqa: A002 (werkzeug's name)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def install(app: Flask) -> None:
    app.url_map.converters["int"] = BoundedInt
    app.before_request(guard)
    app.register_error_handler(BadInput, refused)


def guard() -> None:
    """Refuse, before any view runs, a request whose path, query arguments, posted fields
    or file names hold text no field may hold, or an over-long argument."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            _check_arg(name, value)
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        check_text("Authorization", authorization)
    for name, value in request.args.items(multi=True):
        _check_arg(name, name)
        _check_arg(name, value)
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.mimetype in (
            "application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in request.form.items(multi=True):
            check_text(name, name)
            check_text(name, value)
        for name, upload in request.files.items(multi=True):
            check_text(name, upload.filename or "")


def _check_arg(name: str, value: str) -> None:
    check_text(name, value)
    if len(value) > MAX_ARG_LENGTH:
        raise BadInput(name, _("is %(n)s characters long; at most %(limit)s are allowed.",
                               n=len(value), limit=MAX_ARG_LENGTH))


def refused(error: BadInput):
    """The refusal: JSON under /api/ naming the field, else a page that names it and shows
    back what was typed (passwords left out), so that nothing typed is lost."""
    g.input_refused = error.field
    if request.path.startswith("/api/"):
        return {"error": "Bad Request", "message": error.description,
                "errors": {error.field: [error.problem]}}, 400
    typed = []
    if request.method != "GET" and request.mimetype in (
            "application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in request.form.items(multi=True):
            if value.strip() and not _SECRET.search(name):
                typed.append((_shown(name), _SURROGATE.sub("\ufffd", value.replace("\x00", ""))))
    return render_template("errors/error.html", code=400, title=_("This text cannot be saved"),
                           message=error.description, typed=typed), 400
