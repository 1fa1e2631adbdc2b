"""Demo content for `make run`: sites, users of every role, both trials, their subjects
and realistic data, scripted per trial by ``forms/<study>/demo.yaml``."""

from __future__ import annotations

from flask import Flask

from ecrf.demo.loader import load_demo

__all__ = ["load_demo", "register"]


def register(app: Flask) -> None:
    from ecrf.demo.cli import demo_command

    app.cli.add_command(demo_command)
