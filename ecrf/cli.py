"""The ``ecrf`` command: the Flask command line bound to the app. Each area adds its own
commands when the app is created (its ``register(app)``)."""

from __future__ import annotations

from flask.cli import FlaskGroup


def _create_app():
    from ecrf.app import create_app

    return create_app()


def main() -> None:
    group = FlaskGroup(create_app=_create_app, add_version_option=True,
                       help="ecrf: electronic case report forms for clinical trials.")
    group(prog_name="ecrf")
