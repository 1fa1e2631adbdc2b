"""Background jobs: study-wide work (CRF PDFs, exports) and deliveries (SAE
notifications) that run outside the request.

A job is a database row, so its state survives reloads and restarts and any worker may
run it: one daemon thread of the web process with the embedded SQLite database
(``JOBS_IN_PROCESS``), or ``ecrf jobs worker`` processes next to several web workers on
PostgreSQL. On PostgreSQL a worker claims the oldest queued job with ``SELECT ... FOR
UPDATE SKIP LOCKED``: workers claiming at once take different jobs and none waits. On
SQLite the claim is a compare-and-set (``UPDATE ... WHERE id = :id AND status =
'queued'``): of two workers racing for a job, exactly one updates the row. A job's final
update (done, failed, cancelled) is guarded the same way (``WHERE status = 'running' AND
worker = :me``): a job failed by the stale-worker check or claimed again meanwhile is
never flipped by the worker that lost it, and that worker's file is removed.

A kind may split its work (``JobParts``): one child job per part, which any worker
claims; the job waits, counting the parts done, and runs once more to assemble them
when the last is done (``settle_parent``, under the job's row lock). A failed part fails
the job naming it; cancelling the job cancels its parts not yet done.

What a job does is a registered kind (``@job_kind("crf_pdf")``) that reports progress
through its context; each report also checks whether a cancel was requested. A kind
writes its file under ``instance/exports/<job id>/``; the job becomes ``done`` together
with its audit row (one transaction), or ``failed`` with a message saying why.

A kind may make no file (``files=False``, e.g. a notification): it is then queued by
the area that raises it with ``enqueue_task``, in that area's own transaction, so work
raised by a change that is rolled back never runs; it is not listed among a user's
exports. Such a job may be tried several times: each claim starts an attempt
(``attempts``); after a failed attempt, while ``attempts < max_attempts``, the job goes
back to ``queued`` with ``run_after`` set by the kind's backoff (``backoff_delay``: base,
4 x base, 16 x base... capped at 6 hours), and workers do not claim it before then. After
the last attempt it is ``failed``. The kind's ``on_failure`` hook is told of each failed
attempt (with the next attempt's time, or None after the last) in a transaction of its
own. ``retry_now`` puts a waiting or failed job back in the queue at once. A job whose
worker died is queued again when attempts remain, otherwise marked failed.

``enqueue``, ``enqueue_task``, ``retry_now``, ``request_cancel`` and the queries are
operations (flush, never commit). The worker functions below them are an outer layer
like a CLI command: they own their transactions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from ecrf.accounts import User
from ecrf.core import audit, utcnow
from ecrf.core.audit import Actor
from ecrf.crf import StudyDefinitionError
from ecrf.jobs.models import Job
from ecrf.studies import Study, StudyVersion

log = logging.getLogger(__name__)

STALE_AFTER = dt.timedelta(minutes=15)
_MAX_ERROR = 4000
BACKOFF_FACTOR = 4
BACKOFF_CAP = dt.timedelta(hours=6)
_NUDGE = "ecrf_jobs_nudge"


class JobError(ValueError):
    """A job request that cannot be accepted or carried out; the message says why."""


class JobCancelled(Exception):
    """Raised inside a running job when its cancellation was requested."""


@dataclass
class JobResult:
    """What a finished job produced, and what its audit row says about it."""

    path: Path | None
    what: str
    version: StudyVersion | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobParts:
    """What a kind returns to split its work into parts that any worker may claim in
    parallel: one child job of ``kind`` per entry of ``parts`` (its params; ``label``
    names it in messages and errors). The job then waits, its progress counting the parts
    done ("5 of 8 subjects"); when the last part is done the job is queued again and its
    kind runs once more with ``ctx.parts()`` filled, to assemble the result. A part that
    fails fails the job, naming the part; cancelling the job cancels the parts not done."""

    kind: str
    parts: list[dict[str, Any]]
    noun: str = "parts"


@dataclass(frozen=True)
class JobKind:
    name: str
    label: Any  # lazy translated text
    run: Callable[[JobContext], JobResult]
    validate: Callable[[Session, Study, dict[str, Any]], dict[str, Any]] | None = None
    # Refusals of the kind's own area whose message the user sees when the job fails.
    expected: tuple[type[BaseException], ...] = ()
    # False: the job makes no file for a user (no folder, no export audit, not listed on
    # the exports page), and it may name no study.
    files: bool = True
    # The wait after failed attempt n (1 = the first) before the next one.
    backoff: Callable[[int], dt.timedelta] | None = None
    # Told of each failed attempt: (session, job, error, next attempt or None after the
    # last); runs in its own transaction, committed by the runner.
    on_failure: Callable[[Session, Job, str, dt.datetime | None], None] | None = None


JOB_KINDS: dict[str, JobKind] = {}


def job_kind(name: str, *, label: Any,
             validate: Callable[[Session, Study, dict[str, Any]], dict[str, Any]] | None = None,
             expected: tuple[type[BaseException], ...] = (), files: bool = True,
             backoff: Callable[[int], dt.timedelta] | None = None,
             on_failure: Callable[[Session, Job, str, dt.datetime | None], None] | None = None,
             ) -> Callable[[Callable[[JobContext], JobResult | None]],
                           Callable[[JobContext], JobResult | None]]:
    """Register what a job of this kind does; ``validate`` checks and completes params;
    ``expected`` names the refusals whose message a failed job shows as it is; ``files``,
    ``backoff`` and ``on_failure`` as in ``JobKind``."""

    def register(run: Callable[[JobContext], JobResult | None]
                 ) -> Callable[[JobContext], JobResult | None]:
        if name in JOB_KINDS and JOB_KINDS[name].run is not run:
            raise ValueError(f"job kind {name!r} registered twice")
        JOB_KINDS[name] = JobKind(name, label, run, validate, expected, files, backoff,
                                  on_failure)
        return run

    return register


def backoff_delay(attempt: int, base: float = 60) -> dt.timedelta:
    """The wait after failed attempt ``attempt`` (1 = the first): ``base`` seconds, then 4,
    16, 64... times that, never more than 6 hours (1, 4, 16, 64 min with the default)."""
    base = max(0.0, float(base))
    exponent = max(0, int(attempt) - 1)
    if base == 0:
        return dt.timedelta(0)
    if exponent > 20:  # far past the cap; avoid huge numbers
        return BACKOFF_CAP
    return min(dt.timedelta(seconds=base * BACKOFF_FACTOR ** exponent), BACKOFF_CAP)


def file_kinds() -> list[str]:
    """The kinds whose jobs make a file for the user who asked (the exports page's)."""
    return sorted(name for name, spec in JOB_KINDS.items() if spec.files)


def kinds() -> dict[str, JobKind]:
    """The registered kinds: the areas that define them register at start-up."""
    return JOB_KINDS


def exports_dir(app: Flask) -> Path:
    configured = app.config.get("EXPORTS_DIR")
    return Path(configured) if configured else Path(app.instance_path) / "exports"


# --- operations -------------------------------------------------------------------------------

def enqueue(session: Session, actor: Actor, kind: str, study: Study,
            params: dict[str, Any] | None = None) -> Job:
    """Queue a job of ``kind`` for ``study``; its params are checked now, not at run time."""
    spec = kinds().get(kind)
    if spec is None:
        raise JobError(f"unknown job kind {kind!r} (known: {', '.join(sorted(JOB_KINDS))})")
    if actor.user_id is None:
        raise JobError("a job needs a signed-in user: its result is theirs to download")
    checked = spec.validate(session, study, dict(params or {})) if spec.validate else \
        dict(params or {})
    job = Job(kind=kind, study_id=study.id, params=checked, status="queued", progress=0,
              message="waiting for a worker", created_by_id=actor.user_id,
              created_by=actor.username, created_by_role=actor.role, created_at=utcnow(),
              attempts=0, max_attempts=1)
    session.add(job)
    session.flush()
    audit.record(session, actor, "export.requested", category="export", study_oid=study.oid,
                 new_value=f"{kind} job {job.id}", details={"job": job.id, "kind": kind,
                                                            "params": checked})
    return job


def enqueue_task(session: Session, actor: Actor, kind: str, *, study_id: int | None,
                 params: dict[str, Any] | None = None, max_attempts: int = 1) -> Job:
    """Queue work that an area raises itself (a kind with ``files=False``) in the caller's
    transaction: it runs only if that transaction commits. The in-process worker is woken
    when it does. Nothing is audited here: the area records what the work is about."""
    spec = kinds().get(kind)
    if spec is None:
        raise JobError(f"unknown job kind {kind!r} (known: {', '.join(sorted(JOB_KINDS))})")
    if spec.files:
        raise JobError(f"job kind {kind!r} makes a file: queue it with enqueue()")
    job = Job(kind=kind, study_id=study_id, params=dict(params or {}), status="queued",
              progress=0, message="waiting for a worker", created_by_id=actor.user_id,
              created_by=(actor.username or "system")[:64], created_by_role=actor.role,
              created_at=utcnow(), attempts=0, max_attempts=max(1, int(max_attempts)))
    session.add(job)
    session.flush()
    session.info[_NUDGE] = True
    return job


def retry_now(session: Session, job: Job) -> Job:
    """Try a job waiting for its next attempt, or one that failed, again at once; a failed
    job is given one more attempt. Returns the job, queued."""
    now = utcnow()
    if job.status == "queued":
        session.execute(update(Job).where(Job.id == job.id, Job.status == "queued")
                        .values(run_after=now, message="retry requested"))
    elif job.status == "failed":
        # A job that was split starts over: split again, into new parts.
        session.execute(update(Job).where(Job.id == job.id, Job.status == "failed").values(
            status="queued", run_after=now, finished_at=None, cancel_requested=False,
            max_attempts=Job.attempts + 1, message="retry requested",
            params=public_params(job.params) if (job.params or {}).get(PARTS_KEY)
            else job.params))
    else:
        raise JobError(f"job {job.id} is {job.status}: only a queued or failed job can be "
                       f"retried")
    session.refresh(job)
    if job.status != "queued":  # a worker took or finished it meanwhile
        raise JobError(f"job {job.id} is {job.status}: only a queued or failed job can be "
                       f"retried")
    session.info[_NUDGE] = True
    return job


@event.listens_for(Session, "after_commit")
def _wake_worker(session: Session) -> None:
    if session.info.pop(_NUDGE, None) and has_app_context():
        nudge(current_app._get_current_object())


@event.listens_for(Session, "after_rollback")
def _forget_nudge(session: Session) -> None:
    session.info.pop(_NUDGE, None)


def jobs_for(session: Session, user: User, study: Study, limit: int = 50) -> list[Job]:
    """The user's own jobs in a study, newest first (one query); only kinds that make a
    file for them (their notifications are not their exports)."""
    return list(session.scalars(
        select(Job).where(Job.study_id == study.id, Job.created_by_id == user.id,
                          Job.kind.in_(file_kinds()))
        .order_by(Job.id.desc()).limit(limit)))


def get_job(session: Session, user: User, study: Study, job_id: int) -> Job | None:
    """The job if it belongs to this user and study; None otherwise (never someone else's)."""
    return session.scalar(select(Job).where(Job.id == job_id, Job.study_id == study.id,
                                            Job.created_by_id == user.id,
                                            Job.kind.in_(file_kinds())))


def request_cancel(session: Session, actor: Actor, job: Job) -> str:
    """Cancel a queued job at once, or ask a running one to stop at its next report.

    Returns the job's status after the request (``cancelled`` or ``running``).
    """
    now = utcnow()
    stopped = session.execute(
        update(Job).where(Job.id == job.id, Job.status == "queued")
        .values(status="cancelled", cancel_requested=True, finished_at=now,
                message="cancelled before it started")
    ).rowcount
    if not stopped and (job.params or {}).get(PARTS_KEY):
        # Split and waiting for its parts (no worker runs it): cancelled at once, with the
        # parts not done yet.
        stopped = session.execute(
            update(Job).where(Job.id == job.id, Job.status == "running", Job.worker.is_(None))
            .values(status="cancelled", cancel_requested=True, finished_at=now,
                    message="cancelled on request")
        ).rowcount
        if stopped:
            _stop_parts(session, list(job.params[PARTS_KEY]),
                        f"cancelled: job {job.id} is cancelled")
    if not stopped:
        asked = session.execute(
            update(Job).where(Job.id == job.id, Job.status == "running")
            .values(cancel_requested=True, message="cancel requested")
        ).rowcount
        if not asked:
            session.refresh(job)
            raise JobError(f"job {job.id} has already finished ({job.status})")
    session.refresh(job)
    audit.record(session, actor, "export.cancel_requested", category="export",
                 study_oid=job.study.oid if job.study else None,
                 new_value=f"{job.kind} job {job.id}", details={"job": job.id})
    return job.status


def record_download(session: Session, actor: Actor, job: Job, path: Path) -> None:
    """Who took a copy of an export, and when (the file may hold study data)."""
    audit.record(session, actor, "export.downloaded", category="export",
                 study_oid=job.study.oid if job.study else None, new_value=path.name,
                 details={"job": job.id, "kind": job.kind})


def result_file(app: Flask, job: Job) -> Path | None:
    """The file of a done job, if it is still there (and inside the exports folder)."""
    if job.status != "done" or not job.result_path:
        return None
    root = exports_dir(app).resolve()
    path = (root / job.result_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


# --- running a job ------------------------------------------------------------------------

class JobContext:
    """What a job kind sees: its params, study, creator, folder, and progress reporting."""

    def __init__(self, session: Session, job: Job, folder: Path | None,
                 root: Path | None = None) -> None:
        self.session = session
        self.job = job
        self.job_id = job.id
        self.params = dict(job.params or {})
        self.study = job.study
        self.creator = job.user
        self.actor = Actor(user_id=job.created_by_id, username=job.created_by,
                           role=job.created_by_role)
        self.folder = folder
        self.root = root  # the exports folder (a part writes into its parent's folder)
        self._engine = session.get_bind()

    @property
    def parent_id(self) -> int | None:
        """The job this one is a part of (``JobParts``), if any."""
        return self.params.get(PARENT_KEY)

    def parts(self) -> list[Job] | None:
        """The parts of a job that was split (in the order they were made), once they are
        all done; None for a job that was not split (yet)."""
        ids = self.params.get(PARTS_KEY)
        if not ids:
            return None
        found = {j.id: j for j in self.session.scalars(select(Job).where(Job.id.in_(ids)))}
        return [found[i] for i in ids if i in found]

    def progress(self, percent: int, message: str) -> None:
        """Record progress (committed at once, in its own transaction) and stop if asked."""
        values = {"progress": max(0, min(100, int(percent))), "message": message[:300],
                  "heartbeat_at": utcnow()}
        with Session(self._engine) as own:
            own.execute(update(Job).where(Job.id == self.job_id, Job.status == "running")
                        .values(**values))
            own.commit()
        self.check_cancel()

    def check_cancel(self) -> None:
        with Session(self._engine) as own:
            if own.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)):
                raise JobCancelled()


