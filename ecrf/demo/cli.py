"""`ecrf demo`: load the demo content (safe to repeat)."""

from __future__ import annotations

import click
from flask import current_app
from sqlalchemy import func, select

from ecrf.capture import IMPORTED_TABLES, ItemValue
from ecrf.core import analyze_after_import, cli_actor, db, fail
from ecrf.demo.loader import load_demo


@click.command("demo")
def demo_command():
    """Load demo sites, users of every role, both trials and subjects (safe to repeat)."""
    try:
        summary = load_demo(db.session, cli_actor(), current_app.config)
    except Exception as exc:  # one clear line; the transaction is rolled back
        fail(exc)
    db.session.commit()
    # The demo fills an empty database at once: statistics for what it holds now.
    analyze_after_import(db.session, IMPORTED_TABLES,
                         db.session.scalar(select(func.count()).select_from(ItemValue)) or 0)
    click.echo(summary)
