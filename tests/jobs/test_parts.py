"""Jobs split into parts run by several workers, the claim on PostgreSQL (FOR UPDATE SKIP
LOCKED), and the guard on a job's final update (a job failed or cancelled meanwhile is
never flipped by the worker that lost it)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ecrf.core.audit.models import AuditEvent
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.jobs import runner as jobs
from ecrf.jobs.models import Job
from ecrf.outputs.pdf import casebook as casebook_module
from tests.conftest import is_postgres
from tests.jobs import fresh_job
from tests.outputs.clinical_setup import enrol, load_study


@pytest.fixture
def manager(study, login_as):
    return login_as("data_manager", study="ODMTEST", username="dm.parts")


def _actor(user) -> Actor:
    return Actor(user_id=user.id, username=user.username, role="data_manager")


def _root(app) -> Path:
    return jobs.exports_dir(app)


def _step(app, worker: str = "w1") -> tuple[int | None, str | None]:
    """One worker step: claim the next job and run it; (job id, its status after)."""
    job_id = jobs.claim_next(db.session, worker)
    if job_id is None:
        return None, None
    return job_id, jobs.run_job(db.session, job_id, _root(app))


# --- the guard on the final update ------------------------------------------------------------

@pytest.fixture
def racing():
    """A kind that, while it runs, has its job changed behind its back (as the stale-worker
    check, a cancel or another worker would), then ends as asked: done, failed, cancelled."""

    def run(ctx):
        with Session(db.engine) as other:
            other.execute(update(Job).where(Job.id == ctx.job_id).values(
                status=ctx.params["become"], worker=ctx.params["worker"]))
            other.commit()
        (ctx.folder / "made.txt").write_text("made")
        ending = ctx.params["end"]
        if ending == "failed":
            raise RuntimeError("the disk is full")
        if ending == "cancelled":
            raise jobs.JobCancelled()
        return jobs.JobResult(path=ctx.folder / "made.txt", what="racing")

    jobs.JOB_KINDS["test_racing"] = jobs.JobKind("test_racing", "racing", run)
    yield
    jobs.JOB_KINDS.pop("test_racing", None)


BECOME = [("running", "w1"), ("running", "w2"), ("failed", None), ("cancelled", None),
          ("done", None), ("queued", None)]


@pytest.mark.parametrize("end", ["done", "failed", "cancelled"])
@pytest.mark.parametrize(("become", "worker"), BECOME)
def test_the_final_update_applies_only_to_the_claiming_workers_running_job(
        app, study, manager, racing, become, worker, end):
    job = jobs.enqueue(db.session, _actor(manager), "test_racing", study,
                       {"become": become, "worker": worker, "end": end})
    db.session.commit()
    job_id, status = _step(app, "w1")
    assert job_id == job.id
    ours = (become, worker) == ("running", "w1")
    stored = fresh_job(job.id)
    assert (status, stored.status) == ((end, end) if ours else (become, become))
    made = (_root(app) / str(job.id) / "made.txt").exists()
    exported = db.session.scalar(select(AuditEvent.id).where(
        AuditEvent.action == "export.created")) is not None
    assert (made, exported) == ((True, True) if ours and end == "done" else (False, False))
    assert stored.result_path == (f"{job.id}/made.txt" if ours and end == "done" else None)
    if not ours:
        assert stored.error is None and stored.worker == worker


def test_a_job_failed_by_the_stale_check_stays_failed(app, study, manager, racing):
    job = jobs.enqueue(db.session, _actor(manager), "test_racing", study,
                       {"become": "running", "worker": "w1", "end": "done"})
    db.session.commit()
    assert jobs.claim_next(db.session, "w1") == job.id
    db.session.execute(update(Job).where(Job.id == job.id).values(
        heartbeat_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)))
    db.session.commit()
    assert jobs.fail_stale(db.session) == 1
    # The worker was only slow: it comes back and finishes.
    db.session.execute(update(Job).where(Job.id == job.id).values(worker="w1"))
    db.session.commit()
    assert jobs.run_job(db.session, job.id, _root(app)) == "failed"
    assert "stopped responding" in fresh_job(job.id).error


# --- claiming ------------------------------------------------------------------------------

def test_two_sessions_claiming_at_once_take_different_jobs(app, study, manager):
    first, second = (jobs.enqueue(db.session, _actor(manager), "crf_pdf", study, {}).id
                     for _ in range(2))
    db.session.commit()
    with Session(db.engine) as one, Session(db.engine) as two:
        now = dt.datetime.now(dt.UTC)
        if is_postgres():
            # One worker holds the oldest job's row lock (between its SELECT and UPDATE):
            # the other skips it, at once, and takes the next.
            held = one.scalar(jobs._due(now).with_for_update(skip_locked=True))
            assert held == first
            assert jobs.claim_next(two, "w2") == second
            assert jobs._start(one, held, "w1", now) == 1
            one.commit()
        else:
            # SQLite: both may read the same oldest job; the conditional update lets one win.
            assert one.scalar(jobs._due(now)) == first
            one.commit()
            assert jobs.claim_next(two, "w2") == first
            assert jobs._start(one, first, "w1", now) == 0
            one.commit()
            assert jobs.claim_next(one, "w1") == second
    stored = dict(db.session.execute(select(Job.id, Job.worker)).all())
    assert {stored[first], stored[second]} == {"w1", "w2"}


# --- jobs split into parts ---------------------------------------------------------------------

@pytest.fixture
def split_kinds():
    """test_split splits into one test_piece per label; a piece writes its file, or fails
    when its label is the one named to fail; the second run joins the pieces' files."""

    def split(ctx):
        parts = ctx.parts()
        if parts is None:
            return jobs.JobParts("test_piece", [
                {"label": label, "fail": ctx.params.get("fail")}
                for label in ctx.params["labels"]], noun="subjects")
        path = ctx.folder / "joined.txt"
        path.write_text(",".join((ctx.folder / "parts" / p.params["label"]).read_text()
                                 for p in parts))
        return jobs.JobResult(path=path, what="joined")

    def piece(ctx):
        if ctx.params["label"] == ctx.params.get("fail"):
            raise jobs.JobError(f"the casebook of subject {ctx.params['label']} could not "
                                "be produced: disk full")
        folder = ctx.root / str(ctx.parent_id) / "parts"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ctx.params["label"]).write_text(ctx.params["label"].lower())

    jobs.JOB_KINDS["test_split"] = jobs.JobKind("test_split", "split", split)
    jobs.JOB_KINDS["test_piece"] = jobs.JobKind("test_piece", "piece", piece, files=False)
    yield
    jobs.JOB_KINDS.pop("test_split", None)
    jobs.JOB_KINDS.pop("test_piece", None)