PARTS_KEY = "_parts"    # in a split job's params: its parts' job ids
NOUN_KEY = "_noun"      # ... and what a part is ("subjects")
PARENT_KEY = "_parent"  # in a part's params: the job it is a part of


def public_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """A job's params as checked when it was queued (without the runner's own keys)."""
    return {k: v for k, v in (params or {}).items() if not k.startswith("_")}


def _describe(exc: BaseException, expected: tuple[type[BaseException], ...] = ()) -> str:
    if isinstance(exc, (JobError, StudyDefinitionError, *expected)):
        text = str(exc)
    else:
        text = (f"unexpected error {type(exc).__name__}: {exc} (the details are in the "
                "server log)")
    return text[:_MAX_ERROR]


def _ours(job_id: int, worker: str | None) -> tuple[Any, ...]:
    """The condition of a job's final update: still running, by the worker that claimed
    it. A job failed by the stale-worker check, cancelled, or claimed again by another
    worker meanwhile is never flipped by the worker that lost it."""
    return (Job.id == job_id, Job.status == "running",
            Job.worker.is_(None) if worker is None else Job.worker == worker)


def _current_status(engine: Any, job_id: int) -> str:
    with Session(engine) as own:
        return own.scalar(select(Job.status).where(Job.id == job_id)) or "missing"


