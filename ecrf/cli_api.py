"""`ecrf tokens ...`: API tokens for integration accounts (lab feeds, ePRO, scripts).

Thin wrappers over services/api_tokens.py; one transaction per command; bad input prints
one clear line and exits non-zero. The secret of a new token is printed once.
"""

from __future__ import annotations

import click
from flask import Flask, current_app

from ecrf.extensions import db
from ecrf.models.base import utcnow
from ecrf.services import accounts, api_tokens

tokens_cli = click.Group("tokens", help="API tokens: create, list, revoke.")


def _actor():
    from ecrf.cli import cli_actor  # ecrf.cli imports this module: resolve at call time

    return cli_actor()


def _fail(message: str) -> None:
    db.session.rollback()
    raise click.ClickException(message)


def _max_days() -> int:
    return int(current_app.config.get("API_TOKEN_MAX_DAYS", api_tokens.DEFAULT_MAX_DAYS))


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
        created = api_tokens.create_token(db.session, _actor(), user, name,
                                          days=days if days is not None else _max_days(),
                                          max_days=_max_days())
    except (accounts.AccountError, api_tokens.TokenError) as exc:
        _fail(str(exc))
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
            _fail(str(exc))
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
        _fail(f"no API token with id {token_id} (see `ecrf tokens list`)")
    try:
        api_tokens.revoke_token(db.session, _actor(), token)
    except api_tokens.TokenError as exc:
        _fail(str(exc))
    db.session.commit()
    click.echo(f"revoked token {token.id} ({token.prefix}...) of {token.user.username}")


def register(app: Flask) -> None:
    app.cli.add_command(tokens_cli)
