"""Time the endpoint engines at a dose-escalation study's scale and beyond.

Run: .venv/bin/python bench/endpoints_bench.py [subjects]

Builds ``subjects`` synthetic UCMSC-Exo-like subjects (default 1,000): daily counts to day
42 with a gap every few days after discharge, transfusions in aplasia, a few episodes, and
times them through:

* ``compute_endpoints`` per subject (the recovery rules on consecutive measurements, with
  the whole-run transfusion look-back);
* ``summarize`` over six dose levels (exact intervals and Kaplan-Meier medians);
* ``survival_time`` and ``kaplan_meier`` for as many overall-survival subjects.

Prints milliseconds per step and per subject. Nothing touches the database: the services
add a fixed number of statements to these figures (see tests/safety).
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import time
from decimal import Decimal

from ecrf.domain.hematology import (
    CountRecord,
    Episode,
    RecoveryParameters,
    Transfusion,
    compute_endpoints,
)
from ecrf.domain.hematology_summary import summarize
from ecrf.domain.statistics import kaplan_meier
from ecrf.domain.survival import survival_time


def subject(rng: random.Random):
    recovery = rng.randint(14, 40)
    counts, transfusions = [], []
    for day in range(1, 43):
        if day > 20 and rng.random() < 0.5:
            continue  # at home: counted every 2-4 days
        anc = Decimal("2.0") if day < 5 else (
            Decimal("0.05") if day < recovery else Decimal("1.2"))
        plt = Decimal(150 if day < 5 else (10 if day < recovery - 3 else 60))
        counts.append(CountRecord(day, anc, plt, Decimal(rng.randint(55, 110)),
                                  Decimal("1.0"), Decimal("37.0")))
        if day < recovery - 3 and day % 3 == 0:
            transfusions.append(Transfusion(day, "platelets"))
    episodes = [Episode(10, 16)] if rng.random() < 0.3 else []
    return counts, transfusions, episodes


def main(n: int) -> None:
    start = time.perf_counter()
    import scipy.stats  # noqa: F401  (loaded once per process, on first use)
    loading = time.perf_counter() - start
    rng = random.Random(13)
    params = RecoveryParameters(transfusion_free_whole_run=True)
    data = [subject(rng) for _ in range(n)]
    start = time.perf_counter()
    results = {f"S{i:05d}": compute_endpoints(c, t, e, [], None, [], params)
               for i, (c, t, e) in enumerate(data)}
    per_subject = time.perf_counter() - start
    groups = {key: f"Dose level {i % 6 + 1}" for i, key in enumerate(results)}
    start = time.perf_counter()
    rows = summarize(results, groups)
    summary = time.perf_counter() - start

    origin = dt.date(2025, 1, 1)
    start = time.perf_counter()
    times = [survival_time(origin, origin + dt.timedelta(days=rng.randint(30, 900))
                           if rng.random() < 0.4 else None,
                           [origin + dt.timedelta(days=rng.randint(10, 1200))])
             for _ in range(n)]
    km = kaplan_meier([t.days for t in times], [t.event for t in times])
    survival = time.perf_counter() - start

    print(f"{n} subjects (SciPy loaded once per process in {loading * 1000:.0f} ms)")
    print(f"  recovery endpoints: {per_subject * 1000:.0f} ms "
          f"({per_subject / n * 1e6:.0f} us per subject)")
    print(f"  summary over 6 levels + All ({len(rows)} rows, exact CIs, KM medians): "
          f"{summary * 1000:.0f} ms")
    print(f"  overall survival times + Kaplan-Meier ({km.events} deaths, median "
          f"{km.median:.0f} days): {survival * 1000:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