def _finish(engine: Any, job_id: int, worker: str | None, **values: Any) -> bool:
    """The final update of a job, if it is still ours (see ``_ours``); True when applied."""
    with Session(engine) as own:
        applied = own.execute(update(Job).where(*_ours(job_id, worker))
                              .values(finished_at=utcnow(), **values)).rowcount
        own.commit()
    return applied == 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _failed_attempt(engine: Any, job_id: int, worker: str | None, spec: JobKind | None,
                    error: str) -> str:
    """Queue the job again after its backoff if attempts remain, else mark it failed; tell
    the kind. Returns the job's new status (or its current one when it is no longer ours:
    then nothing changes and the kind is not told)."""
    now = utcnow()
    with Session(engine) as own:
        job = own.get(Job, job_id)
        attempts, allowed = job.attempts, job.max_attempts
        next_at = None
        if attempts < allowed:
            delay = (spec.backoff if spec and spec.backoff else backoff_delay)(attempts)
            next_at = now + delay
            values = {"status": "queued", "run_after": next_at, "heartbeat_at": now,
                      "message": f"attempt {attempts} of {allowed} failed; next attempt "
                                 f"{next_at:%Y-%m-%d %H:%M:%S} UTC"}
        else:
            values = {"status": "failed", "finished_at": now, "run_after": None,
                      "message": "failed" if allowed == 1 else
                      f"failed after {attempts} attempts"}
        applied = own.execute(update(Job).where(*_ours(job_id, worker))
                              .values(error=error, **values)).rowcount
        own.commit()
        if applied != 1:
            own.expire_all()
            status = own.scalar(select(Job.status).where(Job.id == job_id))
            log.warning("job %s: its attempt failed (%s) but it is now %s: left as it is",
                        job_id, error, status)
            return status
        status = values["status"]
        if spec is not None and spec.on_failure is not None:
            try:
                spec.on_failure(own, own.get(Job, job_id), error, next_at)
                own.commit()
            except Exception:  # the job's state is already recorded
                own.rollback()
                log.exception("job %s: the %s kind's failure hook failed", job_id, spec.name)
    return status


