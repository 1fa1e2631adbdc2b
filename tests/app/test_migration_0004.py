"""Migration 0004 (job retries) upgrades a database holding jobs and notifications, and
downgrades back, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from ecrf import create_app
from ecrf.core.extensions import db
from tests.conftest import BASE_CONFIG


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(db.engine).get_columns(table)}


def test_0004_upgrades_and_downgrades(empty_url):
    app = create_app({**BASE_CONFIG, "DATABASE_URL": empty_url})
    with app.app_context():
        upgrade(revision="0003_sysval")
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO job (kind, params, status, progress, created_by, created_at, "
                "cancel_requested) VALUES "
                "('crf_pdf', '{}', 'done', 100, 'dm', CURRENT_TIMESTAMP, false), "
                "('crf_pdf', '{}', 'queued', 0, 'dm', CURRENT_TIMESTAMP, false)"))
        upgrade(revision="0004_retries")
        assert {"attempts", "max_attempts", "run_after"} <= _columns("job")
        assert "job_id" in _columns("notification_log")
        with db.engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT status, attempts, max_attempts, run_after FROM job ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [("done", 1, 1, None), ("queued", 0, 1, None)]
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE job SET max_attempts = 0"))
        downgrade(revision="0003_sysval")
        assert not {"attempts", "max_attempts", "run_after"} & _columns("job")
        assert "job_id" not in _columns("notification_log")
        upgrade()
        assert "job_id" in _columns("notification_log")
        db.session.remove()
        db.engine.dispose()
