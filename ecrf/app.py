"""The app factory: configuration, then every area in layer order (see README,
Architecture). An area's ``register(app)`` adds its blueprint, its commands, its
reactions to other areas' signals and its dashboard panels; a missing piece fails here,
at start-up, never later. Then every command's text options pass the input boundary."""

from __future__ import annotations

from flask import Flask

from ecrf import (
    accounts,
    allocation,
    api,
    capture,
    core,
    dashboards,
    demo,
    esource,
    jobs,
    outputs,
    review,
    safety,
    studies,
)
from ecrf.core import PROJECT_ROOT, guard_commands, load_config

# Review's reactions to data capture run before safety's.
AREAS = (core, studies, accounts, capture, jobs, review, safety, allocation, dashboards,
         outputs, esource, api, demo)


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(
        "ecrf",
        instance_path=str(PROJECT_ROOT / "instance"),
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    load_config(app, test_config)
    for area in AREAS:
        area.register(app)
    guard_commands(app)
    return app
