"""`ecrf study check|load|versions`: study definitions and their stored versions. Thin
wrappers over the services; one transaction per command; bad input prints one clear line
and exits non-zero."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from ecrf.capture.models import Subject
from ecrf.core.cli import add_group
from ecrf.crf import load_study
from ecrf.extensions import db
from ecrf.models.accounts import Study
from ecrf.models.studies import StudyVersion
from ecrf.services import studies

study_cli = click.Group("study", help="Study definitions: check, load, versions, migration.")


def _actor():
    from ecrf.cli import cli_actor  # ecrf.cli imports this module: resolve at call time

    return cli_actor()


def _fail(message: str) -> None:
    db.session.rollback()
    raise click.ClickException(message)


def _study(oid: str) -> Study:
    try:
        return studies.require_study(db.session, oid)
    except studies.StudyError as exc:
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
        result = studies.load_folder(db.session, _actor(), path, note=note)
    except studies.StudyDefinitionError as exc:
        _print_problems(exc.problems)
        _fail(f"{path}: {len(exc.problems)} problem(s): not loaded (see `ecrf study check`)")
    db.session.commit()
    version = result.version
    if result.created:
        click.echo(f"loaded {result.study.oid} {version.label}, sha256 {version.content_hash}")
    else:
        click.echo(f"unchanged: {result.study.oid} {version.label} has this content "
                   f"(sha256 {version.content_hash})")


@study_cli.command("versions")
@click.argument("oid")
def study_versions(oid: str):
    """List the stored versions of a study and how many subjects follow each."""
    study = _study(oid)
    counts = {version_id: count for version_id, count in db.session.execute(
        select(Subject.study_version_id, func.count()).where(Subject.study_id == study.id)
        .group_by(Subject.study_version_id))}
    rows = studies.versions(db.session, study)
    if not rows:
        click.echo(f"{study.oid}: no version loaded")
        return
    for v in rows:
        when = v.loaded_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        click.echo(f"v{v.number:<4} {v.protocol_version or '-':<10} {when}  {v.loaded_by:<20} "
                   f"sha256 {v.content_hash[:16]}  subjects {counts.get(v.id, 0)}")


def register(app: Flask) -> None:
    add_group(app, study_cli)