def _split(session: Session, job: Job, worker: str | None, parts: JobParts) -> str:
    """Queue one child job per part and leave ``job`` waiting for them (still running,
    with no worker). Returns the job's status."""
    if not parts.parts:
        raise JobError("the job was split into no part")
    now = utcnow()
    children = [Job(kind=parts.kind, study_id=job.study_id,
                    params={**part, PARENT_KEY: job.id}, status="queued", progress=0,
                    message="waiting for a worker", created_by_id=job.created_by_id,
                    created_by=job.created_by, created_by_role=job.created_by_role,
                    created_at=now, attempts=0, max_attempts=1)
                for part in parts.parts]
    session.add_all(children)
    session.flush()
    total = len(children)
    applied = session.execute(update(Job).where(*_ours(job.id, worker)).values(
        params={**(job.params or {}), PARTS_KEY: [c.id for c in children],
                NOUN_KEY: parts.noun},
        worker=None, heartbeat_at=now, progress=2, message=f"0 of {total} {parts.noun}"
    )).rowcount
    if applied != 1:
        session.rollback()
        status = _current_status(session.get_bind(), job.id)
        log.warning("job %s: split into %s parts but it is now %s: parts dropped", job.id,
                    total, status)
        return status
    session.info[_NUDGE] = True
    session.commit()
    return "running"


