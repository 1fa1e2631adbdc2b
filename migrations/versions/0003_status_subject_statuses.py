"""subject statuses: in follow-up and withdrawn from treatment

Revision ID: 0003_status
Revises: 0002
Create Date: 2026-12-06

"""
from alembic import op

revision = "0003_status"
down_revision = "0002"
branch_labels = None
depends_on = None

OLD = ("screening", "on_study", "screen_failed", "completed", "withdrawn",
       "lost_to_follow_up", "died")
NEW = ("screening", "on_study", "screen_failed", "in_follow_up", "withdrawn_from_treatment",
       "completed", "withdrawn", "lost_to_follow_up", "died")


def _check(values):
    return "status IN ({})".format(", ".join(f"'{v}'" for v in values))


def _replace(values):
    with op.batch_alter_table("subject") as batch:
        batch.drop_constraint(op.f("ck_subject_status"), type_="check")
        batch.create_check_constraint(op.f("ck_subject_status"), _check(values))


def upgrade():
    _replace(NEW)


def downgrade():
    # Subjects in the new statuses go back to the nearest old one first.
    op.execute("UPDATE subject SET status = 'on_study' "
               "WHERE status IN ('in_follow_up', 'withdrawn_from_treatment')")
    _replace(OLD)
