"""Safety: SAE reports and their versions, AE prompts from graded labs, DLT assessments,
and the log of safety notifications.

Everything here except the notification log is clinical and audited: rows are never
deleted, a decision is a status with who, when and why.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ecrf.capture import FormInstance, Subject
from ecrf.core import Audited, Base, UTCDateTime, one_of, utcnow
from ecrf.studies import Study


class AwarenessSource(StrEnum):
    """Where an SAE report's awareness time came from."""

    FORM = "form"  # the AE row's awareness date-time
    ENTRY = "entry"  # the time the row was saved serious
    MANUAL = "manual"  # entered on the safety page


class PromptStatus(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"


class AssessmentStatus(StrEnum):
    """A DLT candidate and the investigator's decision on it."""

    CANDIDATE = "candidate"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class NotificationChannel(StrEnum):
    EMAIL = "email"
    LOG = "log"


class SaeReport(Audited, Base):
    """One version of the investigator's SAE report on an AE row: version 1 is the initial
    report, later versions are follow-ups linked to it through ``initial_id``."""

    __tablename__ = "sae_report"
    __table_args__ = (
        UniqueConstraint("form_instance_id", "group_oid", "row", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
        one_of("awareness_source", AwarenessSource),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    form_instance_id: Mapped[int] = mapped_column(ForeignKey("form_instance.id"), index=True)
    group_oid: Mapped[str] = mapped_column(String(32))
    row: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    initial_id: Mapped[int | None] = mapped_column(ForeignKey("sae_report.id"))
    awareness_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # form: the AE row's awareness item; entry: the save that first made the row serious
    # (an upper bound until the item is filled); manual: typed on the safety page.
    awareness_source: Mapped[str] = mapped_column(String(16), default="form")
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    susar: Mapped[bool] = mapped_column(Boolean, default=False)
    susar_fatal: Mapped[bool] = mapped_column(Boolean, default=False)
    susar_due: Mapped[dt.date | None] = mapped_column(Date)
    content: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    subject: Mapped[Subject] = relationship()
    form_instance: Mapped[FormInstance] = relationship()

    def __repr__(self) -> str:
        return f"<SaeReport {self.group_oid}[{self.row}] v{self.version} subject={self.subject_id}>"


class AeGradePrompt(Audited, Base):
    """A lab value graded at or above the study threshold, suggesting an AE; the
    investigator records the AE (accepted, with the AE row) or declines with a reason."""

    __tablename__ = "ae_grade_prompt"
    __table_args__ = (
        one_of("status", PromptStatus),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    item_value_id: Mapped[int] = mapped_column(ForeignKey("item_value.id"), index=True)
    test: Mapped[str] = mapped_column(String(16))
    term: Mapped[str] = mapped_column(String(200))
    grade: Mapped[int] = mapped_column(Integer)
    grade_version: Mapped[str] = mapped_column(String(20))
    value: Mapped[str | None] = mapped_column(String(64))
    unit: Mapped[str | None] = mapped_column(String(32))
    first_date: Mapped[dt.date | None] = mapped_column(Date)
    last_date: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")
    reason: Mapped[str | None] = mapped_column(Text)
    ae_form_instance_id: Mapped[int | None] = mapped_column(ForeignKey("form_instance.id"))
    ae_group_oid: Mapped[str | None] = mapped_column(String(32))
    ae_row: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    subject: Mapped[Subject] = relationship()

    def __repr__(self) -> str:
        return f"<AeGradePrompt {self.term} G{self.grade} {self.status}>"


class DltAssessment(Audited, Base):
    """An AE row flagged as a DLT candidate and the investigator's decision on it."""

    __tablename__ = "dlt_assessment"
    __table_args__ = (
        UniqueConstraint("form_instance_id", "group_oid", "row"),
        one_of("status", AssessmentStatus),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    form_instance_id: Mapped[int] = mapped_column(ForeignKey("form_instance.id"))
    group_oid: Mapped[str] = mapped_column(String(32))
    row: Mapped[int] = mapped_column(Integer)
    term: Mapped[str | None] = mapped_column(String(200))
    candidate_reason: Mapped[str] = mapped_column(Text)
    # Whether the AE row still meets the DLT criteria; a decided assessment whose row no
    # longer does is shown for review, never silently reversed.
    meets_criteria: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    subject: Mapped[Subject] = relationship()

    def __repr__(self) -> str:
        return f"<DltAssessment {self.group_oid}[{self.row}] {self.status}>"


class NotificationLog(Base):
    """A safety notification: e-mailed when SMTP is configured, otherwise only logged;
    delivered by a job (``job_id``), which writes ``sent_at`` or the last ``error``."""

    __tablename__ = "notification_log"
    __table_args__ = (
        one_of("channel", NotificationChannel),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("study.id"), index=True)
    sae_report_id: Mapped[int | None] = mapped_column(ForeignKey("sae_report.id"))
    recipients: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(8))
    logged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    # The job that delivers it (attempts, next attempt); none for rows older than the queue.
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id"), index=True)

    study: Mapped[Study | None] = relationship()

    def __repr__(self) -> str:
        return f"<NotificationLog {self.channel} {self.subject!r}>"
