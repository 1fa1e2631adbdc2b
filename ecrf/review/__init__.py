"""Data review: queries with their threads (manual and automatic), item-level SDV that
resets on change, Part 11 electronic signatures bound to a hash of the signed data,
form, subject and site locks, study freeze and lock; and review's reactions to every
save (``handlers``)."""

from __future__ import annotations

from flask import Flask

from ecrf.review.labels import ORIGIN_LABELS, QUERY_STATUS_LABELS, SIGNATURE_SCOPE_LABELS
from ecrf.review.locks import (
    STUDY_TRANSITIONS,
    DataLockedError,
    LockError,
    active_locks,
    change_study_status,
    current_lock,
    lock_form,
    lock_site,
    lock_subject,
    unlock,
)
from ecrf.review.locks import describe as describe_lock
from ecrf.review.models import (
    Lock,
    LockScope,
    Query,
    QueryMessage,
    QueryOrigin,
    QueryStatus,
    SdvMark,
    SdvSubjectCount,
    Signature,
    SignatureScope,
)
from ecrf.review.queries import QueryError, QueryTarget, raise_query, visible_query
from ecrf.review.queries import answer as answer_query
from ecrf.review.queries import assign as assign_query
from ecrf.review.queries import close as close_query
from ecrf.review.queries import comment as comment_query
from ecrf.review.queries import reopen as reopen_query
from ecrf.review.query_lists import QueryRow, count_queries, list_queries, query_counts
from ecrf.review.sdv import FormSdv, SdvError, SdvProgress, SubjectSdv
from ecrf.review.sdv import form_status as sdv_form_status
from ecrf.review.sdv import forms_status as sdv_forms_status
from ecrf.review.sdv import kept_counts as sdv_kept_counts
from ecrf.review.sdv import kept_written as sdv_kept_written
from ecrf.review.sdv import progress as sdv_progress
from ecrf.review.sdv import scope_table as sdv_scope_table
from ecrf.review.sdv import site_progress as sdv_site_progress
from ecrf.review.sdv import subject_counts as sdv_subject_counts
from ecrf.review.sdv import unverify as sdv_unverify
from ecrf.review.sdv import verify_form as sdv_verify_form
from ecrf.review.sdv import verify_items as sdv_verify_items
from ecrf.review.signatures import (
    MEANINGS,
    AwaitingForm,
    SignatureError,
    SignatureRefused,
    SignTarget,
    awaiting_signature,
    sign,
    signatures_of,
)
from ecrf.review.signatures import MEANINGS as SIGNATURE_MEANINGS
from ecrf.review.signatures import to_redo as signatures_to_redo
from ecrf.review.support import ReviewError, ReviewPermissionError

__all__ = [
    "AwaitingForm", "DataLockedError", "FormSdv", "Lock", "LockError", "LockScope",
    "MEANINGS", "ORIGIN_LABELS", "QUERY_STATUS_LABELS", "Query", "QueryError",
    "QueryMessage", "QueryOrigin", "QueryRow", "QueryStatus", "QueryTarget", "ReviewError",
    "ReviewPermissionError", "SIGNATURE_MEANINGS", "SIGNATURE_SCOPE_LABELS",
    "STUDY_TRANSITIONS", "SdvError", "SdvMark", "SdvProgress", "SdvSubjectCount", "SignTarget", "Signature",
    "SignatureError", "SignatureRefused", "SignatureScope", "SubjectSdv", "active_locks",
    "answer_query", "assign_query", "awaiting_signature", "change_study_status", "close_query",
    "comment_query", "count_queries", "current_lock", "describe_lock", "list_queries",
    "lock_form", "lock_site", "lock_subject", "query_counts", "raise_query", "register",
    "reopen_query", "sdv_form_status", "sdv_forms_status", "sdv_kept_counts", "sdv_kept_written", "sdv_scope_table", "sdv_progress",
    "sdv_site_progress", "sdv_subject_counts", "sdv_unverify", "sdv_verify_form", "sdv_verify_items", "sign",
    "signatures_of", "signatures_to_redo", "unlock", "visible_query",
]


def register(app: Flask) -> None:
    """The review pages and commands and review's reactions to data capture (connected
    before safety's); called by the app factory."""
    from ecrf.review import cli, handlers, reconcile
    from ecrf.review.views import bp

    app.register_blueprint(bp)
    handlers.register()
    cli.register(app)
    reconcile.register()
