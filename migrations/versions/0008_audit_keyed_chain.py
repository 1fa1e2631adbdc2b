"""audit keyed chain: the id of the key whose HMAC each audit row's hash is

Rows written before the instance had an audit key keep no key id (plain SHA-256); every
row after the first keyed one must carry one.

Revision ID: 0008_audit_keyed_chain
Revises: 0007_sessions_tokens_throttle
Create Date: 2026-12-07

"""
import sqlalchemy as sa
from alembic import op

revision = "0008_audit_keyed_chain"
down_revision = "0007_sessions_tokens_throttle"
branch_labels = None
depends_on = None


def upgrade():
    # A new nullable column: on SQLite a plain ADD COLUMN, so the append-only triggers of
    # audit_event stay as they are (a batch copy of the table would drop them).
    op.add_column("audit_event", sa.Column("key_id", sa.String(length=32), nullable=True))


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
        with op.batch_alter_table("audit_event") as batch:
            batch.drop_column("key_id")
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_event_no_{operation.lower()} BEFORE {operation} "
                "ON audit_event BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END"
            )
    else:
        op.drop_column("audit_event", "key_id")
