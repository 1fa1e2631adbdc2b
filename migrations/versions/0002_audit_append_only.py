"""audit trail: append-only triggers and the chain head

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION ecrf_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql
"""


def upgrade():
    bind = op.get_bind()
    op.execute(
        sa.text("INSERT INTO audit_chain_head (id, last_seq, last_hash) VALUES (1, 0, :h)")
        .bindparams(h=GENESIS_HASH)
    )
    if bind.dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_event_no_{operation.lower()} BEFORE {operation} "
                "ON audit_event FOR EACH ROW EXECUTE FUNCTION ecrf_audit_append_only()"
            )
        op.execute(
            "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
            "FOR EACH STATEMENT EXECUTE FUNCTION ecrf_audit_append_only()"
        )
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_event_no_{operation.lower()} BEFORE {operation} "
                "ON audit_event BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END"
            )


def downgrade():
    bind = op.get_bind()
    for operation in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS audit_event_no_{operation}" +
                   (" ON audit_event" if bind.dialect.name == "postgresql" else ""))
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS ecrf_audit_append_only()")
    op.execute("DELETE FROM audit_chain_head")
