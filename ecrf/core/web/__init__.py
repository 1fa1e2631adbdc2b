"""Web plumbing every area's views share: security headers and the session cookie, error
pages, one transaction per request, and messages said in the user's language."""

from __future__ import annotations

from flask import Flask

from ecrf.core.web.messages import error_text, naming, reader, say, show_oids
from ecrf.core.web.unit_of_work import Transaction, store_derived, transaction

__all__ = [
    "Transaction", "error_text", "install", "naming", "reader", "say", "show_oids",
    "store_derived", "transaction",
]


def install(app: Flask) -> None:
    from ecrf.core.web import errors, headers, messages

    headers.install(app)
    errors.install(app)
    messages.install(app)
