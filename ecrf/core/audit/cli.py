"""`ecrf audit verify | anchor | rotate-key`: check the audit trail (keyed chain, head,
anchors, and the data against the trail), print its signed head for archiving, and rotate
the key that signs it."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from ecrf.core.audit.keys import Anchor, KeyringError, parse_anchor
from ecrf.core.audit.reconcile import reconcile, reconcile_alongside
from ecrf.core.audit.trail import Actor, AuditError, current_anchor, rotate_key, verify_chain
from ecrf.core.extensions import db

audit_cli = click.Group("audit", help="The audit trail.")


def _given_anchors(values: tuple[str, ...]) -> list[tuple[str, Anchor]]:
    """Anchors given on the command line: each value is an anchor line, or a file of them."""
    found = []
    for value in values:
        path = Path(value)
        if parse_anchor(value) is None and path.is_file():
            lines = [(f"{path.name}, line {n}", line) for n, line in
                     enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
                     if line.strip()]
        else:
            lines = [("the anchor given", value)]
        if not lines:
            raise click.BadParameter(f"{value}: no anchor line in this file", param_hint="--anchor")
        for where, line in lines:
            anchor = parse_anchor(line)
            if anchor is None:
                raise click.BadParameter(f"{where} is not an anchor line "
                                         "(ecrf-audit-anchor seq=... hash=... time=... key=... "
                                         "sig=...)", param_hint="--anchor")
            found.append((where, anchor))
    return found


@audit_cli.command("verify")
@click.option("--study", default=None,
              help="Report the rows of this study (the whole chain is walked).")
@click.option("--anchor", "anchors", multiple=True, metavar="LINE_OR_FILE",
              help="An anchor line from `ecrf audit anchor`, or a file of them, kept by a "
                   "third party: the trail must still hold that row with that hash.")
@click.option("--no-reconcile", is_flag=True,
              help="Check the chain only, not the stored data against the trail.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(0, 100000),
              help="Mismatches printed (all are counted).")
def audit_verify(study: str | None, anchors: tuple[str, ...], no_reconcile: bool, limit: int):
    """Check the keyed hash chain against the key file, the head row, the anchor log and
    any --anchor, then that every stored value, form status, lock, signature and
    allocation equals its last audit row. Exits non-zero and names the row or path of
    each problem."""
    given = _given_anchors(anchors)
    # On PostgreSQL the reconciliation runs in the database while the chain is walked.
    alongside = None if no_reconcile else reconcile_alongside(db.engine, limit=limit)
    result = verify_chain(db.session, study_oid=study.upper() if study else None,
                          anchors=given)
    click.echo(str(result))
    ok = result.ok
    if not no_reconcile:
        found = alongside.result() if alongside is not None else reconcile(db.session,
                                                                            limit=limit)
        for line in found.lines():
            click.echo(line)
        ok = ok and found.ok
    db.session.rollback()
    if not ok:
        sys.exit(1)


@audit_cli.command("anchor")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also append the line to this file.")
def audit_anchor(output: Path | None):
    """Print the chain's head (seq, hash, time, key id, signature) as one line for a third
    party to archive; `ecrf audit verify --anchor LINE` checks the trail against it."""
    try:
        anchor = current_anchor(db.session)
        db.session.commit()  # a first key may have been created
    except (AuditError, KeyringError) as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    line = anchor.line()
    if output is not None:
        try:
            with output.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror}") from None
    click.echo(line)


@audit_cli.command("rotate-key")
@click.option("--reason", required=True, help="Why the key is rotated (kept in the trail).")
def audit_rotate_key(reason: str):
    """Add a new key to the audit key file and sign new rows with it; the old key stays
    to verify older rows. Recorded as "audit.key_rotated", signed by the old key."""
    try:
        who = getpass.getuser()
    except Exception:  # no login name in some containers
        who = "unknown"
    try:
        old, new = rotate_key(db.session, Actor(user_id=None, username=f"cli:{who}"),
                              reason.strip() or None)
        db.session.commit()
    except (AuditError, KeyringError, OSError) as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(f"audit key rotated: {old} -> {new}; back up the key file again")
