"""API tokens: created with their secret shown once, listed, revoked, and checked on use.

Only the SHA-256 of a secret is stored. The secrets are 256-bit random strings, so a plain
hash (no salt, no slow KDF) is enough to make a stolen table useless, and it lets a token
be found by an indexed lookup. Creation, revocation, every use and every refused use are
written to the audit trail (category "security").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from ecrf.accounts.models import ApiToken, User
from ecrf.accounts.users import password_expired
from ecrf.core import audit, utcnow
from ecrf.core.audit import Actor

__all__ = [
    "DEFAULT_MAX_DAYS",
    "AuthenticationError",
    "NewToken",
    "TokenError",
    "authenticate",
    "create_token",
    "get_token",
    "hash_secret",
    "list_tokens",
    "resume_token",
    "revoke_token",
    "revoke_all_for",
    "suspend_all_for",
    "token_state",
    "usable_tokens",
]

DEFAULT_MAX_DAYS = 90
PREFIX_LENGTH = 8
MAX_NAME = 100
SECURITY = "security"


class TokenError(ValueError):
    """A token request that cannot be carried out; the message says why."""


class AuthenticationError(TokenError):
    """A bearer token that does not authenticate; ``reason`` is a stable code
    (unknown, revoked, expired, suspended, disabled, password_change, throttled) and the
    message says it plainly."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # shown once to its owner, never stored


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def token_state(token: ApiToken, now: dt.datetime | None = None) -> str:
    """``active``, ``suspended``, ``expired`` or ``revoked``."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at <= (now or utcnow()):
        return "expired"
    if token.suspended_at is not None:
        return "suspended"
    return "active"


def usable_tokens(session: Session, user: User, now: dt.datetime | None = None) -> list[ApiToken]:
    """The user's tokens that work now (not revoked, expired or suspended)."""
    now = now or utcnow()
    return list(session.scalars(select(ApiToken).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None),
        ApiToken.suspended_at.is_(None), ApiToken.expires_at > now,
    ).order_by(ApiToken.id)))


def suspend_all_for(session: Session, actor: Actor, user: User, reason: str, *,
                    now: dt.datetime | None = None) -> int:
    """Suspend every working token of ``user`` (each audited); returns how many."""
    now = now or utcnow()
    found = usable_tokens(session, user, now)
    for token in found:
        token.suspended_at, token.suspended_reason = now, reason[:64]
        audit.record(session, actor, "api_token.suspended", category=SECURITY,
                     old_value="active", new_value="suspended",
                     details={"token_id": token.id, "prefix": token.prefix, "name": token.name,
                              "user": user.username, "reason": reason})
    return len(found)


def revoke_all_for(session: Session, actor: Actor, user: User, *,
                   now: dt.datetime | None = None) -> int:
    """Revoke every token of ``user`` not yet revoked (suspended and expired ones too, so
    none can come back); each revocation is audited. Returns how many."""
    now = now or utcnow()
    found = list(session.scalars(select(ApiToken).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)).order_by(ApiToken.id)))
    for token in found:
        revoke_token(session, actor, token, now=now)
    return len(found)


def resume_token(session: Session, actor: Actor, token: ApiToken, *,
                 now: dt.datetime | None = None) -> ApiToken:
    """Re-enable a suspended token (its owner, having given their password again)."""
    state = token_state(token, now)
    if state != "suspended":
        raise TokenError(f"token {token.prefix} is {state}, not suspended: there is nothing "
                         "to re-enable")
    token.suspended_at, token.suspended_reason = None, None
    audit.record(session, actor, "api_token.resumed", category=SECURITY,
                 old_value="suspended", new_value="active",
                 details={"token_id": token.id, "prefix": token.prefix, "name": token.name,
                          "user": token.user.username})
    return token


def create_token(session: Session, actor: Actor, user: User, name: str, *, days: int,
                 max_days: int = DEFAULT_MAX_DAYS, now: dt.datetime | None = None) -> NewToken:
    """Create a token for ``user`` valid ``days`` days (at most ``max_days``)."""
    name = (name or "").strip()
    if not name:
        raise TokenError("give the token a name that says what uses it (e.g. 'lab feed')")
    if len(name) > MAX_NAME:
        raise TokenError(f"the token name is {len(name)} characters long; at most {MAX_NAME}")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= max_days:
        raise TokenError(f"a token is valid from 1 to {max_days} days, not {days!r}")
    if not user.active:
        raise TokenError(f"{user.username} is disabled: no token can be created for it")
    now = now or utcnow()
    secret = secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, prefix=secret[:PREFIX_LENGTH],
                     token_hash=hash_secret(secret), created_at=now,
                     expires_at=now + dt.timedelta(days=days))
    session.add(token)
    session.flush()
    audit.record(session, actor, "api_token.created", category=SECURITY,
                 new_value=token.prefix,
                 details={"token_id": token.id, "name": name, "user": user.username,
                          "expires_at": token.expires_at})
    return NewToken(token, secret)


