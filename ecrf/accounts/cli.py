"""`ecrf users ...` and `ecrf tokens ...`: user accounts with their roles, and API tokens
for integration accounts (lab feeds, ePRO, scripts).

Thin wrappers over the accounts operations; one transaction per command; bad input
prints one clear line and exits non-zero. A temporary password and the secret of a new
token are printed once.
"""

from __future__ import annotations

import sys

import click
from flask import current_app
from sqlalchemy import select

from ecrf.accounts import credentials
from ecrf.accounts import tokens as api_tokens
from ecrf.accounts import users as accounts
from ecrf.accounts.models import RoleGrant, User
from ecrf.accounts.passwords import policy_from_config
from ecrf.accounts.roles import RoleError, parse_role
from ecrf.core import cli_actor, db, fail, utcnow
from ecrf.studies import Site, Study, command_site, command_study


def _study(oid: str | None) -> Study | None:
    return command_study(oid) if oid else None


def _site(code: str | None) -> Site | None:
    return command_site(code) if code else None


users_cli = click.Group("users", help="Manage user accounts and their roles.")
tokens_cli = click.Group("tokens", help="API tokens: create, list, revoke.")


def _max_days() -> int:
    return int(current_app.config.get("API_TOKEN_MAX_DAYS", api_tokens.DEFAULT_MAX_DAYS))


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
    from ecrf.accounts import sessions

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
@click.option("--tokens", "tokens", type=click.Choice(credentials.TOKEN_CHOICES),
              default=credentials.SUSPEND, show_default=True,
              help="What happens to the account's API tokens: suspended (its owner may "
                   "re-enable them) or revoked for good.")
def users_reset_password(username: str, tokens: str):
    """Give the account a new temporary password and unlock it; its sessions end."""
    try:
        user = accounts.require_user(db.session, username)
    except accounts.AccountError as exc:
        fail(exc)
    temporary, after = credentials.reset_password(db.session, cli_actor(), user, tokens=tokens)
    db.session.commit()
    click.echo(f"temporary password for {user.username} (change at next sign-in): {temporary}")
    click.echo(f"sessions ended: {after.sessions_ended}; API tokens suspended: "
               f"{after.tokens_suspended}, revoked: {after.tokens_revoked}")


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


@tokens_cli.command("create")
@click.argument("username")
@click.option("--name", required=True, help="What will use the token, e.g. 'lab feed'.")
@click.option("--days", type=int, default=None,
              help="Days of validity (default and maximum: API_TOKEN_MAX_DAYS, 90 unless "
                   "configured).")
def tokens_create(username: str, name: str, days: int | None):
    """Create a token acting as USERNAME; prints its secret, shown this once only."""
    try:
        user = accounts.require_user(db.session, username)
        created = api_tokens.create_token(db.session, cli_actor(), user, name,
                                          days=days if days is not None else _max_days(),
                                          max_days=_max_days())
    except (accounts.AccountError, api_tokens.TokenError) as exc:
        fail(str(exc))
    db.session.commit()
    token = created.token
    click.echo(f"created token {token.id} ({token.prefix}...) for {user.username}, "
               f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC")
    click.echo(f"secret (shown once, store it now): {created.secret}")


@tokens_cli.command("list")
@click.argument("username", required=False)
def tokens_list(username: str | None):
    """List tokens (of USERNAME, or of every user): never their secrets."""
    user = None
    if username:
        try:
            user = accounts.require_user(db.session, username)
        except accounts.AccountError as exc:
            fail(str(exc))
    now = utcnow()
    found = api_tokens.list_tokens(db.session, user)
    if not found:
        click.echo("no tokens")
    for token in found:
        used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
        click.echo(f"{token.id:>5}  {token.prefix}...  {token.user.username:<20} "
                   f"{api_tokens.token_state(token, now):<8} "
                   f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC  last used {used}  "
                   f"{token.name}")


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int):
    """Revoke token TOKEN_ID (see `ecrf tokens list`) at once."""
    token = api_tokens.get_token(db.session, token_id)
    if token is None:
        fail(f"no API token with id {token_id} (see `ecrf tokens list`)")
    try:
        api_tokens.revoke_token(db.session, cli_actor(), token)
    except api_tokens.TokenError as exc:
        fail(str(exc))
    db.session.commit()
    click.echo(f"revoked token {token.id} ({token.prefix}...) of {token.user.username}")
