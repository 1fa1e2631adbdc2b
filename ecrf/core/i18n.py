"""The language and time zone a request is shown in, and times shown in a site's zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError, dates
from flask import Flask, current_app, g, has_app_context, has_request_context, request, session
from flask_login import current_user

# How each interface language names itself in the language switcher.
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "zh_Hans": "中文"}


def match_language(tag: str | None, languages: list[str]) -> str | None:
    """The interface language for a language tag ("fr-FR", "zh", "zh-Hans-CN", "zh_Hans"):
    the exact one if offered, else the one of the same language ("zh" -> "zh_Hans")."""
    if not tag:
        return None
    wanted = tag.replace("_", "-").lower()
    for code in languages:
        if code.replace("_", "-").lower() == wanted:
            return code
    primary = wanted.split("-")[0]
    for code in languages:
        if code.split("_")[0].lower() == primary:
            return code
    return None


def select_locale() -> str | None:
    """The user's own language (kept on the account), else the one chosen in this session,
    else the browser's (Accept-Language), else English."""
    if not has_request_context():  # CLI commands and jobs speak the default language
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    languages = current_app.config["LANGUAGES"]
    own = getattr(current_user, "language", None) if current_user else None
    for chosen in (own, session.get("lang")):
        matched = match_language(chosen, languages)
        if matched:
            return matched
    for tag, _quality in request.accept_languages:
        matched = match_language(tag, languages)
        if matched:
            return matched
    return "en"


def html_lang(locale: object) -> str:
    """A locale as a BCP 47 tag for ``<html lang>``: "zh_Hans" -> "zh-Hans"."""
    return str(locale or "en").replace("_", "-")


def ui_locale(language: str | None) -> str:
    """The interface locale that speaks a study language ("zh" -> "zh_Hans"), for output
    made in a chosen language outside a request (PDFs); English when none matches."""
    return match_language(language, current_app.config["LANGUAGES"]) or "en"


def interface_language(tag: str | None) -> str | None:
    """The interface language for a tag ("zh", "zh-Hans", "fr-FR"), None if none speaks it."""
    return match_language(tag, current_app.config["LANGUAGES"])


def locale_of(language: str | None) -> Locale:
    try:
        return Locale.parse(language or "en")
    except (ValueError, UnknownLocaleError):
        return Locale.parse("en")


def select_timezone() -> str:
    if not has_request_context():
        return "UTC"
    return g.get("display_tz") or "UTC"


def _reader_locale() -> str:
    from flask_babel import get_locale

    # Outside a request (jobs, CLI) the language is the one forced for the output made.
    return str(get_locale() or "en") if has_app_context() else "en"


def format_local(value: dt.datetime | None, tz_name: str | None = None) -> str:
    """A UTC time shown in a site's zone with the zone named: '2026-03-02 14:05 CET
    (Europe/Paris)' in English (ISO dates), '2 mars 2026 14:05 CET (Europe/Paris)' in French,
    '2026年3月2日 14:05 CET (Europe/Paris)' in Chinese."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    name = tz_name or g.get("display_tz") or "UTC"
    local = value.astimezone(ZoneInfo(name))
    language = _reader_locale()
    if language == "en":
        shown = f"{local:%Y-%m-%d %H:%M}"
    else:
        locale = locale_of(language)
        shown = f"{dates.format_date(local.date(), 'medium', locale=locale)} {local:%H:%M}"
    return f"{shown} {local.tzname()} ({name})"


def format_day(value: dt.date | None) -> str:
    """A calendar date for the reader: ISO in English ('2026-03-02'), the locale's medium
    form otherwise ('2 mars 2026', '2026年3月2日')."""
    if value is None:
        return ""
    language = _reader_locale()
    if language == "en":
        return value.isoformat()
    return dates.format_date(value, "medium", locale=locale_of(language))


def install(app: Flask) -> None:
    from ecrf.core.extensions import babel

    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    app.jinja_env.filters["localtime"] = format_local
    app.jinja_env.filters["html_lang"] = html_lang
    app.jinja_env.filters["localdate"] = format_day
    app.jinja_env.globals["LANGUAGE_NAMES"] = LANGUAGE_NAMES
