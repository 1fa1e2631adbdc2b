"""subject keys unique in a study whatever their case, as enrolment has always checked

Revision ID: 0006_subject_key_nocase
Revises: 0005_user_language
Create Date: 2026-12-07

"""
import sqlalchemy as sa
from alembic import op

revision = "0006_subject_key_nocase"
down_revision = "0005_user_language"
branch_labels = None
depends_on = None

INDEX = "uq_subject_study_id_lower_subject_key"


def upgrade():
    # Keys that differ only by case would make the index fail with a bare integrity error:
    # name them, so that they can be renamed (with a reason, through the application) first.
    clashes = op.get_bind().execute(sa.text(
        "SELECT study.oid, lower(subject.subject_key) AS folded, count(*) AS n "
        "FROM subject JOIN study ON study.id = subject.study_id "
        "GROUP BY study.oid, lower(subject.subject_key) HAVING count(*) > 1 "
        "ORDER BY study.oid, lower(subject.subject_key)")).all()
    if clashes:
        listed = "; ".join(f"study {row.oid}: {row.n} keys spelled {row.folded!r} in "
                           f"different cases" for row in clashes)
        raise RuntimeError(f"subject keys must be unique whatever their case, but {listed}: "
                           f"rename all but one of each before upgrading")
    op.create_index(INDEX, "subject", ["study_id", sa.text("lower(subject_key)")], unique=True)


def downgrade():
    op.drop_index(INDEX, table_name="subject")
