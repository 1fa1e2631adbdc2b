"""Data review: queries and their threads, item-level SDV, e-signatures and locks.

Nothing here is ever deleted. A state change is a new row (a message, a new SDV mark) or
a timestamp set once (a mark reset, a signature broken, a lock released), so the history
of review stays readable next to the audit trail.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ecrf.accounts import User
from ecrf.capture import EventInstance, FormInstance, Subject
from ecrf.core import Audited, Base, UTCDateTime, one_of, utcnow
from ecrf.studies import Site


class QueryStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


class QueryOrigin(StrEnum):
    MANUAL = "manual"  # raised by a reviewer
    AUTOMATIC = "automatic"  # raised by a failing warning check


class SignatureScope(StrEnum):
    FORM = "form"
    EVENT = "event"
    CASEBOOK = "casebook"


class LockScope(StrEnum):
    FORM = "form"
    SUBJECT = "subject"
    SITE = "site"


QUERY_STATUSES = tuple(QueryStatus)
QUERY_ORIGINS = tuple(QueryOrigin)
SIGNATURE_SCOPES = tuple(SignatureScope)
LOCK_SCOPES = tuple(LockScope)


class Query(Audited, Base):
    """A question on a subject, an event, a form, a row or one item.

    The target narrows from left to right: an item query has every part set, a form query
    stops at ``form_oid``, an event query at ``event_oid``/``repeat``. The OIDs are kept
    beside the instance ids so that the path reads the same after a form migration.
    """

    __tablename__ = "data_query"
    __table_args__ = (
        one_of("status", QueryStatus),
        one_of("origin", QueryOrigin),
        CheckConstraint("origin = 'manual' OR check_oid IS NOT NULL", name="automatic_check"),
        CheckConstraint("item_oid IS NULL OR form_instance_id IS NOT NULL", name="item_form"),
        Index("ix_data_query_study_status", "study_id", "status"),
        Index("ix_data_query_form_check", "form_instance_id", "check_oid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    event_instance_id: Mapped[int | None] = mapped_column(ForeignKey("event_instance.id"))
    form_instance_id: Mapped[int | None] = mapped_column(ForeignKey("form_instance.id"))
    event_oid: Mapped[str | None] = mapped_column(String(32))
    repeat: Mapped[int | None] = mapped_column(Integer)
    form_oid: Mapped[str | None] = mapped_column(String(32))
    group_oid: Mapped[str | None] = mapped_column(String(32))
    row: Mapped[int | None] = mapped_column(Integer)
    item_oid: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    origin: Mapped[str] = mapped_column(String(16), default="manual")
    # The failing edit check of an automatic query ("VS_BMI", "WEIGHT.soft_range") and
    # its row (0 outside repeating groups).
    check_oid: Mapped[str | None] = mapped_column(String(64))
    check_row: Mapped[int | None] = mapped_column(Integer)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    subject: Mapped[Subject] = relationship()
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    messages: Mapped[list[QueryMessage]] = relationship(back_populates="query",
                                                       order_by="QueryMessage.id")

    @property
    def level(self) -> str:
        if self.item_oid:
            return "item"
        if self.form_oid:
            return "form"
        if self.event_oid:
            return "event"
        return "subject"

    def __repr__(self) -> str:
        return f"<Query {self.id} {self.status} {self.origin} subject={self.subject_id}>"


class QueryMessage(Audited, Base):
    """One entry of a query's thread: a question, an answer, a note, a status change, or
    the link to a correction (``audit_seq`` names the audit row of the changed value)."""

    __tablename__ = "query_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("data_query.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    author: Mapped[str] = mapped_column(String(64))  # "system" for automatic notes
    role: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_from: Mapped[str | None] = mapped_column(String(16))
    status_to: Mapped[str | None] = mapped_column(String(16))
    audit_seq: Mapped[int | None] = mapped_column(Integer)

    query: Mapped[Query] = relationship(back_populates="messages")

    def __repr__(self) -> str:
        return f"<QueryMessage {self.id} query={self.query_id} {self.status_to or ''}>"


class SdvMark(Audited, Base):
    """A source data verification of one item value (``item_oid`` set) or of a whole form.

    A mark is current while ``reset_at`` is empty; a change to the value resets it (and a
    new verification adds a new mark), so the history of verification is kept.
    """

    __tablename__ = "sdv_mark"
    __table_args__ = (
        Index("ix_sdv_mark_form_current", "form_instance_id", "reset_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    form_instance_id: Mapped[int] = mapped_column(ForeignKey("form_instance.id"))
    group_oid: Mapped[str | None] = mapped_column(String(32))
    row: Mapped[int | None] = mapped_column(Integer)
    item_oid: Mapped[str | None] = mapped_column(String(32))
    verified_value: Mapped[str | None] = mapped_column(Text)
    verified_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    verified_by: Mapped[str] = mapped_column(String(64))
    verified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    reset_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reset_reason: Mapped[str | None] = mapped_column(Text)

    @property
    def current(self) -> bool:
        return self.reset_at is None

    def __repr__(self) -> str:
        what = f"{self.group_oid}[{self.row}].{self.item_oid}" if self.item_oid else "form"
        return f"<SdvMark {what} form={self.form_instance_id} current={self.current}>"


class SdvSubjectCount(Base):
    """A subject's SDV counts as last computed (``sdv.kept_counts``), kept for the boards
    and the SDV progress: derived data, not part of the record, rewritten whenever the
    subject's audit trail has moved past ``audit_seq`` (the highest audit seq of the
    subject when they were counted) or the items in scope changed (``scope``, a digest of
    the study versions' items needing SDV)."""

    __tablename__ = "sdv_subject_count"

    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id", ondelete="CASCADE"),
                                            primary_key=True, autoincrement=False)
    total: Mapped[int] = mapped_column(Integer)  # entered values needing SDV
    verified: Mapped[int] = mapped_column(Integer)  # of which with a current mark
    forms_pending: Mapped[int] = mapped_column(Integer)  # forms with a value to verify
    audit_seq: Mapped[int] = mapped_column(BigInteger)
    scope: Mapped[str] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"<SdvSubjectCount subject={self.subject_id} {self.verified}/{self.total}>"


