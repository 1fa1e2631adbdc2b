"""What every ``ecrf`` command shares: who acts, and how a refusal ends the command.

Each command is a thin wrapper over its area's operations, runs in one transaction and,
on bad input, prints one clear line and exits non-zero with nothing written.
"""

from __future__ import annotations

import getpass
from typing import NoReturn

import click

from ecrf.extensions import db
from ecrf.services.audit import Actor


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
