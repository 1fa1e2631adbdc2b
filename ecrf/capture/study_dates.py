"""Study-wide dates and where they come from, for the study page.

``study.first.NAME`` in a schedule expression is the earliest value of anchor NAME across
the study's subjects (``schedule_data.study_first_dates``), and the study end may be
computed from it: DEXAML-03 ends follow-up 60 months after the first randomization. One
wrong date on one subject then moves dates of every subject, so the study page says which
subject, form and item each first date comes from, whether that subject has a
randomization in force when the item is a randomization date
(``StudyDefinition.allocation_items``), and the study end the rule gives.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ecrf.capture.models import GroupRow, ItemValue, Subject
from ecrf.capture.schedule_data import ENROLMENT, needs, study_first_dates
from ecrf.crf import StudyDefinition
from ecrf.domain.expressions import ExpressionError, compile_cached, evaluate

log = logging.getLogger(__name__)

RANDOMIZATION = "randomization"


@dataclass(frozen=True)
class FirstSubject:
    subject_id: int
    subject_key: str
    site_id: int
    randomized: bool  # an allocation in force (an arm)


@dataclass(frozen=True)
class FirstDate:
    """The earliest value of one anchor in the study and the subjects that hold it."""

    name: str
    day: dt.date
    form_oid: str | None  # None for the enrolment date
    item_oid: str | None
    subjects: tuple[FirstSubject, ...]
    allocation: bool  # a randomization date: only a randomized subject may hold it

    @property
    def unrandomized(self) -> tuple[FirstSubject, ...]:
        """Holders of a randomization date with no randomization in force: to check."""
        return tuple(s for s in self.subjects if not s.randomized) if self.allocation else ()


@dataclass(frozen=True)
class StudyDates:
    first: tuple[FirstDate, ...]
    study_end: dt.date | None
    study_end_rule: str | None


def study_dates(session: Session, definition: StudyDefinition, study_id: int,
                today: dt.date) -> StudyDates:
    """The study's first dates (those its schedule reads as ``study.first.NAME``, and the
    first randomization whenever an anchor is named so) with their source, and the study
    end its rule gives today."""
    names = set(needs(definition).first)
    if RANDOMIZATION in definition.anchors:
        names.add(RANDOMIZATION)
    found = study_first_dates(session, [definition], [study_id])
    if RANDOMIZATION in names and (study_id, RANDOMIZATION) not in found:
        # Read by no expression (so not loaded above), but shown all the same.
        day = _earliest(session, study_id, *definition.anchors[RANDOMIZATION])
        if day is not None:
            found[(study_id, RANDOMIZATION)] = day
    firsts = []
    for name in sorted(names, key=lambda n: (n != RANDOMIZATION, n)):
        day = found.get((study_id, name))
        if day is None:
            continue
        key = definition.anchors.get(name) if name != ENROLMENT else None
        firsts.append(FirstDate(name, day, key[0] if key else None, key[1] if key else None,
                                _holders(session, study_id, key, day),
                                key is not None and key in definition.allocation_items))
    first = {name: day for (_, name), day in found.items()}
    return StudyDates(tuple(firsts), _study_end(definition, first, today), definition.study_end)


def _live():
    return and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                GroupRow.group_oid == ItemValue.group_oid, GroupRow.row == ItemValue.row)


def _earliest(session: Session, study_id: int, form_oid: str, item_oid: str
              ) -> dt.date | None:
    stmt = (select(ItemValue.value_date, ItemValue.value_datetime, ItemValue.value)
            .join(Subject, Subject.id == ItemValue.subject_id)
            .outerjoin(GroupRow, _live())
            .where(Subject.study_id == study_id, ItemValue.form_oid == form_oid,
                   ItemValue.item_oid == item_oid, ItemValue.value.is_not(None),
                   GroupRow.removed_at.is_(None)))
    days = []
    for day, moment, text in session.execute(stmt):
        if day is None and moment is not None:
            day = moment.astimezone(dt.UTC).date()
        if day is None and text:
            try:
                day = dt.date.fromisoformat(text[:10])
            except ValueError:
                day = None
        if day is not None:
            days.append(day)
    return min(days, default=None)


def _holders(session: Session, study_id: int, key: tuple[str, str] | None, day: dt.date
             ) -> tuple[FirstSubject, ...]:
    columns = (Subject.id, Subject.subject_key, Subject.site_id, Subject.arm)
    if key is None:
        stmt = select(*columns).where(Subject.study_id == study_id, Subject.enrolled_on == day)
    else:
        stmt = (select(*columns).join(ItemValue, ItemValue.subject_id == Subject.id)
                .outerjoin(GroupRow, _live())
                .where(Subject.study_id == study_id, ItemValue.form_oid == key[0],
                       ItemValue.item_oid == key[1], GroupRow.removed_at.is_(None),
                       or_(ItemValue.value_date == day,
                           ItemValue.value.like(f"{day.isoformat()}%"))))
    rows = session.execute(stmt.distinct().order_by(Subject.subject_key)).all()
    return tuple(FirstSubject(sid, subject_key, site_id, bool(arm))
                 for sid, subject_key, site_id, arm in rows)


def _study_end(definition: StudyDefinition, first: dict[str, dt.date], today: dt.date
               ) -> dt.date | None:
    """The study end its rule gives from the parameters and the first dates alone."""
    if not definition.study_end:
        return None
    params = definition.parameter_values()

    def resolve(parts: tuple[str, ...]) -> object:
        if len(parts) == 2 and parts[0] == "param":
            return params.get(parts[1])
        if len(parts) == 3 and parts[:2] == ("study", "first"):
            return first.get(parts[2])
        return None

    try:
        value = evaluate(compile_cached(definition.study_end), resolve, today=today)
    except ExpressionError as exc:
        log.warning("study end %r failed: %s", definition.study_end, exc)
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    return value if isinstance(value, dt.date) else None


__all__ = ["FirstDate", "FirstSubject", "StudyDates", "study_dates"]
