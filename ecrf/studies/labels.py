"""How a study's status is named on screen, in the user's language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from ecrf.studies.models import StudyStatus

STUDY_STATUS_LABELS = {
    StudyStatus.ACTIVE: _l("Active"),
    StudyStatus.FROZEN: _l("Frozen"),
    StudyStatus.LOCKED: _l("Locked"),
}
