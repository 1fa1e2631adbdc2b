"""subject: the strata a subject was randomized in

The schedule follows the stratum used at randomization (``subject.stratum.NAME``), not a
stratification item corrected afterwards. Subjects already randomized take the strata
of their allocation in force.

Revision ID: 0003_sysval
Revises: 0003_status
Create Date: 2026-12-06

"""
import sqlalchemy as sa
from alembic import op

revision = "0003_sysval"
down_revision = "0003_status"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("subject") as batch:
        batch.add_column(sa.Column("strata", sa.Text(), nullable=True))
    op.execute(
        "UPDATE subject SET strata = (SELECT allocation.strata FROM allocation "
        "WHERE allocation.live_subject_id = subject.id) "
        "WHERE EXISTS (SELECT 1 FROM allocation WHERE allocation.live_subject_id = subject.id)"
    )


def downgrade():
    with op.batch_alter_table("subject") as batch:
        batch.drop_column("strata")
