"""Subject matrix and schedule service at scale: 2,000 DEXAML-03 subjects.

Run: .venv/bin/python bench/matrix_bench.py [subjects] [runs]
     ECRF_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
         .venv/bin/python bench/matrix_bench.py

Builds a fresh database from the migrations (SQLite in a temporary folder, and also a
throw-away PostgreSQL database when ECRF_BENCH_DATABASE_URL names a server), loads
forms/dexaml03, and inserts subjects with realistic recorded data in bulk: consent and
randomisation, intensive (induction, response, up to three consolidations) or azacitidine
(cycles every 28 days until progression) salvage, end of treatment, quarterly then
half-yearly follow-up, and deaths. Rows are written with bulk inserts that bypass the
audit trail: this measures reading, not data entry.

Prints, per database: the time to recompute every subject's schedule (through the service,
database included, and the pure computation alone), then the server time of GET of the
matrix with every subject on one page (mean and 95th percentile over the runs) and the
number of SQL statements per request; the CPU time of the benchmark process is printed
too, as wall times on a shared machine include waiting for other work. Targets: schedule < 5 ms per subject; matrix for
2,000 subjects < 300 ms with a fixed statement count.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecrf import create_app  # noqa: E402
from ecrf.accounts.models import RoleGrant, User  # noqa: E402
from ecrf.accounts.passwords import hash_password  # noqa: E402
from ecrf.capture import schedule  # noqa: E402
from ecrf.capture.models import (  # noqa: E402
    EventInstance,
    FormInstance,
    ItemValue,
    ScheduledVisit,
    Subject,
)
from ecrf.capture.schedule_data import (  # noqa: E402
    SUBJECT_COLUMNS,
    build_data,
    info_from_row,
    load_recorded,
    needs,
    study_first_dates,
)
from ecrf.core.audit.trail import SYSTEM  # noqa: E402
from ecrf.core.base import utcnow  # noqa: E402
from ecrf.core.extensions import db  # noqa: E402
from ecrf.domain.schedule import compute_schedule  # noqa: E402
from ecrf.studies import store as studies  # noqa: E402
from ecrf.studies.models import Site, StudySite  # noqa: E402

PASSWORD = "Bench-password-2026"
CONFIG = {"TESTING": True, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False,
          "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


class Builder:
    """Collects bulk rows for subjects, their events, forms and item values."""

    def __init__(self, definition, version_id: int, study_id: int, sites: list[int]):
        self.definition = definition
        self.version_id = version_id
        self.study_id = study_id
        self.sites = sites
        self.subjects: list[dict] = []
        self.events: list[dict] = []
        self.forms: list[dict] = []
        self.values: list[dict] = []
        self.now = utcnow()

    def subject(self, sid: int, key: str, site: int, enrolled: dt.date, arm: str | None,
                status: str) -> None:
        self.subjects.append({"id": sid, "study_id": self.study_id, "site_id": site,
                              "subject_key": key, "status": status, "enrolled_on": enrolled,
                              "arm": arm, "study_version_id": self.version_id,
                              "created_at": self.now})

    def occurrence(self, sid: int, event_oid: str, repeat: int, when: dt.date, state: str,
                   forms: dict[str, dict[str, object]]) -> None:
        event_id = len(self.events) + 1
        self.events.append({"id": event_id, "subject_id": sid, "event_oid": event_oid,
                            "repeat": repeat, "state": state, "actual_date": when,
                            "created_at": self.now})
        for form_oid, items in forms.items():
            form_id = len(self.forms) + 1
            self.forms.append({"id": form_id, "event_instance_id": event_id, "subject_id": sid,
                               "form_oid": form_oid, "study_version_id": self.version_id,
                               "status": "complete", "version": 1, "created_at": self.now,
                               "updated_at": self.now})
            for item_oid, value in items.items():
                item = self.definition.item(form_oid, item_oid)
                row = {"form_instance_id": form_id, "subject_id": sid, "form_oid": form_oid,
                       "group_oid": item.group, "row": 1, "item_oid": item_oid,
                       "value": value.isoformat() if isinstance(value, dt.date) else value,
                       "value_date": value if isinstance(value, dt.date) else None,
                       "updated_at": self.now}
                self.values.append(row)


def simulate(builder: Builder, count: int, today: dt.date, rng: random.Random) -> None:
    for n in range(1, count + 1):
        site_index = n % len(builder.sites)
        code = ("TLS", "PAR")[site_index]
        enrolled = today - days(rng.randint(0, 5 * 365))
        randomized = enrolled + days(rng.randint(3, 21))
        if randomized > today:
            builder.subject(n, f"{code}-{n:04d}", builder.sites[site_index], enrolled, None,
                            "screening")
            builder.occurrence(n, "SCREEN", 1, enrolled, "in_progress",
                               {"CONSENT": {"CONSDT": enrolled}})
            continue
        arm = rng.choice(("DEX", "CTRL"))
        salvage = rng.choice(("INTENSIVE", "AZA"))
        death = randomized + days(rng.randint(60, 1500)) if rng.random() < 0.3 else None

        def alive(day: dt.date, death: dt.date | None = death) -> bool:
            return day <= today and (death is None or day <= death)

        builder.subject(n, f"{code}-{n:04d}", builder.sites[site_index], enrolled, arm,
                        "died" if death and death <= today else "on_study")
        builder.occurrence(n, "SCREEN", 1, enrolled, "done", {
            "CONSENT": {"CONSDT": enrolled}, "SALVAGE": {"SALVTYPE": salvage},
            "RAND": {"RANDDT": randomized}})
        last = randomized
        treating = False  # azacitidine goes on until progression: no end of treatment yet
        start = randomized + days(rng.randint(1, 6))
        if salvage == "INTENSIVE":
            if alive(start):
                builder.occurrence(n, "INDUCT", 1, start, "done", {"IND": {"CYCSTDT": start}})
                last = start
                assessed = start + days(rng.randint(30, 42))
                response = rng.choice(("CR", "CR", "CRi", "NR", "PR"))
                if alive(assessed):
                    builder.occurrence(n, "RESP_IND", 1, assessed, "done", {
                        "RESP": {"RSDTC": assessed, "RSCAT": response}})
                    last = assessed
                    cycle = start + days(42)
                    for k in range(1, 4 if response.startswith("CR") else 1):
                        cycle += days(rng.randint(0, 10))
                        if not alive(cycle):
                            break
                        builder.occurrence(n, "CONS", k, cycle, "done",
                                           {"CONS": {"CYCSTDT": cycle}})
                        last = cycle
                        cycle += days(35)
        elif alive(start):
            builder.occurrence(n, "AZA_C1", 1, start, "done", {"AZAC1": {"CYCSTDT": start}})
            last = start
            progression_cycle = rng.randint(3, 30)
            cycle = start + days(28)
            for k in range(1, 200):
                if not alive(cycle) or k > progression_cycle:
                    break
                builder.occurrence(n, "AZA_CYC", k, cycle, "done", {"AZA": {"CYCSTDT": cycle}})
                last = cycle
                cycle += days(28 + rng.randint(0, 7))
            treating = True
            if k > progression_cycle and alive(cycle):
                builder.occurrence(n, "UNSCHED", 1, cycle, "done", {
                    "RESP": {"RSDTC": cycle, "PDDT": cycle, "RSCAT": "PD"}})
                last, treating = cycle, False
        eot = last + days(30)
        if not treating and alive(eot) and eot < today - days(40):
            builder.occurrence(n, "EOT_LOG", 1, eot, "in_progress", {"EOT": {"EOTDT": eot}})
            visit = eot
            for k in range(1, 9):
                visit = _add_months(eot, 3 * k) + days(rng.randint(-10, 10))
                if not alive(visit):
                    break
                builder.occurrence(n, "FU_Y12", k, visit, "done", {"FU": {"FUDT": visit}})
        if death is not None and death <= today:
            builder.occurrence(n, "DEATH_LOG", 1, death, "in_progress",
                               {"DEATH": {"DTHDT": death}})


def _add_months(day: dt.date, months: int) -> dt.date:
    from ecrf.domain.dates import add_months

    return add_months(day, months)


def insert(builder: Builder) -> None:
    session = db.session
    for model, rows in ((Subject, builder.subjects), (EventInstance, builder.events),
                        (FormInstance, builder.forms), (ItemValue, builder.values)):
        for start in range(0, len(rows), 5000):
            session.execute(model.__table__.insert(), rows[start:start + 5000])
    session.commit()


def setup(url: str, count: int, seed: int = 3):
    from flask_migrate import upgrade

    app = create_app({**CONFIG, "DATABASE_URL": url})
    with app.app_context():
        upgrade()
        loaded = studies.load_folder(db.session, SYSTEM, ROOT / "forms" / "dexaml03")
        study, version = loaded.study, loaded.version
        sites = []
        for code, name in (("TLS", "CHU de Toulouse"), ("PAR", "Hôpital Saint-Louis")):
            site = Site(code=code, name=name, timezone="Europe/Paris", active=True)
            db.session.add(site)
            db.session.add(StudySite(study=study, site=site, active=True))
            sites.append(site)
        user = User(username="dm.bench", full_name="Bench DM", password_hash=hash_password(PASSWORD),
                    must_change_password=False, active=True, failed_logins=0)
        db.session.add(user)
        db.session.flush()
        db.session.add(RoleGrant(user=user, role="data_manager", study=study))
        db.session.commit()
        definition = studies.definition_for(version)
        builder = Builder(definition, version.id, study.id, [s.id for s in sites])
        today = schedule.local_today("Europe/Paris")
        simulate(builder, count, today, random.Random(seed))
        insert(builder)
        print(f"  data: {len(builder.subjects)} subjects, {len(builder.events)} events, "
              f"{len(builder.forms)} forms, {len(builder.values)} item values")
    return app


def measure(app, runs: int) -> None:
    with app.app_context():
        study = studies.get_study(db.session, "DEXAML03")
        # Schedules through the service: load, compute and store every subject.
        db.session.execute(sa.update(Subject).values(schedule_computed_on=None))
        db.session.commit()
        started = time.perf_counter()
        count = schedule.refresh_stale(db.session, study)
        db.session.commit()
        service_ms = (time.perf_counter() - started) * 1000
        visits = db.session.scalar(sa.select(sa.func.count()).select_from(
            ScheduledVisit.__table__))
        print(f"  refresh_stale: {count} subjects in {service_ms:.0f} ms "
              f"({service_ms / count:.2f} ms per subject, database included; "
              f"{visits} scheduled visits stored)")
        # The pure computation alone, on data loaded once.
        version = studies.latest_version(db.session, study)
        definition = studies.definition_for(version)
        rows = db.session.execute(sa.select(*SUBJECT_COLUMNS).join(
            Site, Site.id == Subject.site_id).where(Subject.study_id == study.id)).all()
        infos = [info_from_row(r) for r in rows]
        recorded = load_recorded(db.session, infos, needs(definition).items)
        first = {name: day for (_, name), day in
                 study_first_dates(db.session, [definition], [study.id]).items()}
        params = definition.parameter_values()
        today = schedule.local_today("Europe/Paris")
        timings = []
        for info in infos:
            t0 = time.perf_counter()
            data = build_data(definition, info, recorded.rows.get(info.id, []),
                              recorded.occurrences.get(info.id, []), first, today, params)
            compute_schedule(definition.schedule, data, today)
            timings.append((time.perf_counter() - t0) * 1000)
        timings.sort()
        print(f"  schedule per subject (pure): mean {statistics.fmean(timings):.3f} ms, "
              f"p95 {timings[int(len(timings) * 0.95)]:.3f} ms, max {timings[-1]:.3f} ms")

    client = app.test_client()
    response = client.post("/login", data={"username": "dm.bench", "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def count_statement(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    url = "/studies/DEXAML03/subjects?per_page=all"
    with app.app_context():
        db.session.execute(sa.update(Subject).values(schedule_computed_on=None))
        db.session.commit()
    sa.event.listen(engine, "before_cursor_execute", count_statement)
    t0 = time.perf_counter()
    cold = client.get(url)
    cold_ms = (time.perf_counter() - t0) * 1000
    cold_statements = len(statements)
    assert cold.status_code == 200, cold.status_code
    durations, cpu, counts = [], [], []
    for _ in range(runs):
        statements.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        response = client.get(url)
        durations.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        counts.append(len(statements))
        assert response.status_code == 200
    sa.event.remove(engine, "before_cursor_execute", count_statement)
    html = response.get_data(as_text=True)
    shown = re.search(r"(\d+) subjects", html)
    durations.sort()
    p95 = durations[min(len(durations) - 1, int(round(len(durations) * 0.95)) - 1)]
    print(f"  matrix, cold (every schedule recomputed first): {cold_ms:.0f} ms, "
          f"{cold_statements} statements")
    print(f"  matrix GET, all {shown.group(1) if shown else '?'} subjects on one page "
          f"({len(html) // 1024} KiB): mean {statistics.fmean(durations):.0f} ms, "
          f"p95 {p95:.0f} ms over {runs} runs (CPU of this process: mean "
          f"{statistics.fmean(cpu):.0f} ms); statements per request {sorted(set(counts))}")


def _postgres_url(server: str):
    server = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", server)
    name = f"ecrf_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    return url, admin, name


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    problems = studies.check_folder(ROOT / "forms" / "dexaml03")
    if problems:
        print("forms/dexaml03 is not valid yet:")
        for problem in problems[:20]:
            print(f"  {problem}")
        sys.exit(1)
    with tempfile.TemporaryDirectory() as folder:
        print(f"SQLite, {count} subjects")
        app = setup(f"sqlite:///{folder}/bench.db", count)
        measure(app, runs)
        with app.app_context():
            db.engine.dispose()
    server = os.environ.get("ECRF_BENCH_DATABASE_URL", "").strip()
    if server:
        url, admin, name = _postgres_url(server)
        try:
            print(f"PostgreSQL, {count} subjects")
            app = setup(url, count)
            measure(app, runs)
            with app.app_context():
                db.engine.dispose()
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
