"""Verifying a long audit trail: 1,000,000 keyed, chained rows through ``verify_chain``,
then the stored data reconciled with them (``reconcile``), as ``ecrf audit verify`` does.

Run: .venv/bin/python bench/audit_verify_bench.py [rows]

Creates its own database on ECRF_BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test; a sqlite:/// URL works too) and its own audit
key file, builds the schema, and writes the rows quickly: HMACs computed with the real
``compute_hash`` and keyring in Python, rows loaded with COPY on PostgreSQL (Core
executemany elsewhere). The trail records saves of 9-item forms (every fifth save corrects
the form saved before it) over 900 subjects and their cycles; the item values, forms,
events and subjects it describes are loaded too, so reconciliation compares about 800,000
stored values with their last audit rows. Then times both steps, one after the other and
overlapped as ``ecrf audit verify`` runs them, and prints rows per second (target: under
15 s for one million rows, reconciliation included). The database is dropped at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results import record  # noqa: E402

from ecrf.app import create_app  # noqa: E402
from ecrf.capture.models import EventInstance, FormInstance, ItemValue, Subject  # noqa: E402
from ecrf.core.audit import reconcile, reconcile_alongside  # noqa: E402
from ecrf.core.audit.keys import Keyring, create_keyring  # noqa: E402
from ecrf.core.audit.models import AuditChainHead, AuditEvent  # noqa: E402
from ecrf.core.audit.trail import GENESIS_HASH, _iso, compute_hash, verify_chain  # noqa: E402
from ecrf.core.base import Base  # noqa: E402
from ecrf.core.extensions import db  # noqa: E402
from ecrf.studies.models import Site, Study, StudyVersion  # noqa: E402

SERVER_URL = os.environ.get("ECRF_BENCH_DATABASE_URL",
                            "postgresql://postgres@127.0.0.1:5432/test")
COLUMNS = ("seq", "occurred_at", "category", "action", "user_id", "username", "role",
           "study_oid", "site_code", "subject_key", "path", "old_value", "new_value", "reason",
           "study_version", "details", "ip_address", "prev_hash", "row_hash", "key_id")
ITEMS = ("WEIGHT", "HEIGHT", "VSDT", "SEX", "NEUT", "PLAT", "HGB", "AETERM", "AESTDTC")
SUBJECTS = 900


def form_of(save: int) -> int:
    """The form a save writes: every fifth save corrects the form of the save before."""
    return save - 1 if save % 5 == 4 else save


def where(form: int) -> tuple[int, int]:
    """(subject index, cycle) of a form."""
    return form % SUBJECTS, form // SUBJECTS + 1


def rows(count: int, ring: Keyring, stored: dict):
    """Realistic clinical audit rows, chained and keyed; yields tuples in COLUMNS order and
    fills ``stored`` with the last value of each (form, item)."""
    prev = GENESIS_HASH
    key_id = ring.active
    start = dt.datetime(2025, 1, 1, 8, 0, tzinfo=dt.UTC)
    for seq in range(1, count + 1):
        when = start + dt.timedelta(seconds=seq * 7, microseconds=seq % 999_983)
        save = (seq - 1) // len(ITEMS)
        form = form_of(save)
        index, cycle = where(form)
        subject = f"TLS-{index:03d}"
        item = ITEMS[(seq - 1) % len(ITEMS)]
        changed = form != save
        old = stored.get((form, item))
        new = f"{60 + seq % 40}.{seq % 10}"
        stored[(form, item)] = new
        fields = {
            "seq": seq, "occurred_at": _iso(when), "category": "clinical",
            "action": "item.changed" if changed else "item.entered", "user_id": None,
            "username": "crc.toulouse", "role": "coordinator", "study_oid": "DEXAML03",
            "site_code": "TLS", "subject_key": subject,
            "path": f"DEXAML03/{subject}/CYCLE[{cycle}]/VS/VS_MAIN[1]/{item}",
            "old_value": old if changed else None, "new_value": new,
            "reason": "Transcription error corrected against the source document."
            if changed else None,
            "study_version": "v1 (protocol 1.0)",
            "details": json.dumps({"form_version": 2 if changed else 1}),
            "ip_address": "10.0.0.8",
        }
        digest = compute_hash(prev, fields, ring, key_id)
        yield (seq, when, fields["category"], fields["action"], None,
               fields["username"], fields["role"], fields["study_oid"], fields["site_code"],
               subject, fields["path"], fields["old_value"], fields["new_value"],
               fields["reason"], fields["study_version"], fields["details"],
               fields["ip_address"], prev, digest, key_id)
        prev = digest


def data_tables(stored: dict) -> dict:
    """The rows of the data the trail describes: {table: (columns, rows)}."""
    when = dt.datetime(2025, 1, 1, 8, 0, tzinfo=dt.UTC)
    forms = sorted({form for form, _ in stored})
    subjects = [(i + 1, 1, 1, f"TLS-{i:03d}", "screening", dt.date(2025, 1, 1), 1, when)
                for i in range(SUBJECTS)]
    events = [(f + 1, where(f)[0] + 1, "CYCLE", where(f)[1], "in_progress", when) for f in forms]
    form_rows = [(f + 1, f + 1, where(f)[0] + 1, "VS", 1, "in_progress", 1, when, when)
                 for f in forms]
    values = [(i, form + 1, where(form)[0] + 1, "VS", "VS_MAIN", 1, item, value, when)
              for i, ((form, item), value) in enumerate(sorted(stored.items()), 1)]
    return {
        Subject.__table__: (("id", "study_id", "site_id", "subject_key", "status",
                             "enrolled_on", "study_version_id", "created_at"), subjects),
        EventInstance.__table__: (("id", "subject_id", "event_oid", "repeat", "state",
                                   "created_at"), events),
        FormInstance.__table__: (("id", "event_instance_id", "subject_id", "form_oid",
                                  "study_version_id", "status", "version", "created_at",
                                  "updated_at"), form_rows),
        ItemValue.__table__: (("id", "form_instance_id", "subject_id", "form_oid", "group_oid",
                               "row", "item_oid", "value", "updated_at"), values),
    }


def _copy(engine: sa.Engine, table: sa.Table, columns, tuples) -> object:
    last = None
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in tuples:
                        copy.write_row(row)
                        last = row
            raw.commit()
        finally:
            raw.close()
        return last
    batch: list[dict] = []
    with engine.begin() as conn:
        for row in tuples:
            batch.append(dict(zip(columns, row, strict=True)))
            last = row
            if len(batch) == 20_000:
                conn.execute(table.insert(), batch)
                batch.clear()
        if batch:
            conn.execute(table.insert(), batch)
    return last


def load(engine: sa.Engine, count: int, ring: Keyring) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(Study.__table__).values(id=1, oid="DEXAML03", name="DEXAML03",
                                                       status="active"))
        conn.execute(sa.insert(Site.__table__).values(id=1, code="TLS", name="Toulouse"))
        conn.execute(sa.insert(StudyVersion.__table__).values(
            id=1, study_id=1, number=1, content_hash="0" * 64, content="{}", loaded_by="bench"))
    stored: dict = {}
    last = _copy(engine, AuditEvent.__table__, COLUMNS, rows(count, ring, stored))
    with engine.begin() as conn:
        conn.execute(sa.update(AuditChainHead.__table__).values(last_seq=count, last_hash=last[18]))
    for table, (columns, tuples) in data_tables(stored).items():
        _copy(engine, table, columns, tuples)


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
    keys = tempfile.TemporaryDirectory(prefix="ecrf-bench-keys-")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench",
                      "AUDIT_KEY_FILE": f"{keys.name}/audit.key",
                      "AUDIT_ANCHOR_FILE": f"{keys.name}/audit-anchors.log"})
    try:
        with app.app_context():
            engine = db.engine
            Base.metadata.create_all(engine)
            with engine.begin() as conn:
                conn.execute(sa.insert(AuditChainHead.__table__).values(
                    id=1, last_seq=0, last_hash=GENESIS_HASH))
            ring = create_keyring(Path(keys.name) / "audit.key", since=1)
            began = time.perf_counter()
            load(engine, count, ring)
            if engine.dialect.name == "postgresql":
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    for table in ("audit_event", "item_value", "form_instance",
                                  "event_instance", "subject"):
                        conn.execute(sa.text(f"VACUUM ANALYZE {table}"))
            print(f"wrote {count:,} keyed audit rows and the data they describe in "
                  f"{time.perf_counter() - began:.1f} s ({engine.dialect.name})")
            session = db.session
            began = time.perf_counter()
            result = verify_chain(session)
            chain = time.perf_counter() - began
            print(result)
            began = time.perf_counter()
            found = reconcile(session)
            reconciled = time.perf_counter() - began
            for line in found.lines():
                print(line)
            session.rollback()
            # As `ecrf audit verify` runs them: on PostgreSQL the reconciliation runs on a
            # second connection while this thread walks the chain.
            began = time.perf_counter()
            alongside = reconcile_alongside(engine)
            again = verify_chain(session)
            both = alongside.result() if alongside is not None else reconcile(session)
            seconds = time.perf_counter() - began
            if (str(again), both.lines()) != (str(result), found.lines()):
                print("the overlapped run reported differently:", again, both.lines())
                return 1
            print(f"verify_chain: {chain:.1f} s ({count / chain:,.0f} rows/s); reconcile: "
                  f"{reconciled:.1f} s; one after the other {chain + reconciled:.1f} s; as "
                  f"`ecrf audit verify` runs them (reconciliation alongside) {seconds:.1f} s, "
                  f"{count / seconds:,.0f} rows/s (target < 15 s for 1,000,000 rows: "
                  f"{'met' if seconds * 1_000_000 / count < 15 else 'NOT met'})")
            record(f"audit verify, {count:,} rows, reconciliation alongside (target 15 s per "
                   "1,000,000 rows)", seconds, None, "s")
            session.remove()
            engine.dispose()
        return 0 if result.ok and found.ok else 1
    finally:
        keys.cleanup()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        elif sqlite:
            Path(f"/tmp/{name}.db").unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
