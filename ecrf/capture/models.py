"""Clinical data: subjects, their events, form instances and item values.

Values are stored per item (subject -> event instance -> form instance -> item value, with
a row number for repeating groups), as canonical text plus a typed shadow column for
queries and exports. Nothing clinical is ever deleted: removal is a status.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ecrf.core import Audited, Base, UTCDateTime, one_of, utcnow
from ecrf.domain.schedule import EventState
from ecrf.domain.subject_status import SubjectStatus
from ecrf.studies import Site, Study, StudyVersion

SUBJECT_STATUSES = tuple(SubjectStatus)


class FormStatus(StrEnum):
    """A form instance exists once saved: in progress, or complete (every check met)."""

    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"


class Subject(Audited, Base):
    __tablename__ = "subject"
    __table_args__ = (
        UniqueConstraint("study_id", "subject_key"),
        one_of("status", SubjectStatus),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    subject_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24), default="screening")
    enrolled_on: Mapped[dt.date] = mapped_column(Date)
    arm: Mapped[str | None] = mapped_column(String(32))
    dose_level: Mapped[int | None] = mapped_column(Integer)
    # The strata used at randomization, JSON {name: level}; the schedule follows them.
    strata: Mapped[str | None] = mapped_column(Text)
    # The study version the subject's schedule follows (moved by an explicit migration).
    study_version_id: Mapped[int] = mapped_column(ForeignKey("study_version.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # Day the stored schedule was last computed; a day later it is recomputed.
    schedule_computed_on: Mapped[dt.date | None] = mapped_column(Date)

    study: Mapped[Study] = relationship()
    site: Mapped[Site] = relationship()
    study_version: Mapped[StudyVersion] = relationship()
    events: Mapped[list[EventInstance]] = relationship(back_populates="subject",
                                                       order_by="EventInstance.id")

    def __repr__(self) -> str:
        return f"<Subject {self.subject_key}>"


# A subject key is unique in its study whatever its case (S01-001 and s01-001 would be the
# same subject on a paper CRF), as enrolment checks: the database holds the same rule.
Index("uq_subject_study_id_lower_subject_key", Subject.study_id, func.lower(Subject.subject_key),
      unique=True)


class EventInstance(Audited, Base):
    """An occurrence of an event for a subject (visit, cycle, log) once data exists."""

    __tablename__ = "event_instance"
    __table_args__ = (
        UniqueConstraint("subject_id", "event_oid", "repeat"),
        one_of("state", EventState),
        CheckConstraint("repeat >= 1", name="repeat_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    event_oid: Mapped[str] = mapped_column(String(32))
    repeat: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(16), default="in_progress")
    actual_date: Mapped[dt.date | None] = mapped_column(Date)
    not_done_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    subject: Mapped[Subject] = relationship(back_populates="events")
    forms: Mapped[list[FormInstance]] = relationship(back_populates="event",
                                                     order_by="FormInstance.id")

    def __repr__(self) -> str:
        return f"<EventInstance {self.event_oid}[{self.repeat}] subject={self.subject_id}>"


class FormInstance(Audited, Base):
    """A CRF filled for an event. ``version`` guards against lost updates."""

    __tablename__ = "form_instance"
    __table_args__ = (
        UniqueConstraint("event_instance_id", "form_oid"),
        one_of("status", FormStatus),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_instance_id: Mapped[int] = mapped_column(ForeignKey("event_instance.id"), index=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    form_oid: Mapped[str] = mapped_column(String(32))
    # The version the form was entered under; kept until an explicit, audited migration.
    study_version_id: Mapped[int] = mapped_column(ForeignKey("study_version.id"))
    status: Mapped[str] = mapped_column(String(16), default="in_progress")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    event: Mapped[EventInstance] = relationship(back_populates="forms")
    study_version: Mapped[StudyVersion] = relationship()
    values: Mapped[list[ItemValue]] = relationship(back_populates="form_instance",
                                                   order_by="ItemValue.id")
    rows: Mapped[list[GroupRow]] = relationship(back_populates="form_instance",
                                                order_by="GroupRow.row")

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<FormInstance {self.form_oid} event={self.event_instance_id} v{self.version}>"


class GroupRow(Audited, Base):
    """A row of a repeating item group (an AE line, a day of blood counts)."""

    __tablename__ = "group_row"
    __table_args__ = (
        UniqueConstraint("form_instance_id", "group_oid", "row"),
        CheckConstraint("row >= 1", name="row_positive"),
        # The removed rows only: the SDV counts leave their values out (review.sdv).
        Index("ix_group_row_removed", "form_instance_id", "group_oid", "row",
              postgresql_where=text("removed_at IS NOT NULL"),
              sqlite_where=text("removed_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    form_instance_id: Mapped[int] = mapped_column(ForeignKey("form_instance.id"), index=True)
    group_oid: Mapped[str] = mapped_column(String(32))
    row: Mapped[int] = mapped_column(Integer)
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    removed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    removal_reason: Mapped[str | None] = mapped_column(Text)

    form_instance: Mapped[FormInstance] = relationship(back_populates="rows")

    def __repr__(self) -> str:
        return f"<GroupRow {self.group_oid}[{self.row}] form={self.form_instance_id}>"


class ItemValue(Audited, Base):
    """The current value of one item; its history lives in the audit trail."""

    __tablename__ = "item_value"
    __table_args__ = (
        UniqueConstraint("form_instance_id", "group_oid", "row", "item_oid"),
        Index("ix_item_value_subject_item", "subject_id", "item_oid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    form_instance_id: Mapped[int] = mapped_column(ForeignKey("form_instance.id"), index=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"))
    form_oid: Mapped[str] = mapped_column(String(32))
    group_oid: Mapped[str] = mapped_column(String(32))
    row: Mapped[int] = mapped_column(Integer, default=1)
    item_oid: Mapped[str] = mapped_column(String(32))
    # Canonical text as validated ("1.50", "2024-03", "Y", '["A","B"]'); None = blank.
    value: Mapped[str | None] = mapped_column(Text)
    value_number: Mapped[Decimal | None] = mapped_column(Numeric(28, 10, asdecimal=True))
    value_date: Mapped[dt.date | None] = mapped_column(Date)
    value_datetime: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # CTCAE grade of a lab value, stored with its version and basis (LBTOXGR).
    grade: Mapped[int | None] = mapped_column(Integer)
    grade_version: Mapped[str | None] = mapped_column(String(20))
    grade_basis: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    form_instance: Mapped[FormInstance] = relationship(back_populates="values")

    def __repr__(self) -> str:
        return f"<ItemValue {self.form_oid}.{self.item_oid}[{self.row}]={self.value!r}>"


class CheckAcknowledgement(Audited, Base):
    """A warning-level edit check acknowledged with a justification."""

    __tablename__ = "check_acknowledgement"
    __table_args__ = (UniqueConstraint("form_instance_id", "check_oid", "row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_instance_id: Mapped[int] = mapped_column(ForeignKey("form_instance.id"), index=True)
    check_oid: Mapped[str] = mapped_column(String(64))
    row: Mapped[int] = mapped_column(Integer, default=0)
    justification: Mapped[str] = mapped_column(Text)
    acknowledged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    def __repr__(self) -> str:
        return f"<CheckAcknowledgement {self.check_oid}[{self.row}]>"


class ScheduledVisit(Base):
    """The subject's computed schedule, stored so lists of thousands of subjects need no
    recomputation. Derived data (not audited): recomputed from the definition and the
    recorded data whenever they change, and at the latest a day later."""

    __tablename__ = "scheduled_visit"
    __table_args__ = (UniqueConstraint("subject_id", "event_oid", "repeat"),
                      Index("ix_scheduled_visit_status", "status", "subject_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    event_oid: Mapped[str] = mapped_column(String(32))
    repeat: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    planned: Mapped[dt.date | None] = mapped_column(Date)
    window_start: Mapped[dt.date | None] = mapped_column(Date)
    window_end: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(24))
    actual_date: Mapped[dt.date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<ScheduledVisit {self.event_oid}[{self.repeat}] {self.status}>"


# What an import of clinical data fills: analyzed after a bulk import
# (``ecrf.core.analyze_after_import``).
IMPORTED_TABLES = ("subject", "event_instance", "form_instance", "group_row", "item_value",
                   "audit_event")
