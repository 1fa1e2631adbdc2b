"""`make bench`: run the performance benches one after the other on PostgreSQL and print one
table of their headline figures.

Run: .venv/bin/python bench/run_all.py [--quick] [--only NAME ...]

Each bench runs in its own process, its own output shown as it goes, against temporary
databases on ECRF_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres;
SQLite is left out). Each appends its figures to the file ECRF_BENCH_RESULTS names
(``bench/results.py``), read back at the end into one table: path | ours | baseline in the
same run | ratio | load average (1 minute) when the figure was taken. A bench without a
baseline of its own names its target in the path. ``--quick`` runs every bench at a small
size, to check that they all run (minutes instead of the better part of an hour); its
figures mean little. Benches are noisy on a shared machine: read the load column.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (name, arguments, arguments with --quick)
BENCHES = [
    ("save_bench", ["50", "8", "2"], ["5", "4", "2"]),
    ("dashboard_bench", ["1000,4000", "5"], ["100,200", "1"]),
    ("casebook_jobs_bench", ["--subjects", "8"], ["--subjects", "2"]),
    ("odm_export_bench", ["1000000"], ["20000"]),
    ("odm_export_bench", ["--density", "4000"], ["--density", "100"]),
    ("audit_verify_bench", ["1000000"], ["20000"]),
    ("load_test", ["--users", "50", "--seconds", "60"], ["--users", "10", "--seconds", "10"]),
]


def run(name: str, arguments: list[str], results: Path) -> tuple[int, float]:
    """Run one bench; its exit status and wall time."""
    print(f"== {name} {' '.join(arguments)}  (load average {os.getloadavg()[0]:.2f})",
          flush=True)
    env = {**os.environ, "ECRF_BENCH_RESULTS": str(results), "ECRF_BENCH_SQLITE": "0"}
    env.setdefault("ECRF_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    began = time.perf_counter()
    status = subprocess.call([sys.executable, str(HERE / f"{name}.py"), *arguments], env=env,
                             cwd=HERE.parent)
    return status, time.perf_counter() - began


def figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.1f}"
    return f"{text} {unit}".strip()


def table(rows: list[dict], failed: list[str]) -> None:
    cells = [("path", "ours", "baseline in the same run", "ratio", "load")]
    for row in rows:
        ours, base = row["ours"], row["baseline"]
        ratio = f"{ours / base:.2f}x" if base else "-"
        cells.append((row["path"], figure(ours, row["unit"]), figure(base, row["unit"]),
                      ratio, f"{row['load']:.2f}"))
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    print()
    for n, line in enumerate(cells):
        print(" | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(line, widths, strict=True))))
        if n == 0:
            print("-|-".join("-" * w for w in widths))
    for name in failed:
        print(f"{name}: FAILED (its figures may be missing above)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the runs")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these benches only")
    args = parser.parse_args()
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ecrf-bench-") as folder:
        results = Path(folder) / "results.jsonl"
        results.touch()
        began = time.perf_counter()
        for name, full, quick in BENCHES:
            if args.only and name not in args.only:
                continue
            arguments = quick if args.quick else full
            status, seconds = run(name, arguments, results)
            print(f"== {name}: {'done' if status == 0 else f'FAILED ({status})'} in "
                  f"{seconds:.0f} s", flush=True)
            if status:
                failed.append(f"{name} {' '.join(arguments)}")
        rows = [json.loads(line) for line in results.read_text().splitlines() if line]
    table(rows, failed)
    print(f"{len(rows)} figures in {time.perf_counter() - began:.0f} s; load average now "
          + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
