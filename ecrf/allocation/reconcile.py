"""Allocation's checks for ``ecrf audit verify``: each subject's arm and dose level equal
what the audit trail last recorded (randomization, its undoing, dose level assignment)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf.capture import Subject
from ecrf.core import audit
from ecrf.studies import Study


def _stored(column, suffix: str):
    return (select((Study.oid + "/" + Subject.subject_key + suffix).label("path"),
                   audit.as_text(column).label("value"),
                   Subject.subject_key.label("subject_key"))
            .select_from(Subject).join(Study, Study.id == Subject.study_id))


def arms(session: Session):
    return audit.path_mismatches(session, "arm", _stored(Subject.arm, "/arm"),
                                 ("subject.randomized", "subject.randomization_undone"))


def dose_levels(session: Session):
    return audit.path_mismatches(session, "dose level", _stored(Subject.dose_level, "/dose_level"),
                                 ("subject.dose_level_assigned",))


def register() -> None:
    audit.register_reconciliation("arms", arms)
    audit.register_reconciliation("dose levels", dose_levels)
