"""How subject and visit statuses are named on screen, in the user's language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

VISIT_LABELS = {
    "upcoming": _l("Upcoming"),
    "due": _l("Due"),
    "overdue": _l("Overdue"),
    "done": _l("Done"),
    "done_out_of_window": _l("Done out of window"),
    "missed": _l("Missed"),
    "not_applicable": _l("Not applicable"),
}
SUBJECT_LABELS = {
    "screening": _l("Screening"),
    "on_study": _l("On study"),
    "screen_failed": _l("Screen failed"),
    "completed": _l("Completed"),
    "withdrawn": _l("Withdrawn"),
    "lost_to_follow_up": _l("Lost to follow-up"),
    "died": _l("Died"),
}
