"""The schema comes from the migrations, and the migrations match the models."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ecrf.core.base import Base
from ecrf.core.extensions import db


# SQLite cannot reflect an index on an expression (the subject key's lower case), so there
# alembic skips it with a warning; PostgreSQL compares it, and the database's refusal of a
# key that differs only by case is tested in tests/studies/test_versions.py on both.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_models_and_migrations_agree(app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_audit_chain_head_is_seeded(app):
    row = db.session.execute(sa.text("SELECT last_seq, last_hash FROM audit_chain_head")).one()
    assert row.last_seq == 0 and row.last_hash == "0" * 64


@pytest.mark.parametrize("statement", [
    "UPDATE audit_event SET reason = 'rewritten'",
    "DELETE FROM audit_event",
])
def test_database_refuses_changes_to_the_audit_trail(app, statement):
    from ecrf.core.audit import trail as audit

    audit.record(db.session, audit.SYSTEM, "test.event", category="security")
    db.session.commit()
    # A row-level trigger only fires on existing rows: make sure there is one.
    assert db.session.execute(sa.text("SELECT count(*) FROM audit_event")).scalar() == 1
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with db.engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert db.session.execute(sa.text("SELECT count(*) FROM audit_event")).scalar() > 0


def test_the_app_never_creates_tables_itself():
    import inspect

    import ecrf

    source = inspect.getsource(ecrf)
    assert "create_all" not in source
