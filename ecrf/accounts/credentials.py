"""What follows a password change or reset: the account's other sessions end and its API
tokens are suspended (their owner may re-enable them) or revoked, as the person making the
change chose; every step is written to the audit trail with its count."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from ecrf.accounts import sessions
from ecrf.accounts import tokens as api_tokens
from ecrf.accounts import users as accounts
from ecrf.accounts.models import User, UserSession
from ecrf.accounts.passwords import PasswordPolicy
from ecrf.core import audit
from ecrf.core.audit import Actor

__all__ = ["SUSPEND", "REVOKE", "TOKEN_CHOICES", "Aftermath", "change_password",
           "reset_password"]

SUSPEND = "suspend"
REVOKE = "revoke"
TOKEN_CHOICES = (SUSPEND, REVOKE)


@dataclass(frozen=True)
class Aftermath:
    sessions_ended: int
    tokens_suspended: int
    tokens_revoked: int


def _check_choice(tokens: str) -> None:
    if tokens not in TOKEN_CHOICES:
        raise accounts.AccountError(
            f"choose what happens to the API tokens: {' or '.join(TOKEN_CHOICES)}, "
            f"not {tokens!r}")


def _close_access(session: Session, actor: Actor, user: User, *, reason: str, tokens: str,
                  keep: UserSession | None) -> Aftermath:
    ended = sessions.end_all_for(session, user, reason, keep=keep)
    audit.record(session, actor, "sessions.ended", category="security",
                 details={"user": user.username, "reason": reason, "count": ended,
                          "current_session_kept": keep is not None})
    suspended = revoked = 0
    if tokens == REVOKE:
        revoked = api_tokens.revoke_all_for(session, actor, user)
    else:
        suspended = api_tokens.suspend_all_for(session, actor, user, reason)
    return Aftermath(ended, suspended, revoked)


def change_password(session: Session, actor: Actor, user: User, *, current: str, new: str,
                    policy: PasswordPolicy, tokens: str = SUSPEND,
                    keep: UserSession | None = None) -> Aftermath:
    """The user changes their own password: their other sessions end (``keep``, the one
    making the change, stays) and their tokens are suspended or revoked."""
    _check_choice(tokens)
    accounts.change_password(session, actor, user, current=current, new=new, policy=policy)
    return _close_access(session, actor, user, reason="password_changed", tokens=tokens,
                         keep=keep)


def reset_password(session: Session, actor: Actor, user: User, *,
                   tokens: str = SUSPEND) -> tuple[str, Aftermath]:
    """An administrator gives the user a temporary password: all their sessions end and
    their tokens are suspended or revoked. Returns the temporary password."""
    _check_choice(tokens)
    temporary = accounts.reset_password(session, actor, user)
    return temporary, _close_access(session, actor, user, reason="password_reset",
                                    tokens=tokens, keep=None)