def _stop_parts(session: Session, ids: list[int], why: str) -> None:
    """Cancel a split job's parts that are queued; ask the running ones to stop."""
    if not ids:
        return
    session.execute(update(Job).where(Job.id.in_(ids), Job.status == "queued").values(
        status="cancelled", cancel_requested=True, finished_at=utcnow(), message=why))
    session.execute(update(Job).where(Job.id.in_(ids), Job.status == "running")
                    .values(cancel_requested=True, message=why))


def settle_parent(engine: Any, parent_id: int, root: Path | None = None) -> str:
    """After one of its parts ended: count the parts done into the split job's progress;
    fail it (naming the part) when a part failed or was cancelled; queue it again to
    assemble when every part is done. Runs under the parent's row lock (``FOR UPDATE`` on
    PostgreSQL) and changes the parent with conditional updates, so of two parts ending at
    once exactly one queues the assembly. Returns the parent's status."""
    with Session(engine) as own:
        parent = own.scalar(select(Job).where(Job.id == parent_id).with_for_update())
        if parent is None:
            return "missing"
        ids = list((parent.params or {}).get(PARTS_KEY) or [])
        noun = (parent.params or {}).get(NOUN_KEY) or "parts"
        waiting = (Job.id == parent_id, Job.status == "running", Job.worker.is_(None))
        if parent.status != "running":
            if parent.status in ("failed", "cancelled"):
                _stop_parts(own, ids, f"cancelled: job {parent_id} is {parent.status}")
                own.commit()
                _remove_folder(root, parent_id)
            return parent.status
        rows = own.execute(select(Job.id, Job.status, Job.error, Job.params)
                           .where(Job.id.in_(ids)).order_by(Job.id)).all()
        now = utcnow()
        lost = [r for r in rows if r.status in ("failed", "cancelled")]
        if parent.cancel_requested or lost:
            if parent.cancel_requested:
                values = {"status": "cancelled", "message": "cancelled on request"}
            else:
                row = lost[0]
                label = (row.params or {}).get("label") or f"part {row.id}"
                error = row.error or f"job {row.id} was cancelled"
                values = {"status": "failed", "message": "failed",
                          "error": (error if label in error else f"{label}: {error}")
                          [:_MAX_ERROR]}
            own.execute(update(Job).where(*waiting).values(finished_at=now, **values))
            _stop_parts(own, ids, f"cancelled: job {parent_id} is {values['status']}")
            own.commit()
            _remove_folder(root, parent_id)
            return values["status"]
        done = sum(1 for r in rows if r.status == "done")
        if done == len(ids):
            own.execute(update(Job).where(*waiting).values(
                status="queued", run_after=None, heartbeat_at=now, progress=98,
                max_attempts=Job.max_attempts + 1,
                message=f"{done} of {len(ids)} {noun}; assembling"))
            own.info[_NUDGE] = True
            own.commit()
            return "queued"
        own.execute(update(Job).where(*waiting).values(
            heartbeat_at=now, progress=2 + 96 * done // max(1, len(ids)),
            message=f"{done} of {len(ids)} {noun}"))
        own.commit()
        return "running"


