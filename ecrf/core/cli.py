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
from ecrf.core.web.inputs import MAX_ID, text_problem


class Text(click.ParamType):
    """Text given on the command line: refused, with the option named, when it holds a NUL
    character or a lone surrogate (what an undecodable byte of the terminal becomes)."""

    name = "text"

    def convert(self, value, param, ctx):
        text = value if isinstance(value, str) else str(value)
        problem = text_problem(text)
        if problem is not None:
            self.fail(problem, param, ctx)
        return text


TEXT = Text()
# Whole numbers of the command line are database integers too.
NUMBER = click.IntRange(-MAX_ID, MAX_ID)


def guard_commands(app: Flask) -> None:
    """Every text option and argument of every ``ecrf`` command becomes ``TEXT``, and every
    whole number ``NUMBER``: the input boundary of the command line, as
    ``ecrf.core.web.inputs`` is the web's."""

    def walk(command: click.Command) -> None:
        for param in command.params:
            if param.type is click.STRING:
                param.type = TEXT
            elif param.type is click.INT:
                param.type = NUMBER
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                walk(sub)

    walk(app.cli)


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
