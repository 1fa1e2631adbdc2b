"""Web plumbing every area's views share: security headers and the session cookie, error
pages, the input boundary (no NUL, no lone surrogate, bounded numbers and
JSON), one transaction per request, and messages said in the user's language."""

from __future__ import annotations

from flask import Flask

from ecrf.core.web.inputs import (
    MAX_ARG_LENGTH,
    MAX_ID,
    MAX_JSON_DEPTH,
    MAX_SEQ,
    BadInput,
    bounded_day,
    bounded_moment,
    check_text,
    json_depth,
    json_problems,
    load_json,
    text_problem,
    whole_number,
)
from ecrf.core.web.messages import error_text, naming, reader, say, show_oids
from ecrf.core.web.unit_of_work import Transaction, keep_derived, store_derived, transaction

__all__ = [
    "MAX_ARG_LENGTH", "MAX_ID", "MAX_JSON_DEPTH", "MAX_SEQ", "BadInput", "Transaction", "bounded_day",
    "bounded_moment", "check_text", "json_depth", "error_text", "install", "json_problems", "load_json",
    "naming", "reader", "say", "show_oids", "text_problem",
    "whole_number",
    "keep_derived", "store_derived", "transaction",
]


def install(app: Flask) -> None:
    from ecrf.core.web import errors, headers, inputs, messages

    headers.install(app)
    errors.install(app)
    inputs.install(app)
    messages.install(app)
