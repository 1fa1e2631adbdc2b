"""ecrf: electronic case report forms and data capture for clinical trials."""

from __future__ import annotations

__version__ = "0.1.0"


def create_app(test_config: dict | None = None):
    """The Flask app (``ecrf.app.create_app``), importable as ``ecrf:create_app()``."""
    from ecrf.app import create_app as factory

    return factory(test_config)
