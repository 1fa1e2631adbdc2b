"""The UCMSC-Exo day-1-to-42 counts form (COUNTS, repeating group CNT_DAY): page size and
server time of opening and saving it, through the Flask test client.

Run: .venv/bin/python bench/bench_counts_grid.py [runs] [--stack]

On a temporary SQLite database: migrates it, loads forms/ucmscexo (with --stack, a copy
whose COUNTS.yaml has its grid lines taken out, i.e. the stacked layout of one block of
fields per day, for comparison), creates a coordinator and, per run, a subject whose
chemotherapy day 1 was 45 days ago. Then, per run:

- open: GET of the form with no data yet (the grid offers the 42 planned days);
- save: POST of 42 days x 5 analytes (WBC, ANC, Hb, platelets, temperature) with their
  dates and both transfusion answers, in one request, timed to the redirect;
- reopen: GET of the form holding 42 saved days (written through the capture operations
  API for the subjects of the first phase, then read back through the page).

Prints the median (and min/max) of each over the runs, the page sizes in bytes, and the
median CPU time of each request with the part of it spent rendering templates (CPU of this
process: the test client runs the application in it). A save that fails (a value out of its
range) shows the form again with the errors in their cells: its re-render is timed too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "Bench-password-42"
GROUP = "CNT_DAY"
FORM = "/studies/UCMSCEXO/subjects/{key}/events/HEMOBS/1/forms/COUNTS"
DAY1_AGO = 45


def day_values(day1: dt.date, d: int) -> dict[str, str]:
    return {"LBDT": (day1 + dt.timedelta(days=d - 1)).isoformat(), "WBC": f"{1 + d / 10:.2f}",
            "ANC": f"{0.5 + d / 20:.2f}", "HGB": str(80 + d), "PLT": str(20 + 3 * d),
            "TMAX": "36.8", "RBCTX": "N", "PLTTX": "N"}


def study_folder(stack: bool, into: Path) -> Path:
    source = ROOT / "forms" / "ucmscexo"
    if not stack:
        return source
    target = into / "ucmscexo"
    shutil.copytree(source, target)
    counts = target / "crfs" / "COUNTS.yaml"
    text = re.sub(r"^    (layout|row_label|planned_days): .*\n", "",
                  counts.read_text(encoding="utf-8"), flags=re.M)
    counts.write_text(text, encoding="utf-8")
    return target


def setup(app, folder: Path, runs: int) -> tuple[list[str], list[str]]:
    """Load the study, a coordinator, ``runs`` fresh subjects and ``runs`` with 42 days."""
    from flask_migrate import upgrade
    from sqlalchemy import select

    from ecrf.accounts.models import RoleGrant, User
    from ecrf.accounts.passwords import hash_password
    from ecrf.capture import operations as capture
    from ecrf.capture import subjects
    from ecrf.core.audit.trail import Actor
    from ecrf.core.extensions import db
    from ecrf.studies import load_folder
    from ecrf.studies.models import Site, Study, StudySite

    actor = Actor(user_id=None, username="bench", role="data_manager")
    today = dt.date.today()
    day1 = today - dt.timedelta(days=DAY1_AGO)
    with app.app_context():
        upgrade()
        site = Site(code="WUH", name="Bench site", timezone="Asia/Shanghai", active=True)
        db.session.add(site)
        load_folder(db.session, actor, folder)
        study = db.session.scalar(select(Study).where(Study.oid == "UCMSCEXO"))
        db.session.add(StudySite(study=study, site=site, active=True))
        user = User(username="crc", full_name="Bench coordinator",
                    password_hash=hash_password(PASSWORD), must_change_password=False,
                    active=True, failed_logins=0)
        db.session.add(user)
        db.session.add(RoleGrant(user=user, role="coordinator", study=study, site=site))
        db.session.flush()
        fresh, filled = [], []
        for n in range(2 * runs):
            key = f"WUH-{n + 1:03d}"
            subject = subjects.enrol_subject(db.session, actor, study, site, key,
                                             day1 - dt.timedelta(days=3))
            capture.open_event(db.session, actor, subject, "CHEMO_D1", 1, day1)
            capture.save_form(db.session, actor, subject, "CHEMO_D1", 1, "CHEMO",
                              capture.Submission(values={("CHEMO_COURSE", 1, "CHEMOD1"):
                                                         day1.isoformat()}),
                              base_version=None, complete=False)
            capture.open_event(db.session, actor, subject, "HEMOBS", 1,
                               today - dt.timedelta(days=2))
            if n < runs:
                fresh.append(key)
                continue
            values = {(GROUP, d, item): value for d in range(1, 43)
                      for item, value in day_values(day1, d).items()}
            result = capture.save_form(db.session, actor, subject, "HEMOBS", 1, "COUNTS",
                                       capture.Submission(values=values,
                                                          rows={GROUP: list(range(1, 43))}),
                                       base_version=None, complete=False)
            assert result.saved, result.errors
            filled.append(key)
        db.session.commit()
    return fresh, filled


RENDER_CPU: list[float] = []  # CPU seconds spent in flask's template rendering


def count_render_cpu() -> None:
    """Add the CPU time of every template rendering to ``RENDER_CPU``."""
    import flask.templating

    render = flask.templating._render

    def counted(*args, **kwargs):
        began = time.process_time()
        try:
            return render(*args, **kwargs)
        finally:
            RENDER_CPU.append(time.process_time() - began)

    flask.templating._render = counted


def timed(call, cpu: dict[str, list[float]] | None = None, name: str = ""
          ) -> tuple[float, object]:
    """Wall milliseconds of ``call()``; with ``cpu``, its CPU and render-CPU milliseconds
    are added to ``cpu[name]`` and ``cpu[name + " render"]``."""
    began, began_cpu, renders = time.perf_counter(), time.process_time(), len(RENDER_CPU)
    response = call()
    if cpu is not None:
        cpu.setdefault(name, []).append((time.process_time() - began_cpu) * 1000)
        cpu.setdefault(f"{name} render", []).append(sum(RENDER_CPU[renders:]) * 1000)
    return (time.perf_counter() - began) * 1000, response


def summary(name: str, times: list[float]) -> str:
    return (f"{name:<28} median {statistics.median(times):7.1f} ms"
            f"  (min {min(times):.1f}, max {max(times):.1f}, n={len(times)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="?", type=int, default=5)
    parser.add_argument("--stack", action="store_true",
                        help="the stacked layout (COUNTS without its grid lines)")
    args = parser.parse_args()

    from ecrf import create_app

    with tempfile.TemporaryDirectory(prefix="ecrf-bench-grid-") as tmp:
        app = create_app({
            "DATABASE_URL": f"sqlite:///{tmp}/bench.db", "SECRET_KEY": "bench",
            "WTF_CSRF_ENABLED": False, "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024,
            "ARGON2_PARALLELISM": 1,
        })
        fresh, filled = setup(app, study_folder(args.stack, Path(tmp)), args.runs)
        count_render_cpu()
        cpu: dict[str, list[float]] = {}
        client = app.test_client()
        response = client.post("/login", data={"username": "crc", "password": PASSWORD})
        assert response.status_code == 302, response.status_code
        day1 = dt.date.today() - dt.timedelta(days=DAY1_AGO)

        opens, saves, reopens = [], [], []
        sizes: dict[str, int] = {}
        for key in fresh:
            ms, response = timed(lambda k=key: client.get(FORM.format(key=k)), cpu, "open")
            assert response.status_code == 200, response.status_code
            opens.append(ms)
            sizes["open"] = len(response.data)
            base = re.search(rb'name="base_version" value="(\d*)"', response.data).group(1)
            data = {"action": "save", "base_version": base.decode(),
                    f"rows-{GROUP}": ",".join(str(d) for d in range(1, 43))}
            for d in range(1, 43):
                for item, value in day_values(day1, d).items():
                    data[f"{GROUP}-{d}-{item}"] = value
            wrong = {**data, f"{GROUP}-3-HGB": "999", f"{GROUP}-5-WBC": "abc"}
            ms, response = timed(lambda k=key, body=wrong: client.post(FORM.format(key=k),
                                                                       data=body),
                                 cpu, "save with errors")
            assert response.status_code == 422, response.status_code
            sizes["errors"] = len(response.data)
            ms, response = timed(lambda k=key, body=data: client.post(FORM.format(key=k),
                                                                      data=body))
            assert response.status_code == 302, response.get_data(as_text=True)[:2000]
            saves.append(ms)
        for key in filled:
            ms, response = timed(lambda k=key: client.get(FORM.format(key=k)), cpu, "reopen")
            assert response.status_code == 200, response.status_code
            reopens.append(ms)
            sizes["reopen"] = len(response.data)
            sizes["inputs"] = len(re.findall(rb"<(?:input|select|textarea)\b", response.data))

    layout = "stacked (--stack)" if args.stack else "grid"
    print(f"COUNTS, 42 days, {layout} layout, SQLite, Flask test client")
    print(summary("open (no data yet)", opens) + f"  {sizes['open']:,} bytes")
    print(summary("save 42 days x 5 analytes", saves) + "  one POST, to the redirect")
    print(summary("reopen (42 days saved)", reopens)
          + f"  {sizes['reopen']:,} bytes, {sizes['inputs']} inputs")
    print(f"CPU per request (median ms): whole request / template rendering; the save with"
          f" errors shows the form again ({sizes['errors']:,} bytes)")
    for name in ("open", "save with errors", "reopen"):
        print(f"  {name:<26} {statistics.median(cpu[name]):7.1f} /"
              f" {statistics.median(cpu[name + ' render']):6.1f}")


if __name__ == "__main__":
    main()
