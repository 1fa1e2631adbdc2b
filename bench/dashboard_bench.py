"""Dashboards, SDV progress and the safety overview at 1,000 and 4,000 DEXAML-03 subjects.

Run: .venv/bin/python bench/dashboard_bench.py [sizes] [runs]
     ECRF_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
         .venv/bin/python bench/dashboard_bench.py 1000,4000 5
     (ECRF_BENCH_SQLITE=0 leaves SQLite out.)

For each size, builds a fresh database (SQLite in a temporary folder, and a throw-away
PostgreSQL database when ECRF_BENCH_DATABASE_URL names a server) with the subjects, events,
forms and values of ``matrix_bench`` (bulk inserts, no audit trail), then adds the review
data the boards count: a query on every third subject (open, answered or closed, of
various ages), SDV marks on half the item values, a casebook signature on every fourth
subject and a subject lock on every fiftieth. Each page is requested by a signed-in user
of the role that sees it; after two warm-up requests (the first refreshes every subject's
schedule), prints the server time (mean and 95th percentile over the runs), the CPU time
of this process and the number of SQL statements per request, then one table of both
sizes. Targets: each page < 150 ms at 4,000 subjects, the same statement count at both.

The endpoint summary page is timed on a database of its own per size: a UCMSC-Exo study
whose subjects (over three dose levels) have day 1, the infusion on day 7 and blood counts
every third day to day 42. Its first view computes every subject's endpoints (printed as
"cold"); the views timed after it read the result kept until the audit chain moves.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matrix_bench  # noqa: E402  (puts the project on sys.path)
from benchdb import temporary_database  # noqa: E402
from matrix_bench import PASSWORD, setup  # noqa: E402

from ecrf.accounts.models import RoleGrant, User  # noqa: E402
from ecrf.accounts.passwords import hash_password  # noqa: E402
from ecrf.capture.models import EventInstance, FormInstance, ItemValue, Subject  # noqa: E402
from ecrf.core.audit.trail import SYSTEM  # noqa: E402
from ecrf.core.base import utcnow  # noqa: E402
from ecrf.core.extensions import db  # noqa: E402
from ecrf.review.models import Lock, Query, SdvMark, Signature  # noqa: E402
from ecrf.studies import store as studies  # noqa: E402
from ecrf.studies.models import Site, StudySite  # noqa: E402

STUDY = "/studies/DEXAML03"
PAGES = (  # name, user, path
    ("data manager board", "dm.bench", STUDY + "/dashboard"),
    ("monitor board", "mon.bench", STUDY + "/dashboard"),
    ("sponsor board", "sv.bench", STUDY + "/dashboard"),
    ("SDV progress", "dm.bench", STUDY + "/sdv"),
    ("SDV progress, to verify", "dm.bench", STUDY + "/sdv?pending=1"),
    ("safety overview", "dm.bench", STUDY + "/safety"),
)
ENDPOINTS = (("endpoint summary", "dm.bench", "/studies/UCMSCEXO/endpoints"),)


def _insert(model, rows: list[dict]) -> None:
    for start in range(0, len(rows), 5000):
        db.session.execute(model.__table__.insert(), rows[start:start + 5000])


def add_review_data(app, rng: random.Random) -> None:
    """Users of the other roles, and the queries, marks, signatures and locks counted."""
    with app.app_context():
        study = studies.get_study(db.session, "DEXAML03")
        dm = db.session.scalar(sa.select(User).where(User.username == "dm.bench"))
        for username, role in (("mon.bench", "monitor"), ("sv.bench", "sponsor_viewer")):
            user = User(username=username, full_name=username, active=True, failed_logins=0,
                        password_hash=hash_password(PASSWORD), must_change_password=False)
            db.session.add(user)
            db.session.flush()
            db.session.add(RoleGrant(user=user, role=role, study=study))
        db.session.commit()
        now = utcnow()
        forms = db.session.execute(sa.select(FormInstance.subject_id, FormInstance.id,
                                             FormInstance.form_oid)
                                   .order_by(FormInstance.id)).all()
        first_form: dict[int, tuple[int, str]] = {}
        for subject_id, form_id, form_oid in forms:
            first_form.setdefault(subject_id, (form_id, form_oid))
        queries, signatures, locks = [], [], []
        for subject_id, (form_id, form_oid) in sorted(first_form.items()):
            if subject_id % 3 == 0:
                created = now - matrix_bench.days(rng.randint(1, 300))
                status = rng.choice(("open", "answered", "closed", "closed"))
                changed = created + (now - created) * rng.random() if status != "open" \
                    else created
                queries.append({"study_id": study.id, "subject_id": subject_id,
                                "form_instance_id": form_id, "form_oid": form_oid,
                                "status": status, "origin": "manual", "created_by": "dm.bench",
                                "created_by_id": dm.id, "created_at": created,
                                "status_changed_at": changed})
            if subject_id % 4 == 0:
                signatures.append({"study_id": study.id, "subject_id": subject_id,
                                   "scope": "casebook", "signer_id": dm.id,
                                   "signer_username": "dm.bench", "signer_name": "Bench DM",
                                   "meaning": "approval", "signed_hash": "0" * 64,
                                   "signed_at": now})
            if subject_id % 50 == 0:
                locks.append({"study_id": study.id, "scope": "subject",
                              "subject_id": subject_id, "locked_by": "dm.bench",
                              "locked_by_id": dm.id, "locked_at": now})
        marks = [{"subject_id": subject_id, "form_instance_id": form_id,
                  "group_oid": group, "row": row, "item_oid": item, "verified_value": value,
                  "verified_by": "mon.bench", "verified_at": now}
                 for n, (subject_id, form_id, group, row, item, value) in enumerate(
                     db.session.execute(sa.select(
                         ItemValue.subject_id, ItemValue.form_instance_id, ItemValue.group_oid,
                         ItemValue.row, ItemValue.item_oid, ItemValue.value)
                         .order_by(ItemValue.id)))
                 if n % 2 == 0]
        for model, rows in ((Query, queries), (Signature, signatures), (Lock, locks),
                            (SdvMark, marks)):
            _insert(model, rows)
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("ANALYZE"))
        subjects = db.session.scalar(sa.select(sa.func.count()).select_from(Subject))
        print(f"  review data: {len(queries)} queries, {len(marks)} SDV marks, "
              f"{len(signatures)} signatures, {len(locks)} locks over {subjects} subjects")


def add_endpoint_study(app, size: int, rng: random.Random) -> None:
    """UCMSC-Exo with ``size`` subjects over its three dose levels, in bulk after the ids
    already used: chemotherapy day 1, the infusion on day 7, counts every third day."""
    with app.app_context():
        loaded = studies.load_folder(db.session, SYSTEM,
                                     matrix_bench.ROOT / "forms" / "ucmscexo")
        study, version = loaded.study, loaded.version
        sites = list(db.session.scalars(sa.select(Site).order_by(Site.id)))
        for site in sites:
            db.session.add(StudySite(study=study, site=site, active=True))
        dm = db.session.scalar(sa.select(User).where(User.username == "dm.bench"))
        db.session.add(RoleGrant(user=dm, role="data_manager", study=study))
        db.session.commit()
        builder = matrix_bench.Builder(studies.definition_for(version), version.id, study.id,
                                       [s.id for s in sites])
        start = {m: db.session.scalar(sa.select(sa.func.max(m.id))) or 0
                 for m in (Subject, EventInstance, FormInstance)}
        today = utcnow().date()
        for n in range(1, size + 1):
            sid = start[Subject] + n
            day1 = today - matrix_bench.days(rng.randint(60, 900))
            builder.subject(sid, f"UX-{n:05d}", builder.sites[n % len(sites)], day1, None,
                            "in_follow_up")
            builder.subjects[-1]["dose_level"] = n % 3 + 1
            builder.occurrence(sid, "CHEMO_D1", 1, day1, "done", {"CHEMO": {"CHEMOD1": day1}})
            builder.occurrence(sid, "INFUSION", 1, day1 + matrix_bench.days(6), "done",
                               {"INF": {"INFDT": day1 + matrix_bench.days(6)}})
            builder.occurrence(sid, "HEMOBS", 1, day1, "done", {"COUNTS": {}})
            form_id = len(builder.forms)
            recovery = rng.randint(14, 40)
            for row, day in enumerate(range(1, 43, 3), start=1):
                anc = "2.0" if day < 5 else ("0.05" if day < recovery else "1.2")
                plt = 150 if day < 5 else (10 if day < recovery - 3 else 60)
                for item, value, number in (
                        ("LBDT", (day1 + matrix_bench.days(day - 1)).isoformat(), None),
                        ("ANC", anc, anc), ("PLT", str(plt), plt), ("HGB", "90", 90),
                        ("PLTTX", "Y" if day < recovery - 3 and day % 2 else "N", None)):
                    builder.values.append({
                        "form_instance_id": form_id, "subject_id": sid, "form_oid": "COUNTS",
                        "group_oid": "CNT_DAY", "row": row, "item_oid": item, "value": value,
                        "value_number": number, "value_date": None if item != "LBDT"
                        else day1 + matrix_bench.days(day - 1), "updated_at": builder.now})
        for row in builder.events:
            row["id"] += start[EventInstance]
        for row in builder.forms:
            row["id"] += start[FormInstance]
            row["event_instance_id"] += start[EventInstance]
        for row in builder.values:
            row["form_instance_id"] += start[FormInstance]
            row.setdefault("value_number", None)
        matrix_bench.insert(builder)
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("ANALYZE"))
        print(f"  endpoint study: {size} subjects, {len(builder.values)} item values")


def measure(app, runs: int, pages=PAGES) -> dict[str, tuple[float, float, float, list[int]]]:
    """{page: (mean ms, p95 ms, mean CPU ms, statement counts)}."""
    with app.app_context():
        engine = db.engine
    counted: list[int] = []

    def count(*args) -> None:
        counted.append(1)

    clients = {}
    results = {}
    for name, username, path in pages:
        client = clients.get(username)
        if client is None:
            client = clients[username] = app.test_client()
            response = client.post("/login", data={"username": username,
                                                   "password": PASSWORD})
            assert response.status_code == 302, response.get_data(as_text=True)[:300]
        for n in range(2):
            t0 = time.perf_counter()
            assert client.get(path).status_code == 200, (name, path)
            if n == 0 and pages is ENDPOINTS:
                print(f"  {name:<26} cold {(time.perf_counter() - t0) * 1000:7.1f} ms")
        walls, cpus, statements = [], [], []
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            for _ in range(runs):
                counted.clear()
                t0, c0 = time.perf_counter(), time.process_time()
                response = client.get(path)
                walls.append((time.perf_counter() - t0) * 1000)
                cpus.append((time.process_time() - c0) * 1000)
                statements.append(len(counted))
                assert response.status_code == 200, (name, response.status_code)
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        walls.sort()
        p95 = walls[min(len(walls) - 1, round(len(walls) * 0.95) - 1)]
        results[name] = (statistics.fmean(walls), p95, statistics.fmean(cpus),
                         sorted(set(statements)))
        print(f"  {name:<26} mean {results[name][0]:7.1f} ms  p95 {p95:7.1f} ms  "
              f"CPU {results[name][2]:7.1f} ms  statements {results[name][3]}  "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return results


def run(url: str, size: int, runs: int) -> dict:
    app = setup(url, size)
    add_review_data(app, random.Random(size))
    try:
        return measure(app, runs)
    finally:
        with app.app_context():
            db.engine.dispose()


def run_endpoints(url: str, size: int, runs: int) -> dict:
    app = setup(url, 0)
    add_endpoint_study(app, size, random.Random(size))
    try:
        found = measure(app, runs, ENDPOINTS)
        client = app.test_client()
        client.post("/login", data={"username": "dm.bench", "password": PASSWORD})
        page = client.get(ENDPOINTS[0][2]).get_data(as_text=True)
        assert "Dose level 3" in page, page[:300]  # every level computed
        return found
    finally:
        with app.app_context():
            db.engine.dispose()


def table(title: str, found: dict[int, dict]) -> None:
    sizes = sorted(found)
    print(f"\n{title}")
    print("page | " + " | ".join(f"{s:,} (mean / p95 / CPU ms)" for s in sizes)
          + " | statements " + "/".join(f"{s // 1000}k" for s in sizes))
    for name, _user, _path in PAGES + ENDPOINTS:
        cells = [f"{found[s][name][0]:.0f} / {found[s][name][1]:.0f} / {found[s][name][2]:.0f}"
                 for s in sizes]
        counts = "/".join(",".join(map(str, found[s][name][3])) for s in sizes)
        print(f"{name} | " + " | ".join(cells) + f" | {counts}")


def main() -> None:
    sizes = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "1000,4000").split(",")]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    backends = ([] if os.environ.get("ECRF_BENCH_SQLITE") == "0" else ["SQLite"]) + (
        ["PostgreSQL"] if os.environ.get("ECRF_BENCH_DATABASE_URL") else [])
    for backend in backends:
        found = {}
        for size in sizes:
            print(f"{backend}, {size} subjects")
            found[size] = {}
            for runner in (run, run_endpoints):
                with tempfile.TemporaryDirectory() as folder:
                    if backend == "SQLite":
                        found[size] |= runner(f"sqlite:///{folder}/bench.db", size, runs)
                    else:
                        with temporary_database(Path(folder)) as url:
                            found[size] |= runner(url, size, runs)
        table(backend, found)
        from results import record  # make bench's table: the largest size against the smallest

        for name, _user, _path in PAGES + ENDPOINTS:
            record(f"{name}, {max(found):,} vs {min(found):,} subjects (mean, {backend})",
                   found[max(found)][name][0], found[min(found)][name][0])


if __name__ == "__main__":
    main()
