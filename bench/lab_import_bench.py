"""Importing a laboratory file of 42 days x 5 analytes for one UCMSC-Exo subject (WBC,
ANC, haemoglobin, platelets, the day's highest temperature: 210 results), in each of the
three formats: reading and previewing it (``plan``), then storing it through data capture
(``store``: 42 new rows of the counts form, graded and audited, in one save).

Run: .venv/bin/python bench/lab_import_bench.py [runs]

On a temporary SQLite database: migrates it, loads forms/ucmscexo and, per run and
format, a subject whose chemotherapy day 1 was 45 days ago. Prints the median (min, max)
of each phase and of the whole import; the target is under 2 s for the whole import.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAY1_AGO = 45
ANALYTES = (("6690-2", "WBC", "G/L"), ("751-8", "ANC", "G/L"), ("718-7", "HGB", "g/dL"),
            ("777-3", "PLT", "/uL"), ("TMAX24H", "TMAX", "Cel"))


def value(code: str, d: int) -> str:
    return {"6690-2": f"{2 + d / 10:.2f}", "751-8": f"{1 + d / 20:.2f}",
            "718-7": f"{9 + d / 50:.1f}", "777-3": str((50 + d) * 1000),
            "TMAX24H": f"{36.5 + (d % 3) / 10:.1f}"}[code]


def lab_file(fmt: str, key: str, day1: dt.date) -> bytes:
    days = [(d, day1 + dt.timedelta(days=d - 1)) for d in range(1, 43)]
    if fmt == "csv":
        lines = ["subject;collection_datetime;code;value;unit"]
        lines += [f"{key};{day.isoformat()} 07:00;{code};{value(code, d).replace('.', ',')};"
                  f"{unit}" for d, day in days for code, _, unit in ANALYTES]
        return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode()
    if fmt == "hl7":
        segments = []
        for d, day in days:
            stamp = day.strftime("%Y%m%d") + "0700"
            segments += [f"MSH|^~\\&|LIS|HOSP|ECRF|UCMSCEXO|{stamp}||ORU^R01^ORU_R01|M{d}|P|2.5.1",
                         f"PID|1||{key}^^^HOSP^MR", f"OBR|1|O{d}|L{d}|58410-2^CBC^LN|||{stamp}"]
            segments += [f"OBX|{n}|NM|{code}^{item}^LN||{value(code, d)}|{unit}|||||F"
                         for n, (code, item, unit) in enumerate(ANALYTES, start=1)]
        return ("\r".join(segments) + "\r").encode()
    entries = [{"resource": {"resourceType": "Observation", "status": "final",
                             "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                             "subject": {"identifier": {"value": key}},
                             "effectiveDateTime": f"{day.isoformat()}T07:00:00+08:00",
                             "valueQuantity": {"value": float(value(code, d)), "unit": unit}}}
               for d, day in days for code, _, unit in ANALYTES]
    return json.dumps({"resourceType": "Bundle", "type": "collection",
                       "entry": entries}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="?", type=int, default=3)
    args = parser.parse_args()

    from flask_migrate import upgrade

    from ecrf import capture, create_app, esource
    from ecrf.capture import subjects
    from ecrf.core import db
    from ecrf.core.audit import Actor
    from ecrf.studies import Site, StudySite, load_folder, require_study

    actor = Actor(user_id=None, username="bench", role="data_manager")
    today = dt.date.today()
    day1 = today - dt.timedelta(days=DAY1_AGO)
    times: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="ecrf-bench-labs-") as tmp:
        app = create_app({"DATABASE_URL": f"sqlite:///{tmp}/bench.db", "SECRET_KEY": "bench"})
        with app.app_context():
            upgrade()
            site = Site(code="WUH", name="Bench site", timezone="Asia/Shanghai", active=True)
            db.session.add(site)
            load_folder(db.session, actor, ROOT / "forms" / "ucmscexo")
            study = require_study(db.session, "UCMSCEXO")
            db.session.add(StudySite(study=study, site=site, active=True))
            db.session.commit()
            for run in range(args.runs):
                for fmt in esource.FORMATS:
                    key = f"WUH-{fmt}-{run + 1}"
                    subject = subjects.enrol_subject(db.session, actor, study, site, key,
                                                     day1 - dt.timedelta(days=3))
                    capture.open_event(db.session, actor, subject, "CHEMO_D1", 1, day1)
                    capture.save_form(db.session, actor, subject, "CHEMO_D1", 1, "CHEMO",
                                      capture.Submission(values={
                                          ("CHEMO_COURSE", 1, "CHEMOD1"): day1.isoformat()}),
                                      base_version=None, complete=False)
                    db.session.commit()
                    data = lab_file(fmt, key, day1)
                    began = time.perf_counter()
                    plan = esource.plan_import(db.session, study, f"labs.{fmt}", data, fmt)
                    planned = time.perf_counter()
                    assert not plan.problems and len(plan.lines) == 210, plan.problems[:3]
                    stored = esource.apply_import(db.session, actor, study, plan)
                    db.session.commit()
                    done = time.perf_counter()
                    assert stored.values == 210, stored
                    phases = times.setdefault(fmt, {"plan": [], "store": [], "total": []})
                    phases["plan"].append((planned - began) * 1000)
                    phases["store"].append((done - planned) * 1000)
                    phases["total"].append((done - began) * 1000)
    print("Laboratory import, 42 days x 5 analytes (210 results), one subject, SQLite")
    for fmt, phases in times.items():
        print(f"{fmt:<5}" + "  ".join(
            f"{name} median {statistics.median(values):7.1f} ms (min {min(values):.1f}, "
            f"max {max(values):.1f})" for name, values in phases.items()))
    worst = max(max(p["total"]) for p in times.values())
    print(f"slowest whole import {worst:.1f} ms (target: under 2000 ms)")


if __name__ == "__main__":
    main()
