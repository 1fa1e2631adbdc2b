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

from ecrf.core.cli import cli_actor, fail
from ecrf.extensions import db
from ecrf.models.accounts import Study
from ecrf.services import sites


def _study(oid: str | None) -> Study | None:
    if not oid:
        return None
    study = db.session.scalar(select(Study).where(Study.oid == oid.strip().upper()))
    if study is None:
        raise click.ClickException(f"no study with OID {oid!r} (load it with `ecrf study load`)")
    return study


def _site(code: str | None):
    if not code:
        return None
    try:
        return sites.require_site(db.session, code)
    except sites.SiteError as exc:
        raise click.ClickException(str(exc)) from None


sites_cli = click.Group("sites", help="Manage sites.")


@sites_cli.command("create")
@click.argument("code")
@click.argument("name")
@click.option("--timezone", "tz", default="UTC", show_default=True, help="IANA time zone.")
@click.option("--country", default=None, help="ISO 3166 two-letter code.")
@click.option("--study", "studies", multiple=True, help="Add the site to this study (repeatable).")
def sites_create(code: str, name: str, tz: str, country: str | None, studies: tuple[str, ...]):
    """Create a site."""
    try:
        site = sites.create_site(db.session, cli_actor(), code=code, name=name, timezone=tz,
                                 country=country)
        for oid in studies:
            sites.add_site_to_study(db.session, cli_actor(), _study(oid), site)
    except sites.SiteError as exc:
        fail(exc)
    db.session.commit()
    click.echo(f"created site {site.code}")


@sites_cli.command("list")
def sites_list():
    """List sites with their time zones."""
    for site in sites.list_sites(db.session):
        click.echo(f"{site.code:<10} {site.name:<40} {site.timezone:<20} {site.country or ''}")


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

    found = _study(study)
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
    # Each area keeps its commands next to its services; imported here, not at the top,
    # because those modules import this one for cli_actor and its helpers.
    from ecrf import cli_studies, demo, jobs

    app.cli.add_command(sites_cli)
    demo.register(app)
    jobs.register(app)
    app.cli.add_command(audit_cli)
    cli_studies.register(app)
