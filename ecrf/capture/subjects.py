"""Subjects: enrolment, site-scoped lookups, the subject matrix and study-level counts.

Site scoping is applied in the queries themselves (``access.site_ids_for``), so a list, a
count or a lookup never returns a subject the user may not see.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import String, case, exists, func, select, type_coerce
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from ecrf import accounts
from ecrf.accounts import User
from ecrf.capture.models import SUBJECT_STATUSES, ScheduledVisit, Subject
from ecrf.capture.schedule import local_today, refresh_subject
from ecrf.capture.status import recompute_status
from ecrf.core import audit
from ecrf.core.audit import Actor
from ecrf.crf import StudyDefinition
from ecrf.domain.schedule import EventKind
from ecrf.studies import Site, Study, StudySite, latest_version

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
VISIT_STATUSES = ("overdue", "due", "missed", "upcoming", "done_out_of_window", "done",
                  "not_expected", "not_applicable")
# A repeating event's cell shows the first of these found among its occurrences.
_WORST_FIRST = {status: rank for rank, status in enumerate(VISIT_STATUSES)}
_DONE = ("done", "done_out_of_window")
# Occurrences the subject was never expected to have: left out of a cell's count.
_UNEXPECTED = ("not_expected", "not_applicable")


class EnrolmentError(ValueError):
    """An enrolment that cannot be made; ``field`` names the entry at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _user_of(session: Session, actor: Actor) -> User | None:
    return session.get(User, actor.user_id) if actor.user_id is not None else None


def enrol_sites(session: Session, user: User, study: Study) -> list[Site]:
    """Active sites of the study where ``user`` may enrol subjects."""
    allowed = accounts.site_ids_for(user, "subjects.enrol", study)
    stmt = (select(Site).join(StudySite, StudySite.site_id == Site.id)
            .where(StudySite.study_id == study.id, StudySite.active, Site.active)
            .order_by(Site.code))
    return list(session.scalars(accounts.scope_to_sites(stmt, Site.id, allowed)))


def key_taken(session: Session, study: Study, key: str) -> str | None:
    """The key already enrolled in ``study`` that ``key`` repeats whatever its case, if any."""
    return session.scalar(select(Subject.subject_key).where(
        Subject.study_id == study.id, func.lower(Subject.subject_key) == key.lower()))


def enrol_subject(session: Session, actor: Actor, study: Study, site: Site, subject_key: str,
                  enrolled_on: dt.date, *, today: dt.date | None = None) -> Subject:
    """Enrol a subject at ``site`` on the study's latest version and store its schedule."""
    key = (subject_key or "").strip()
    if not key:
        raise EnrolmentError("a screening number is required", "subject_key")
    if key.lower() == "new":
        raise EnrolmentError("'new' is reserved and cannot be a screening number",
                             "subject_key")
    if not KEY_RE.match(key):
        raise EnrolmentError(
            f"screening number {key!r} is not valid: up to 64 letters, digits, '.', '_' or "
            "'-', starting with a letter or a digit", "subject_key")
    if study.status != "active":
        raise EnrolmentError(f"{study.name} is {study.status}: no subject can be enrolled")
    link = session.scalar(select(StudySite).where(StudySite.study_id == study.id,
                                                  StudySite.site_id == site.id))
    if link is None or not link.active or not site.active:
        raise EnrolmentError(f"site {site.code} does not take part in {study.name}", "site")
    user = _user_of(session, actor)
    if user is not None:
        allowed = accounts.site_ids_for(user, "subjects.enrol", study)
        if allowed is not None and site.id not in allowed:
            raise EnrolmentError(
                f"you may not enrol subjects at site {site.code} in {study.name}", "site")
    version = latest_version(session, study)
    if version is None:
        raise EnrolmentError(f"{study.name} has no study definition loaded yet "
                             "(`ecrf study load PATH`)")
    if not isinstance(enrolled_on, dt.date):
        raise EnrolmentError("an enrolment date is required", "enrolled_on")
    site_today = today or local_today(site.timezone)
    if enrolled_on > site_today:
        raise EnrolmentError(f"the enrolment date {enrolled_on.isoformat()} is in the future "
                             f"(today at {site.code} is {site_today.isoformat()})",
                             "enrolled_on")
    taken = key_taken(session, study, key)
    if taken is not None:
        raise EnrolmentError(f"screening number {taken!r} is already used in {study.name}",
                             "subject_key")
    audit.bind_actor(session, actor)
    subject = Subject(study=study, site=site, subject_key=key, status="screening",
                      enrolled_on=enrolled_on, study_version=version,
                      created_by_id=actor.user_id)
    try:
        # The database holds the same rule (a unique index on the study and the lower-cased
        # key): an enrolment of the same key committed since the check above ends here.
        with session.begin_nested():
            session.add(subject)
            session.flush()
    except IntegrityError:
        raise EnrolmentError(f"screening number {key!r} was enrolled in {study.name} at the "
                             "same moment (whatever its case): it is already used",
                             "subject_key") from None
    audit.record(session, actor, "subject.enrolled", category="data", study_oid=study.oid,
                 site_code=site.code, subject_key=key, path=f"{study.oid}/{key}",
                 new_value=key, study_version=version.label,
                 details={"enrolled_on": enrolled_on.isoformat(), "site": site.code})
    refresh_subject(session, subject, site_today)
    return subject