def _remove_folder(root: Path | None, job_id: int) -> None:
    if root is not None:
        shutil.rmtree(root / str(job_id), ignore_errors=True)


def _part_ended(engine: Any, params: dict[str, Any] | None, root: Path | None) -> None:
    parent_id = (params or {}).get(PARENT_KEY)
    if parent_id is not None:
        try:
            settle_parent(engine, parent_id, root)
        except Exception:  # the next stale check settles it again
            log.exception("job %s: could not record the end of one of its parts", parent_id)


def run_job(session: Session, job_id: int, root: Path) -> str:
    """Run a claimed job to its end; returns its final status (``queued`` when a failed
    attempt will be tried again, ``running`` when it was split into parts). Never raises
    for a job's own failure: the failure is recorded on the job (and logged). The final
    update applies only while the job is still running by this worker: a job failed or
    cancelled meanwhile stays so, and the file this run made is removed."""
    job = session.get(Job, job_id)
    if job is None or job.status != "running":
        return job.status if job else "missing"
    engine = session.get_bind()
    worker = job.worker
    params = dict(job.params or {})
    spec = kinds().get(job.kind)
    folder = root / str(job.id) if spec is None or spec.files else None
    try:
        if spec is None:
            raise JobError(f"unknown job kind {job.kind!r}: this ecrf cannot run it")
        if spec.files and job.study is None:
            raise JobError("the job names no study")
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        context = JobContext(session, job, folder, root)
        context.check_cancel()
        result = spec.run(context)
        context.check_cancel()
        if isinstance(result, JobParts):
            return _split(session, job, worker, result)
        relative = None
        if result is not None and result.path is not None:
            relative = result.path.resolve().relative_to(root.resolve()).as_posix()
            audit.bind_actor(session, context.actor)
            audit.record_export(session, context.actor, job.study, result.version,
                                result.what, file_name=result.path.name,
                                details={"job": job.id, "sha256": _sha256(result.path),
                                         "bytes": result.path.stat().st_size,
                                         **result.details})
        applied = session.execute(update(Job).where(*_ours(job.id, worker)).values(
            status="done", progress=100, message="done", result_path=relative, error=None,
            run_after=None, finished_at=utcnow(), heartbeat_at=utcnow())).rowcount
        if applied != 1:  # failed or cancelled meanwhile: no export, no file
            session.rollback()
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            status = _current_status(engine, job_id)
            log.warning("job %s finished its work but is now %s: result discarded",
                        job_id, status)
            return status
        session.commit()
        _part_ended(engine, params, root)
        return "done"
    except JobCancelled:
        session.rollback()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if not _finish(engine, job_id, worker, status="cancelled",
                       message="cancelled on request"):
            return _current_status(engine, job_id)
        _part_ended(engine, params, root)
        return "cancelled"
    except Exception as exc:  # a job's failure is recorded, never lost
        session.rollback()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        log.exception("job %s (%s) failed", job_id, getattr(job, "kind", "?"))
        expected = spec.expected if spec is not None else ()
        status = _failed_attempt(engine, job_id, worker, spec, _describe(exc, expected))
        if status == "failed":
            _part_ended(engine, params, root)
        return status


