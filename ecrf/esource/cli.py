"""``ecrf import labs FILE --study S``: laboratory results from a hospital file, previewed
and stored through data capture in one transaction (all or nothing)."""

from __future__ import annotations

from pathlib import Path

import click

from ecrf.capture import IMPORTED_TABLES
from ecrf.core import analyze_after_import, cli_actor, db, fail
from ecrf.studies import command_study

from .parse import FORMATS, LabFileError
from .store import CONFLICT, NEW, UNCHANGED, LabImport, LabImportRefused, apply_import, plan_import

labs_cli = click.Group("import", help="Bring study definitions and data in from other systems.")


def print_plan(plan: LabImport) -> None:
    click.echo(f"{plan.name} ({plan.format}, sha256 {plan.sha256}): {plan.results} result(s)")
    for line in plan.lines:
        stored = f" (entered: {line.stored})" if line.state == CONFLICT else ""
        click.echo(f"  {line.where}: {line.subject_key} {line.event}[{line.repeat}] row "
                   f"{line.row} {line.date.isoformat()} {line.item} = {line.value} "
                   f"[{line.source}] {line.state}{stored}")
    for problem in plan.skipped:
        click.echo(f"  {problem.where}: skipped: {problem.reason}")
    for problem in plan.problems:
        click.echo(f"  {problem.where}: cannot be imported: {problem.reason}")
    click.echo(f"{plan.count(NEW)} new, {plan.count(UNCHANGED)} unchanged, "
               f"{plan.count(CONFLICT)} conflicting, {len(plan.skipped)} skipped, "
               f"{len(plan.problems)} cannot be imported")


@labs_cli.command("labs")
@click.argument("lab_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--study", "study_oid", required=True, help="Study the results belong to.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="File format (default: from the file's name and content).")
@click.option("--dry-run", is_flag=True, help="Show the preview; store nothing.")
@click.option("--accept-conflicts", is_flag=True,
              help="Replace entered values that differ from the file (default: keep them).")
def import_labs(lab_file: str, study_oid: str, fmt: str | None, dry_run: bool,
                accept_conflicts: bool):
    """Import laboratory results (CSV, HL7 v2 ORU^R01 or FHIR R4 Observations) into the
    items the study's labs block names, through data capture. Nothing is stored unless
    every result can be: a line that cannot be imported refuses the whole file."""
    path = Path(lab_file)
    study = command_study(study_oid)
    try:
        plan = plan_import(db.session, study, path.name, path.read_bytes(), fmt)
    except LabFileError as exc:
        fail(exc)
    print_plan(plan)
    if plan.problems:
        fail(f"{len(plan.problems)} result(s) cannot be imported (listed above); nothing was "
             "stored")
    if dry_run:
        db.session.rollback()
        click.echo("dry run: nothing stored")
        return
    try:
        stored = apply_import(db.session, cli_actor(), study, plan, accept=accept_conflicts)
    except LabImportRefused as exc:
        for problem in exc.problems:
            click.echo(f"  {problem.where}: refused: {problem.reason}")
        fail(f"{exc}; nothing was stored")
    except LabFileError as exc:
        fail(exc)
    db.session.commit()
    analyze_after_import(db.session, IMPORTED_TABLES, stored.values)
    kept = f", {stored.kept} conflicting value(s) kept as entered" if stored.kept else ""
    click.echo(f"{stored.values} value(s) stored in {stored.forms} form(s){kept}")


def register(app) -> None:
    from ecrf.core import add_group

    add_group(app, labs_cli)
