"""ODM clinical data export of a study with a million item values: speed and memory.

Run: .venv/bin/python bench/odm_export_bench.py [values]

Builds a database (SQLite in a temporary folder, or a fresh PostgreSQL database on the
server named by ECRF_BENCH_DATABASE_URL), loads the clinical export test study and
inserts ``values`` (default 1,000,000) item values in bulk with Core executemany: 1,000
subjects over two sites, each with a laboratory form whose repeating daily group holds
its share of the values (3 items a row). The export then runs in a child process, which
reports the time, the item values written per second (target 50,000/s) and the growth of
its peak resident memory during the export (``ru_maxrss`` after minus before, target
under 150 MB), and the peak of Python allocations of a second, untimed export under
tracemalloc. The file is
checked to be well-formed and its ItemData counted; the XSD check is skipped, as the CLI's
``--no-validate`` does for huge files.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchdb import temporary_database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SUBJECTS = 1000
FIXTURE = ROOT / "tests" / "fixtures" / "odm_clinical" / "study"


def _config(url: str) -> dict:
    return {"DATABASE_URL": url, "SECRET_KEY": "bench", "JOBS_IN_PROCESS": False,
            "TESTING": True}


def build(url: str, values: int) -> None:
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from ecrf import create_app
    from ecrf.capture.models import EventInstance, FormInstance, GroupRow, ItemValue, Subject
    from ecrf.core.audit.trail import Actor
    from ecrf.core.extensions import db
    from ecrf.studies import store as studies
    from ecrf.studies.models import Site, Study, StudySite

    app = create_app(_config(url))
    with app.app_context():
        upgrade()
        actor = Actor(user_id=None, username="bench")
        study = Study(oid="CLINX", name="Clinical export study", status="active")
        db.session.add(study)
        sites = [Site(code=f"S0{n}", name=f"Site {n}", timezone="UTC") for n in (1, 2)]
        db.session.add_all(sites)
        db.session.flush()
        for site in sites:
            db.session.add(StudySite(study_id=study.id, site_id=site.id, active=True))
        version = studies.load_folder(db.session, actor, FIXTURE).version
        db.session.commit()
        now = dt.datetime.now(dt.UTC)
        conn = db.session.connection()
        rows_per_subject = max(1, values // (SUBJECTS * 3))
        started = time.perf_counter()
        conn.execute(sa.insert(Subject), [
            {"study_id": study.id, "site_id": sites[n % 2].id, "subject_key": f"B{n:05d}",
             "status": "on_study", "enrolled_on": dt.date(2025, 1, 1),
             "study_version_id": version.id, "created_at": now} for n in range(SUBJECTS)])
        subject_ids = [r[0] for r in conn.execute(sa.select(Subject.id).order_by(Subject.id))]
        conn.execute(sa.insert(EventInstance), [
            {"subject_id": s, "event_oid": "CYCLE", "repeat": 1, "state": "in_progress",
             "actual_date": dt.date(2025, 1, 8), "created_at": now} for s in subject_ids])
        events = dict(conn.execute(sa.select(EventInstance.subject_id, EventInstance.id)).all())
        conn.execute(sa.insert(FormInstance), [
            {"event_instance_id": events[s], "subject_id": s, "form_oid": "LAB",
             "study_version_id": version.id, "status": "in_progress", "version": 1,
             "created_at": now, "updated_at": now} for s in subject_ids])
        forms = dict(conn.execute(sa.select(FormInstance.subject_id, FormInstance.id)).all())
        written = 0
        for s in subject_ids:
            fid = forms[s]
            conn.execute(sa.insert(GroupRow), [
                {"form_instance_id": fid, "group_oid": "LAB_DAY", "row": r}
                for r in range(1, rows_per_subject + 1)])
            batch = []
            for r in range(1, rows_per_subject + 1):
                day = dt.date(2025, 1, 1) + dt.timedelta(days=r % 300)
                for item, value, number in (
                        ("LBDT", day.isoformat(), None),
                        ("NEUT", f"{(r % 50) / 10:.2f}", (r % 50) / 10),
                        ("PLT", str(r % 400), r % 400)):
                    batch.append({"form_instance_id": fid, "subject_id": s, "form_oid": "LAB",
                                  "group_oid": "LAB_DAY", "row": r, "item_oid": item,
                                  "value": value, "value_number": number,
                                  "value_date": day if item == "LBDT" else None,
                                  "updated_at": now})
            conn.execute(sa.insert(ItemValue), batch)
            written += len(batch)
        db.session.commit()
        print(f"inserted {written:,} item values for {SUBJECTS} subjects in "
              f"{time.perf_counter() - started:.1f} s")


def export(url: str, target: str, queue) -> None:
    from ecrf import create_app
    from ecrf.core.extensions import db
    from ecrf.outputs.odm.clinical import export_odm_clinical
    from ecrf.outputs.rows import make_scope
    from ecrf.studies import store as studies

    app = create_app(_config(url))
    with app.app_context():
        study = studies.require_study(db.session, "CLINX")
        scope = make_scope(db.session, study)
        # Warm up (imports, schema, definition cache) on one subject before measuring.
        export_odm_clinical(db.session, make_scope(db.session, study, subject="B00000"),
                            os.devnull)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        summary = export_odm_clinical(db.session, scope, target)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # A second, untimed pass under tracemalloc: the peak of Python allocations (the
        # resident-memory peak above may already have been reached at start-up).
        import tracemalloc

        tracemalloc.start()
        export_odm_clinical(db.session, scope, os.devnull)
        _current, traced = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        queue.put((summary.values, summary.subjects, elapsed, (after - before) / 1024,
                   traced / 2**20))


def main(values: int = 1_000_000) -> None:
    server = os.environ.get("ECRF_BENCH_DATABASE_URL")
    folder = Path(tempfile.mkdtemp(prefix="ecrf-odm-bench-"))
    try:
        with temporary_database(folder) as url:
            build(url, values)
            target = folder / "export.xml"
            context = multiprocessing.get_context("spawn")
            queue = context.Queue()
            child = context.Process(target=export, args=(url, str(target), queue))
            child.start()
            written, subjects, elapsed, rss_mb, traced_mb = queue.get()
            child.join()
            from lxml import etree

            count = sum(1 for _ in etree.iterparse(
                str(target), tag="{http://www.cdisc.org/ns/odm/v1.3}ItemData"))
            print(f"database: {'PostgreSQL' if server else 'SQLite'}")
            print(f"exported {written:,} item values of {subjects} subjects in {elapsed:.1f} s: "
                  f"{written / elapsed:,.0f} values/s (target 50,000/s)")
            print(f"file: {target.stat().st_size / 2**20:.0f} MB, {count:,} ItemData, "
                  "well-formed")
            print(f"peak memory growth during the export: {rss_mb:.1f} MB of resident memory "
                  "(ru_maxrss after minus before; target < 150 MB); peak of Python "
                  f"allocations during an export (tracemalloc): {traced_mb:.1f} MB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)



if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
