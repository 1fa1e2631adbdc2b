"""Background jobs: study-wide work that runs outside the request, with progress that
survives reloads, and deliveries tried again with backoff when they fail. What a job does
is a kind that another area registers (``@job_kind``); this package queues, claims, runs,
retries, cancels and lists them."""

from __future__ import annotations

from flask import Flask

from ecrf.jobs.models import Job, JobStatus
from ecrf.jobs.runner import (
    JobCancelled,
    JobContext,
    JobError,
    JobKind,
    JobParts,
    JobResult,
    backoff_delay,
    enqueue,
    enqueue_task,
    ensure_in_process_worker,
    exports_dir,
    get_job,
    job_kind,
    jobs_for,
    kinds,
    nudge,
    public_params,
    record_download,
    request_cancel,
    result_file,
    retry_now,
    run_job,
    work,
)

__all__ = [
    "Job", "JobCancelled", "JobContext", "JobError", "JobKind", "JobParts", "JobResult", "JobStatus",
    "backoff_delay", "enqueue", "enqueue_task", "ensure_in_process_worker", "exports_dir",
    "get_job", "job_kind", "jobs_for", "kinds", "nudge", "public_params", "record_download", "register",
    "request_cancel", "result_file", "retry_now", "run_job", "work",
]


def register(app: Flask) -> None:
    from ecrf.jobs.cli import jobs_cli

    app.cli.add_command(jobs_cli)
