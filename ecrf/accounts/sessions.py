"""Server-side login sessions with idle and absolute limits."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from ecrf.accounts.models import RoleGrant, User, UserSession
from ecrf.core import audit, utcnow
from ecrf.core.audit import Actor

# last_seen is written at most this often, so browsing does not write on every request.
TOUCH_INTERVAL = dt.timedelta(seconds=30)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(session: Session, user: User, *, ip_address: str | None, user_agent: str | None) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(UserSession(
        token_hash=_digest(token), user_id=user.id, created_at=now, last_seen_at=now,
        ip_address=ip_address, user_agent=(user_agent or "")[:300] or None,
    ))
    return token


def resume(
    session: Session,
    token: str | None,
    *,
    idle: dt.timedelta,
    absolute: dt.timedelta,
    now: dt.datetime | None = None,
) -> tuple[UserSession | None, str | None]:
    """Find the live session for ``token``. Returns (session, None) or (None, reason)."""
    if not token:
        return None, None
    now = now or utcnow()
    # The user and their grants (with each grant's study and site) in the same statement:
    # every signed-in request's permission checks read them.
    live = session.scalars(
        select(UserSession).where(UserSession.token_hash == _digest(token))
        .options(joinedload(UserSession.user).joinedload(User.grants)
                 .options(joinedload(RoleGrant.study), joinedload(RoleGrant.site)))
    ).unique().one_or_none()
    if live is None or live.ended_at is not None:
        return None, "ended"
    reason = None
    if now - live.created_at > absolute:
        reason = "absolute_timeout"
    elif now - live.last_seen_at > idle:
        reason = "idle_timeout"
    elif not live.user.active:
        reason = "account_disabled"
    if reason:
        end(session, live, reason)
        return None, reason
    if now - live.last_seen_at > TOUCH_INTERVAL:
        live.last_seen_at = now
    return live, None


def end(session: Session, live: UserSession, reason: str) -> None:
    live.ended_at = utcnow()
    live.end_reason = reason
    user = live.user
    audit.record(
        session, Actor(user.id, user.username, ip_address=live.ip_address),
        "logout" if reason == "logout" else "session.ended", category="security",
        details={"reason": reason},
    )


def find(session: Session, token: str | None) -> UserSession | None:
    """The live (not ended) session behind a browser's session token, or None."""
    if not token:
        return None
    return session.scalar(select(UserSession).where(
        UserSession.token_hash == _digest(token), UserSession.ended_at.is_(None)))


def end_all_for(session: Session, user: User, reason: str, *,
                keep: UserSession | None = None) -> int:
    """End every live session of ``user`` but ``keep``; returns how many ended."""
    stmt = (update(UserSession)
            .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
            .values(ended_at=utcnow(), end_reason=reason)
            .execution_options(synchronize_session=False))
    if keep is not None:
        stmt = stmt.where(UserSession.id != keep.id)
    return session.execute(stmt).rowcount or 0
