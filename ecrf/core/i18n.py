"""The language and time zone a request is shown in, and times shown in a site's zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Flask, current_app, g, has_request_context, request, session


def select_locale() -> str | None:
    if not has_request_context():  # CLI commands and jobs speak the default language
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    chosen = session.get("lang")
    languages = current_app.config["LANGUAGES"]
    if chosen in languages:
        return chosen
    return request.accept_languages.best_match(languages) or "en"


def select_timezone() -> str:
    if not has_request_context():
        return "UTC"
    return g.get("display_tz") or "UTC"


def format_local(value: dt.datetime | None, tz_name: str | None = None) -> str:
    """A UTC time shown in a site's zone with the zone named: '2026-03-02 14:05 CET (Europe/Paris)'."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    name = tz_name or g.get("display_tz") or "UTC"
    local = value.astimezone(ZoneInfo(name))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({name})"


def install(app: Flask) -> None:
    from ecrf.core.extensions import babel

    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    app.jinja_env.filters["localtime"] = format_local
