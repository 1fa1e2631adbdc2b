"""board indexes: the removed rows of repeating groups, and visits by status

The SDV counts of the boards and the SDV progress leave out the values of removed rows
with one hashed look-up of those rows, read through a partial index holding only them;
the data manager's count of overdue visits and the site staff's lists of due and
overdue visits read the visits of one status through an index on it.

Revision ID: 0009_board_indexes
Revises: 0008_audit_keyed_chain
Create Date: 2026-12-07

"""
import sqlalchemy as sa
from alembic import op

revision = "0009_board_indexes"
down_revision = "0008_audit_keyed_chain"
branch_labels = None
depends_on = None

REMOVED = sa.text("removed_at IS NOT NULL")


def upgrade():
    op.create_index("ix_group_row_removed", "group_row", ["form_instance_id", "group_oid", "row"],
                    postgresql_where=REMOVED, sqlite_where=REMOVED)
    op.create_index("ix_scheduled_visit_status", "scheduled_visit", ["status", "subject_id"])


def downgrade():
    op.drop_index("ix_scheduled_visit_status", table_name="scheduled_visit")
    op.drop_index("ix_group_row_removed", table_name="group_row")
