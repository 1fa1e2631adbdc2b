"""Casebooks as a parallel job: one subject's casebook alone, then a study's casebooks
job run by W ``ecrf jobs worker`` processes.

Run: ECRF_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
     .venv/bin/python bench/casebook_jobs_bench.py [--workers W] [--subjects N]

Loads the demo into a temporary database (PostgreSQL when ``ECRF_BENCH_DATABASE_URL``
names a server, as in production; else SQLite). DEXAML03 has 8 subjects over its two
sites: the job covers the whole study (or, with ``--subjects N``, the first N subject
keys, the others being moved out of the job's reach for the run). It then times, in the
same run:

- one subject's casebook alone in this process (the subject with the median number of
  stored values), the baseline;
- the casebooks job queued as a user would, run by W worker processes started as
  ``ecrf jobs worker`` (W = the number of cores by default), from queueing to the zip.

Prints the wall time, the goal (one subject's time x N / cores x 1.2) and the ratio to
it, the time each part took, and how busy the workers were (sum of the parts' times over
wall time x W).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchdb import temporary_database  # noqa: E402
from results import record  # noqa: E402

STUDY = "DEXAML03"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--subjects", type=int, default=8)
    args = parser.parse_args()
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    folder = Path(tempfile.mkdtemp(prefix="ecrf-casebook-jobs-bench-"))
    with temporary_database(folder) as url:
        run(url, folder, args.workers, args.subjects)


def run(url: str, folder: Path, workers: int, count: int) -> None:
    from flask_migrate import upgrade
    from sqlalchemy import func, select, update

    from ecrf import create_app
    from ecrf.accounts.models import User
    from ecrf.capture.models import ItemValue, Subject
    from ecrf.core.audit.trail import Actor
    from ecrf.core.extensions import db
    from ecrf.demo.loader import load_demo
    from ecrf.jobs import runner as jobs
    from ecrf.jobs.models import Job
    from ecrf.outputs.pdf.casebook import casebook_pdf
    from ecrf.studies.models import Study

    exports = folder / "exports"
    config = {"DATABASE_URL": url, "SECRET_KEY": "bench", "JOBS_IN_PROCESS": False,
              "EXPORTS_DIR": str(exports), "PLOT_CACHE_DIR": str(folder / "plots"),
              "TESTING": True, "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024,
              "ARGON2_PARALLELISM": 1}
    app = create_app(config)
    with app.app_context():
        print(f"database: {db.engine.dialect.name}; {workers} worker processes; "
              f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
        upgrade()
        started = time.perf_counter()
        load_demo(db.session, Actor(user_id=None, username="bench"), app.config)
        db.session.commit()
        print(f"demo loaded in {time.perf_counter() - started:.1f} s")
        study = db.session.scalar(select(Study).where(Study.oid == STUDY))
        rows = db.session.execute(
            select(Subject.id, Subject.subject_key, func.count(ItemValue.id))
            .outerjoin(ItemValue, ItemValue.subject_id == Subject.id)
            .where(Subject.study_id == study.id).group_by(Subject.id, Subject.subject_key)
            .order_by(Subject.subject_key)).all()
        chosen, others = rows[:count], rows[count:]
        if others:  # out of the job's reach for this run (the database is thrown away)
            db.session.execute(update(Subject).where(Subject.id.in_([r[0] for r in others]))
                               .values(study_id=db.session.scalar(
                                   select(Study.id).where(Study.oid != STUDY).limit(1))))
            db.session.commit()
        n = len(chosen)
        typical = sorted(chosen, key=lambda r: r[2])[n // 2]
        print(f"{STUDY}: {n} subjects ({', '.join(f'{k} {v} values' for _, k, v in chosen)})")

        subject = db.session.get(Subject, typical[0])
        runs = []
        for _ in range(2):  # the first also loads fonts and compiles templates: the second
            db.session.expire_all()
            t0 = time.perf_counter()
            casebook_pdf(db.session, subject, generated_by="bench",
                         generated_at=dt.datetime.now(dt.UTC), target=folder / "one.pdf")
            runs.append(time.perf_counter() - t0)
        one = runs[-1]
        print(f"one subject's casebook ({typical[1]}, {typical[2]} values) alone: "
              f"{one:.1f} s (first run {runs[0]:.1f} s)")
        user = db.session.scalar(select(User).where(User.username.like("dm%")).limit(1))
        actor = Actor(user_id=user.id, username=user.username, role="data_manager")

    env = {**os.environ, "PYTHONPATH": str(ROOT), "ECRF_DATABASE_URL": url,
           "ECRF_SECRET_KEY": "bench", "ECRF_JOBS_IN_PROCESS": "false",
           "ECRF_EXPORTS_DIR": str(exports), "ECRF_PLOT_CACHE_DIR": str(folder / "plots")}
    command = [sys.executable, "-c", "import sys; from ecrf.cli import main; "
               "sys.argv[0] = 'ecrf'; sys.exit(main())", "jobs", "worker", "--poll", "0.2"]
    # The workers run before the job is queued, as in production (their start-up is not
    # the job's time).
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True,
                              stderr=open(folder / f"worker{i}.log", "w"))
             for i in range(workers)]
    try:
        for proc in procs:
            line = proc.stdout.readline()
            if "started" not in line:
                raise SystemExit(f"a worker did not start; see {folder}/worker*.log")
        with app.app_context():
            job = jobs.enqueue(db.session, actor, "casebooks",
                               db.session.scalar(select(Study).where(Study.oid == STUDY)), {})
            db.session.commit()
            job_id = job.id
            started = time.perf_counter()
            last = ""
            while True:
                db.session.expire_all()
                state = db.session.get(Job, job_id)
                if state.message != last:
                    print(f"  {time.perf_counter() - started:6.1f} s  {state.status:<8} "
                          f"{state.progress:>3}%  {state.message}")
                    last = state.message
                if state.finished:
                    break
                if any(p.poll() is not None for p in procs):
                    raise SystemExit(f"a worker stopped; see {folder}/worker*.log")
                db.session.commit()
                time.sleep(0.5)
            wall = time.perf_counter() - started
            if state.status != "done":
                raise SystemExit(f"the job ended {state.status}: {state.error}")
            # a one-subject job is not split: the job itself is its only part
            parts = list(db.session.scalars(select(Job).where(
                Job.id.in_(state.params.get("_parts") or [state.id])).order_by(Job.id)))
            times = [(p.params.get("label", "whole job"), p.worker.split(":")[1],
                      (p.finished_at - p.started_at).total_seconds()) for p in parts]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    cores = os.cpu_count() or 1
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    goal = one * n / cores * 1.2
    busy = sum(t for *_, t in times) / (wall * workers)
    print("parts: " + ", ".join(f"{k} {t:.1f} s (pid {w})" for k, w, t in times))
    print(f"part time: median {statistics.median(t for *_, t in times):.1f} s, "
          f"sum {sum(t for *_, t in times):.1f} s")
    print(f"{'path':<28}{'ours':>10}{'goal':>10}{'ratio':>8}")
    print(f"{f'casebooks job, {n} subjects':<28}{wall:>9.1f}s{goal:>9.1f}s"
          f"{wall / goal:>8.2f}   (goal: {one:.1f} s x {n} / {cores} cores x 1.2; "
          f"workers busy {busy:.0%})")
    record(f"casebooks job, {n} subjects, {workers} workers (vs one casebook x {n} / {cores} "
           "cores x 1.2)", wall, goal, "s")


if __name__ == "__main__":
    main()
