"""`ecrf jobs worker|list`: run background jobs outside the web process, list them."""

from __future__ import annotations

import sys

import click
from flask import current_app
from sqlalchemy import select

from ecrf.core import db
from ecrf.jobs import runner as jobs
from ecrf.jobs.models import Job
from ecrf.studies import Study

jobs_cli = click.Group("jobs", help="Background jobs (exports, PDFs, SAE notifications).")


@jobs_cli.command("worker")
@click.option("--once", is_flag=True, help="Run the queued jobs, then exit.")
@click.option("--poll", type=float, default=2.0, show_default=True,
              help="Seconds between looks at an empty queue.")
def jobs_worker(once: bool, poll: float):
    """Run background jobs (start one or more next to the web workers on PostgreSQL)."""
    app = current_app._get_current_object()
    if not once:
        click.echo(f"job worker {jobs.worker_name()} started; Ctrl+C to stop")
    try:
        ran = jobs.work(app, once=once, poll=poll)
    except KeyboardInterrupt:
        sys.exit(0)
    click.echo(f"ran {ran} job(s)")


STATUSES = ("queued", "retrying", "running", "done", "failed", "cancelled")


def _detail(job: Job) -> str:
    tries = f"attempt {job.attempts}/{job.max_attempts}" if job.max_attempts > 1 else ""
    if job.retrying:
        when = f"{job.run_after:%Y-%m-%d %H:%M} UTC" if job.run_after else "now"
        return f"{tries}, next attempt {when}; last error: {job.error or '-'}"
    if job.status == "failed":
        return f"{tries}: {job.error}" if tries else (job.error or "")
    return f"{tries} {job.message or ''}".strip() if tries else (job.message or "")


@jobs_cli.command("list")
@click.option("--study", default=None, help="Only this study.")
@click.option("--status", type=click.Choice(STATUSES, case_sensitive=False), default=None,
              help="Only jobs in this state (retrying: queued again after a failed "
                   "attempt).")
@click.option("--kind", default=None, help="Only this kind (e.g. notification, crf_pdf).")
def jobs_list(study: str | None, status: str | None, kind: str | None):
    """List recent jobs with their state; jobs tried several times (SAE notifications) show
    their attempts, next attempt and last error."""
    stmt = select(Job, Study.oid).outerjoin(Study, Job.study_id == Study.id) \
        .order_by(Job.id.desc()).limit(100)
    if study:
        stmt = stmt.where(Study.oid == study.upper())
    if status == "retrying":
        stmt = stmt.where(Job.status == "queued", Job.attempts > 0)
    elif status:
        stmt = stmt.where(Job.status == status.lower())
    if kind:
        stmt = stmt.where(Job.kind == kind)
    for job, oid in db.session.execute(stmt):
        state = "retrying" if job.retrying else job.status
        click.echo(f"{job.id:>5} {oid or '-':<12} {job.kind:<12} {state:<9} "
                   f"{job.progress:>3}% {job.created_by:<16} {_detail(job)}")
