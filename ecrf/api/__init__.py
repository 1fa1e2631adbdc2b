"""JSON API v1: same services, permissions and audit as the screens.

Clients authenticate with ``Authorization: Bearer <token>`` (see ``auth.py``). The
blueprint is exempt from CSRF because its writes accept bearer tokens only: a browser's
session cookie may read through the API (same-origin GETs) but never write, so the CSRF
protection of the screens cannot be side-stepped through it. The routes live in the
modules imported at the bottom; ``openapi.py`` describes every one of them.
"""

from __future__ import annotations

from flask import Blueprint

from ecrf.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

from ecrf.api import (  # noqa: E402,F401  (modules that add routes to ``bp``)
    audit,
    auth,
    errors,
    forms,
    openapi,
    studies,
)
