"""JSON API v1: same operations, permissions and audit as the screens.

Clients authenticate with ``Authorization: Bearer <token>`` (see ``auth.py``). The
blueprint is exempt from CSRF because its writes accept bearer tokens only: a browser's
session cookie may read through the API (same-origin GETs) but never write, so the CSRF
protection of the screens cannot be side-stepped through it. The routes live in the
modules imported below; ``openapi.py`` describes every one of them.
"""

from __future__ import annotations

from flask import Flask

from ecrf.api import (  # noqa: F401  (routes)
    allocation,
    audit,
    auth,
    docs,
    endpoints,
    errors,
    events,
    forms,
    jobs,
    labs,
    openapi,
    preconditions,
    review,
    safety,
    signing,
    strata,
    studies,
)
from ecrf.api.blueprint import bp

__all__ = ["bp", "register"]


def register(app: Flask) -> None:
    """The API's routes and its bearer-token sign-in (after the accounts' session loader);
    called by the app factory."""
    app.register_blueprint(bp)
