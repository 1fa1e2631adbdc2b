"""The ``review`` blueprint and what its three route modules share."""

from __future__ import annotations

from flask import Blueprint
from flask_babel import get_locale

from ecrf.core import db
from ecrf.review.signatures import signatures_of

bp = Blueprint("review", __name__)

STUDY = "/studies/<study_oid>"



@bp.app_template_global()
def casebook_signatures(subject) -> list:
    """Every signature of a subject, for ``review/_signatures.html`` on the subject page."""
    return signatures_of(db.session, subject)


def language() -> str:
    return str(get_locale() or "en").split("_")[0]
