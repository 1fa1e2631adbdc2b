"""Migration 0008 (keyed audit chain) adds the key id to a trail holding legacy rows,
which keep verifying; downgrading keeps the append-only triggers; on SQLite and on
PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from ecrf import create_app
from ecrf.core import audit
from ecrf.core.extensions import db
from tests.conftest import BASE_CONFIG, audit_files


def test_0008_keys_a_trail_with_legacy_rows_and_downgrades(empty_url, tmp_path):
    app = create_app({**BASE_CONFIG, "DATABASE_URL": empty_url, **audit_files(tmp_path)})
    with app.app_context():
        upgrade(revision="0005_user_language")
        fields = {"seq": 1, "occurred_at": "2024-01-01T08:00:00.000000Z", "category": "admin",
                  "action": "site.created", "username": "legacy", "new_value": "S01"}
        digest = audit.compute_hash(audit.GENESIS_HASH, fields)
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO audit_event (seq, occurred_at, category, action, username, "
                "new_value, prev_hash, row_hash) VALUES (1, '2024-01-01 08:00:00', 'admin', "
                "'site.created', 'legacy', 'S01', :prev, :hash)"),
                {"prev": audit.GENESIS_HASH, "hash": digest})
            conn.execute(sa.text("UPDATE audit_chain_head SET last_seq = 1, last_hash = :h"),
                         {"h": digest})
        upgrade()
        audit.record(db.session, audit.SYSTEM, "site.created", category="admin",
                     new_value="S02")
        db.session.commit()
        result = audit.verify_chain(db.session)
        assert result.ok and result.unkeyed == 1 and len(result.keys) == 1, str(result)
        db.session.remove()
        downgrade(revision="0008_audit_keyed_chain-1")  # this migration only
        assert "key_id" not in {c["name"] for c in sa.inspect(db.engine).get_columns(
            "audit_event")}
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with db.engine.begin() as conn:
                conn.execute(sa.text("UPDATE audit_event SET new_value = 'x' WHERE seq = 1"))
        upgrade()
        db.session.remove()
        db.engine.dispose()
