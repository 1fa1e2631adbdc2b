"""Data entry: events, forms, item history and audit trails."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("entry", __name__)
