"""`ecrf ctcae grade ...` and `ecrf endpoints ...`: thin wrappers over the safety engines."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import click

from ecrf.core import db
from ecrf.domain.ctcae import GradingError, grade_lab
from ecrf.safety import endpoints, survival
from ecrf.studies import command_study

ctcae_cli = click.Group("ctcae", help="CTCAE v5.0 laboratory grading.")


def _json(value: object) -> object:
    return str(value) if isinstance(value, Decimal) else value


@ctcae_cli.command("grade")
@click.argument("test")
@click.argument("value")
@click.argument("unit")
@click.option("--lln", default=None, help="Lower limit of normal, in UNIT.")
@click.option("--uln", default=None, help="Upper limit of normal, in UNIT.")
@click.option("--baseline", default=None, help="The subject's baseline value, in UNIT.")
def ctcae_grade(test: str, value: str, unit: str, lln: str | None, uln: str | None,
                baseline: str | None):
    """Grade VALUE of TEST (NEUT, PLAT, WBC, LYM, HGB, ALT, AST, BILI, CREAT) in UNIT and
    print the result as JSON. A value that cannot be graded prints gradable false with
    the reason; an unknown test is an error."""
    try:
        grade = grade_lab(test, value, unit, lln=lln, uln=uln, baseline=baseline)
    except GradingError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({k: _json(v) for k, v in dataclasses.asdict(grade).items()},
                          ensure_ascii=False))


def _write(path: str, text: str, rows: int) -> None:
    if path == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(path).write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None
    click.echo(f"wrote {rows} rows to {path}")


@click.command("endpoints")
@click.argument("study")
@click.option("--csv", "csv_path", default=None,
              help="Write the per-dose-level summary as CSV to this file ('-' for stdout).")
@click.option("--subjects-csv", "subjects_path", default=None,
              help="Write one row per subject and endpoint as CSV to this file ('-' for "
                   "stdout).")
def endpoints_command(study: str, csv_path: str | None, subjects_path: str | None):
    """Hematologic recovery endpoints of STUDY, per dose level, computed now.

    Incidences print events/n evaluable with the exact 95 % interval; times the subjects
    at risk, events, censored (at the horizon) and the Kaplan-Meier median with its 95 %
    interval (NR: not reached) and the range of observed times."""
    row = command_study(study)
    try:
        result = endpoints.study_endpoints(db.session, row, None)
    except endpoints.EndpointsError as exc:
        raise click.ClickException(str(exc)) from None
    if csv_path == "-" and subjects_path == "-":
        raise click.UsageError("only one of --csv and --subjects-csv can write to stdout")
    if csv_path:
        _write(csv_path, result.csv(), len(result.summary))
    if subjects_path:
        subject_rows = result.subject_rows()
        _write(subjects_path, result.subjects_csv(), len(subject_rows))
    if csv_path or subjects_path:
        return
    computed = len(result.subjects) - len(result.excluded)
    click.echo(f"{row.name}: {computed} subject(s) with endpoints, "
               f"{len(result.excluded)} without")
    for item in result.excluded:
        click.echo(f"  {item.series.subject_key}: {item.series.problem}")
    click.echo("Rules:")
    for name, rule in result.rules.items():
        click.echo(f"  {name}: {rule}")
    for summary in result.summary:
        click.echo(f"  {summary.group:<16} {summary.endpoint:<42} {summary.text()}")


@click.command("survival")
@click.argument("study")
@click.option("--csv", "csv_path", default=None,
              help="Write the per-subject table as CSV to this file ('-' for stdout).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the per-arm summary and the per-subject table as JSON.")
def survival_command(study: str, csv_path: str | None, as_json: bool):
    """Overall survival of STUDY (its survival block): per-subject times and the
    Kaplan-Meier summary per arm and pooled, computed now."""
    row = command_study(study)
    try:
        result = survival.study_survival(db.session, row, None)
    except survival.SurvivalError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result.as_json(), ensure_ascii=False, indent=2))
        return
    if csv_path:
        _write(csv_path, result.csv(), len(result.subjects) + len(result.excluded))
        return

    def months(value: float | None) -> str:
        return "NR" if value is None else f"{value:.1f}"

    cut = f", cut-off {result.cutoff}" if result.cutoff else ""
    click.echo(f"{row.name}: {result.spec.name}, {len(result.subjects)} subject(s) in the "
               f"analysis{cut} (months; NR: not reached; -: nobody followed that long)")
    for group in result.groups:
        km = group.km
        marks = ", ".join(f"{m} mo {'-' if v is None else f'{100 * v:.1f}%'}"
                          for m, v in group.landmarks)
        click.echo(f"  {group.label:<34} n={km.n:<3} deaths={km.events:<3} "
                   f"censored={km.censored:<3} median {months(km.median)} "
                   f"(95% CI {months(km.median_low)}-{months(km.median_high)}); {marks}")
    for item in result.excluded:
        click.echo(f"  left out: {item.subject_key}: {item.time.excluded_because}")
    for key, problem in result.problems:
        click.echo(f"  data problem: {key}: {problem}")
