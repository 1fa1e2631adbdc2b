"""How query statuses and origins and signature scopes are named on screen, in the
user's language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from ecrf.review.models import QueryOrigin, QueryStatus, SignatureScope

QUERY_STATUS_LABELS = {
    QueryStatus.OPEN: _l("Open"),
    QueryStatus.ANSWERED: _l("Answered"),
    QueryStatus.CLOSED: _l("Closed"),
}
ORIGIN_LABELS = {
    QueryOrigin.MANUAL: _l("Raised by a reviewer"),
    QueryOrigin.AUTOMATIC: _l("Automatic (edit check)"),
}
SIGNATURE_SCOPE_LABELS = {
    SignatureScope.FORM: _l("Form"),
    SignatureScope.EVENT: _l("Event"),
    SignatureScope.CASEBOOK: _l("Casebook"),
}
