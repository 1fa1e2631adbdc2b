"""`ecrf study freeze|unfreeze|lock|unlock OID --reason` and `ecrf queries list STUDY`.

Thin wrappers over review's operations; one transaction per command; bad input prints one
clear line and exits non-zero. The operator at the command line acts with the server's
authority (the audit trail records ``cli:<login name>``).
"""

from __future__ import annotations

import click
from flask import Flask

from ecrf.core import add_group, cli_actor, db
from ecrf.review import locks, queries
from ecrf.review.support import ReviewError
from ecrf.studies import command_study

queries_cli = click.Group("queries", help="Data queries: list them.")


def _transition(name: str, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @click.argument("oid")
    @click.option("--reason", required=True, help="Why (recorded in the audit trail).")
    def command(oid: str, reason: str) -> None:
        study = command_study(oid)
        before = study.status
        try:
            locks.change_study_status(db.session, cli_actor(), study, name, reason)
        except ReviewError as exc:
            db.session.rollback()
            raise click.ClickException(str(exc)) from None
        db.session.commit()
        click.echo(f"{study.oid}: {before} -> {study.status}")

    return command


TRANSITIONS = {
    "freeze": "Freeze a study: no data entry or change; queries go on.",
    "unfreeze": "Unfreeze a frozen study: data entry again.",
    "lock": "Lock a study: everything becomes read-only.",
    "unlock": "Unlock a locked study: data entry again.",
}


@queries_cli.command("list")
@click.argument("study_oid")
@click.option("--status", type=click.Choice(["open", "answered", "closed", "unclosed", "all"]),
              default="unclosed", show_default=True)
@click.option("--site", default=None, help="Only this site's subjects.")
def queries_list(study_oid: str, status: str, site: str | None) -> None:
    """List a study's queries, newest first (tab-separated)."""
    study = command_study(study_oid)
    rows = queries.list_queries(db.session, None, study, site=site.upper() if site else None,
                                status=None if status == "all" else status, limit=100000)
    click.echo("id\tsubject\tsite\tstatus\torigin\tage_days\tpath\tquestion")
    for row in rows:
        query = row.query
        question = " ".join(row.question.split())
        click.echo(f"{query.id}\t{row.subject_key}\t{row.site_code}\t{query.status}\t"
                   f"{query.origin}\t{row.age_days}\t{queries.query_path(query)}\t{question}")
    click.echo(f"{len(rows)} quer{'y' if len(rows) == 1 else 'ies'}", err=True)


def register(app: Flask) -> None:
    study_cli = click.Group("study", help="Study definitions and status.")
    for name, help_text in TRANSITIONS.items():
        study_cli.add_command(_transition(name, help_text))
    add_group(app, study_cli)
    app.cli.add_command(queries_cli)
