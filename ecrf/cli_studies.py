"""`ecrf study ...` and `ecrf schedule ...`: study definitions, versions, migration and the
stored visit schedules. Thin wrappers over services; one transaction per command; bad
input prints one clear line and exits non-zero."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from ecrf.core.cli import add_group
from ecrf.crf import load_study
from ecrf.extensions import db
from ecrf.models.accounts import Study
from ecrf.models.clinical import Subject
from ecrf.models.studies import StudyVersion
from ecrf.services import schedule, studies
from ecrf.services.migration import MigrationError, migrate_forms, preview_migration

study_cli = click.Group("study", help="Study definitions: check, load, versions, migration.")
schedule_cli = click.Group("schedule", help="Subjects' visit schedules.")


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


def _subject(study: Study, key: str) -> Subject:
    subject = db.session.scalar(select(Subject).where(Subject.study_id == study.id,
                                                      Subject.subject_key == key.strip()))
    if subject is None:
        raise click.ClickException(f"no subject {key!r} in {study.oid}")
    return subject


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


@study_cli.command("migrate")
@click.argument("oid")
@click.option("--to", "to_number", type=int, required=True, help="Target version number.")
@click.option("--subject", "subject_keys", multiple=True,
              help="Only this subject (repeatable); default: every subject of the study.")
@click.option("--reason", default="", help="Why the forms move (required unless --dry-run).")
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
def study_migrate(oid: str, to_number: int, subject_keys: tuple[str, ...], reason: str,
                  dry_run: bool):
    """Move subjects and their forms to version N (audited, per form)."""
    study = _study(oid)
    keys = list(subject_keys) or None
    try:
        if dry_run:
            preview = preview_migration(db.session, study, to_number, keys)
            for line in preview.lines():
                click.echo(line)
            db.session.rollback()
            return
        result = migrate_forms(db.session, _actor(), study, to_number, keys, reason=reason)
    except MigrationError as exc:
        _fail(str(exc))
    db.session.commit()
    click.echo(f"migrated {len(result.subjects)} subject(s) and {result.forms} form(s) of "
               f"{study.oid} to {result.to_label}")
    if result.refused:
        for form in result.refused:
            for problem in form.problems:
                click.echo(f"refused {form.where}: {problem}", err=True)
        keys = sorted({f.subject_key for f in result.refused})
        raise click.ClickException(f"{len(keys)} subject(s) not migrated (their data does not "
                                   f"fit {result.to_label}): {', '.join(keys)}")


@schedule_cli.command("show")
@click.argument("study_oid")
@click.argument("subject_key")
@click.option("--on", "on", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Compute as of this date (YYYY-MM-DD); default: today at the site.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def schedule_show(study_oid: str, subject_key: str, on: dt.datetime | None, as_json: bool):
    """The expected events of a subject, computed afresh."""
    study = _study(study_oid)
    subject = _subject(study, subject_key)
    day = on.date() if on else schedule.local_today(subject.site.timezone)
    events = schedule.expected_events(db.session, subject, day)
    db.session.rollback()
    if as_json:
        click.echo(json.dumps({
            "study": study.oid, "subject": subject.subject_key, "on": day.isoformat(),
            "version": subject.study_version.label,
            "events": [{"event": e.event_oid, "name": e.name, "repeat": e.repeat,
                        "planned": _iso(e.planned), "window_start": _iso(e.window_start),
                        "window_end": _iso(e.window_end), "status": e.status.value,
                        "actual_date": _iso(e.actual_date), "note": e.note} for e in events],
        }, indent=2, ensure_ascii=False))
        return
    click.echo(f"{study.oid} {subject.subject_key} ({subject.study_version.label}) "
               f"on {day.isoformat()}")
    click.echo(f"{'event':<12} {'#':>3}  {'planned':<10}  {'window':<23}  {'status':<18}  "
               f"{'actual':<10}  note")
    for e in events:
        window = f"{_iso(e.window_start)}..{_iso(e.window_end)}" if e.window_start else "-"
        click.echo(f"{e.event_oid:<12} {e.repeat:>3}  {_iso(e.planned) or '-':<10}  "
                   f"{window:<23}  {e.status.value:<18}  {_iso(e.actual_date) or '':<10}  "
                   f"{e.note}")


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


@schedule_cli.command("refresh")
@click.option("--study", "oid", default=None, help="Only this study (default: every study).")
def schedule_refresh(oid: str | None):
    """Recompute schedules older than today (run nightly, e.g. from cron)."""
    targets = [_study(oid)] if oid else list(db.session.scalars(select(Study).order_by(Study.oid)))
    for study in targets:
        count = schedule.refresh_stale(db.session, study)
        db.session.commit()
        click.echo(f"{study.oid}: {count} subject schedule(s) recomputed")


def register(app: Flask) -> None:
    add_group(app, study_cli)
    app.cli.add_command(schedule_cli)
