"""Figures for `make bench`'s table: when ECRF_BENCH_RESULTS names a file, each bench
appends its headline figures to it, one JSON object a line, beside what it prints.
Imported by the bench scripts that run beside it (``python bench/x.py``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def record(path: str, ours: float, baseline: float | None = None, unit: str = "ms") -> None:
    """One row: ``path`` measured at ``ours`` against ``baseline`` in the same run (None
    when the bench has none), with the machine's 1-minute load average now."""
    target = os.environ.get("ECRF_BENCH_RESULTS")
    if not target:
        return
    row = {"bench": Path(sys.argv[0]).stem, "path": path, "ours": ours,
           "baseline": baseline, "unit": unit, "load": round(os.getloadavg()[0], 2)}
    with open(target, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
