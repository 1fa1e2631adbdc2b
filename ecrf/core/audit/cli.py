"""`ecrf audit verify`: check the audit trail's hash chain."""

from __future__ import annotations

import sys

import click

from ecrf.core.audit.trail import verify_chain
from ecrf.core.extensions import db

audit_cli = click.Group("audit", help="The audit trail.")


@audit_cli.command("verify")
@click.option("--study", default=None,
              help="Report the rows of this study (the whole chain is walked).")
def audit_verify(study: str | None):
    """Check the hash chain; exits non-zero and names the first broken row if any."""
    result = verify_chain(db.session, study_oid=study.upper() if study else None)
    click.echo(str(result))
    if not result.ok:
        sys.exit(1)
