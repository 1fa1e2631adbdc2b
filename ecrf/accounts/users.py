"""Accounts: creation, sign-in with lockout, passwords, disabling, role grants."""

from __future__ import annotations

import datetime as dt
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf.accounts import sessions
from ecrf.accounts.models import RoleGrant, User
from ecrf.accounts.passwords import PasswordPolicy, hash_password, needs_rehash, verify_password
from ecrf.accounts.roles import Role, check_scope
from ecrf.core import audit, utcnow
from ecrf.core.audit import Actor
from ecrf.studies import Site, Study

USERNAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")


class AccountError(ValueError):
    """A request about an account that cannot be carried out; the message says why."""


class PasswordPolicyError(AccountError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(" ".join(problems))


def normalise_username(username: str) -> str:
    return (username or "").strip().lower()


def get_user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == normalise_username(username)))


def require_user(session: Session, username: str) -> User:
    user = get_user(session, username)
    if user is None:
        raise AccountError(f"no user named {normalise_username(username)!r}")
    return user


def generate_temporary_password() -> str:
    # Four groups from an alphabet without look-alikes: easy to read out over the phone.
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789"
    groups = ["".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4)]
    return "-".join(groups) + "7"


def create_user(
    session: Session,
    actor: Actor,
    *,
    username: str,
    full_name: str,
    email: str | None = None,
    password: str | None = None,
    temporary: bool = True,
    policy: PasswordPolicy,
) -> tuple[User, str]:
    """Create an account. Returns the user and the password to hand over.

    With no password given a temporary one is generated; a temporary password must be
    changed at first sign-in.
    """
    name = normalise_username(username)
    if not USERNAME_RE.match(name):
        raise AccountError(
            f"username {username!r} is not valid: use 2-64 lower-case letters, digits, '.', "
            "'_' or '-', starting with a letter"
        )
    if get_user(session, name) is not None:
        raise AccountError(f"a user named {name!r} already exists")
    if not (full_name or "").strip():
        raise AccountError("a full name is required: it is printed with signatures")
    if password is None:
        password = generate_temporary_password()
        temporary = True
    problems = policy.problems(password, username=name, full_name=full_name)
    if problems:
        raise PasswordPolicyError(problems)
    user = User(
        username=name,
        full_name=full_name.strip(),
        email=(email or "").strip() or None,
        password_hash=hash_password(password),
        must_change_password=temporary,
        password_changed_at=utcnow(),
        active=True,
        failed_logins=0,
    )
    session.add(user)
    session.flush()
    audit.record(
        session, actor, "user.created", category="security",
        new_value=name, details={"full_name": user.full_name, "temporary_password": temporary},
    )
    return user, password


def authenticate(
    session: Session,
    username: str,
    password: str,
    *,
    ip_address: str | None,
    lockout_threshold: int,
    lockout_minutes: int,
    trusted: bool = False,
    now: dt.datetime | None = None,
) -> User | None:
    """Check a sign-in attempt. Returns the user, or None with the reason audited.

    Every failure looks the same to the caller, whether the account exists, is locked or
    is disabled, and each path verifies a hash so timing does not tell them apart either.

    ``trusted``: the attempt comes from a browser where this user signed in before (a
    valid device cookie). The account lockout does not apply to it and its failures do
    not count toward the lockout (the caller counts them against the device), so guessing
    from elsewhere cannot lock the real user out.
    """
    now = now or utcnow()
    name = normalise_username(username)
    user = get_user(session, name)
    attempt = Actor(user_id=user.id if user else None, username=name, ip_address=ip_address)
    if user is None:
        verify_password(None, password)
        audit.record(session, attempt, "login.failed", category="security",
                     details={"reason": "unknown user"})
        return None
    locked = user.locked_until is not None and now < user.locked_until
    if locked and not trusted:
        verify_password(None, password)
        audit.record(session, attempt, "login.refused", category="security",
                     details={"reason": "account locked", "locked_until": user.locked_until})
        return None
    if not user.active:
        verify_password(None, password)
        audit.record(session, attempt, "login.refused", category="security",
                     details={"reason": "account disabled"})
        return None
    if not verify_password(user.password_hash, password):
        if trusted:
            audit.record(session, attempt, "login.failed", category="security",
                         details={"reason": "wrong password", "known_device": True})
        else:
            register_failed_attempt(
                session, user, attempt, what="login",
                threshold=lockout_threshold, minutes=lockout_minutes, now=now,
            )
        return None
    if not locked:  # a lock against other browsers stays until it expires
        user.failed_logins = 0
        user.locked_until = None
        user.lock_source = None
    user.last_login_at = now
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    audit.record(session, attempt, "login.succeeded", category="security",
                 details={"known_device": True, "account_locked": True} if locked else None)
    return user


def register_failed_attempt(
    session: Session,
    user: User,
    actor: Actor,
    *,
    what: str,
    threshold: int,
    minutes: int,
    now: dt.datetime | None = None,
) -> bool:
    """Count a failed password check (sign-in or e-signature); lock at the threshold.

    Returns True when this attempt locked the account.
    """
    now = now or utcnow()
    user.failed_logins = (user.failed_logins or 0) + 1
    audit.record(session, actor, f"{what}.failed", category="security",
                 details={"reason": "wrong password", "consecutive_failures": user.failed_logins})
    if user.failed_logins >= threshold:
        user.locked_until = now + dt.timedelta(minutes=minutes)
        user.lock_source = what[:16]
        user.failed_logins = 0
        audit.record(session, actor, "account.locked", category="security",
                     details={"until": user.locked_until, "after": what})
        return True
    return False


