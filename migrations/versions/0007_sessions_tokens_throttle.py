"""sessions, tokens, throttle: API tokens suspended by a password change, the failed
sign-in attempts counted per client address (shared by every worker), and what locked an
account (sign-in failures lock sign-in only; signature failures lock signing too)

Revision ID: 0007_sessions_tokens_throttle
Revises: 0006_subject_key_nocase
Create Date: 2026-12-07

"""
import sqlalchemy as sa
from alembic import op

revision = "0007_sessions_tokens_throttle"
down_revision = "0006_subject_key_nocase"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("user_account") as batch:
        batch.add_column(sa.Column("lock_source", sa.String(length=16), nullable=True))
    with op.batch_alter_table("api_token") as batch:
        batch.add_column(sa.Column("suspended_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("suspended_reason", sa.String(length=64), nullable=True))
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )


def downgrade():
    op.drop_table("login_throttle")
    with op.batch_alter_table("api_token") as batch:
        batch.drop_column("suspended_reason")
        batch.drop_column("suspended_at")
    with op.batch_alter_table("user_account") as batch:
        batch.drop_column("lock_source")
