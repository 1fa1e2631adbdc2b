"""Background jobs: study-wide work (CRF PDFs, exports) and deliveries (SAE
notifications) that run outside the request.

A job is a database row, so its state survives reloads and restarts and any worker may
run it: one daemon thread of the web process with the embedded SQLite database
(``JOBS_IN_PROCESS``), or ``ecrf jobs worker`` processes next to several web workers on
PostgreSQL. Workers claim the oldest queued job with a compare-and-set
(``UPDATE ... WHERE id = :id AND status = 'queued'``): of two workers racing for a job,
exactly one updates the row, on SQLite and PostgreSQL alike.

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
        session.execute(update(Job).where(Job.id == job.id, Job.status == "failed").values(
            status="queued", run_after=now, finished_at=None, cancel_requested=False,
            max_attempts=Job.attempts + 1, message="retry requested"))
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

    def __init__(self, session: Session, job: Job, folder: Path | None) -> None:
        self.session = session
        self.job = job
        self.job_id = job.id
        self.params = dict(job.params or {})
        self.study = job.study
        self.creator = job.user
        self.actor = Actor(user_id=job.created_by_id, username=job.created_by,
                           role=job.created_by_role)
        self.folder = folder
        self._engine = session.get_bind()

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


def _describe(exc: BaseException, expected: tuple[type[BaseException], ...] = ()) -> str:
    if isinstance(exc, (JobError, StudyDefinitionError, *expected)):
        text = str(exc)
    else:
        text = (f"unexpected error {type(exc).__name__}: {exc} (the details are in the "
                "server log)")
    return text[:_MAX_ERROR]


def _finish(engine: Any, job_id: int, **values: Any) -> None:
    with Session(engine) as own:
        own.execute(update(Job).where(Job.id == job_id).values(finished_at=utcnow(), **values))
        own.commit()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _failed_attempt(engine: Any, job_id: int, spec: JobKind | None, error: str) -> str:
    """Queue the job again after its backoff if attempts remain, else mark it failed; tell
    the kind. Returns the job's new status."""
    now = utcnow()
    with Session(engine) as own:
        job = own.get(Job, job_id)
        attempts, allowed = job.attempts, job.max_attempts
        next_at = None
        if attempts < allowed:
            delay = (spec.backoff if spec and spec.backoff else backoff_delay)(attempts)
            next_at = now + delay
            job.status, job.run_after, job.heartbeat_at = "queued", next_at, now
            job.message = (f"attempt {attempts} of {allowed} failed; next attempt "
                           f"{next_at:%Y-%m-%d %H:%M:%S} UTC")
        else:
            job.status, job.finished_at, job.run_after = "failed", now, None
            job.message = "failed" if allowed == 1 else f"failed after {attempts} attempts"
        job.error = error
        own.commit()
        status = job.status
        if spec is not None and spec.on_failure is not None:
            try:
                spec.on_failure(own, own.get(Job, job_id), error, next_at)
                own.commit()
            except Exception:  # the job's state is already recorded
                own.rollback()
                log.exception("job %s: the %s kind's failure hook failed", job_id, spec.name)
    return status


def run_job(session: Session, job_id: int, root: Path) -> str:
    """Run a claimed job to its end; returns its final status (``queued`` when a failed
    attempt will be tried again). Never raises for a job's own failure: the failure is
    recorded on the job (and logged)."""
    job = session.get(Job, job_id)
    if job is None or job.status != "running":
        return job.status if job else "missing"
    engine = session.get_bind()
    spec = kinds().get(job.kind)
    folder = root / str(job.id) if spec is None or spec.files else None
    try:
        if spec is None:
            raise JobError(f"unknown job kind {job.kind!r}: this ecrf cannot run it")
        if spec.files and job.study is None:
            raise JobError("the job names no study")
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        context = JobContext(session, job, folder)
        context.check_cancel()
        result = spec.run(context)
        context.check_cancel()
        relative = None
        if result is not None and result.path is not None:
            relative = result.path.resolve().relative_to(root.resolve()).as_posix()
            audit.bind_actor(session, context.actor)
            audit.record_export(session, context.actor, job.study, result.version,
                                result.what, file_name=result.path.name,
                                details={"job": job.id, "sha256": _sha256(result.path),
                                         "bytes": result.path.stat().st_size,
                                         **result.details})
        session.execute(update(Job).where(Job.id == job.id).values(
            status="done", progress=100, message="done", result_path=relative, error=None,
            run_after=None, finished_at=utcnow(), heartbeat_at=utcnow()))
        session.commit()
        return "done"
    except JobCancelled:
        session.rollback()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        _finish(engine, job_id, status="cancelled", message="cancelled on request")
        return "cancelled"
    except Exception as exc:  # a job's failure is recorded, never lost
        session.rollback()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        log.exception("job %s (%s) failed", job_id, getattr(job, "kind", "?"))
        expected = spec.expected if spec is not None else ()
        return _failed_attempt(engine, job_id, spec, _describe(exc, expected))


def claim_next(session: Session, worker: str) -> int | None:
    """Take the oldest queued job that is due for ``worker`` (its ``run_after`` passed),
    starting its next attempt; None when no job is due."""
    for _attempt in range(20):
        now = utcnow()
        job_id = session.scalar(
            select(Job.id).where(Job.status == "queued",
                                 or_(Job.run_after.is_(None), Job.run_after <= now))
            .order_by(Job.id).limit(1))
        session.commit()  # end the read before the write (SQLite lock upgrade)
        if job_id is None:
            return None
        won = session.execute(
            update(Job).where(Job.id == job_id, Job.status == "queued")
            .values(status="running", started_at=now, heartbeat_at=now, worker=worker[:120],
                    message="started", attempts=Job.attempts + 1)
        ).rowcount
        session.commit()
        if won == 1:
            return job_id
    return None  # lost every race this round; the caller polls again


def fail_stale(session: Session, older_than: dt.timedelta = STALE_AFTER) -> int:
    """Deal with running jobs whose worker stopped reporting (it died or was killed): queue
    them again when attempts remain, otherwise mark them failed. Returns how many."""
    now = utcnow()
    cutoff = now - older_than
    stale = (Job.status == "running", Job.heartbeat_at < cutoff)
    again = session.execute(
        update(Job).where(*stale, Job.attempts < Job.max_attempts)
        .values(status="queued", run_after=now, worker=None,
                message="the worker running it stopped responding: queued again",
                error="the worker running this job stopped responding")
    ).rowcount
    count = session.execute(
        update(Job).where(*stale)
        .values(status="failed", finished_at=now, message="failed",
                error="the worker running this job stopped responding (its process ended "
                      "or crashed); start the job again")
    ).rowcount
    session.commit()
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
                    fail_stale(db.session, stale)
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
