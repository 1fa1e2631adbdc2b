"""`ecrf study versions|migrate|recompute-status`, `ecrf schedule show|refresh` and `ecrf audit export`: the
study versions with the subjects that follow each, moving subjects to another version,
the stored visit schedules, and a study's or a subject's audit trail as CSV. Thin
wrappers over capture; one transaction per command; bad input prints one clear line and
exits non-zero."""

from __future__ import annotations

import datetime as dt
import json

import click
from flask import Flask
from sqlalchemy import func, select

from ecrf import studies
from ecrf.capture import schedule
from ecrf.capture.migration import MigrationError, migrate_forms, preview_migration
from ecrf.capture.models import Subject
from ecrf.capture.status import recompute_study
from ecrf.core import add_group, audit, cli_actor, db, fail
from ecrf.studies import Study, command_study

study_cli = click.Group("study", help="Study definitions: check, load, versions, migration.")
schedule_cli = click.Group("schedule", help="Subjects' visit schedules.")
audit_cli = click.Group("audit", help="The audit trail.")


def _subject(study: Study, key: str) -> Subject:
    subject = db.session.scalar(select(Subject).where(Subject.study_id == study.id,
                                                      Subject.subject_key == key.strip()))
    if subject is None:
        raise click.ClickException(f"no subject {key!r} in {study.oid}")
    return subject


@study_cli.command("versions")
@click.argument("oid")
def study_versions(oid: str):
    """List the stored versions of a study and how many subjects follow each."""
    study = command_study(oid)
    counts = {version_id: count for version_id, count in db.session.execute(
        select(Subject.study_version_id, func.count()).where(Subject.study_id == study.id)
        .group_by(Subject.study_version_id))}
    rows = studies.study_versions(db.session, study)
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
    study = command_study(oid)
    keys = list(subject_keys) or None
    try:
        if dry_run:
            preview = preview_migration(db.session, study, to_number, keys)
            for line in preview.lines():
                click.echo(line)
            db.session.rollback()
            return
        result = migrate_forms(db.session, cli_actor(), study, to_number, keys, reason=reason)
    except MigrationError as exc:
        fail(exc)
    db.session.commit()
    click.echo(f"migrated {len(result.subjects)} subject(s) and {result.forms} form(s) of "
               f"{study.oid} to {result.to_label}")
    if result.refused or result.locked:
        for form in result.refused:
            for problem in form.problems:
                click.echo(f"refused {form.where}: {problem}", err=True)
        for key, lock in sorted(result.locked.items()):
            click.echo(f"refused {key}: locked: {lock}", err=True)
        keys = sorted({f.subject_key for f in result.refused} | set(result.locked))
        raise click.ClickException(f"{len(keys)} subject(s) not migrated (their data does not "
                                   f"fit {result.to_label} or is locked): {', '.join(keys)}")


@schedule_cli.command("show")
@click.argument("study_oid")
@click.argument("subject_key")
@click.option("--on", "on", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Compute as of this date (YYYY-MM-DD); default: today at the site.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def schedule_show(study_oid: str, subject_key: str, on: dt.datetime | None, as_json: bool):
    """The expected events of a subject, computed afresh."""
    study = command_study(study_oid)
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
    targets = [command_study(oid)] if oid else list(db.session.scalars(select(Study).order_by(Study.oid)))
    for study in targets:
        count = schedule.refresh_stale(db.session, study)
        db.session.commit()
        click.echo(f"{study.oid}: {count} subject schedule(s) recomputed")


@study_cli.command("recompute-status")
@click.argument("oid")
def study_recompute_status(oid: str):
    """Recompute every subject's status from its data and the study's status rules
    (each change audited; a status may go down here, as the data says)."""
    study = command_study(oid)
    moved = recompute_study(db.session, cli_actor(), study)
    db.session.commit()
    if not moved:
        click.echo(f"{study.oid}: every subject's status already follows its data")
    for name, count in sorted(moved.items()):
        click.echo(f"{study.oid}: {count} subject(s) now {name}")


@audit_cli.command("export")
@click.option("--study", required=True, help="Study OID.")
@click.option("--subject", default=None, help="Only this subject's rows.")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="CSV file to write ('-' for standard output).")
def audit_export(study: str, subject: str | None, output: str):
    """Write a study's (or one subject's) audit trail as CSV, in chain order."""
    found = command_study(study)
    if subject is not None and db.session.scalar(select(Subject.id).where(
            Subject.study_id == found.id, Subject.subject_key == subject)) is None:
        raise click.ClickException(f"no subject {subject!r} in {found.oid}")
    stmt = audit.study_audit_query(found.oid, subject_key=subject)
    count = 0
    with click.open_file(output, "wb") as out:  # bytes: the CSV's CRLF stays as written
        for line in audit.audit_csv(audit.stream_rows(db.session, stmt)):
            out.write(line.encode("utf-8"))
            count += 1
    if output != "-":
        click.echo(f"wrote {count - 1} audit rows of {found.oid}"
                   f"{' / ' + subject if subject else ''} to {output}")


def register(app: Flask) -> None:
    add_group(app, study_cli)
    app.cli.add_command(schedule_cli)
    add_group(app, audit_cli)