def _due(now: dt.datetime):
    return select(Job.id).where(Job.status == "queued",
                                or_(Job.run_after.is_(None), Job.run_after <= now)) \
        .order_by(Job.id).limit(1)


def _start(session: Session, job_id: int, worker: str, now: dt.datetime) -> int:
    return session.execute(
        update(Job).where(Job.id == job_id, Job.status == "queued")
        .values(status="running", started_at=now, heartbeat_at=now, worker=worker[:120],
                message="started", attempts=Job.attempts + 1)
    ).rowcount


def claim_next(session: Session, worker: str) -> int | None:
    """Take the oldest queued job that is due for ``worker`` (its ``run_after`` passed),
    starting its next attempt; None when no job is due.

    On PostgreSQL the row is locked with ``SELECT ... FOR UPDATE SKIP LOCKED``: workers
    claiming at the same moment each take a different job, none waits. On SQLite (one
    writer at a time) a conditional update decides which of two racing workers wins."""
    if session.get_bind().dialect.name == "postgresql":
        now = utcnow()
        job_id = session.scalar(_due(now).with_for_update(skip_locked=True))
        if job_id is None:
            session.commit()
            return None
        won = _start(session, job_id, worker, now)
        session.commit()
        return job_id if won == 1 else None
    for _attempt in range(20):
        now = utcnow()
        job_id = session.scalar(_due(now))
        session.commit()  # end the read before the write (SQLite lock upgrade)
        if job_id is None:
            return None
        won = _start(session, job_id, worker, now)
        session.commit()
        if won == 1:
            return job_id
    return None  # lost every race this round; the caller polls again


