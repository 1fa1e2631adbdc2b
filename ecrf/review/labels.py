"""How query statuses and origins are named on screen, in the user's language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

QUERY_STATUS_LABELS = {"open": _l("Open"), "answered": _l("Answered"), "closed": _l("Closed")}
ORIGIN_LABELS = {"manual": _l("Raised by a reviewer"), "automatic": _l("Automatic (edit check)")}