def _split_job(manager, study, labels=("A", "B", "C"), fail=None) -> int:
    job = jobs.enqueue(db.session, _actor(manager), "test_split", study,
                       {"labels": list(labels), "fail": fail})
    db.session.commit()
    return job.id


def _parts(parent_id: int) -> list[Job]:
    ids = fresh_job(parent_id).params["_parts"]
    return [db.session.get(Job, i) for i in ids]


def test_a_split_job_counts_its_parts_then_assembles(app, client, study, manager,
                                                     split_kinds):
    parent = _split_job(manager, study)
    assert _step(app) == (parent, "running")
    job = fresh_job(parent)
    assert (job.status, job.worker, job.message, job.progress) == \
        ("running", None, "0 of 3 subjects", 2)
    assert [(p.kind, p.status, p.params["label"], p.params["_parent"]) for p in
            _parts(parent)] == [("test_piece", "queued", label, parent) for label in "ABC"]
    seen = []
    for worker in ("w1", "w2", "w1"):
        _step(app, worker)
        state = client.get(f"/studies/ODMTEST/jobs/{parent}.json").get_json()
        seen.append((state["status"], state["progress"], state["message"]))
    assert seen == [("running", 34, "1 of 3 subjects"), ("running", 66, "2 of 3 subjects"),
                    ("queued", 98, "3 of 3 subjects; assembling")]
    page = client.get("/studies/ODMTEST/jobs").get_data(as_text=True)
    assert "3 of 3 subjects; assembling" in page and "test_piece" not in page
    assert _step(app, "w2") == (parent, "done")
    job = fresh_job(parent)
    assert (job.status, job.progress, job.worker) == ("done", 100, "w2")
    assert (_root(app) / job.result_path).read_text() == "a,b,c"
    assert _step(app) == (None, None)
    actions = list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))
    assert actions.count("export.created") == 1


def test_a_failed_part_fails_the_job_naming_it(app, study, manager, split_kinds):
    parent = _split_job(manager, study, fail="B")
    assert jobs.work(app, once=True) == 3  # the job, A, then B fails it: C never runs
    job = fresh_job(parent)
    assert job.status == "failed" and job.finished_at is not None
    assert job.error == "the casebook of subject B could not be produced: disk full"
    assert [p.status for p in _parts(parent)] == ["done", "failed", "cancelled"]
    assert not (_root(app) / str(parent)).exists()


@pytest.mark.parametrize("running", [False, True])
def test_cancelling_a_split_job_cancels_its_parts(app, client, study, manager, split_kinds,
                                                  running):
    parent = _split_job(manager, study)
    _step(app)
    _step(app)  # A done
    if running:
        assert jobs.claim_next(db.session, "w2") is not None  # B claimed, not finished
    response = client.post(f"/studies/ODMTEST/jobs/{parent}/cancel")
    assert response.status_code == 302
    assert fresh_job(parent).status == "cancelled"
    states = [(p.status, p.cancel_requested) for p in _parts(parent)]
    assert states == [("done", False), ("running", True) if running
                      else ("cancelled", True), ("cancelled", True)]
    if running:  # B stops at its next check and leaves the job cancelled
        b = _parts(parent)[1].id
        assert jobs.run_job(db.session, b, _root(app)) == "cancelled"
        assert fresh_job(parent).status == "cancelled"
    assert jobs.work(app, once=True) == 0


