"""A load test: 50 people using both demo trials at once, against gunicorn and PostgreSQL.

Run: .venv/bin/python bench/load_test.py [--users 50] [--seconds 60] [--workers 2]
(``make bench`` installs locust with the ``bench`` extra.)

Creates its own database on ECRF_BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres), migrates it and loads the demo (DEXAML-03 at
Toulouse and Paris, UCMSC-Exo at Wuhan), then adds the people of the test: by default 40
site staff (coordinators and investigators, spread over the three sites), each with a
subject of their own whose screening vital signs are entered and carry an open query, 5
monitors and 5 data managers of both trials. The app is served by gunicorn (``--workers``
sync workers, 2 by default) on 127.0.0.1 in a separate process, with CSRF protection and
the production password hashing, as deployed.

locust (its library API, headless: no web UI) runs the simulated users on loopback, each
waiting 1 to 3 s between actions (``--think``). Site staff sign in, open their dashboard
and their subject, load the vital signs form and save it with changed values (a reason for
each change, the form version the page was loaded at), read their query and answer it,
and now and then sign out and in again; monitors read dashboards, subjects, form reviews,
query lists and queries; data managers read dashboards, the subject matrix and query
lists. Every user also requests a bare baseline now and then: a route that reads one row,
in the same server and run. After a ramp-up (users started at ``--spawn-rate`` per second,
every sign-in checked) the statistics are reset and the mix runs ``--seconds``.

Prints, per kind of request, the count, throughput, p50 and p95 (the client's view,
loopback), their ratio to the baseline's, and the number of errors, which must be 0: any
status other than the one expected, or a page without what it must show (a sign-in page
instead of the form, say), is an error, and the first few are printed. Then the load
average. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import html
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from benchdb import temporary_database  # noqa: E402
from results import record  # noqa: E402
from serving import free_port, serve, wait_for  # noqa: E402

os.environ.setdefault("ECRF_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

PASSWORD = "Load-test-password-42"
SITES = [("DEXAML03", "TLS"), ("DEXAML03", "PAR"), ("UCMSCEXO", "WUH")]
TRIALS = ("DEXAML03", "UCMSCEXO")
FORM = "/studies/{study}/subjects/{key}/events/SCREEN/1/forms/VS"
# Two sets of screening vital signs, valid in both trials (inside the soft ranges too, so
# no warning asks for a justification); each save switches to the other set. RESP is
# on the UCMSC-Exo form only.
VALUES = [
    {"HEIGHT": "172", "WEIGHT": "70.5", "TEMP": "36.8", "SYSBP": "122", "DIABP": "78",
     "PULSE": "72", "RESP": "16"},
    {"HEIGHT": "172", "WEIGHT": "71.0", "TEMP": "37.0", "SYSBP": "118", "DIABP": "76",
     "PULSE": "75", "RESP": "15"},
]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SIGNED_IN = 'href="/account"'  # the name menu of every signed-in page
BASE_VERSION = re.compile(r'name="base_version" value="(\d*)"')


@dataclass
class Person:
    username: str
    kind: str  # "site", "monitor" or "data manager"
    study: str = ""
    subject: str = ""
    query: int = 0
    vs_date: str = ""


@dataclass
class Plan:
    people: list[Person]
    subjects: dict[str, list[str]] = field(default_factory=dict)  # per study


# --- the database and the server -------------------------------------------------------------


def make_app(url: str, folder: str):
    from ecrf import create_app

    files = Path(folder)
    return create_app({
        "DATABASE_URL": url, "SECRET_KEY": "load-test",
        "AUDIT_KEY_FILE": str(files / "audit.key"),
        "AUDIT_ANCHOR_FILE": str(files / "audit-anchors.log"),
        "PLOT_CACHE_DIR": str(files / "plots"),
        # As in production: jobs (notifications, exports) run in `ecrf jobs worker`
        # processes, which this test does not start, not in the web workers.
        "JOBS_IN_PROCESS": False,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "pool_size": 4, "max_overflow": 2},
    })


def setup(url: str, folder: str, users: int) -> Plan:
    """Migrate, load the demo, add the test's people, their subjects, forms and queries."""
    from flask_migrate import upgrade

    from ecrf.accounts.models import RoleGrant, User
    from ecrf.accounts.passwords import hash_password
    from ecrf.capture import operations as capture
    from ecrf.capture import subjects
    from ecrf.capture.models import Subject
    from ecrf.capture.schedule import local_today
    from ecrf.capture.structures import Submission
    from ecrf.core.audit.trail import Actor
    from ecrf.core.extensions import db
    from ecrf.demo import load_demo
    from ecrf.review import QueryTarget, raise_query
    from ecrf.studies import Site, Study

    app = make_app(url, folder)
    with app.app_context():
        upgrade()
        actor = Actor(user_id=None, username="load-test")
        load_demo(db.session, actor, app.config)
        db.session.commit()
        study = {s.oid: s for s in db.session.scalars(sa.select(Study))}
        site = {s.code: s for s in db.session.scalars(sa.select(Site))}
        secret = hash_password(PASSWORD)
        readers = max(1, users // 10)
        staff = users - 2 * readers
        people: list[Person] = []

        def person(username: str, name: str, grants: list[tuple[str, str, str | None]]):
            user = User(username=username, full_name=name, password_hash=secret,
                        must_change_password=False, active=True, failed_logins=0)
            db.session.add(user)
            for role, oid, code in grants:
                db.session.add(RoleGrant(user=user, role=role, study=study[oid],
                                         site=site[code] if code else None))

        for n in range(readers):
            person(f"lt.monitor{n:02d}", f"Monitor {n}",
                   [("monitor", oid, None) for oid in TRIALS])
            people.append(Person(f"lt.monitor{n:02d}", "monitor"))
            person(f"lt.dm{n:02d}", f"Data manager {n}",
                   [("data_manager", oid, None) for oid in TRIALS])
            people.append(Person(f"lt.dm{n:02d}", "data manager"))
        for n in range(staff):
            oid, code = SITES[n % len(SITES)]
            role = "coordinator" if n % 2 == 0 else "investigator"
            username = f"lt.site{n:02d}"
            person(username, f"{role.title()} {n}", [(role, oid, code)])
            today = local_today(site[code].timezone)
            day = today - dt.timedelta(days=10)
            key = f"{code}-L{n:03d}"
            subject = subjects.enrol_subject(db.session, actor, study[oid], site[code], key,
                                             day)
            capture.open_event(db.session, actor, subject, "SCREEN", 1, day)
            values = {("VS_MAIN", 1, item): text for item, text in
                      {"VSDT": day.isoformat(), **VALUES[0]}.items()
                      if item != "RESP" or oid == "UCMSCEXO"}
            result = capture.save_form(db.session, actor, subject, "SCREEN", 1, "VS",
                                       Submission(values=values), base_version=None,
                                       complete=False)
            if not result.saved:
                raise RuntimeError(f"{key}: the first vital signs were not saved: {result}")
            query = raise_query(db.session, actor, subject, "Please confirm the weight.",
                                target=QueryTarget(event_oid="SCREEN", repeat=1, form_oid="VS",
                                                   item_oid="WEIGHT"))
            db.session.flush()
            people.append(Person(username, "site", oid, key, query.id, day.isoformat()))
        db.session.commit()
        plan = Plan(people)
        for oid in TRIALS:
            plan.subjects[oid] = list(db.session.scalars(
                sa.select(Subject.subject_key).where(Subject.study_id == study[oid].id)
                .order_by(Subject.subject_key)))
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        db.engine.dispose()
    return plan


def build_app(url: str, folder: str):
    """The app as each gunicorn worker serves it, with the bare baseline route."""
    from ecrf.accounts.permissions import PUBLIC, register
    from ecrf.capture.models import Subject
    from ecrf.core.extensions import db

    app = make_app(url, folder)
    register("bench_baseline", PUBLIC)

    @app.get("/bench/baseline/<key>", endpoint="bench_baseline")
    def baseline(key: str):
        status = db.session.scalar(sa.select(Subject.status).where(Subject.subject_key == key))
        return f"{key}: {status}", 200, {"Content-Type": "text/plain"}

    return app


# --- the simulated users ---------------------------------------------------------------------


def user_classes(plan: Plan, think: tuple[float, float], errors: list[str], started: list[str]):
    """The locust user classes of the mix, each drawing its accounts from ``plan``; each
    user appends its name to ``started`` once signed in for the first time."""
    from locust import FastHttpUser, between, task

    pools = {kind: [p for p in plan.people if p.kind == kind]
             for kind in ("site", "monitor", "data manager")}
    everyone = {kind: list(people) for kind, people in pools.items()}  # pools are drawn from

    class Visitor(FastHttpUser):
        abstract = True
        wait_time = between(*think)
        kind = ""

        def on_start(self):
            self.me: Person = pools[self.kind].pop()
            self.csrf = ""
            self.sign_in()
            started.append(self.me.username)

        # requests: each checked for its status and for what the page must show
        def call(self, method: str, path: str, name: str, *, expect: int = 200,
                 shows: str | None = None, data: dict | None = None) -> object:
            """One request, checked: an error unless it answers ``expect`` and, for a page
            of a signed-in user, shows their name menu and ``shows``."""
            wanted = [shows] if shows else []
            if expect == 200 and name not in ("sign-in page", "baseline"):
                wanted.append(SIGNED_IN)
            with self.client.request(method, path, name=name, data=data, catch_response=True,
                                     allow_redirects=False) as response:
                body = response.text or ""
                problem = None
                if response.status_code != expect:
                    where = response.headers.get("Location", "") if response.headers else ""
                    problem = f"HTTP {response.status_code} {where} {_alert(body)}"
                elif missing := [w for w in wanted if w not in body]:
                    problem = f"the page does not show {missing[0]!r}; it says: {_alert(body)}"
                if problem:
                    message = f"{name} {method} {path} ({self.me.username}): {problem}"
                    errors.append(message)
                    response.failure(message[:300])
                else:
                    response.success()
                found = CSRF.search(body)
                if found:
                    self.csrf = html.unescape(found.group(1))
                return response

        def follow(self, response, name: str, shows: str | None = None):
            target = urlsplit(response.headers.get("Location", "") if response.headers else "")
            if response.status_code == 302 and target.path:
                self.call("GET", target.path + (f"?{target.query}" if target.query else ""),
                          name, shows=shows)

        def sign_in(self):
            self.call("GET", "/login", "sign-in page", shows="csrf_token")
            response = self.call("POST", "/login", "sign-in", expect=302, data={
                "username": self.me.username, "password": PASSWORD,
                "csrf_token": self.csrf})
            if "/login" in (response.headers.get("Location", "") if response.headers else ""):
                errors.append(f"sign-in of {self.me.username} went back to the sign-in page")
            self.follow(response, "home")

        @task(1)
        def baseline(self):
            key = random.choice(plan.subjects[TRIALS[0]])
            self.call("GET", f"/bench/baseline/{key}", "baseline", shows=key)

        def dashboard(self, study: str):
            self.call("GET", f"/studies/{study}/dashboard", "dashboard", shows=">Dashboard <")

        def queries(self, study: str):
            self.call("GET", f"/studies/{study}/queries", "query list",
                      shows="/queries/")

    class SiteStaff(Visitor):
        kind = "site"
        fixed_count = len(pools["site"])

        def on_start(self):
            super().on_start()
            self.turn = 1

        @task(3)
        def board(self):
            self.dashboard(self.me.study)

        @task(3)
        def subject(self):
            self.call("GET", f"/studies/{self.me.study}/subjects/{self.me.subject}",
                      "subject page", shows=self.me.subject)

        @task(5)
        def edit(self):
            path = FORM.format(study=self.me.study, key=self.me.subject)
            page = self.call("GET", path, "form load", shows='name="base_version"')
            found = BASE_VERSION.search(page.text or "")
            values = VALUES[self.turn % 2]
            before = VALUES[(self.turn + 1) % 2]
            data = {"csrf_token": self.csrf, "action": "save",
                    "base_version": found.group(1) if found else "",
                    "VS_MAIN-1-VSDT": self.me.vs_date}
            for item, text in values.items():
                if item == "RESP" and self.me.study != "UCMSCEXO":
                    continue
                data[f"VS_MAIN-1-{item}"] = text
                if text != before[item]:
                    data[f"reason-VS_MAIN-1-{item}"] = "Transcription error corrected"
            response = self.call("POST", path, "form save", expect=302, data=data)
            if response.status_code == 302:
                self.turn += 1
                # Saved, with nothing wrong: no check failed, nothing keeps it from completion.
                self.follow(response, "form load", shows="Saved as in progress.</div>")

        @task(2)
        def answer(self):
            path = f"/studies/{self.me.study}/queries/{self.me.query}"
            self.call("GET", path, "query page", shows="/answer")
            response = self.call("POST", path + "/answer", "query answer", expect=302, data={
                "csrf_token": self.csrf, "text": f"Checked against the source ({self.turn})."})
            self.follow(response, "query page", shows="Your answer was recorded.")

        @task(1)
        def sign_in_again(self):
            response = self.call("POST", "/logout", "sign-out", expect=302,
                                 data={"csrf_token": self.csrf})
            self.follow(response, "sign-in page", shows="csrf_token")
            self.sign_in()

    class Monitor(Visitor):
        kind = "monitor"
        fixed_count = len(pools["monitor"])

        def study(self) -> str:
            return random.choice(TRIALS)

        @task(3)
        def board(self):
            self.dashboard(self.study())

        @task(3)
        def subject(self):
            study = self.study()
            key = random.choice(plan.subjects[study])
            self.call("GET", f"/studies/{study}/subjects/{key}", "subject page", shows=key)

        @task(2)
        def review(self):
            mine = random.choice(everyone["site"])
            self.call("GET", FORM.format(study=mine.study, key=mine.subject) + "/review",
                      "form review", shows=mine.subject)

        @task(2)
        def query_list(self):
            self.queries(self.study())

        @task(2)
        def query(self):
            mine = random.choice(everyone["site"])
            self.call("GET", f"/studies/{mine.study}/queries/{mine.query}", "query page",
                      shows=mine.subject)

    class DataManager(Visitor):
        kind = "data manager"
        fixed_count = len(pools["data manager"])

        @task(3)
        def board(self):
            self.dashboard(random.choice(TRIALS))

        @task(3)
        def matrix(self):
            study = random.choice(TRIALS)
            self.call("GET", f"/studies/{study}/subjects", "subject matrix",
                      shows=plan.subjects[study][0])

        @task(2)
        def query_list(self):
            self.queries(random.choice(TRIALS))

    return [SiteStaff, Monitor, DataManager]


def _alert(page: str) -> str:
    """The text of the page's first message (flash or error), shortened."""
    found = re.search(r'class="alert[^>]*>(.{0,600})', page, re.S)
    text = re.sub(r"<[^>]+>", " ", found.group(1)) if found else ""
    return " ".join(html.unescape(text).split())[:200]


# --- the run ---------------------------------------------------------------------------------


def run_users(port: int, plan: Plan, args) -> None:
    import gevent
    from locust.env import Environment

    errors: list[str] = []
    started: list[str] = []
    env = Environment(user_classes=user_classes(plan, tuple(args.think), errors, started),
                      host=f"http://127.0.0.1:{port}")
    runner = env.create_local_runner()
    total = len(plan.people)
    began = time.perf_counter()
    runner.start(total, spawn_rate=args.spawn_rate)
    # The ramp-up ends when every user has signed in (or after a minute, counted as errors).
    while len(started) < total and time.perf_counter() - began < total / args.spawn_rate + 60:
        gevent.sleep(0.2)
    ramp = time.perf_counter() - began
    if len(started) < total:
        errors.append(f"only {len(started)} of {total} users signed in after {ramp:.0f} s")
    ramp_errors = len(errors)
    signed_in = len(started)
    env.stats.reset_all()
    began = time.perf_counter()
    gevent.sleep(args.seconds)
    runner.quit()
    elapsed = time.perf_counter() - began
    load = os.getloadavg()
    report(env.stats, elapsed, errors, ramp_errors, signed_in, ramp, load, total)


ORDER = ("sign-in page", "sign-in", "home", "dashboard", "subject page", "form load",
         "form save", "query page", "query answer", "sign-out", "form review",
         "subject matrix", "query list", "baseline")
# The kinds of request `make bench`'s table shows (bench/results.py).
TABLED = ("sign-in", "dashboard", "subject page", "form load", "form save", "query answer")


def report(stats, elapsed: float, errors: list[str], ramp_errors: int, signed_in: int,
           ramp: float, load: tuple[float, float, float], users: int) -> None:
    entries = {name: entry for (name, _method), entry in stats.entries.items()
               if entry.num_requests}
    # The same name can come with two methods (none does today); keep the larger.
    base = entries.get("baseline")
    base_p95 = base.get_response_time_percentile(0.95) if base else 0
    print(f"ramp-up: {signed_in} sign-ins in {ramp:.0f} s, {ramp_errors} errors")
    print(f"{'request':<15} {'count':>6} {'req/s':>6} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'p95/base':>8} {'errors':>6}")
    for name in sorted(entries, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        entry = entries[name]
        p50 = entry.get_response_time_percentile(0.5)
        p95 = entry.get_response_time_percentile(0.95)
        ratio = f"{p95 / base_p95:7.1f}x" if base_p95 else "      -"
        print(f"{name:<15} {entry.num_requests:>6} {entry.num_requests / elapsed:>6.1f} "
              f"{p50:>7.0f} {p95:>7.0f} {ratio:>8} {entry.num_failures:>6}")
        if name in TABLED:
            record(f"load test, {users} users: {name} p95", p95, base_p95, "ms")
    total = stats.total
    print(f"{'all':<15} {total.num_requests:>6} {total.num_requests / elapsed:>6.1f} "
          f"{total.get_response_time_percentile(0.5):>7.0f} "
          f"{total.get_response_time_percentile(0.95):>7.0f} {'':>8} {total.num_failures:>6}")
    record(f"load test, {users} users: throughput", round(total.num_requests / elapsed, 1),
           None, "req/s")
    print(f"{len(errors)} errors in the whole run (ramp-up included)"
          + (":" if errors else " (target: 0, met)"))
    for message in errors[:5]:
        print("  " + message)
    record(f"load test, {users} users: errors (target 0)", len(errors), None, "")
    print(f"measured over {elapsed:.1f} s; load average (1, 5, 15 min): "
          + " ".join(f"{v:.2f}" for v in load))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--spawn-rate", type=float, default=10, help="users started per s")
    parser.add_argument("--think", type=float, nargs=2, default=(1.0, 3.0),
                        metavar=("MIN", "MAX"), help="seconds between a user's actions")
    parser.add_argument("--serve", nargs=2, metavar=("URL", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:  # the server process this script starts below
        url, folder = args.serve
        serve(lambda: build_app(url, folder), args.port, args.workers)
        return 0
    if args.users < 5:
        parser.error("--users must be at least 5 (a monitor, a data manager, site staff)")
    with tempfile.TemporaryDirectory(prefix="ecrf-load-") as folder, \
            temporary_database(Path(folder)) as url:
        began = time.perf_counter()
        log = Path(folder) / "setup.log"
        try:  # migrations and the demo's notices go to a log, shown if the setup fails
            with log.open("w") as out, contextlib.redirect_stdout(out), \
                    contextlib.redirect_stderr(out):
                plan = setup(url, folder, args.users)
        except BaseException:
            print(log.read_text()[-4000:], file=sys.stderr)
            raise
        staff = sum(p.kind == "site" for p in plan.people)
        print(f"{len(plan.people)} users ({staff} site staff with a subject each, "
              f"{(len(plan.people) - staff) // 2} monitors, {(len(plan.people) - staff) // 2} "
              f"data managers), demo loaded in {time.perf_counter() - began:.0f} s; "
              f"gunicorn with {args.workers} sync workers, PostgreSQL, {os.cpu_count()} CPUs, "
              f"{args.seconds:.0f} s after the ramp-up, {args.think[0]:g}-{args.think[1]:g} s "
              "between actions")
        port = free_port()
        server = subprocess.Popen([sys.executable, __file__, "--serve", url, folder,
                                   "--port", str(port), "--workers", str(args.workers)],
                                  cwd=ROOT)
        try:
            wait_for(port)
            run_users(port, plan, args)
        finally:
            server.terminate()
            server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
