"""Immutable, content-hashed versions of a study definition."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ecrf.models.accounts import Study
from ecrf.models.base import Base, UTCDateTime, utcnow


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
    content: Mapped[str] = mapped_column(Text)
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
