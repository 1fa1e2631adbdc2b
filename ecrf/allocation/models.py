"""Treatment allocation: randomization lists, their slots, allocations, escalation decisions.

A randomization list is concealed from site roles. A slot, once allocated, is never freed:
an undone allocation keeps its row (and its slot stays consumed) so the original
assignment stays visible, as ICH E6 expects of every clinical record.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ecrf.capture import Subject
from ecrf.core import Audited, Base, UTCDateTime, one_of, utcnow
from ecrf.studies import Study


class ListKind(StrEnum):
    """Training instances allocate from test lists, real ones from production lists."""

    TEST = "test"
    PRODUCTION = "production"


class ListSource(StrEnum):
    GENERATED = "generated"  # from the study definition with a recorded seed
    IMPORTED = "imported"  # from a statistician's CSV


class RandomizationList(Audited, Base):
    """A generated or imported list; ``kind`` keeps training (test) and real lists apart."""

    __tablename__ = "randomization_list"
    __table_args__ = (
        one_of("kind", ListKind),
        one_of("source", ListSource),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    seed: Mapped[str | None] = mapped_column(String(200))
    block_sizes: Mapped[str | None] = mapped_column(String(200))  # "2,4,6"
    slots_per_stratum: Mapped[int | None] = mapped_column(Integer)
    file_sha256: Mapped[str | None] = mapped_column(String(64))  # of an imported file
    study_version_id: Mapped[int | None] = mapped_column(ForeignKey("study_version.id"))
    created_by: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    study: Mapped[Study] = relationship()

    def __repr__(self) -> str:
        return f"<RandomizationList {self.id} {self.kind} study={self.study_id}>"


class RandomizationSlot(Audited, Base):
    """One position of a stratum. ``subject_id`` is set once and never cleared."""

    __tablename__ = "randomization_slot"
    __table_args__ = (UniqueConstraint("list_id", "stratum", "sequence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("randomization_list.id"), index=True)
    stratum: Mapped[str] = mapped_column(String(400))
    sequence: Mapped[int] = mapped_column(Integer)
    arm: Mapped[str] = mapped_column(String(32))
    block: Mapped[int] = mapped_column(Integer, default=0)
    block_size: Mapped[int] = mapped_column(Integer, default=0)
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subject.id"), index=True)
    allocated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    allocated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    def __repr__(self) -> str:
        return f"<RandomizationSlot {self.stratum!r}#{self.sequence} {self.arm}>"


class Allocation(Audited, Base):
    """A subject's randomization, with the strata frozen as they were read.

    ``live_subject_id`` equals ``subject_id`` while the allocation is in force and is
    emptied by an undo; its unique constraint allows one allocation in force per subject
    and list on every database (NULLs never collide), while undone ones are kept.
    """

    __tablename__ = "allocation"
    __table_args__ = (
        UniqueConstraint("slot_id"),
        UniqueConstraint("list_id", "live_subject_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("randomization_list.id"), index=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("randomization_slot.id"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subject.id"), index=True)
    live_subject_id: Mapped[int | None] = mapped_column(ForeignKey("subject.id"))
    stratum: Mapped[str] = mapped_column(String(400))
    strata: Mapped[str] = mapped_column(Text)  # JSON {factor: level} as read
    sequence: Mapped[int] = mapped_column(Integer)
    arm: Mapped[str] = mapped_column(String(32))
    # The site's calendar day, written to the randomization date item.
    randomized_on: Mapped[dt.date] = mapped_column(Date)
    allocated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    allocated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    allocated_by: Mapped[str] = mapped_column(String(64))
    allocated_role: Mapped[str | None] = mapped_column(String(32))
    undone_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    undone_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    undone_by: Mapped[str | None] = mapped_column(String(64))
    undo_reason: Mapped[str | None] = mapped_column(Text)

    subject: Mapped[Subject] = relationship(foreign_keys=[subject_id])
    randomization_list: Mapped[RandomizationList] = relationship()

    @property
    def in_force(self) -> bool:
        return self.undone_at is None

    def __repr__(self) -> str:
        state = "undone" if self.undone_at else "in force"
        return f"<Allocation subject={self.subject_id} {self.arm} {state}>"


class EscalationDecision(Audited, Base):
    """A signed dose-escalation decision, with the proposal and counts it was taken on."""

    __tablename__ = "escalation_decision"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    level: Mapped[int] = mapped_column(Integer)  # the level enrolling when decided
    action: Mapped[str] = mapped_column(String(24))
    next_level: Mapped[int | None] = mapped_column(Integer)  # None: enrolment closed
    mtd_level: Mapped[int | None] = mapped_column(Integer)
    proposed_action: Mapped[str] = mapped_column(String(24))
    proposal: Mapped[str] = mapped_column(Text)
    counts: Mapped[str] = mapped_column(Text)  # JSON snapshot of every level's counts
    reason: Mapped[str] = mapped_column(Text)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_by: Mapped[str] = mapped_column(String(64))
    signer_name: Mapped[str] = mapped_column(String(200))
    decided_role: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    signature_meaning: Mapped[str] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"<EscalationDecision {self.action} level={self.level} study={self.study_id}>"
