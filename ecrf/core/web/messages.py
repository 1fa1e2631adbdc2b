"""Messages of the engines and use cases, said in the user's language, and the names of a
study's parts as the user reads them: labels in their language, with OIDs beside them only
when they asked for them (the "Show OIDs" switch, kept in the session)."""

from __future__ import annotations

from flask import Flask, has_app_context, has_request_context, request, session
from flask_babel import get_locale, gettext
from markupsafe import Markup, escape

from ecrf.crf import StudyDefinition
from ecrf.crf.naming import Naming, Reader
from ecrf.crf.values import Message

OIDS_KEY = "show_oids"


def show_oids() -> bool:
    return has_request_context() and bool(session.get(OIDS_KEY))


def reader() -> Reader:
    """The signed-in user as a reader: their language, and OIDs if they asked."""
    # Outside a request: the language forced for the output being made (a PDF), else None.
    language = str(get_locale() or "en") if has_app_context() else None
    return Reader(language=language, gettext=gettext, show_oids=show_oids())


def naming(definition: StudyDefinition | None) -> Naming:
    """Events, forms and items of a definition named for the current user."""
    return Naming(definition, reader())


def say(message: Message | str) -> str:
    """A validation message with its parameters, translated; plain text as it is."""
    return message.render(reader=reader()) if isinstance(message, Message) else str(message)


def error_text(exc: Exception) -> str:
    """What a refusal tells the user: its translatable message when it carries one."""
    message = getattr(exc, "message", None)
    return say(message) if message is not None else str(exc)


def oid_tag(oid: object) -> Markup:
    """An OID beside a label, for users who switched OIDs on; nothing otherwise."""
    if not oid or not show_oids():
        return Markup("")
    return Markup(' <code class="oid small text-muted">%s</code>') % escape(str(oid))


def install(app: Flask) -> None:
    """``?oids=1`` / ``?oids=0`` on any page switches OIDs on or off for the session;
    templates get ``show_oids()``, ``oid_tag(oid)`` and ``naming(definition)``."""

    @app.before_request
    def remember_oids():
        wanted = request.args.get("oids")
        if wanted in ("0", "1"):
            session[OIDS_KEY] = wanted == "1"
        return None

    app.jinja_env.globals.update(show_oids=show_oids, oid_tag=oid_tag, naming=naming)
