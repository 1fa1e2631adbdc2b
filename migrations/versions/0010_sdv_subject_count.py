"""sdv subject count: each subject's SDV counts kept until its audit trail moves

The boards and the SDV progress sum per-subject SDV counts kept in ``sdv_subject_count``
with the highest audit seq of the subject when they were counted; a subject whose trail
has a later row (every change to its values, marks, rows, versions or imports writes
one) is counted again. An index on audit_event (study_oid, subject_key, seq) gives a
subject's latest row in one probe.

Revision ID: 0010_sdv_subject_count
Revises: 0009_board_indexes
Create Date: 2026-12-07

"""
import sqlalchemy as sa
from alembic import op

revision = "0010_sdv_subject_count"
down_revision = "0009_board_indexes"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "sdv_subject_count",
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("verified", sa.Integer(), nullable=False),
        sa.Column("forms_pending", sa.Integer(), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["subject_id"], ["subject.id"], ondelete="CASCADE",
                                name=op.f("fk_sdv_subject_count_subject_id_subject")),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_sdv_subject_count")),
    )
    # audit_event is created outside batch mode here: a batch copy would drop its
    # append-only triggers on SQLite.
    op.create_index("ix_audit_event_subject_seq", "audit_event",
                    ["study_oid", "subject_key", "seq"])


def downgrade():
    op.drop_index("ix_audit_event_subject_seq", table_name="audit_event")
    op.drop_table("sdv_subject_count")
