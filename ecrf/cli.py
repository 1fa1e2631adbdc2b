"""The ``ecrf`` command: the Flask CLI bound to the app, plus ecrf's own commands.

Each command is a thin wrapper over a service, runs in one transaction, and on bad input
prints one clear line and exits non-zero.
"""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup
from sqlalchemy import select

from ecrf.extensions import db
from ecrf.studies.cli import command_study


def _create_app():
    from ecrf import create_app

    return create_app()


def main() -> None:
    group = FlaskGroup(create_app=_create_app, add_version_option=True,
                       help="ecrf: electronic case report forms for clinical trials.")
    group(prog_name="ecrf")


audit_cli = click.Group("audit", help="The audit trail.")


@audit_cli.command("verify")
@click.option("--study", default=None, help="Report the rows of this study (the whole chain is walked).")
def audit_verify(study: str | None):
    """Check the hash chain; exits non-zero and names the first broken row if any."""
    from ecrf.services.audit import verify_chain

    result = verify_chain(db.session, study_oid=study.upper() if study else None)
    click.echo(str(result))
    if not result.ok:
        sys.exit(1)


@audit_cli.command("export")
@click.option("--study", required=True, help="Study OID.")
@click.option("--subject", default=None, help="Only this subject's rows.")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="CSV file to write ('-' for standard output).")
def audit_export(study: str, subject: str | None, output: str):
    """Write a study's (or one subject's) audit trail as CSV, in chain order."""
    from ecrf.capture import history
    from ecrf.capture.models import Subject

    found = command_study(study)
    if subject is not None and db.session.scalar(select(Subject.id).where(
            Subject.study_id == found.id, Subject.subject_key == subject)) is None:
        raise click.ClickException(f"no subject {subject!r} in {found.oid}")
    stmt = history.study_audit_query(found.oid, subject_key=subject)
    count = 0
    with click.open_file(output, "wb") as out:  # bytes: the CSV's CRLF stays as written
        for line in history.audit_csv(history.stream_rows(db.session, stmt)):
            out.write(line.encode("utf-8"))
            count += 1
    if output != "-":
        click.echo(f"wrote {count - 1} audit rows of {found.oid}"
                   f"{' / ' + subject if subject else ''} to {output}")


def register_commands(app: Flask) -> None:
    app.cli.add_command(audit_cli)