def fail_stale(session: Session, older_than: dt.timedelta = STALE_AFTER,
               root: Path | None = None) -> int:
    """Deal with running jobs whose worker stopped reporting (it died or was killed): queue
    them again when attempts remain, otherwise mark them failed. A split job waiting for
    its parts is not stale while a part is queued or running. Returns how many."""
    now = utcnow()
    cutoff = now - older_than
    stale = (Job.status == "running", Job.heartbeat_at < cutoff)
    candidates = session.execute(select(Job.id, Job.params).where(*stale)).all()
    waiting = {r.id: r.params[PARTS_KEY] for r in candidates
               if isinstance(r.params, dict) and r.params.get(PARTS_KEY)}
    for parent_id, ids in waiting.items():
        live = session.scalar(select(Job.id).where(
            Job.id.in_(ids), Job.status.in_(("queued", "running"))).limit(1))
        if live is not None:
            session.execute(update(Job).where(Job.id == parent_id, *stale)
                            .values(heartbeat_at=now))
    reap = [r.id for r in candidates if r.id not in waiting]
    session.commit()
    for parent_id in waiting:  # nothing left to wait for: assemble or fail it now
        settle_parent(session.get_bind(), parent_id, root)
    if not reap:
        return 0
    again = session.execute(
        update(Job).where(Job.id.in_(reap), *stale, Job.attempts < Job.max_attempts)
        .values(status="queued", run_after=now, worker=None,
                message="the worker running it stopped responding: queued again",
                error="the worker running this job stopped responding")
    ).rowcount
    count = session.execute(
        update(Job).where(Job.id.in_(reap), *stale)
        .values(status="failed", finished_at=now, message="failed",
                error="the worker running this job stopped responding (its process ended "
                      "or crashed); start the job again")
    ).rowcount
    session.commit()
    for row in candidates:
        if row.id in reap and isinstance(row.params, dict) and row.params.get(PARENT_KEY):
            _part_ended(session.get_bind(), row.params, root)
    return again + count


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


def work(app: Flask, *, once: bool = False, poll: float = 2.0,
         stop: threading.Event | None = None, wake: threading.Event | None = None) -> int:
    """The worker loop: run queued jobs until stopped (or, with ``once``, until the queue
    is empty). Returns how many jobs it ran."""
    from ecrf.core import db

    stop = stop or threading.Event()
    wake = wake or threading.Event()
    stale = dt.timedelta(minutes=app.config.get("JOBS_STALE_MINUTES", 15))
    ran, stale_checked = 0, 0.0
    with app.app_context():
        name = worker_name()
        while not stop.is_set():
            try:
                # A write, so not at every poll: an idle worker only reads.
                if time.monotonic() - stale_checked > 60:
                    fail_stale(db.session, stale, exports_dir(app))
                    stale_checked = time.monotonic()
                job_id = claim_next(db.session, name)
                if job_id is not None:
                    run_job(db.session, job_id, exports_dir(app))
                    ran += 1
            except Exception:  # the database went away: keep the worker alive, retry
                db.session.rollback()
                log.exception("job worker %s: error while polling", name)
                job_id = None
            finally:
                db.session.remove()
            if job_id is None:
                if once:
                    break
                wake.wait(poll)
                wake.clear()
    return ran


# --- the in-process worker (embedded SQLite default) ---------------------------------------

_THREAD_KEY = "ecrf.jobs.thread"
_START_LOCK = threading.Lock()


def in_process_enabled(app: Flask) -> bool:
    """``JOBS_IN_PROCESS`` (default on; off under TESTING unless a test turns it on)."""
    return bool(app.config.get("JOBS_IN_PROCESS", not app.testing))


def ensure_in_process_worker(app: Flask) -> None:
    """Start the web process's one job thread if configured and not yet running."""
    if not in_process_enabled(app):
        return
    state = app.extensions.get(_THREAD_KEY)
    if state and state["thread"].is_alive():
        return
    with _START_LOCK:
        state = app.extensions.get(_THREAD_KEY)
        if state and state["thread"].is_alive():
            return
        stop, wake = threading.Event(), threading.Event()
        thread = threading.Thread(target=work, args=(app,), kwargs={"stop": stop, "wake": wake},
                                  name="ecrf-jobs", daemon=True)
        app.extensions[_THREAD_KEY] = {"thread": thread, "stop": stop, "wake": wake}
        thread.start()


def nudge(app: Flask) -> None:
    """Wake the in-process worker at once (a job was just queued)."""
    state = app.extensions.get(_THREAD_KEY)
    if state:
        state["wake"].set()


def stop_in_process_worker(app: Flask, timeout: float = 30) -> None:
    state = app.extensions.pop(_THREAD_KEY, None)
    if state:
        state["stop"].set()
        state["wake"].set()
        state["thread"].join(timeout)