class Signature(Audited, Base):
    """An electronic signature (21 CFR 11.50, 11.70): who, when, what it means, and the
    SHA-256 of the signed data. A later change of that data breaks it (``broken_at``)."""

    __tablename__ = "signature"
    __table_args__ = (
        one_of("scope", SignatureScope),
        CheckConstraint("scope != 'form' OR form_instance_id IS NOT NULL", name="form_target"),
        CheckConstraint("scope != 'event' OR event_instance_id IS NOT NULL",
                        name="event_target"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    scope: Mapped[str] = mapped_column(String(16))
    event_instance_id: Mapped[int | None] = mapped_column(ForeignKey("event_instance.id"))
    form_instance_id: Mapped[int | None] = mapped_column(ForeignKey("form_instance.id"))
    signer_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    signer_username: Mapped[str] = mapped_column(String(64))
    signer_name: Mapped[str] = mapped_column(String(200))  # printed name at signing time
    signer_role: Mapped[str | None] = mapped_column(String(32))
    meaning: Mapped[str] = mapped_column(Text)
    signed_hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    broken_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    broken_reason: Mapped[str | None] = mapped_column(Text)

    subject: Mapped[Subject] = relationship()
    event_instance: Mapped[EventInstance | None] = relationship()
    form_instance: Mapped[FormInstance | None] = relationship()

    @property
    def valid(self) -> bool:
        return self.broken_at is None

    def __repr__(self) -> str:
        return f"<Signature {self.id} {self.scope} by {self.signer_username} valid={self.valid}>"


class Lock(Audited, Base):
    """A lock on a form, a subject or a site of a study; released by setting
    ``unlocked_at`` (with who and why), never by removing the row."""

    __tablename__ = "data_lock"
    __table_args__ = (
        one_of("scope", LockScope),
        CheckConstraint("scope != 'form' OR form_instance_id IS NOT NULL", name="form_target"),
        CheckConstraint("scope != 'subject' OR subject_id IS NOT NULL", name="subject_target"),
        CheckConstraint("scope != 'site' OR site_id IS NOT NULL", name="site_target"),
        Index("ix_data_lock_study_open", "study_id", "unlocked_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"))
    scope: Mapped[str] = mapped_column(String(16))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"))
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subject.id"))
    form_instance_id: Mapped[int | None] = mapped_column(ForeignKey("form_instance.id"))
    locked_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    locked_by: Mapped[str] = mapped_column(String(64))
    locked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)
    unlocked_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    unlocked_by: Mapped[str | None] = mapped_column(String(64))
    unlocked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    unlock_reason: Mapped[str | None] = mapped_column(Text)

    site: Mapped[Site | None] = relationship()
    subject: Mapped[Subject | None] = relationship()
    form_instance: Mapped[FormInstance | None] = relationship()

    @property
    def active(self) -> bool:
        return self.unlocked_at is None

    def __repr__(self) -> str:
        return f"<Lock {self.id} {self.scope} active={self.active}>"
