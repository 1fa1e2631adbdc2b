"""user language: the interface language each user chose, kept on their account

Revision ID: 0005_user_language
Revises: 0004_retries
Create Date: 2026-12-07

"""
import sqlalchemy as sa
from alembic import op

revision = "0005_user_language"
down_revision = "0004_retries"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("user_account") as batch:
        batch.add_column(sa.Column("language", sa.String(length=16), nullable=True))


def downgrade():
    with op.batch_alter_table("user_account") as batch:
        batch.drop_column("language")
