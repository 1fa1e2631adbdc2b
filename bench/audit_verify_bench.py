"""Verifying a long audit trail: 1,000,000 hash-chained rows through ``verify_chain``.

Run: .venv/bin/python bench/audit_verify_bench.py [rows]

Creates its own database on ECRF_BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test; a sqlite:/// URL works too), builds the schema,
and writes the rows quickly: hashes computed with the real ``compute_hash`` in Python,
rows loaded with COPY on PostgreSQL (Core executemany elsewhere). Then times
``verify_chain`` over the whole trail and prints rows per second (target: under 30 s for
one million rows). The database is dropped at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecrf.core.audit.models import AuditChainHead, AuditEvent  # noqa: E402
from ecrf.core.audit.trail import GENESIS_HASH, _iso, compute_hash, verify_chain  # noqa: E402
from ecrf.core.base import Base  # noqa: E402

SERVER_URL = os.environ.get("ECRF_BENCH_DATABASE_URL",
                            "postgresql://postgres@127.0.0.1:5432/test")
COLUMNS = ("seq", "occurred_at", "category", "action", "user_id", "username", "role",
           "study_oid", "site_code", "subject_key", "path", "old_value", "new_value", "reason",
           "study_version", "details", "ip_address", "prev_hash", "row_hash")
ITEMS = ("WEIGHT", "HEIGHT", "VSDT", "SEX", "NEUT", "PLAT", "HGB", "AETERM", "AESTDTC")


def rows(count: int):
    """Realistic clinical audit rows, chained; yields tuples in COLUMNS order."""
    prev = GENESIS_HASH
    start = dt.datetime(2025, 1, 1, 8, 0, tzinfo=dt.UTC)
    for seq in range(1, count + 1):
        when = start + dt.timedelta(seconds=seq * 7, microseconds=seq % 999_983)
        subject = f"TLS-{seq // 400 % 900:03d}"
        item = ITEMS[seq % len(ITEMS)]
        changed = seq % 5 == 0
        fields = {
            "seq": seq, "occurred_at": _iso(when), "category": "clinical",
            "action": "item.changed" if changed else "item.entered", "user_id": None,
            "username": "crc.toulouse", "role": "coordinator", "study_oid": "DEXAML03",
            "site_code": "TLS", "subject_key": subject,
            "path": f"DEXAML03/{subject}/SCREEN[1]/VS/VS_MAIN[1]/{item}",
            "old_value": str(60 + seq % 40) if changed else None,
            "new_value": str(61 + seq % 40),
            "reason": "Transcription error corrected against the source document."
            if changed else None,
            "study_version": "v1 (protocol 1.0)",
            "details": json.dumps({"form_version": seq % 7 + 1}), "ip_address": "10.0.0.8",
        }
        digest = compute_hash(prev, fields)
        yield (seq, when.replace(tzinfo=None), fields["category"], fields["action"], None,
               fields["username"], fields["role"], fields["study_oid"], fields["site_code"],
               subject, fields["path"], fields["old_value"], fields["new_value"],
               fields["reason"], fields["study_version"], fields["details"],
               fields["ip_address"], prev, digest)
        prev = digest


def load(engine: sa.Engine, count: int) -> str:
    last = GENESIS_HASH
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                with cursor.copy(f"COPY audit_event ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for row in rows(count):
                        copy.write_row(row)
                        last = row[-1]
            raw.commit()
        finally:
            raw.close()
    else:
        table = AuditEvent.__table__
        batch: list[dict] = []
        with engine.begin() as conn:
            for row in rows(count):
                batch.append(dict(zip(COLUMNS, row, strict=True)))
                last = row[-1]
                if len(batch) == 20_000:
                    conn.execute(table.insert(), batch)
                    batch.clear()
            if batch:
                conn.execute(table.insert(), batch)
    with engine.begin() as conn:
        conn.execute(sa.update(AuditChainHead.__table__).values(last_seq=count, last_hash=last))
    return last


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    sqlite = SERVER_URL.startswith("sqlite")
    name = f"ecrf_bench_{uuid.uuid4().hex[:10]}"
    if sqlite:
        url, admin = f"sqlite:////tmp/{name}.db", None
    else:
        server = SERVER_URL.replace("postgresql://", "postgresql+psycopg://", 1)
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    try:
        Base.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(AuditChainHead.__table__).values(id=1, last_seq=0,
                                                                   last_hash=GENESIS_HASH))
        began = time.perf_counter()
        load(engine, count)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE audit_event"))
        print(f"wrote {count:,} chained audit rows in {time.perf_counter() - began:.1f} s "
              f"({engine.dialect.name})")
        with Session(engine) as session:
            began = time.perf_counter()
            result = verify_chain(session)
            seconds = time.perf_counter() - began
        print(result)
        print(f"verify_chain: {seconds:.1f} s, {count / seconds:,.0f} rows/s "
              f"(target < 30 s for 1,000,000 rows: "
              f"{'met' if seconds * 1_000_000 / count < 30 else 'NOT met'})")
        return 0 if result.ok else 1
    finally:
        engine.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        elif sqlite:
            Path(f"/tmp/{name}.db").unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
