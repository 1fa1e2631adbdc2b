"""ODM clinical data import of a larger file: time and memory, stored, dry run and refused.

Run: .venv/bin/python bench/odm_import_bench.py [subjects] [days]

Builds a database (SQLite in a temporary folder, or a fresh PostgreSQL database on the
server named by ECRF_BENCH_DATABASE_URL), loads the clinical export test study as CLINX
and inserts ``subjects`` (default 200) subjects in bulk, each with a laboratory form whose
daily group holds ``days`` (default 42) rows of 3 values; exports them as an ODM snapshot
and imports the file into a copy of the study (CLINY) three times, each in a child
process: a dry run, the same file with one refused value in its last subject (all or
nothing: nothing stored), and the real import. Each prints its time, ItemData per second
and the growth of the child's peak resident memory during the import (``ru_maxrss`` after
minus before). Every import goes through data capture (validation, grading, audit), one
form save per subject, inside one transaction with a savepoint per subject and per form.
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
FIXTURE = ROOT / "tests" / "fixtures" / "odm_clinical" / "study"


def _config(url: str) -> dict:
    return {"DATABASE_URL": url, "SECRET_KEY": "bench", "JOBS_IN_PROCESS": False,
            "TESTING": True}


def build(url: str, folder: Path, subjects: int, days: int) -> None:
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from ecrf import create_app
    from ecrf.capture.models import EventInstance, FormInstance, GroupRow, ItemValue, Subject
    from ecrf.core.audit.trail import Actor
    from ecrf.core.extensions import db
    from ecrf.studies import store as studies
    from ecrf.studies.models import Site, Study, StudySite

    copy = folder / "cliny"
    shutil.copytree(FIXTURE, copy)
    text = (copy / "study.yaml").read_text().replace("oid: CLINX", "oid: CLINY")
    (copy / "study.yaml").write_text(text)
    app = create_app(_config(url))
    with app.app_context():
        upgrade()
        actor = Actor(user_id=None, username="bench")
        sites = [Site(code=f"S0{n}", name=f"Site {n}", timezone="UTC") for n in (1, 2)]
        db.session.add_all(sites)
        for oid in ("CLINX", "CLINY"):
            study = Study(oid=oid, name=f"Study {oid}", status="active")
            db.session.add(study)
            db.session.flush()
            for site in sites:
                db.session.add(StudySite(study_id=study.id, site_id=site.id, active=True))
        source = db.session.scalar(sa.select(Study).where(Study.oid == "CLINX"))
        version = studies.load_folder(db.session, actor, FIXTURE).version
        studies.load_folder(db.session, actor, copy)
        db.session.commit()
        now = dt.datetime.now(dt.UTC)
        conn = db.session.connection()
        conn.execute(sa.insert(Subject), [
            {"study_id": source.id, "site_id": sites[n % 2].id, "subject_key": f"B{n:05d}",
             "status": "on_study", "enrolled_on": dt.date(2025, 1, 1),
             "study_version_id": version.id, "created_at": now} for n in range(subjects)])
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
        for s in subject_ids:
            fid = forms[s]
            conn.execute(sa.insert(GroupRow), [
                {"form_instance_id": fid, "group_oid": "LAB_DAY", "row": r}
                for r in range(1, days + 1)])
            batch = []
            for r in range(1, days + 1):
                day = dt.date(2025, 1, 8) + dt.timedelta(days=r - 1)
                neut, plt = (r % 50) / 10 + 0.1, 20 + r * 3
                for item, value, number in (("LBDT", day.isoformat(), None),
                                            ("NEUT", f"{neut:.2f}", neut),
                                            ("PLT", str(plt), plt)):
                    batch.append({"form_instance_id": fid, "subject_id": s, "form_oid": "LAB",
                                  "group_oid": "LAB_DAY", "row": r, "item_oid": item,
                                  "value": value, "value_number": number,
                                  "value_date": day if item == "LBDT" else None,
                                  "updated_at": now})
            conn.execute(sa.insert(ItemValue), batch)
        db.session.commit()


def export(url: str, target: str) -> None:
    from ecrf import create_app
    from ecrf.core.extensions import db
    from ecrf.outputs.odm.clinical import export_odm_clinical
    from ecrf.outputs.rows import make_scope
    from ecrf.studies import store as studies

    app = create_app(_config(url))
    with app.app_context():
        study = studies.require_study(db.session, "CLINX")
        export_odm_clinical(db.session, make_scope(db.session, study), target)
    data = Path(target).read_bytes().replace(b'StudyOID="CLINX"', b'StudyOID="CLINY"')
    Path(target).write_bytes(data)


def run_import(url: str, path: str, dry_run: bool, queue) -> None:
    from ecrf import create_app
    from ecrf.core.audit.trail import Actor
    from ecrf.core.extensions import db
    from ecrf.outputs.odm.importer.clinical import import_odm_clinical
    from ecrf.studies import store as studies

    app = create_app(_config(url))
    with app.app_context():
        study = studies.require_study(db.session, "CLINY")
        actor = Actor(user_id=None, username="bench", role="data_manager")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        report = import_odm_clinical(db.session, actor, study, path, dry_run=dry_run,
                                     today=dt.date(2025, 12, 31))
        db.session.commit()
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        queue.put((report.outcome, len(report.subjects), report.counts.as_dict(),
                   len(report.problems), elapsed, (after - before) / 1024, after / 1024))


def main(subjects: int = 200, days: int = 42) -> None:
    server = os.environ.get("ECRF_BENCH_DATABASE_URL")
    folder = Path(tempfile.mkdtemp(prefix="ecrf-odm-import-bench-"))
    try:
        with temporary_database(folder) as url:
            build(url, folder, subjects, days)
            context = multiprocessing.get_context("spawn")
            good = folder / "clinical.xml"
            child = context.Process(target=export, args=(url, str(good)))
            child.start()
            child.join()
            data = good.read_bytes()
            start = data.rindex(b'ItemOID="I.LAB.PLT" Value="') + len(b'ItemOID="I.LAB.PLT" Value="')
            end = data.index(b'"', start)
            bad = folder / "refused.xml"
            bad.write_bytes(data[:start] + b"99999" + data[end:])  # above the hard range
            print(f"database: {'PostgreSQL' if server else 'SQLite'}; file: "
                  f"{good.stat().st_size / 2**20:.1f} MB, {subjects} subjects x {days} days x 3 "
                  "values")
            for label, path, dry_run in (("dry run", good, True),
                                         ("refused (one bad value, last subject)", bad, False),
                                         ("import", good, False)):
                queue = context.Queue()
                child = context.Process(target=run_import, args=(url, str(path), dry_run, queue))
                child.start()
                outcome, count, items, problems, elapsed, rss_mb, peak_mb = queue.get()
                child.join()
                print(f"{label}: {outcome}, {count} subjects, {items['in_file']:,} ItemData "
                      f"({items['stored']:,} stored, skipped {items['skipped']}), {problems} "
                      f"problem(s) in {elapsed:.1f} s: {items['in_file'] / elapsed:,.0f} "
                      f"ItemData/s; peak resident memory {peak_mb:.0f} MB (growth during the "
                      f"import {rss_mb:.1f} MB)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)



if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
