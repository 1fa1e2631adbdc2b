"""Users, the role grants that give them access to studies and sites, their server-side
login sessions and their personal API tokens."""

from __future__ import annotations

import datetime as dt

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ecrf.core import Base, UTCDateTime, utcnow
from ecrf.studies import Site, Study


class User(UserMixin, Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(Text)
    password_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # What set the lock: "login" (sign-in failures: refuses sign-in from browsers without
    # the user's device cookie) or "signature"/"token_resume" (a signed-in user's wrong
    # passwords: refuses sign-in and signing, and ends the sessions).
    lock_source: Mapped[str | None] = mapped_column(String(16))
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The interface language the user last chose ("fr", "zh_Hans"); None: the browser's.
    language: Mapped[str | None] = mapped_column(String(16))

    grants: Mapped[list[RoleGrant]] = relationship(
        back_populates="user", foreign_keys="RoleGrant.user_id"
    )

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive accounts
        return self.active

    def active_grants(self) -> list[RoleGrant]:
        return [g for g in self.grants if g.revoked_at is None]

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class RoleGrant(Base):
    """A role held by a user: system-wide (admin), for a study, or for one site of a study.

    A revoked grant keeps its row (who revoked it and when) so that the history of access
    stays reviewable, as 21 CFR 11 and ICH E6 expect.
    """

    __tablename__ = "role_grant"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    study_id: Mapped[int | None] = mapped_column(ForeignKey("study.id"), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"), index=True)
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    user: Mapped[User] = relationship(back_populates="grants", foreign_keys=[user_id])
    study: Mapped[Study | None] = relationship()
    site: Mapped[Site | None] = relationship()

    def __repr__(self) -> str:
        return f"<RoleGrant {self.role} user={self.user_id} study={self.study_id} site={self.site_id}>"


class UserSession(Base):
    """A server-side login session, so idle and absolute limits hold across workers and a
    logout or a disabled account ends the session everywhere."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    user: Mapped[User] = relationship()

    def __repr__(self) -> str:
        return f"<UserSession user={self.user_id} ended={self.ended_at}>"


class ApiToken(Base):
    """A token acting as its user. Only the SHA-256 of the secret is stored (the secret is
    shown once, at creation); the prefix identifies it in lists and in the audit trail.
    A revoked token keeps its row, so who used and revoked what stays reviewable."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(8))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # Suspended (not revoked) when its owner's password changed: its owner may re-enable it.
    suspended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    suspended_reason: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship(foreign_keys=[user_id])

    def __repr__(self) -> str:
        return f"<ApiToken {self.prefix} user={self.user_id}>"


class LoginThrottle(Base):
    """Failed sign-in attempts counted per key: a client address (``login:<ip>``,
    ``api:<ip>``) or a trusted device (``device:<id>``). Kept in the database so every
    worker sees the same count; ``blocked_until`` is when the key may try again."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    blocked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<LoginThrottle {self.key} failures={self.failures}>"