def visible_subject(session: Session, user: User, study: Study, subject_key: str,
                    action: str = "subjects.view") -> Subject | None:
    """The subject if it exists at one of the sites where ``user`` may do ``action``."""
    stmt = select(Subject).where(Subject.study_id == study.id,
                                 Subject.subject_key == subject_key) \
        .options(joinedload(Subject.study_version))  # every page of a subject reads it
    stmt = accounts.scope_to_sites(stmt, Subject.site_id,
                                 accounts.site_ids_for(user, action, study))
    return session.scalar(stmt)


# --- the subject matrix ------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixColumn:
    oid: str
    name: str
    repeating: bool
    count: int | None = None


class MatrixCell(NamedTuple):
    status: str
    done: int = 0
    total: int = 0  # 0 for a single event
    planned: str | None = None  # ISO date: of the event, or of a repeat's first pending one


@dataclass
class MatrixRow:
    key: str
    site: str
    status: str
    arm: str | None
    cells: list[MatrixCell | None] = field(default_factory=list)


@dataclass
class Matrix:
    columns: list[MatrixColumn]
    rows: list[MatrixRow]
    total: int
    page: int
    pages: int
    per_page: int | None  # None: every subject on one page


def matrix_columns(definition: StudyDefinition | None) -> list[MatrixColumn]:
    if definition is None:
        return []
    return [MatrixColumn(rule.oid, rule.name, rule.kind is EventKind.REPEATING,
                         rule.repeat.count if rule.repeat else None)
            for rule in definition.events
            if rule.kind in (EventKind.SCHEDULED, EventKind.REPEATING)]


_RANK = case({status: rank for status, rank in _WORST_FIRST.items()},
             value=ScheduledVisit.status, else_=len(_WORST_FIRST))
_PENDING = ("overdue", "due", "upcoming")
_BY_RANK = list(_WORST_FIRST)


def _iso(value: dt.date | str | None) -> str | None:
    # SQLite gives aggregated dates back as ISO text, PostgreSQL as dates.
    return value.isoformat() if isinstance(value, dt.date) else value


