"""The ``ecrf`` command: the Flask CLI bound to the app, plus ecrf's own commands.

Each command is a thin wrapper over a service, runs in one transaction, and on bad input
prints one clear line and exits non-zero.
"""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup
from sqlalchemy import select

from ecrf.core.cli import cli_actor, fail
from ecrf.extensions import db
from ecrf.models.accounts import RoleGrant, Study, User
from ecrf.security.passwords import policy_from_config
from ecrf.security.roles import RoleError, parse_role
from ecrf.services import accounts, sites


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


users_cli = click.Group("users", help="Manage user accounts and their roles.")
sites_cli = click.Group("sites", help="Manage sites.")


@users_cli.command("create")
@click.argument("username")
@click.option("--name", "full_name", required=True, help="Full name, printed with signatures.")
@click.option("--email", default=None)
@click.option("--password-stdin", is_flag=True,
              help="Read a permanent password from standard input instead of generating a "
                   "temporary one.")
def users_create(username: str, full_name: str, email: str | None, password_stdin: bool):
    """Create an account; prints the temporary password to hand over."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    try:
        user, pw = accounts.create_user(
            db.session, cli_actor(), username=username, full_name=full_name, email=email,
            password=password, temporary=not password_stdin,
            policy=policy_from_config(current_app.config),
        )
    except accounts.AccountError as exc:
        fail(exc)
    db.session.commit()
    click.echo(f"created {user.username}")
    if not password_stdin:
        click.echo(f"temporary password (change at first sign-in): {pw}")


@users_cli.command("list")
def users_list():
    """List accounts with their state and active roles."""
    for user in db.session.scalars(select(User).order_by(User.username)):
        roles = ", ".join(
            accounts.describe(parse_role(g.role), g.study, g.site) for g in user.active_grants()
        ) or "-"
        state = "active" if user.active else "disabled"
        if user.locked_until is not None:
            state += f", locked until {user.locked_until:%Y-%m-%d %H:%M} UTC"
        click.echo(f"{user.username:<20} {user.full_name:<28} {state:<10} {roles}")


@users_cli.command("disable")
@click.argument("username")
@click.option("--reason", default="")
def users_disable(username: str, reason: str):
    """Disable an account (it can no longer sign in; its history stays)."""
    from ecrf.services import sessions

    try:
        user = accounts.require_user(db.session, username)
        accounts.set_active(db.session, cli_actor(), user, False, reason=reason)
        sessions.end_all_for(db.session, user, "account_disabled")
    except accounts.AccountError as exc:
        fail(exc)
    db.session.commit()
    click.echo(f"disabled {user.username}")


@users_cli.command("enable")
@click.argument("username")
def users_enable(username: str):
    """Enable a disabled account."""
    try:
        user = accounts.require_user(db.session, username)
        accounts.set_active(db.session, cli_actor(), user, True)
    except accounts.AccountError as exc:
        fail(exc)
    db.session.commit()
    click.echo(f"enabled {user.username}")


@users_cli.command("reset-password")
@click.argument("username")
def users_reset_password(username: str):
    """Give the account a new temporary password and unlock it."""
    try:
        user = accounts.require_user(db.session, username)
    except accounts.AccountError as exc:
        fail(exc)
    temporary = accounts.reset_password(db.session, cli_actor(), user)
    db.session.commit()
    click.echo(f"temporary password for {user.username} (change at next sign-in): {temporary}")


@users_cli.command("grant")
@click.argument("username")
@click.argument("role")
@click.option("--study", default=None, help="Study OID (every role but admin).")
@click.option("--site", default=None, help="Site code (investigator, coordinator, monitor).")
def users_grant(username: str, role: str, study: str | None, site: str | None):
    """Grant ROLE: admin, data_manager, investigator, coordinator, monitor, sponsor_viewer."""
    try:
        user = accounts.require_user(db.session, username)
        accounts.grant_role(db.session, cli_actor(), user, parse_role(role),
                            study=_study(study), site=_site(site))
    except (accounts.AccountError, RoleError) as exc:
        fail(exc)
    db.session.commit()
    click.echo(f"granted {accounts.describe(parse_role(role), _study(study), _site(site))} "
               f"to {user.username}")


@users_cli.command("revoke")
@click.argument("username")
@click.argument("role")
@click.option("--study", default=None)
@click.option("--site", default=None)
@click.option("--reason", default="")
def users_revoke(username: str, role: str, study: str | None, site: str | None, reason: str):
    """Revoke an active role grant."""
    try:
        user = accounts.require_user(db.session, username)
        parsed = parse_role(role)
        st, si = _study(study), _site(site)
        grant = db.session.scalar(select(RoleGrant).where(
            RoleGrant.user_id == user.id, RoleGrant.role == parsed.value,
            RoleGrant.study_id == st.id if st else RoleGrant.study_id.is_(None),
            RoleGrant.site_id == si.id if si else RoleGrant.site_id.is_(None),
            RoleGrant.revoked_at.is_(None),
        ))
        if grant is None:
            raise accounts.AccountError(
                f"{user.username} holds no active {accounts.describe(parsed, st, si)}")
        accounts.revoke_role(db.session, cli_actor(), grant, reason=reason)
    except (accounts.AccountError, RoleError) as exc:
        fail(exc)
    db.session.commit()
    click.echo(f"revoked {accounts.describe(parsed, st, si)} from {user.username}")


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
    from ecrf import cli_api, cli_studies, demo, jobs

    app.cli.add_command(users_cli)
    app.cli.add_command(sites_cli)
    demo.register(app)
    jobs.register(app)
    app.cli.add_command(audit_cli)
    for module in (cli_studies, cli_api):
        module.register(app)
