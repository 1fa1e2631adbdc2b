"""Migration 0006 (subject keys unique whatever their case) upgrades a database whose keys
allow it, names the keys that do not, and downgrades back, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from ecrf import create_app
from ecrf.core.extensions import db
from tests.conftest import BASE_CONFIG

ROWS = [
    "INSERT INTO site (id, code, name, timezone, active, created_at) VALUES "
    "(1, 'S01', 'Site 1', 'UTC', true, CURRENT_TIMESTAMP)",
    "INSERT INTO study (id, oid, name, status, created_at) VALUES "
    "(1, 'TLS', 'Trial', 'active', CURRENT_TIMESTAMP), "
    "(2, 'OTHER', 'Other', 'active', CURRENT_TIMESTAMP)",
    "INSERT INTO study_version (id, study_id, number, content_hash, content, loaded_at, "
    "loaded_by) VALUES (1, 1, 1, 'h1', '{}', CURRENT_TIMESTAMP, 'dm'), "
    "(2, 2, 1, 'h2', '{}', CURRENT_TIMESTAMP, 'dm')",
]


def _subject(conn, id_: int, study: int, key: str) -> None:
    conn.execute(sa.text(
        "INSERT INTO subject (id, study_id, site_id, subject_key, status, enrolled_on, "
        "study_version_id, created_at) VALUES (:id, :study, 1, :key, 'screening', "
        "'2025-01-06', :study, CURRENT_TIMESTAMP)"), {"id": id_, "study": study, "key": key})


def test_0006_upgrades_refuses_case_twins_by_name_and_downgrades(empty_url, capfd):
    app = create_app({**BASE_CONFIG, "DATABASE_URL": empty_url})
    with app.app_context():
        upgrade(revision="0005_user_language")
        with db.engine.begin() as conn:
            for statement in ROWS:
                conn.execute(sa.text(statement))
            _subject(conn, 1, 1, "TLS-001")
            _subject(conn, 2, 1, "tls-001")  # allowed so far: the old constraint is exact
            _subject(conn, 3, 2, "tls-001")  # another study may use the key
        with pytest.raises(SystemExit):  # the `db upgrade` command ends with the message
            upgrade(revision="0006_subject_key_nocase")
        assert "study TLS: 2 keys spelled 'tls-001' in different cases: rename all but one " \
            "of each before upgrading" in capfd.readouterr().err
        with db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE subject SET subject_key = 'TLS-002' WHERE id = 2"))
        upgrade(revision="0006_subject_key_nocase")
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
            _subject(conn, 4, 1, "Tls-002")
        downgrade(revision="0005_user_language")
        with db.engine.begin() as conn:
            _subject(conn, 4, 1, "Tls-002")
            conn.execute(sa.text("DELETE FROM subject WHERE id = 4"))
        upgrade()
        db.session.remove()
        db.engine.dispose()
