"""The API's blueprint, exempt from CSRF (its writes need a bearer token)."""

from __future__ import annotations

from flask import Blueprint

from ecrf.core import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
