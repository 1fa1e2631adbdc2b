from __future__ import annotations

from ecrf.core.extensions import db
from ecrf.jobs.models import Job


def fresh_job(job_id: int) -> Job:
    """The job as stored now (not as this session last saw it)."""
    db.session.expire_all()
    return db.session.get(Job, job_id)
