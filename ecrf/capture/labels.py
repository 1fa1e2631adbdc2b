"""How subject, visit, event and form statuses are named on screen, in the user's
language: one label for each value of each vocabulary."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from ecrf.capture.models import FormStatus, SubjectStatus
from ecrf.capture.support import NOT_STARTED
from ecrf.domain.schedule import EventState, EventStatus

VISIT_LABELS = {
    EventStatus.UPCOMING: _l("Upcoming"),
    EventStatus.DUE: _l("Due"),
    EventStatus.OVERDUE: _l("Overdue"),
    EventStatus.DONE: _l("Done"),
    EventStatus.DONE_OUT_OF_WINDOW: _l("Done out of window"),
    EventStatus.MISSED: _l("Missed"),
    EventStatus.NOT_EXPECTED: _l("Not expected"),
    EventStatus.NOT_APPLICABLE: _l("Not applicable"),
}
SUBJECT_LABELS = {
    SubjectStatus.SCREENING: _l("Screening"),
    SubjectStatus.ON_STUDY: _l("On study"),
    SubjectStatus.SCREEN_FAILED: _l("Screen failed"),
    SubjectStatus.IN_FOLLOW_UP: _l("In follow-up"),
    SubjectStatus.WITHDRAWN_FROM_TREATMENT: _l("Withdrawn from treatment"),
    SubjectStatus.COMPLETED: _l("Completed"),
    SubjectStatus.WITHDRAWN: _l("Withdrawn from study"),
    SubjectStatus.LOST_TO_FOLLOW_UP: _l("Lost to follow-up"),
    SubjectStatus.DIED: _l("Died"),
}
FORM_STATUS_LABELS = {
    NOT_STARTED: _l("Not started"),
    FormStatus.IN_PROGRESS: _l("In progress"),
    FormStatus.COMPLETE: _l("Complete"),
}
EVENT_STATE_LABELS = {
    EventState.IN_PROGRESS: _l("Started"),
    EventState.DONE: _l("Done"),
    EventState.NOT_DONE: _l("Not done"),
}
