"""Background jobs: study-wide work (CRF PDFs, exports) and deliveries (SAE
notifications) that run outside the request.

The row is the whole state of a job, so a progress bar survives reloads and any worker
process (a thread of the web process, or ``ecrf jobs worker``) can pick it up. A job may
be tried up to ``max_attempts`` times (1 for exports and PDFs); between attempts it waits
queued, and no worker claims it before ``run_after``.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ecrf.accounts import User
from ecrf.core import Base, UTCDateTime, one_of, utcnow
from ecrf.studies import Study


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


JOB_STATUSES = tuple(JobStatus)
FINISHED_STATUSES = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})


class Job(Base):
    __tablename__ = "job"
    __table_args__ = (
        one_of("status", JobStatus),
        CheckConstraint("progress >= 0 AND progress <= 100", name="progress"),
        CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts"),
        # Workers look for the oldest queued job.
        Index("ix_job_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    study_id: Mapped[int | None] = mapped_column(ForeignKey("study.id"), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(String(300))
    result_path: Mapped[str | None] = mapped_column(Text)  # relative to the exports folder
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    created_by: Mapped[str] = mapped_column(String(64))  # username, as in the audit trail
    created_by_role: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Refreshed with each progress report: a running job whose worker died is detectable.
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str | None] = mapped_column(String(120))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Attempts started so far (a claim starts one), how many are allowed, and the earliest
    # time a worker may claim the job again after a failed attempt.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    run_after: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    study: Mapped[Study | None] = relationship()
    user: Mapped[User | None] = relationship()

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def retrying(self) -> bool:
        """Queued again after a failed attempt, waiting for ``run_after``."""
        return self.status == JobStatus.QUEUED and self.attempts > 0

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.kind} {self.status} {self.progress}%>"
