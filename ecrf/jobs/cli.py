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

jobs_cli = click.Group("jobs", help="Background jobs (exports, PDFs).")


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


@jobs_cli.command("list")
@click.option("--study", default=None, help="Only this study.")
@click.option("--status", default=None, help="queued, running, done, failed or cancelled.")
def jobs_list(study: str | None, status: str | None):
    """List recent jobs with their state."""
    stmt = select(Job, Study.oid).outerjoin(Study, Job.study_id == Study.id) \
        .order_by(Job.id.desc()).limit(100)
    if study:
        stmt = stmt.where(Study.oid == study.upper())
    if status:
        stmt = stmt.where(Job.status == status)
    for job, oid in db.session.execute(stmt):
        detail = job.error if job.status == "failed" else (job.message or "")
        click.echo(f"{job.id:>5} {oid or '-':<12} {job.kind:<12} {job.status:<9} "
                   f"{job.progress:>3}% {job.created_by:<16} {detail}")
