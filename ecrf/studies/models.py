"""Sites, studies, the sites taking part in each study, and the immutable, content-hashed
versions of a study definition."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ecrf.core import Base, UTCDateTime, one_of, utcnow


class StudyStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"  # no data entry; review goes on
    LOCKED = "locked"  # read-only


class Site(Base):
    __tablename__ = "site"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    country: Mapped[str | None] = mapped_column(String(2))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<Site {self.code}>"


class Study(Base):
    __tablename__ = "study"
    __table_args__ = (
        one_of("status", StudyStatus),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    oid: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    sites: Mapped[list[StudySite]] = relationship(back_populates="study")

    def __repr__(self) -> str:
        return f"<Study {self.oid}>"


class StudySite(Base):
    """A site taking part in a study."""

    __tablename__ = "study_site"
    __table_args__ = (UniqueConstraint("study_id", "site_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    study: Mapped[Study] = relationship(back_populates="sites")
    site: Mapped[Site] = relationship()

    def __repr__(self) -> str:
        return f"<StudySite study={self.study_id} site={self.site_id}>"


class StudyVersion(Base):
    """One loaded version of a study folder. Never changed once stored.

    ``content`` is the canonical JSON of the folder; the app rebuilds the definition from
    it, so a version keeps working after the files on disk change.
    """

    __tablename__ = "study_version"
    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        UniqueConstraint("study_id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    # Read only to build a definition, which is cached per content hash: deferred, so that
    # loading a version (every request that touches a subject) does not fetch the JSON.
    content: Mapped[str] = mapped_column(Text, deferred=True)
    protocol_version: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str | None] = mapped_column(Text)
    loaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    loaded_by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)

    study: Mapped[Study] = relationship()

    @property
    def label(self) -> str:
        """How a version is named in the audit trail and on screens: 'v2 (protocol 1.1)'."""
        text = f"v{self.number}"
        if self.protocol_version:
            text += f" (protocol {self.protocol_version})"
        return text

    def __repr__(self) -> str:
        return f"<StudyVersion {self.study_id} v{self.number} {self.content_hash[:8]}>"
