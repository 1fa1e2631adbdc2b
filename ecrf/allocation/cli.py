"""`ecrf randomization ...` and `ecrf escalation ...`: thin wrappers over allocation.

These commands show concealed material (seeds, block sizes, future allocations): they are
for the data manager and the statistician, who run them on the server.
"""

from __future__ import annotations

from pathlib import Path

import click

from ecrf import studies
from ecrf.allocation import escalation, randomization
from ecrf.core import cli_actor, db, fail
from ecrf.studies import command_study

randomization_cli = click.Group("randomization", help="Randomization lists (concealed).")
escalation_cli = click.Group("escalation", help="Dose escalation.")
KIND = click.Choice([kind.value for kind in randomization.KINDS])


def _block_sizes(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        raise click.ClickException(f"--block-sizes {text!r}: give whole numbers separated by "
                                   f"commas, e.g. 4,6") from None


@randomization_cli.command("generate")
@click.argument("study")
@click.option("--seed", required=True, help="Recorded with the list; the list is reproducible.")
@click.option("--per-stratum", type=click.IntRange(min=1), required=True,
              help="At least this many slots per stratum (whole blocks).")
@click.option("--kind", type=KIND, default="production", show_default=True)
@click.option("--name", default=None)
@click.option("--block-sizes", default=None,
              help="Override the definition's block sizes (comma-separated).")
@click.option("--replace", is_flag=True, help="Retire the active list of this kind (only if "
                                               "it allocated nobody).")
def generate(study: str, seed: str, per_stratum: int, kind: str, name: str | None,
             block_sizes: str | None, replace: bool):
    """Generate a stratified permuted-block list from the study definition."""
    try:
        rlist = randomization.generate(db.session, cli_actor(), command_study(study), seed=seed,
                                       per_stratum=per_stratum, kind=kind, name=name,
                                       block_sizes=_block_sizes(block_sizes), replace=replace)
    except randomization.RandomizationServiceError as exc:
        fail(exc)
    db.session.commit()
    click.echo(f"generated {kind} list #{rlist.id} {rlist.name!r}")
    _show_balance(rlist)


@randomization_cli.command("import")
@click.argument("study")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=KIND, default="production", show_default=True)
@click.option("--name", default=None)
@click.option("--replace", is_flag=True, help="Retire the active list of this kind (only if "
                                               "it allocated nobody).")
def import_(study: str, file: Path, kind: str, name: str | None, replace: bool):
    """Validate a CSV list (sequence, arm, stratum or one column per factor[, block,
    block_size]) and store it. Every problem is reported with its row."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise click.ClickException(f"{file}: cannot be read as UTF-8 text ({exc})") from None
    try:
        rlist = randomization.import_csv(db.session, cli_actor(), command_study(study), text, kind=kind,
                                         name=name or file.name, replace=replace)
    except randomization.ListValidationError as exc:
        db.session.rollback()
        for problem in exc.problems:
            click.echo(f"{file}: {problem}", err=True)
        raise click.ClickException(f"{len(exc.problems)} problem(s): nothing was "
                                   f"imported") from None
    except randomization.RandomizationServiceError as exc:
        fail(exc)
    db.session.commit()
    click.echo(f"imported {kind} list #{rlist.id} {rlist.name!r}")
    _show_balance(rlist)


def _show_balance(rlist) -> None:
    version = studies.latest_version(db.session, rlist.study)
    arms = [a.code for a in studies.definition_for(version).arms] if version else []
    rows = randomization.balance(db.session, rlist, arms)
    click.echo(f"  {'stratum':<40} {'slots':>5} {'used':>5} {'left':>5} {'void':>5}  "
               + "  ".join(f"{a:>6}" for a in arms))
    for row in rows:
        click.echo(f"  {row.stratum or '(unstratified)':<40} {row.slots:>5} {row.used:>5} "
                   f"{row.remaining:>5} {row.voided:>5}  "
                   + "  ".join(f"{row.allocated.get(a, 0):>6}" for a in arms))


@randomization_cli.command("show")
@click.argument("study")
@click.option("--kind", type=KIND, default=None, help="Only lists of this kind.")
@click.option("--slots", "show_slots", is_flag=True, help="Print every slot as well.")
def show(study: str, kind: str | None, show_slots: bool):
    """Lists of a study with their balance per stratum (data manager view)."""
    lists = randomization.lists_of(db.session, command_study(study), kind)
    if not lists:
        click.echo("no randomization list")
    for rlist in lists:
        state = "active" if rlist.active else "retired"
        click.echo(f"#{rlist.id} {rlist.name!r} {rlist.kind} {rlist.source} {state}; "
                   f"seed {rlist.seed or '-'}; block sizes {rlist.block_sizes or '-'}; "
                   f"created {rlist.created_at:%Y-%m-%d %H:%M} UTC by {rlist.created_by}")
        _show_balance(rlist)
        if show_slots:
            for slot in randomization.list_slots(db.session, rlist):
                used = f" subject #{slot.subject_id}" if slot.subject_id else ""
                click.echo(f"    {slot.stratum or '-'} #{slot.sequence} block {slot.block} "
                           f"({slot.block_size}) {slot.arm}{used}")


@escalation_cli.command("status")
@click.argument("study")
def status(study: str):
    """Print the escalation board and the current proposal."""
    try:
        board = escalation.board(db.session, command_study(study))
    except (escalation.EscalationServiceError,
            randomization.RandomizationServiceError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{board.study.oid} dose escalation ({board.design})")
    if board.boundaries:
        click.echo(f"target {board.target}: lambda_e {board.boundaries[0]:.4f}, "
                   f"lambda_d {board.boundaries[1]:.4f}")
    click.echo(f"{'level':<28} {'treated':>7} {'evaluable':>9} {'DLTs':>4} {'replace':>7} "
               f"{'places':>7}  subjects")
    for row in board.levels:
        marker = "*" if row.level == board.current_level else " "
        subjects = ", ".join(f"{s.subject_key} {s.state}" for s in row.subjects) or "-"
        click.echo(f"{marker}{row.level} {row.label:<25} {row.state.treated:>7} "
                   f"{row.state.evaluable:>9} {row.state.dlts:>4} {row.replacements:>7} "
                   f"{len(row.subjects):>3}/{row.capacity:<3}  {subjects}")
    if board.current_level is None:
        closed = board.closed_by
        click.echo(f"closed: {closed.action} on {closed.decided_at:%Y-%m-%d} by "
                   f"{closed.signer_name}" + (f"; MTD level {board.mtd}" if board.mtd else ""))
    else:
        click.echo(f"open level: {board.current_level}")
        level = f" (level {board.proposal.level})" if board.proposal.level else ""
        click.echo(f"proposal: {board.proposal.action.value}{level}: {board.proposal.reason}")
    for d in board.decisions:
        click.echo(f"decision {d.decided_at:%Y-%m-%d %H:%M} UTC {d.signer_name}: {d.action} at "
                   f"level {d.level} -> {d.next_level if d.next_level is not None else 'closed'}"
                   f"; {d.reason}")
