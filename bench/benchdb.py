"""A database of its own for one bench run: a new PostgreSQL database on the server
``ECRF_BENCH_DATABASE_URL`` names (dropped at the end), else an SQLite file in the run's
folder. Imported by the bench scripts that run beside it (``python bench/x.py``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def temporary_database(folder: Path) -> Iterator[str]:
    """The URL of a fresh database for this run."""
    server = os.environ.get("ECRF_BENCH_DATABASE_URL")
    if not server:
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    import sqlalchemy as sa

    base = server.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"ecrf_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
