"""Form saves under concurrency, against a bare baseline, on PostgreSQL and gunicorn.

Run: .venv/bin/python bench/save_bench.py [saves_per_client] [clients] [workers]
(defaults 50, 8 and 2).

Creates its own database on ECRF_BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test), migrates it, loads the capture test study and
serves the app with gunicorn (``workers`` sync workers) on 127.0.0.1 in a separate
process. Each client thread signs in as its own coordinator and saves the 15-item VITALS
form of its own subject repeatedly, alternating two sets of values so that every save
changes every item (with a reason for each change), through the real entry route:
permission gate, WTForms, validation, audit rows, schedule refresh, commit.

The baseline, in the same run and server, is a minimal route that writes the same rows
with plain SQLAlchemy Core in one transaction: 15 item values updated, the form version
bumped, and 16 hash-chained audit rows (HMAC under the same audit key) under the
chain-head lock.

A WSGI middleware in each worker measures every request: wall time, CPU time of the
worker process (``time.process_time``) and SQL statements. The bench prints p50/p95, CPU
and statements per request of each kind, the ratios of save to baseline, and the machine's
load average; targets: save p95 within 2x of the baseline's, <= 15 ms CPU and <= 12
statements per save. The database is dropped at the end.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving import free_port, serve, wait_for  # noqa: E402  (beside this script)

CLIENTS = 8
SERVER_URL = os.environ.get("ECRF_BENCH_DATABASE_URL",
                            "postgresql://postgres@127.0.0.1:5432/test")
PASSWORD = "Bench-password-42"
FORM_PATH = "/studies/CAPTURE/subjects/{key}/events/SCREEN/1/forms/VITALS"
VALUES = [
    {"VSDT": "2025-05-02", "VSTM": "09:30", "SAMPLEDTM": "2025-05-02T10:15",
     "BRTHDT": ("1970", "03", "UK"), "SEX": "M", "RACE": ["WHITE"], "WEIGHT": "72.5",
     "HEIGHT": "180", "SMOKER": "Y", "PACKYRS": "12", "INITIALS": "JMD", "NEUT": "3.50",
     "NOTES": "First reading"},
    {"VSDT": "2025-05-03", "VSTM": "10:45", "SAMPLEDTM": "2025-05-03T11:20",
     "BRTHDT": ("1971", "04", "UK"), "SEX": "M", "RACE": ["ASIAN"], "WEIGHT": "74.0",
     "HEIGHT": "181", "SMOKER": "Y", "PACKYRS": "14", "INITIALS": "JMX", "NEUT": "3.10",
     "NOTES": "Second reading"},
]


def psycopg_url(url: str, database: str | None = None) -> str:
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    if database:
        url = sa.engine.make_url(url).set(database=database).render_as_string(
            hide_password=False)
    return url


# --- the server process ---------------------------------------------------------------------


def make_app(url: str):
    from ecrf import create_app

    # The audit key and anchor log of this bench database, beside it in /tmp (one folder
    # per database), out of the project's instance folder.
    keys = Path("/tmp") / f"{sa.engine.make_url(url).database.rsplit('/', 1)[-1]}-audit"
    return create_app({
        "DATABASE_URL": url, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False,
        "AUDIT_KEY_FILE": str(keys / "audit.key"),
        "AUDIT_ANCHOR_FILE": str(keys / "audit-anchors.log"),
        "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 12, "max_overflow": 4},
    })


def setup(url: str) -> None:
    """Migrate, load the study, and create 8 coordinators and 16 subjects."""
    import datetime as dt

    from flask_migrate import upgrade

    from ecrf.accounts.models import RoleGrant, User
    from ecrf.accounts.passwords import hash_password
    from ecrf.capture import operations as capture
    from ecrf.capture import subjects
    from ecrf.core.audit.trail import Actor
    from ecrf.core.extensions import db
    from ecrf.studies import store as studies
    from ecrf.studies.models import Site, Study, StudySite

    app = make_app(url)
    with app.app_context():
        upgrade()
        actor = Actor(user_id=None, username="bench")
        site = Site(code="S01", name="Bench site", timezone="Europe/Paris", active=True)
        db.session.add(site)
        studies.load_folder(db.session, actor, ROOT / "tests/fixtures/capture_study")
        study = db.session.scalar(sa.select(Study).where(Study.oid == "CAPTURE"))
        db.session.add(StudySite(study=study, site=site, active=True))
        db.session.flush()
        secret = hash_password(PASSWORD)
        today = dt.date(2025, 6, 1)
        for n in range(CLIENTS):
            user = User(username=f"crc{n}", full_name=f"Coordinator {n}", password_hash=secret,
                        must_change_password=False, active=True, failed_logins=0)
            db.session.add(user)
            db.session.add(RoleGrant(user=user, role="coordinator", study=study, site=site))
            for kind in ("save", "base"):
                subject = subjects.enrol_subject(db.session, actor, study, site,
                                                 f"{kind}-{n}", dt.date(2025, 5, 1),
                                                 today=today)
                capture.open_event(db.session, actor, subject, "SCREEN", 1,
                                   dt.date(2025, 5, 2), today=today)
                if kind == "base":
                    capture.save_form(db.session, actor, subject, "SCREEN", 1, "VITALS",
                                      capture.Submission(values=_raw(VALUES[0])),
                                      base_version=None, complete=False, today=today)
        db.session.commit()


def _raw(values: dict) -> dict:
    raw = {}
    for item, value in values.items():
        raw[("VS", 1, item)] = "-".join(p for p in value if p != "UK") \
            if isinstance(value, tuple) else value
    return raw


def build_app(url: str, stats_dir: str):
    """The app as a gunicorn worker serves it, with the baseline route and a WSGI middleware
    that appends each request's wall time, CPU time and statement count to the worker's
    own file under ``stats_dir`` (sync workers: one request at a time per process)."""
    from flask import request
    from sqlalchemy import event

    from ecrf.accounts.permissions import PUBLIC, register
    from ecrf.core.extensions import db

    app = make_app(url)
    statements = [0]
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute",
                     lambda *args: statements.__setitem__(0, statements[0] + 1))
    inner = app.wsgi_app
    out = open(Path(stats_dir) / f"{os.getpid()}.jsonl", "a", buffering=1)  # noqa: SIM115

    def timed(environ, start_response):
        statements[0] = 0
        began, cpu = time.perf_counter(), time.process_time()
        try:
            return list(inner(environ, start_response))
        finally:
            elapsed = (time.perf_counter() - began) * 1000
            used = (time.process_time() - cpu) * 1000
            path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD")
            kind = "save" if method == "POST" and path.endswith("/forms/VITALS") else \
                "baseline" if path.startswith("/bench/baseline") else "other"
            out.write(json.dumps([kind, elapsed, used, statements[0]]) + "\n")

    app.wsgi_app = timed
    register("bench_baseline", PUBLIC)

    @app.post("/bench/baseline/<key>", endpoint="bench_baseline")
    def baseline(key: str):
        turn = int(request.form["turn"])
        _baseline_write(db.session, key, VALUES[turn % 2])
        return "", 204

    return app


def serve_app(url: str, port: int, workers: int, stats_dir: str) -> None:
    """gunicorn with ``workers`` sync workers on 127.0.0.1:``port`` (each builds its app)."""
    serve(lambda: build_app(url, stats_dir), port, workers)


def _baseline_write(session, key: str, values: dict) -> None:
    """The rows a save writes, with Core only: values, form version, chained audit rows."""
    import datetime as dt

    from ecrf.capture.models import FormInstance, ItemValue, Subject
    from ecrf.core.audit.keys import key_file, load_keyring
    from ecrf.core.audit.models import AuditChainHead, AuditEvent
    from ecrf.core.audit.trail import _iso, compute_hash

    conn = session.connection()
    subject_id = conn.scalar(sa.select(Subject.id).where(Subject.subject_key == key))
    form_id = conn.scalar(sa.select(FormInstance.id).where(FormInstance.subject_id == subject_id))
    raw = {k[2]: v if isinstance(v, str) else json.dumps(v) for k, v in _raw(values).items()}
    now = dt.datetime.now(dt.UTC)
    conn.execute(sa.update(ItemValue.__table__).where(
        ItemValue.__table__.c.form_instance_id == form_id,
        ItemValue.__table__.c.item_oid == sa.bindparam("oid")).values(
        value=sa.bindparam("v"), updated_at=now),
        [{"oid": oid, "v": text} for oid, text in raw.items()])
    conn.execute(sa.update(FormInstance.__table__).where(FormInstance.__table__.c.id == form_id)
                 .values(version=FormInstance.__table__.c.version + 1))
    head = conn.execute(sa.select(AuditChainHead.last_seq, AuditChainHead.last_hash)
                        .where(AuditChainHead.id == 1).with_for_update()).one()
    seq, prev = head
    ring = load_keyring(key_file())  # signed like the app's rows (the setup created the key)
    key_id = ring.active if ring else None
    rows = []
    for oid, text in list(raw.items()) + [("status", "in_progress")]:
        seq += 1
        fields = {"seq": seq, "occurred_at": _iso(now), "category": "clinical",
                  "action": "item.changed", "username": "baseline",
                  "path": f"CAPTURE/{key}/SCREEN[1]/VITALS/VS[1]/{oid}", "new_value": text,
                  "reason": "bench", "study_oid": "CAPTURE", "subject_key": key}
        digest = compute_hash(prev, fields, ring, key_id)
        rows.append({**fields, "occurred_at": now, "prev_hash": prev,
                     "row_hash": digest, "key_id": key_id})
        prev = digest
    conn.execute(sa.insert(AuditEvent.__table__), rows)
    conn.execute(sa.update(AuditChainHead.__table__).where(AuditChainHead.__table__.c.id == 1)
                 .values(last_seq=seq, last_hash=prev))
    session.commit()


# --- clients --------------------------------------------------------------------------------


class Client:
    def __init__(self, port: int, number: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.number = number
        self.cookies: dict[str, str] = {}
        self.version: int | None = None  # of the client's form, as its saves move it
        self.turn = 0  # saves alternate between the two value sets across runs

    def request(self, method: str, path: str, form: list | None = None) -> http.client.HTTPResponse:
        body = urllib.parse.urlencode(form or [], doseq=True)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body if form is not None else None, headers=headers)
        response = self.conn.getresponse()
        response.body = response.read()
        for cookie in response.msg.get_all("Set-Cookie") or ():
            name, value = cookie.split(";", 1)[0].split("=", 1)
            # Keep the cookies of the sign-in only (the session and the device cookie): a
            # browser would consume each save's flash message on the page it is redirected
            # to, which this client never loads.
            self.cookies.setdefault(name, value)
        return response

    def login(self) -> None:
        response = self.request("POST", "/login", [("username", f"crc{self.number}"),
                                                   ("password", PASSWORD)])
        assert response.status == 302, response.status

    def saves(self, count: int) -> None:
        path = FORM_PATH.format(key=f"save-{self.number}")
        version = self.version
        for turn in range(self.turn, self.turn + count):
            form = [("action", "save"), ("base_version", "" if version is None else version)]
            for item, value in VALUES[turn % 2].items():
                name = f"VS-1-{item}"
                if isinstance(value, tuple):
                    form += [(f"{name}-y", value[0]), (f"{name}-m", value[1]),
                             (f"{name}-d", value[2])]
                elif isinstance(value, list):
                    form += [(name, v) for v in value]
                else:
                    form.append((name, value))
                if version is not None:
                    form.append((f"reason-{name}", "bench correction"))
            response = self.request("POST", path, form)
            if response.status != 302 or "/login" in (response.getheader("Location") or ""):
                message = response.body.decode("utf-8", "replace")
                found = message.find('role="alert"')
                raise RuntimeError(f"save {turn} of client {self.number}: HTTP "
                                   f"{response.status}: {message[found:found + 600]}")
            version = (version or 0) + 1
            self.version, self.turn = version, turn + 1

    def baselines(self, count: int) -> None:
        for turn in range(count):
            response = self.request("POST", f"/bench/baseline/base-{self.number}",
                                    [("turn", turn)])
            if response.status != 204:
                raise RuntimeError(f"baseline {turn}: HTTP {response.status}")


def run_clients(clients: list[Client], work: str, count: int) -> float:
    errors: list[BaseException] = []

    def go(client: Client) -> None:
        try:
            getattr(client, work)(count)
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(c,)) for c in clients]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - began


class Stats:
    """The request records the workers append, read from where the last read stopped."""

    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.offsets: dict[Path, int] = {}

    def take(self) -> dict[str, list[list[float]]]:
        found: dict[str, list[list[float]]] = {"save": [], "baseline": [], "other": []}
        for path in sorted(self.folder.glob("*.jsonl")):
            with path.open() as records:
                records.seek(self.offsets.get(path, 0))
                for line in records:
                    if line.endswith("\n"):
                        kind, *figures = json.loads(line)
                        found[kind].append(figures)
                self.offsets[path] = records.tell()
        return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def report(name: str, records: list[list[float]], seconds: float) -> tuple[float, float, float]:
    """Print and return (p95 ms, CPU ms per request, statements per request)."""
    wall = [r[0] for r in records]
    cpu = statistics.fmean(r[1] for r in records)
    statements = statistics.fmean(r[2] for r in records)
    p50, p95 = percentile(wall, 0.50), percentile(wall, 0.95)
    print(f"{name:<9} {len(wall):>5} requests  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
          f"mean {statistics.fmean(wall):6.1f} ms  {len(wall) / seconds:6.1f} req/s  "
          f"CPU {cpu:5.1f} ms  {statements:4.1f} statements")
    return p95, cpu, statements


def main() -> int:
    global CLIENTS
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    CLIENTS = int(sys.argv[2]) if len(sys.argv) > 2 else CLIENTS
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    name = f"ecrf_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(psycopg_url(SERVER_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = psycopg_url(SERVER_URL, name)
    stats_dir = Path("/tmp") / f"{name}-stats"
    stats_dir.mkdir()
    server = None
    try:
        setup(url)
        port = free_port()
        server = multiprocessing.Process(target=serve_app, args=(url, port, workers,
                                                             str(stats_dir)), daemon=True)
        server.start()
        wait_for(port)
        print(f"{CLIENTS} clients x {count} saves of a 15-item form, gunicorn with {workers} "
              f"sync workers, PostgreSQL, {os.cpu_count()} CPUs")
        stats = Stats(str(stats_dir))
        clients = [Client(port, n) for n in range(CLIENTS)]
        for client in clients:
            client.login()
        run_clients(clients, "saves", 3)  # warm-up: imports, caches, pools
        run_clients(clients, "baselines", 3)
        stats.take()
        seconds = run_clients(clients, "saves", count)
        save = report("save", stats.take()["save"], seconds)
        seconds = run_clients(clients, "baselines", count)
        base = report("baseline", stats.take()["baseline"], seconds)
        p95_ratio, cpu_ratio = save[0] / base[0], save[1] / base[1]
        print(f"save / baseline: p95 {p95_ratio:.2f}x, CPU {cpu_ratio:.2f}x, statements "
              f"{save[2]:.1f} against {base[2]:.1f}")
        print(f"targets: p95 within 2x of the baseline: {'met' if p95_ratio <= 2 else 'NOT met'}"
              f"; CPU <= 15 ms: {'met' if save[1] <= 15 else 'NOT met'}; <= 12 statements: "
              f"{'met' if save[2] <= 12 else 'NOT met'}")
        print("load average (1, 5, 15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
        from results import record  # make bench's table

        record(f"form save p95, {CLIENTS} clients, {workers} workers", save[0], base[0])
        record("form save CPU per save", save[1], base[1])
    finally:
        if server is not None:
            server.terminate()
            server.join(30)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(f"/tmp/{name}-audit", ignore_errors=True)
        shutil.rmtree(stats_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
