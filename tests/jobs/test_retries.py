"""Jobs tried several times: the backoff schedule, run_after honoured by the claim, the
last attempt failing the job, retry now, a dead worker's job queued again, and the list."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select, update

from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.jobs import runner as jobs
from ecrf.jobs.cli import jobs_cli
from ecrf.jobs.models import Job
from tests.jobs import fresh_job

ACTOR = Actor(user_id=None, username="system", role=None)
M = dt.timedelta(minutes=1)


@pytest.fixture
def flaky():
    """A kind with no file that fails while ``state['fail']`` is positive."""
    state = {"fail": 0, "runs": 0, "failures": []}

    def run(ctx):
        state["runs"] += 1
        if state["fail"] > 0:
            state["fail"] -= 1
            raise ConnectionError("connection refused")
        return None

    def on_failure(session, job, error, next_at):
        state["failures"].append((job.attempts, error, next_at))

    jobs.JOB_KINDS["test_flaky"] = jobs.JobKind(
        "test_flaky", "flaky", run, expected=(ConnectionError,), files=False,
        backoff=lambda n: jobs.backoff_delay(n, 60), on_failure=on_failure)
    yield state
    jobs.JOB_KINDS.pop("test_flaky", None)


def _due_now(job_id: int) -> None:
    db.session.execute(update(Job).where(Job.id == job_id)
                       .values(run_after=dt.datetime.now(dt.UTC) - M))
    db.session.commit()


@pytest.mark.parametrize("attempt, base, delay", [
    (1, 60, M),
    (2, 60, 4 * M),
    (3, 60, 16 * M),
    (4, 60, 64 * M),
    (5, 60, 256 * M),
    (6, 60, dt.timedelta(hours=6)),  # capped
    (60, 60, dt.timedelta(hours=6)),
    (1, 30, dt.timedelta(seconds=30)),
    (3, 30, 8 * M),
    (2, 0, dt.timedelta(0)),
    (0, 60, M),  # nonsense attempt numbers count as the first
    (1, -5, dt.timedelta(0)),
])
def test_backoff_schedule(attempt, base, delay):
    assert jobs.backoff_delay(attempt, base) == delay


def test_a_failed_attempt_waits_then_succeeds(app, study, flaky):
    flaky["fail"] = 2
    job = jobs.enqueue_task(db.session, ACTOR, "test_flaky", study_id=study.id,
                            max_attempts=5)
    db.session.commit()
    before = dt.datetime.now(dt.UTC)
    assert jobs.work(app, once=True) == 1
    job = fresh_job(job.id)
    assert (job.status, job.attempts, job.error) == ("queued", 1, "connection refused")
    assert before + M <= job.run_after <= dt.datetime.now(dt.UTC) + M
    assert job.retrying and "attempt 1 of 5 failed" in job.message
    # Not claimed before its time.
    assert jobs.work(app, once=True) == 0
    _due_now(job.id)
    assert jobs.work(app, once=True) == 1
    job = fresh_job(job.id)
    assert (job.status, job.attempts) == ("queued", 2)
    assert job.run_after - dt.datetime.now(dt.UTC) > 3 * M  # 4 minutes after the second
    _due_now(job.id)
    jobs.work(app, once=True)
    job = fresh_job(job.id)
    assert (job.status, job.attempts, job.error, job.run_after) == ("done", 3, None, None)
    assert [(n, e) for n, e, _next in flaky["failures"]] == [
        (1, "connection refused"), (2, "connection refused")]
    assert all(next_at is not None for _n, _e, next_at in flaky["failures"])


def test_the_last_attempt_fails_the_job(app, study, flaky):
    flaky["fail"] = 99
    job = jobs.enqueue_task(db.session, ACTOR, "test_flaky", study_id=study.id,
                            max_attempts=3)
    db.session.commit()
    for _ in range(3):
        _due_now(job.id)
        jobs.work(app, once=True)
    job = fresh_job(job.id)
    assert (job.status, job.attempts, job.run_after) == ("failed", 3, None)
    assert job.message == "failed after 3 attempts" and job.finished_at is not None
    assert flaky["failures"][-1][2] is None  # no next attempt
    assert jobs.work(app, once=True) == 0


def test_retry_now(app, study, flaky):
    flaky["fail"] = 99
    job = jobs.enqueue_task(db.session, ACTOR, "test_flaky", study_id=study.id,
                            max_attempts=2)
    db.session.commit()
    jobs.work(app, once=True)
    # Waiting for its next attempt: due at once.
    jobs.retry_now(db.session, fresh_job(job.id))
    db.session.commit()
    jobs.work(app, once=True)
    assert fresh_job(job.id).status == "failed"
    # Failed: one more attempt, which succeeds.
    flaky["fail"] = 0
    job = jobs.retry_now(db.session, fresh_job(job.id))
    db.session.commit()
    assert (job.status, job.max_attempts) == ("queued", 3)
    jobs.work(app, once=True)
    assert (fresh_job(job.id).status, fresh_job(job.id).attempts) == ("done", 3)
    with pytest.raises(jobs.JobError, match="only a queued or failed job"):
        jobs.retry_now(db.session, fresh_job(job.id))


def test_existing_kinds_keep_one_attempt(app, study, login_as):
    user = login_as("data_manager", study="ODMTEST", username="dm.retry")
    job = jobs.enqueue(db.session, Actor(user_id=user.id, username=user.username,
                                         role="data_manager"), "crf_pdf", study, {})
    db.session.commit()
    assert (job.attempts, job.max_attempts, job.run_after) == (0, 1, None)


def test_a_task_kind_is_not_an_export(app, study, flaky, login_as):
    user = login_as("data_manager", study="ODMTEST", username="dm.tasks")
    actor = Actor(user_id=user.id, username=user.username, role="data_manager")
    job = jobs.enqueue_task(db.session, actor, "test_flaky", study_id=study.id)
    db.session.commit()
    assert jobs.jobs_for(db.session, user, study) == []
    assert jobs.get_job(db.session, user, study, job.id) is None
    with pytest.raises(jobs.JobError, match="makes a file"):
        jobs.enqueue_task(db.session, actor, "crf_pdf", study_id=study.id)
    jobs.work(app, once=True)
    assert fresh_job(job.id).status == "done" and fresh_job(job.id).result_path is None
    assert not (Path(app.config["EXPORTS_DIR"]) / str(job.id)).exists()


def test_a_rolled_back_task_never_runs(app, study, flaky):
    jobs.enqueue_task(db.session, ACTOR, "test_flaky", study_id=study.id)
    db.session.rollback()
    assert jobs.work(app, once=True) == 0 and flaky["runs"] == 0


def test_a_dead_workers_job_is_queued_again_while_attempts_remain(app, study, flaky):
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    again = Job(kind="test_flaky", study_id=study.id, params={}, status="running",
                created_by="system", attempts=1, max_attempts=3, heartbeat_at=old)
    last = Job(kind="test_flaky", study_id=study.id, params={}, status="running",
               created_by="system", attempts=3, max_attempts=3, heartbeat_at=old)
    db.session.add_all([again, last])
    db.session.commit()
    assert jobs.fail_stale(db.session) == 2
    assert fresh_job(again.id).status == "queued" and fresh_job(last.id).status == "failed"
    jobs.work(app, once=True)
    assert (fresh_job(again.id).status, fresh_job(again.id).attempts) == ("done", 2)


def test_jobs_list_shows_attempts_next_attempt_and_error(app, study, flaky):
    flaky["fail"] = 99
    waiting = jobs.enqueue_task(db.session, ACTOR, "test_flaky", study_id=study.id,
                                max_attempts=4)
    failed = jobs.enqueue_task(db.session, ACTOR, "test_flaky", study_id=study.id,
                               max_attempts=1)
    db.session.commit()
    jobs.work(app, once=True)
    runner = app.test_cli_runner()
    out = runner.invoke(jobs_cli, ["list"]).output
    line = next(row for row in out.splitlines() if row.split()[0] == str(waiting.id))
    run_after = fresh_job(waiting.id).run_after
    assert "retrying" in line and "attempt 1/4" in line
    assert f"next attempt {run_after:%Y-%m-%d %H:%M} UTC" in line
    assert "last error: connection refused" in line
    out = runner.invoke(jobs_cli, ["list", "--status", "failed"]).output
    assert str(failed.id) in out and "connection refused" in out
    assert str(waiting.id) not in out.split()
    out = runner.invoke(jobs_cli, ["list", "--status", "retrying", "--kind", "test_flaky"])
    assert out.exit_code == 0 and f"{waiting.id:>5} " in out.output
    bad = runner.invoke(jobs_cli, ["list", "--status", "exploded"])
    assert bad.exit_code == 2 and "Invalid value" in bad.output
    assert db.session.scalar(select(Job.status).where(Job.id == failed.id)) == "failed"
