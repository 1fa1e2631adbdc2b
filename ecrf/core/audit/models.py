"""The audit trail: append-only, hash-chained rows (21 CFR 11.10(e), ICH E6(R3) 4.2)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ecrf.core.base import Base, UTCDateTime


class AuditEvent(Base):
    """One audited fact. Never updated or deleted: the database refuses both."""

    __tablename__ = "audit_event"
    __table_args__ = (
        # A subject's latest row in one index probe (kept counts check it per subject).
        Index("ix_audit_event_subject_seq", "study_oid", "subject_key", "seq"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # Position in the hash chain; contiguous from 1 so a removed or inserted row shows.
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    category: Mapped[str] = mapped_column(String(16), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    username: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(32))
    study_oid: Mapped[str | None] = mapped_column(String(32), index=True)
    site_code: Mapped[str | None] = mapped_column(String(32))
    subject_key: Mapped[str | None] = mapped_column(String(64), index=True)
    # study/subject/event[repeat]/form/group[row]/item
    path: Mapped[str | None] = mapped_column(Text)
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    study_version: Mapped[str | None] = mapped_column(String(80))
    details: Mapped[str | None] = mapped_column(Text)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))
    # The keyring key whose HMAC row_hash is; None only on rows older than the key.
    key_id: Mapped[str | None] = mapped_column(String(32))

    def __repr__(self) -> str:
        return f"<AuditEvent #{self.seq} {self.action} by {self.username}>"


class AuditChainHead(Base):
    """The single row that serialises writers of the chain and remembers its last link,
    so that cutting rows off the end of the trail is detected too."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"<AuditChainHead seq={self.last_seq}>"