def subject_matrix(session: Session, user: User, study: Study,
                   definition: StudyDefinition | None, *, site: str | None = None,
                   status: str | None = None, visit_status: str | None = None, page: int = 1,
                   per_page: int | None = 100) -> Matrix:
    """One page of the matrix in three statements (count, subjects, their visits).

    Visits are summarised per subject and event by the database (worst status, done and
    applicable counts, the earliest pending planned date): a repeating event's cell needs
    no more, and thousands of subjects then cost thousands of rows, not tens of thousands.
    """
    allowed = accounts.site_ids_for(user, "subjects.view", study)
    base = (select(Subject.id).join(Site, Site.id == Subject.site_id)
            .where(Subject.study_id == study.id))
    base = accounts.scope_to_sites(base, Subject.site_id, allowed)
    if site:
        base = base.where(Site.code == site)
    if status:
        base = base.where(Subject.status == status)
    if visit_status:
        base = base.where(exists().where(ScheduledVisit.subject_id == Subject.id,
                                         ScheduledVisit.status == visit_status))
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    pages = max(1, math.ceil(total / per_page)) if per_page else 1
    page = min(max(1, page), pages)
    listing = base.with_only_columns(Subject.id, Subject.subject_key, Site.code,
                                     Subject.status, Subject.arm)
    listing = listing.order_by(Site.code, Subject.subject_key)
    if per_page:
        listing = listing.limit(per_page).offset((page - 1) * per_page)
    # Plain Core execution: these are columns, not entities, and the ORM's row
    # machinery costs more than the query itself at this size.
    connection = session.connection()
    subjects = connection.execute(listing).all()
    columns = matrix_columns(definition)
    by_subject: dict[int, dict[str, MatrixCell]] = defaultdict(dict)
    single = {c.oid for c in columns if not c.repeating}
    if subjects:
        ids = [row[0] for row in subjects]
        page_filter = (ScheduledVisit.subject_id.in_(ids) if len(ids) <= 500
                       else ScheduledVisit.subject_id.in_(base))
        pending_planned = case((ScheduledVisit.status.in_(_PENDING), ScheduledVisit.planned))
        stmt = (select(ScheduledVisit.subject_id, ScheduledVisit.event_oid, func.min(_RANK),
                       func.sum(case((ScheduledVisit.status.in_(_DONE), 1), else_=0)),
                       func.sum(case((ScheduledVisit.status.in_(_UNEXPECTED), 0), else_=1)),
                       # As text: no date parsing per row on SQLite.
                       type_coerce(func.min(pending_planned), String),
                       type_coerce(func.min(ScheduledVisit.planned), String))
                .where(page_filter)
                .group_by(ScheduledVisit.subject_id, ScheduledVisit.event_oid))
        repeating = {c.oid: c for c in columns if c.repeating}
        for subject_id, event_oid, worst, done, applicable, pending, first in (
                connection.execute(stmt).all()):
            state = _BY_RANK[worst] if worst < len(_BY_RANK) else "not_applicable"
            column = repeating.get(event_oid)
            if column is None and event_oid in single:
                cell = MatrixCell(state, planned=_iso(first))
            else:
                applicable = applicable or 0
                count = column.count if column is not None else None
                cell = MatrixCell(state, done or 0, count if count and applicable else applicable,
                                  _iso(pending or first))
            by_subject[subject_id][event_oid] = cell
    known = {c.oid for c in columns}
    extra = sorted({oid for events in by_subject.values() for oid in events} - known)
    columns += [MatrixColumn(oid, oid, True) for oid in extra]
    oids = [c.oid for c in columns]
    empty: dict[str, MatrixCell] = {}
    rows = []
    for subject_id, key, code, subject_status, arm in subjects:
        events = by_subject.get(subject_id, empty)
        rows.append(MatrixRow(key, code, subject_status, arm, [events.get(o) for o in oids]))
    return Matrix(columns, rows, total, page, pages, per_page)


# --- study-level counts (aggregate only) -------------------------------------------------------


@dataclass
class StudyCounts:
    by_site: dict[str, Counter]  # site code -> subject status -> count
    visits: Counter  # visit status -> count over the whole study

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.by_site.values())

    @property
    def by_status(self) -> Counter:
        total: Counter = Counter()
        for counts in self.by_site.values():
            total.update(counts)
        return total


def study_counts(session: Session, study: Study) -> StudyCounts:
    by_site: dict[str, Counter] = defaultdict(Counter)
    stmt = (select(Site.code, Subject.status, func.count()).join(Site, Site.id == Subject.site_id)
            .where(Subject.study_id == study.id).group_by(Site.code, Subject.status))
    for code, status, count in session.execute(stmt):
        by_site[code][status] = count
    visits: Counter = Counter()
    stmt = (select(ScheduledVisit.status, func.count())
            .join(Subject, Subject.id == ScheduledVisit.subject_id)
            .where(Subject.study_id == study.id).group_by(ScheduledVisit.status))
    for status, count in session.execute(stmt):
        visits[status] = count
    return StudyCounts(dict(by_site), visits)


__all__ = [
    "EnrolmentError",
    "KEY_RE",
    "Matrix",
    "MatrixCell",
    "MatrixColumn",
    "MatrixRow",
    "StudyCounts",
    "SUBJECT_STATUSES",
    "VISIT_STATUSES",
    "enrol_sites",
    "enrol_subject",
    "matrix_columns",
    "study_counts",
    "subject_matrix",
    "visible_subject",
]


def mark_on_study(session: Session, actor: Actor, subject: Subject, why: str) -> None:
    """A screened subject who is randomized or assigned a dose is on study (audited). A
    study that declares status rules derives the status from them instead."""
    if recompute_status(session, actor, subject, why=why,
                        changed={("subject", "arm"), ("subject", "dose_level")}) is not None:
        return
    if subject.status != "screening":
        return
    audit.record(session, actor, "subject.status_changed", category="clinical",
                 study_oid=subject.study.oid, site_code=subject.site.code,
                 subject_key=subject.subject_key,
                 path=f"{subject.study.oid}/{subject.subject_key}/status",
                 old_value="screening", new_value="on_study", reason=why,
                 study_version=subject.study_version.label)
    subject.status = "on_study"