def signing_locked_out(session: Session, user: User, now: dt.datetime) -> bool:
    """Whether the account is locked for signing; a locked account signs nothing, and its
    sessions end (the caller commits: the refusal is part of the record).

    A lock set by failed sign-ins does not count here: it keeps password guessers away
    from the sign-in page, and must not let them end the real user's sessions or stop
    their signatures (their own wrong signing passwords lock them as before)."""
    if (user.locked_until is not None and now < user.locked_until
            and user.lock_source != "login"):
        sessions.end_all_for(session, user, "account_locked")
        return True
    return False


def failed_signature(session: Session, user: User, actor: Actor, *, threshold: int,
                     minutes: int, now: dt.datetime, what: str = "signature") -> bool:
    """A wrong password given as an electronic signature (or to confirm another act,
    ``what``): counted toward lockout and audited like a failed sign-in; a lockout ends
    the user's sessions. Flushes; returns whether the account is now locked (the caller
    commits)."""
    locked = register_failed_attempt(session, user, actor, what=what,
                                     threshold=threshold, minutes=minutes, now=now)
    if locked:
        sessions.end_all_for(session, user, "account_locked")
    session.flush()
    return locked


def password_expired(user: User, max_age_days: int, now: dt.datetime | None = None) -> bool:
    if max_age_days <= 0:
        return False
    now = now or utcnow()
    return now - user.password_changed_at > dt.timedelta(days=max_age_days)


def change_password(
    session: Session,
    actor: Actor,
    user: User,
    *,
    current: str,
    new: str,
    policy: PasswordPolicy,
) -> None:
    if not verify_password(user.password_hash, current):
        audit.record(session, actor, "password.change_failed", category="security",
                     details={"reason": "current password wrong"})
        raise AccountError("The current password is not correct.")
    if current == new:
        raise PasswordPolicyError(["The new password must differ from the current one."])
    problems = policy.problems(new, username=user.username, full_name=user.full_name)
    if problems:
        raise PasswordPolicyError(problems)
    user.password_hash = hash_password(new)
    user.password_changed_at = utcnow()
    user.must_change_password = False
    audit.record(session, actor, "password.changed", category="security")


def reset_password(session: Session, actor: Actor, user: User) -> str:
    """Give the user a new temporary password (to be changed at next sign-in)."""
    temporary = generate_temporary_password()
    user.password_hash = hash_password(temporary)
    user.password_changed_at = utcnow()
    user.must_change_password = True
    user.failed_logins = 0
    user.locked_until = None
    user.lock_source = None
    audit.record(session, actor, "password.reset", category="security", new_value=user.username)
    return temporary


def set_active(session: Session, actor: Actor, user: User, active: bool, reason: str = "") -> None:
    if actor.user_id == user.id and not active:
        raise AccountError("you cannot disable your own account")
    if user.active == active:
        state = "active" if active else "disabled"
        raise AccountError(f"user {user.username!r} is already {state}")
    user.active = active
    audit.record(
        session, actor, "user.enabled" if active else "user.disabled", category="security",
        old_value="disabled" if active else "active", new_value="active" if active else "disabled",
        reason=reason or None, details={"user": user.username},
    )


def grant_role(
    session: Session,
    actor: Actor,
    user: User,
    role: Role,
    *,
    study: Study | None = None,
    site: Site | None = None,
) -> RoleGrant:
    check_scope(role, study=study, site=site)
    if site is not None and study is not None and site.id not in {s.site_id for s in study.sites}:
        raise AccountError(f"site {site.code} does not take part in study {study.oid}")
    for g in user.grants:
        if (g.revoked_at is None and g.role == role and g.study_id == (study.id if study else None)
                and g.site_id == (site.id if site else None)):
            raise AccountError(f"{user.username} already holds {describe(role, study, site)}")
    grant = RoleGrant(user=user, role=role.value, study=study, site=site,
                      granted_by_id=actor.user_id, granted_at=utcnow())
    session.add(grant)
    session.flush()
    audit.record(
        session, actor, "role.granted", category="security",
        study_oid=study.oid if study else None, site_code=site.code if site else None,
        new_value=describe(role, study, site), details={"user": user.username},
    )
    return grant


def revoke_role(session: Session, actor: Actor, grant: RoleGrant, reason: str = "") -> None:
    if grant.revoked_at is not None:
        raise AccountError("this role was already revoked")
    grant.revoked_at = utcnow()
    grant.revoked_by_id = actor.user_id
    audit.record(
        session, actor, "role.revoked", category="security",
        study_oid=grant.study.oid if grant.study else None,
        site_code=grant.site.code if grant.site else None,
        old_value=describe(Role(grant.role), grant.study, grant.site),
        reason=reason or None, details={"user": grant.user.username},
    )


def describe(role: Role, study: Study | None, site: Site | None) -> str:
    text = role.value
    if study is not None:
        text += f" in {study.oid}"
    if site is not None:
        text += f" at {site.code}"
    return text