def test_only_one_of_two_last_parts_queues_the_assembly(app, study, manager, split_kinds):
    parent = _split_job(manager, study, labels=("A", "B"))
    _step(app)
    db.session.execute(update(Job).where(Job.id.in_(fresh_job(parent).params["_parts"]))
                       .values(status="done"))
    db.session.commit()
    assert jobs.settle_parent(db.engine, parent) == "queued"
    assert jobs.settle_parent(db.engine, parent) == "queued"
    job = fresh_job(parent)
    assert (job.status, job.attempts, job.max_attempts) == ("queued", 1, 2)


def test_a_split_job_waiting_for_its_parts_is_not_stale(app, study, manager, split_kinds):
    parent = _split_job(manager, study, labels=("A", "B"))
    _step(app)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    db.session.execute(update(Job).where(Job.id == parent).values(heartbeat_at=long_ago))
    db.session.commit()
    assert jobs.fail_stale(db.session) == 0
    assert fresh_job(parent).status == "running" and fresh_job(parent).heartbeat_at > long_ago
    # Its parts were done but the assembly was never queued (a worker died in between).
    db.session.execute(update(Job).where(Job.id.in_(fresh_job(parent).params["_parts"]))
                       .values(status="done"))
    db.session.execute(update(Job).where(Job.id == parent).values(heartbeat_at=long_ago))
    db.session.commit()
    assert jobs.fail_stale(db.session) == 0
    assert fresh_job(parent).status == "queued"


def test_a_part_whose_worker_died_fails_the_job(app, study, manager, split_kinds):
    parent = _split_job(manager, study, labels=("A", "B"))
    _step(app)
    a = jobs.claim_next(db.session, "w1")
    db.session.execute(update(Job).where(Job.id == a).values(
        heartbeat_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)))
    db.session.commit()
    assert jobs.fail_stale(db.session, root=_root(app)) == 1
    job = fresh_job(parent)
    assert job.status == "failed" and job.error.startswith("A: the worker running this job")
    assert [p.status for p in _parts(parent)] == ["failed", "cancelled"]


# --- the casebooks job, split by subject (with a stand-in for the PDF renderer) ----------------

@pytest.fixture
def stub_pdf(monkeypatch):
    made = []

    def fake(session, subject, *, target, **kwargs):
        made.append(subject.subject_key)
        data = f"%PDF-stub {subject.subject_key}".encode()
        if isinstance(target, Path):
            target.write_bytes(data)
        elif isinstance(target, io.BytesIO):
            target.write(data)
        else:
            Path(target).write_bytes(data)

    monkeypatch.setattr(casebook_module, "casebook_pdf", fake)
    return made


@pytest.mark.parametrize(("site", "keys"), [
    (None, ["S01-001", "S01-002", "S02-001"]), ("S01", ["S01-001", "S01-002"]),
    ("S02", ["S02-001"])])
def test_the_casebooks_job_makes_one_part_per_subject(app, client, make_study, make_user,
                                                      stub_pdf, site, keys):
    study = load_study(make_study)
    for key in ("S01-002", "S02-001", "S01-001"):
        enrol(study, key, key[:3])
    dm = make_user("dm1", role="data_manager", study="CLINX")
    job = jobs.enqueue(db.session, _actor(dm), "casebooks", study, {"site": site})
    db.session.commit()
    ran = jobs.work(app, once=True)
    done = fresh_job(job.id)
    assert done.status == "done", done.error
    assert ran == (1 if len(keys) == 1 else len(keys) + 2)
    assert sorted(stub_pdf) == keys
    with zipfile.ZipFile(jobs.result_file(app, done)) as archive:
        assert archive.namelist() == [f"CLINX_{k}_casebook.pdf" for k in keys] + \
            ["manifest.csv"]
        assert archive.read(f"CLINX_{keys[0]}_casebook.pdf") == f"%PDF-stub {keys[0]}".encode()
        manifest = archive.read("manifest.csv").decode().splitlines()
    assert [line.split(",")[0] for line in manifest[1:]] == keys
    assert not (_root(app) / str(job.id) / "parts").exists()
    assert ("_parts" in done.params) == (len(keys) > 1)
    assert set(jobs.public_params(done.params)) == {"site", "language"}


def test_a_failed_split_job_tried_again_is_split_anew(app, study, manager, split_kinds):
    parent = _split_job(manager, study, labels=("A", "B"), fail="B")
    jobs.work(app, once=True)
    first = fresh_job(parent).params["_parts"]
    db.session.execute(update(Job).where(Job.id == parent).values(
        params={"labels": ["A", "B"], "fail": None, "_parts": first, "_noun": "subjects"}))
    db.session.commit()
    jobs.retry_now(db.session, fresh_job(parent))
    db.session.commit()
    assert "_parts" not in fresh_job(parent).params
    jobs.work(app, once=True)
    job = fresh_job(parent)
    assert job.status == "done" and set(job.params["_parts"]).isdisjoint(first)
    assert (_root(app) / job.result_path).read_text() == "a,b"
