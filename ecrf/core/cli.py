"""What every ``ecrf`` command shares: who acts, and how a refusal ends the command.

Each command is a thin wrapper over its area's operations, runs in one transaction and,
on bad input, prints one clear line and exits non-zero with nothing written.
"""

from __future__ import annotations

import getpass
from typing import NoReturn

import click
from flask import Flask

from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db


def cli_actor() -> Actor:
    """The person at the terminal, as the audit trail names them: ``cli:<login>``."""
    try:
        who = getpass.getuser()
    except Exception:  # no login name in some containers
        who = "unknown"
    return Actor(user_id=None, username=f"cli:{who}")


def fail(problem: Exception | str) -> NoReturn:
    """Roll back the command's transaction and end it with one line on standard error."""
    db.session.rollback()
    raise click.ClickException(str(problem))


def add_group(app: Flask, group: click.Group) -> click.Group:
    """Add an area's command group to ``ecrf``. When another area already added a group of
    that name, this group's commands join it: ``ecrf study migrate`` (capture) and
    ``ecrf study freeze`` (review) sit beside ``ecrf study load`` (studies)."""
    existing = app.cli.commands.get(group.name)
    if not isinstance(existing, click.Group):
        app.cli.add_command(group)
        return group
    for name, command in group.commands.items():
        existing.add_command(command, name)
    return existing
