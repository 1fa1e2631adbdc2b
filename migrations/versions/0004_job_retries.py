"""job retries: attempts, max_attempts, run_after; the job delivering a notification

A job may be tried several times with a wait between attempts (SAE notifications retried
with backoff); jobs queued before keep one attempt, as they always had. A notification
names the job that delivers it, so its attempts and next attempt can be shown.

Revision ID: 0004_retries
Revises: 0003_sysval
Create Date: 2026-12-06

"""
import sqlalchemy as sa
from alembic import op

revision = "0004_retries"
down_revision = "0003_sysval"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0",
                                   nullable=False))
        batch.add_column(sa.Column("max_attempts", sa.Integer(), server_default="1",
                                   nullable=False))
        batch.add_column(sa.Column("run_after", sa.DateTime(), nullable=True))
        batch.create_check_constraint(op.f("ck_job_attempts"),
                                      "attempts >= 0 AND max_attempts >= 1")
    # A job that already ran used its one attempt.
    op.execute("UPDATE job SET attempts = 1 WHERE status <> 'queued'")
    with op.batch_alter_table("notification_log") as batch:
        batch.add_column(sa.Column("job_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_notification_log_job_id_job"), "job",
                                 ["job_id"], ["id"])
        batch.create_index(op.f("ix_notification_log_job_id"), ["job_id"], unique=False)


def downgrade():
    with op.batch_alter_table("notification_log") as batch:
        batch.drop_index(op.f("ix_notification_log_job_id"))
        batch.drop_constraint(op.f("fk_notification_log_job_id_job"), type_="foreignkey")
        batch.drop_column("job_id")
    with op.batch_alter_table("job") as batch:
        batch.drop_constraint(op.f("ck_job_attempts"), type_="check")
        batch.drop_column("run_after")
        batch.drop_column("max_attempts")
        batch.drop_column("attempts")
