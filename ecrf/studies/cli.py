"""`ecrf study check|load` and `ecrf sites create|list`: study definitions, their stored
versions, and sites. Thin wrappers over the studies operations; one transaction per
command; bad input prints one clear line and exits non-zero. Every area's commands find
the study or the site they name with ``command_study`` and ``command_site``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ecrf.core import add_group, cli_actor, db, fail
from ecrf.crf import load_study
from ecrf.studies import sites
from ecrf.studies import store as studies
from ecrf.studies.models import Site, Study, StudyVersion

study_cli = click.Group("study", help="Study definitions: check, load, versions, migration.")


def command_study(oid: str) -> Study:
    """The study a command names; if there is none, the command ends saying so."""
    try:
        return studies.require_study(db.session, oid)
    except studies.StudyError as exc:
        raise click.ClickException(str(exc)) from None


def command_site(code: str) -> Site:
    """The site a command names; if there is none, the command ends saying so."""
    try:
        return sites.require_site(db.session, code)
    except sites.SiteError as exc:
        raise click.ClickException(str(exc)) from None


def _print_problems(problems) -> None:
    for problem in problems:
        click.echo(str(problem), err=True)


@study_cli.command("check")
@click.argument("path", type=click.Path(path_type=Path))
def study_check(path: Path):
    """Check a study folder; prints every problem (file:line: path: message)."""
    problems = studies.check_folder(path)
    if problems:
        for problem in problems:
            click.echo(str(problem))
        noun = "problem" if len(problems) == 1 else "problems"
        click.echo(f"{path}: {len(problems)} {noun}", err=True)
        sys.exit(1)
    loaded = load_study(path)
    oid = loaded.definition.oid
    try:
        study = studies.get_study(db.session, oid)
        stored = None if study is None else db.session.scalar(select(StudyVersion).where(
            StudyVersion.study_id == study.id, StudyVersion.content_hash == loaded.content_hash))
        latest = None if study is None else studies.latest_version(db.session, study)
    except SQLAlchemyError:  # no database yet: the folder is still valid
        db.session.rollback()
        click.echo(f"ok: {oid} is valid (sha256 {loaded.content_hash})")
        return
    if stored is not None:
        click.echo(f"ok: {oid} v{stored.number} is valid (already stored, "
                   f"sha256 {loaded.content_hash})")
    else:
        number = (latest.number if latest else 0) + 1
        click.echo(f"ok: {oid} v{number} is valid (new content: `ecrf study load` stores it "
                   f"as v{number}, sha256 {loaded.content_hash})")


@study_cli.command("load")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--note", default=None, help="A note stored with the version.")
def study_load(path: Path, note: str | None):
    """Store a study folder as a new version (nothing happens if its content is stored)."""
    try:
        result = studies.load_folder(db.session, cli_actor(), path, note=note)
    except studies.StudyDefinitionError as exc:
        _print_problems(exc.problems)
        fail(f"{path}: {len(exc.problems)} problem(s): not loaded (see `ecrf study check`)")
    db.session.commit()
    version = result.version
    if result.created:
        click.echo(f"loaded {result.study.oid} {version.label}, sha256 {version.content_hash}")
    else:
        click.echo(f"unchanged: {result.study.oid} {version.label} has this content "
                   f"(sha256 {version.content_hash})")



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
            sites.add_site_to_study(db.session, cli_actor(), command_study(oid), site)
    except sites.SiteError as exc:
        fail(exc)
    db.session.commit()
    click.echo(f"created site {site.code}")


@sites_cli.command("list")
def sites_list():
    """List sites with their time zones."""
    for site in sites.list_sites(db.session):
        click.echo(f"{site.code:<10} {site.name:<40} {site.timezone:<20} {site.country or ''}")


def register(app: Flask) -> None:
    add_group(app, study_cli)
    app.cli.add_command(sites_cli)
