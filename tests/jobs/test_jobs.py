"""Background jobs: the exports page, the worker, failures, cancellation, concurrent claims."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from ecrf.core.audit.models import AuditEvent
from ecrf.core.audit.trail import Actor, verify_chain
from ecrf.core.extensions import db
from ecrf.jobs import runner as jobs
from ecrf.jobs.models import Job
from tests.jobs import fresh_job
from tests.outputs import STUDY_FOLDER, load_fixture_study, pdf_text


@pytest.fixture
def manager(study, login_as):
    return login_as("data_manager", study="ODMTEST", username="dm.jobs")


@pytest.fixture
def test_kinds():
    """Extra kinds for the tests: one that fails, one that waits to be cancelled, one no-op."""

    def fail(ctx):
        ctx.progress(30, "about to fail")
        raise RuntimeError("the disk is full")

    def slow(ctx):
        for step in range(600):
            ctx.progress(step % 100, f"step {step}")
            time.sleep(0.05)
        raise AssertionError("never cancelled")

    def noop(ctx):
        path = ctx.folder / "noop.txt"
        path.write_text("ok")
        return jobs.JobResult(path=path, what="noop")

    added = {"test_fail": fail, "test_slow": slow, "test_noop": noop}
    jobs.kinds()
    for name, run in added.items():
        jobs.JOB_KINDS[name] = jobs.JobKind(name, name, run)
    yield
    for name in added:
        jobs.JOB_KINDS.pop(name, None)


def _actor(user) -> Actor:
    return Actor(user_id=user.id, username=user.username, role="data_manager")


def _actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def test_page_lists_the_form_and_no_job(client, manager):
    response = client.get("/studies/ODMTEST/jobs")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "CRF (PDF)" in page and "v1 (protocol 1.2)" in page and "No job yet." in page
    assert "jobs.js" in page and "<script>" not in page.replace('<script src=', '')


def test_crf_job_from_request_to_download(app, client, manager):
    response = client.post("/studies/ODMTEST/jobs/crf",
                           data={"version": "1", "variant": "annotated", "language": "en"})
    assert response.status_code == 302
    job = db.session.scalar(select(Job))
    assert (job.status, job.kind, job.params) == \
        ("queued", "crf_pdf", {"version": 1, "annotated": True, "language": "en"})
    page = client.get("/studies/ODMTEST/jobs").get_data(as_text=True)
    assert 'http-equiv="refresh"' in page and "Queued" in page and "Cancel" in page
    assert jobs.work(app, once=True) == 1
    job = fresh_job(job.id)
    assert (job.status, job.progress, job.error) == ("done", 100, None)
    assert job.started_at and job.finished_at and job.worker
    path = Path(app.config["EXPORTS_DIR"]) / job.result_path
    assert path.name == "ODMTEST_v1_annotated_crf.pdf" and path.is_file()
    state = client.get(f"/studies/ODMTEST/jobs/{job.id}.json").get_json()
    assert state["status"] == "done" and state["finished"] and state["progress"] == 100
    assert state["download_url"] == f"/studies/ODMTEST/jobs/{job.id}/download"
    download = client.get(state["download_url"])
    assert download.status_code == 200 and download.mimetype == "application/pdf"
    assert download.data.startswith(b"%PDF")
    assert "attachment" in download.headers["Content-Disposition"]
    saved = Path(app.config["EXPORTS_DIR"]) / "check.pdf"
    saved.write_bytes(download.data)
    assert "I.DEMOG.WEIGHT" in pdf_text(saved) and "Test dm.jobs (dm.jobs)" in pdf_text(saved)
    assert _actions()[-3:] == ["export.requested", "export.created", "export.downloaded"]
    created = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "export.created"))
    assert created.username == "dm.jobs" and created.role == "data_manager"
    assert created.study_version == "v1 (protocol 1.2)"
    assert len(json.loads(created.details)["sha256"]) == 64
    assert verify_chain(db.session).ok
    page = client.get("/studies/ODMTEST/jobs").get_data(as_text=True)
    assert "Download" in page and 'http-equiv="refresh"' not in page


def test_bad_requests_are_refused_with_a_message(client, manager):
    response = client.post("/studies/ODMTEST/jobs/crf",
                           data={"version": "1", "variant": "annotated", "language": "zh"})
    assert response.status_code == 400
    assert "Not a valid choice" in response.get_data(as_text=True)
    assert db.session.scalar(select(Job)) is None


def test_enqueue_checks_params(app, study, manager):
    with pytest.raises(jobs.JobError, match="has no version 9"):
        jobs.enqueue(db.session, _actor(manager), "crf_pdf", study, {"version": 9})
    with pytest.raises(jobs.JobError, match="no 'zh' translation"):
        jobs.enqueue(db.session, _actor(manager), "crf_pdf", study, {"language": "zh"})
    with pytest.raises(jobs.JobError, match="unknown job kind 'nope'"):
        jobs.enqueue(db.session, _actor(manager), "nope", study, {})
    job = jobs.enqueue(db.session, _actor(manager), "crf_pdf", study, {})
    assert job.params == {"version": 1, "annotated": False, "language": None}


def test_a_failing_job_records_its_error(app, client, study, manager, test_kinds):
    job = jobs.enqueue(db.session, _actor(manager), "test_fail", study, {})
    db.session.commit()
    jobs.work(app, once=True)
    job = fresh_job(job.id)
    assert job.status == "failed" and job.finished_at is not None
    assert job.error == ("unexpected error RuntimeError: the disk is full (the details are in "
                         "the server log)")
    assert not (Path(app.config["EXPORTS_DIR"]) / str(job.id)).exists()
    state = client.get(f"/studies/ODMTEST/jobs/{job.id}.json").get_json()
    assert state["status"] == "failed" and "the disk is full" in state["error"]
    page = client.get("/studies/ODMTEST/jobs").get_data(as_text=True)
    assert "Failed:" in page and "the disk is full" in page
    assert client.get(f"/studies/ODMTEST/jobs/{job.id}/download").status_code == 404


def test_an_unknown_kind_fails_clearly(app, study, manager):
    job = Job(kind="vanished", study_id=study.id, params={}, status="queued",
              created_by_id=manager.id, created_by=manager.username)
    db.session.add(job)
    db.session.commit()
    jobs.work(app, once=True)
    assert fresh_job(job.id).error == "unknown job kind 'vanished': this ecrf cannot run it"


def test_a_queued_job_is_cancelled_at_once(app, client, study, manager):
    job = jobs.enqueue(db.session, _actor(manager), "crf_pdf", study, {})
    db.session.commit()
    response = client.post(f"/studies/ODMTEST/jobs/{job.id}/cancel")
    assert response.status_code == 302
    assert fresh_job(job.id).status == "cancelled"
    assert jobs.work(app, once=True) == 0
    again = client.post(f"/studies/ODMTEST/jobs/{job.id}/cancel", follow_redirects=True)
    assert "has already finished (cancelled)" in again.get_data(as_text=True)
    assert "export.cancel_requested" in _actions()


def test_a_running_job_stops_at_its_next_step(app, client, study, manager, test_kinds):
    job = jobs.enqueue(db.session, _actor(manager), "test_slow", study, {})
    db.session.commit()
    worker = threading.Thread(target=jobs.work, args=(app,), kwargs={"once": True})
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while fresh_job(job.id).status != "running" or fresh_job(job.id).progress < 3:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        state = client.get(f"/studies/ODMTEST/jobs/{job.id}.json").get_json()
        assert state["status"] == "running" and state["message"].startswith("step ")
        client.post(f"/studies/ODMTEST/jobs/{job.id}/cancel")
    finally:
        worker.join(60)
    job = fresh_job(job.id)
    assert (job.status, job.message, job.cancel_requested) == \
        ("cancelled", "cancelled on request", True)
    assert not (Path(app.config["EXPORTS_DIR"]) / str(job.id)).exists()


def test_jobs_are_private_to_their_creator(app, client, study, manager, make_user):
    other = make_user("dm.other", role="data_manager", study="ODMTEST")
    job = jobs.enqueue(db.session, _actor(other), "crf_pdf", study, {})
    db.session.commit()
    assert client.get(f"/studies/ODMTEST/jobs/{job.id}.json").status_code == 404
    assert client.post(f"/studies/ODMTEST/jobs/{job.id}/cancel").status_code == 404
    assert f"<td>{job.id}</td>" not in client.get("/studies/ODMTEST/jobs").get_data(as_text=True)


@pytest.mark.parametrize("role, site", [("monitor", "S01"), ("investigator", "S01"),
                                        ("sponsor_viewer", None)])
def test_only_exporters_reach_the_page(client, study, login_as, role, site):
    login_as(role, site=site, study="ODMTEST")
    assert client.get("/studies/ODMTEST/jobs").status_code == 403
    assert client.post("/studies/ODMTEST/jobs/crf", data={"version": "1"}).status_code == 403


def test_a_job_whose_worker_died_is_marked_failed(app, study, manager):
    job = Job(kind="crf_pdf", study_id=study.id, params={}, status="running",
              created_by_id=manager.id, created_by=manager.username,
              heartbeat_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    db.session.add(job)
    db.session.commit()
    assert jobs.fail_stale(db.session) == 1
    assert "stopped responding" in fresh_job(job.id).error


def test_two_workers_never_take_the_same_job(app, study, manager, test_kinds):
    ids = [jobs.enqueue(db.session, _actor(manager), "test_noop", study, {}).id
           for _ in range(40)]
    db.session.commit()
    claimed: dict[str, list[int]] = {}
    start = threading.Barrier(4)
    errors = []

    def claim(name: str) -> None:
        mine = claimed.setdefault(name, [])
        try:
            with app.app_context():
                start.wait()
                while (job_id := jobs.claim_next(db.session, name)) is not None:
                    mine.append(job_id)
                db.session.remove()
        except Exception as exc:  # reported below, with the thread that raised it
            errors.append(f"{name}: {exc!r}")

    threads = [threading.Thread(target=claim, args=(f"worker-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    every = [job_id for mine in claimed.values() for job_id in mine]
    assert sorted(every) == sorted(ids), "a job was claimed twice or not at all"
    db.session.expire_all()
    workers = dict(db.session.execute(select(Job.id, Job.worker)).all())
    assert all(workers[job_id] == name for name, mine in claimed.items() for job_id in mine)


def test_the_web_process_runs_jobs_in_its_own_thread(app_factory, tmp_path, login_as_factory):
    application = app_factory(EXPORTS_DIR=str(tmp_path / "exports"), JOBS_IN_PROCESS=True)
    client = application.test_client()
    try:
        with application.app_context():
            load_fixture_study(STUDY_FOLDER)
            login_as_factory(application, client)
        response = client.post("/studies/ODMTEST/jobs/crf",
                               data={"version": "1", "variant": "blank", "language": "fr"})
        assert response.status_code == 302
        deadline = time.monotonic() + 90
        while True:
            state = client.get("/studies/ODMTEST/jobs/1.json").get_json()
            if state["finished"]:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert state["status"] == "done", state
        assert client.get(state["download_url"]).data.startswith(b"%PDF")
    finally:
        jobs.stop_in_process_worker(application)


@pytest.fixture
def login_as_factory(make_user):
    """Sign a client of another app in as a data manager of ODMTEST."""
    from tests.conftest import sign_in

    def login(application, client):
        make_user("dm.thread", role="data_manager", study="ODMTEST")
        assert sign_in(client, "dm.thread").status_code == 302

    return login
