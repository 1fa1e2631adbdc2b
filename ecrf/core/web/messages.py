"""Messages of the engines and use cases, said in the user's language."""

from __future__ import annotations

from flask_babel import gettext

from ecrf.crf.values import Message


def say(message: Message | str) -> str:
    """A validation message with its parameters, translated; plain text as it is."""
    return message.render(gettext) if isinstance(message, Message) else str(message)


def error_text(exc: Exception) -> str:
    """What a refusal tells the user: its translatable message when it carries one."""
    message = getattr(exc, "message", None)
    return say(message) if message is not None else str(exc)