def list_tokens(session: Session, user: User | None = None) -> list[ApiToken]:
    """Tokens of ``user`` (every user's when None), newest first, with their users."""
    stmt = select(ApiToken).options(joinedload(ApiToken.user)).order_by(
        ApiToken.created_at.desc(), ApiToken.id.desc())
    if user is not None:
        stmt = stmt.where(ApiToken.user_id == user.id)
    return list(session.scalars(stmt))


def get_token(session: Session, token_id: int, user: User | None = None) -> ApiToken | None:
    """The token, or None; with ``user``, only a token that user owns."""
    stmt = select(ApiToken).where(ApiToken.id == token_id)
    if user is not None:
        stmt = stmt.where(ApiToken.user_id == user.id)
    return session.scalar(stmt)


def revoke_token(session: Session, actor: Actor, token: ApiToken, *,
                 now: dt.datetime | None = None) -> ApiToken:
    """Revoke a token at once; its row stays, with who revoked it and when."""
    if token.revoked_at is not None:
        raise TokenError(f"token {token.prefix} was already revoked on "
                         f"{token.revoked_at:%Y-%m-%d %H:%M} UTC")
    now = now or utcnow()
    previous = token_state(token, now)
    token.revoked_at, token.revoked_by_id = now, actor.user_id
    audit.record(session, actor, "api_token.revoked", category=SECURITY,
                 old_value=previous, new_value="revoked",
                 details={"token_id": token.id, "prefix": token.prefix, "name": token.name,
                          "user": token.user.username})
    return token


def authenticate(session: Session, secret: str, *, method: str, path: str,
                 ip_address: str | None, password_max_age_days: int = 0,
                 now: dt.datetime | None = None) -> ApiToken:
    """The live token behind ``secret``; its use is audited and its last use stamped.

    Raises AuthenticationError (the refusal audited too) for an unknown, revoked or expired
    token, a disabled account, or an account whose password must be changed first.
    """
    now = now or utcnow()
    request = {"method": method, "path": path[:500]}
    token = session.scalar(select(ApiToken).options(joinedload(ApiToken.user))
                           .where(ApiToken.token_hash == hash_secret(secret)))
    if token is None:
        # Nothing of an unknown secret is recorded: it may be a real one, mistyped.
        audit.record(session, Actor(None, "anonymous", ip_address=ip_address),
                     "api.auth_failed", category=SECURITY,
                     details={**request, "reason": "unknown"})
        raise AuthenticationError("unknown", "The API token is not valid.")
    user = token.user
    who = Actor(user.id, user.username, ip_address=ip_address)
    refusal = _refusal(token, user, now, password_max_age_days)
    if refusal is not None:
        reason, message = refusal
        audit.record(session, who, "api.auth_failed", category=SECURITY,
                     details={**request, "reason": reason, "token_prefix": token.prefix})
        raise AuthenticationError(reason, message)
    token.last_used_at = now
    audit.record(session, who, "api.request", category=SECURITY,
                 details={**request, "token_prefix": token.prefix})
    return token


def _refusal(token: ApiToken, user: User, now: dt.datetime,
             password_max_age_days: int) -> tuple[str, str] | None:
    state = token_state(token, now)
    if state == "revoked":
        return state, (f"The API token {token.prefix} was revoked on "
                       f"{token.revoked_at:%Y-%m-%d %H:%M} UTC.")
    if state == "expired":
        return state, (f"The API token {token.prefix} expired on "
                       f"{token.expires_at:%Y-%m-%d %H:%M} UTC; create a new one.")
    if state == "suspended":
        return state, (f"The API token {token.prefix} is suspended since "
                       f"{token.suspended_at:%Y-%m-%d %H:%M} UTC because the password of "
                       f"{user.username} was changed or reset; its owner can re-enable it on "
                       "the API tokens page of the web application.")
    if not user.active:
        return "disabled", f"The account {user.username} is disabled."
    if user.must_change_password or password_expired(user, password_max_age_days, now):
        return "password_change", (f"The account {user.username} must change its password "
                                   "(sign in to the web application) before its API tokens "
                                   "can be used.")
    return None
