"""The study-wide boards: the data manager's (missing forms, query metrics, lock
readiness) and the sponsor viewer's, which holds aggregates only: no subject identifier
ever reaches it. A fixed number of statements each, whatever the number of subjects, and
every count is made by the database (aggregates, window totals beside lists it limits):
nothing is read row by row into Python."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

from sqlalchemy import (
    and_,
    case,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from ecrf import capture, review
from ecrf.accounts import User
from ecrf.capture import EventInstance, FormInstance, ScheduledVisit, Subject
from ecrf.core import literal_table, utcnow
from ecrf.crf import StudyDefinition
from ecrf.review import Lock, Query, Signature
from ecrf.studies import Site, Study, StudySite, StudyVersion, definition_for, latest_version

__all__ = ["DataManagerBoard", "MissingForm", "QueryMetrics", "Readiness", "SponsorBoard",
           "data_manager", "enrolment_series", "sponsor"]

LIST_LIMIT = 100


# --- data manager --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingForm:
    subject_key: str
    site_code: str
    event_oid: str
    repeat: int
    form_oid: str


@dataclass
class QueryMetrics:
    by_status: Counter
    by_origin: Counter
    median_open_days: float | None
    median_days_to_close: float | None
    closed_last_30_days: int


@dataclass
class Readiness:
    subject_key: str
    site_code: str
    blockers: list[str]

    @property
    def ready(self) -> bool:
        return not self.blockers


@dataclass
class DataManagerBoard:
    missing: list[MissingForm]  # the first LIST_LIMIT
    missing_total: int
    overdue_visits: int
    metrics: QueryMetrics
    readiness: list[Readiness]  # the first LIST_LIMIT unlocked subjects not ready to lock
    escalation: bool
    study_status: str
    active_locks: int
    ready_count: int = 0  # unlocked subjects ready to lock
    unlocked_count: int = 0


def _definitions(session: Session, study: Study) -> dict[int, StudyDefinition]:
    """Each version's definition (a study has few versions; built once per content)."""
    return {v.id: definition_for(v) for v in session.scalars(
        select(StudyVersion).where(StudyVersion.study_id == study.id)
        .order_by(StudyVersion.id))}


def _expected_forms(definitions: dict[int, StudyDefinition]):
    """The (version, event, form, position) of every form each version's events hold, and
    the number of forms of each (version, event), as tables of literal rows (a few hundred
    at most); None if no event holds a form."""
    rows, counts = [], Counter()
    for version_id, definition in sorted(definitions.items()):
        for event in definition.events:
            for position, form_oid in enumerate(dict.fromkeys(event.forms)):
                rows.append((version_id, event.oid, form_oid, position))
                counts[(version_id, event.oid)] += 1
    if not rows:
        return None
    return (literal_table("expected", ("version_id", "event_oid", "form_oid", "position"),
                          rows),
            literal_table("per_event", ("version_id", "event_oid", "forms"),
                          [(v, e, n) for (v, e), n in sorted(counts.items())]))


def _missing_forms(session: Session, study: Study, definitions: dict[int, StudyDefinition]
                   ) -> tuple[list[MissingForm], int]:
    """Forms that the subject's version expects in its started events (not "not done")
    and that have no data: the first LIST_LIMIT (the database stops at them) and the
    count (the forms expected in those events less the expected ones present, two sums
    by hash joins), one statement each whatever the number of subjects."""
    tables = _expected_forms(definitions)
    if tables is None:
        return [], 0
    expected, per_event = tables
    started = and_(Subject.study_id == study.id, EventInstance.state != "not_done")
    present = (select(FormInstance.id)
               .where(FormInstance.event_instance_id == EventInstance.id,
                      FormInstance.form_oid == expected.c.form_oid).exists())
    listed = session.execute(
        select(Subject.subject_key, Site.code, EventInstance.event_oid, EventInstance.repeat,
               expected.c.form_oid)
        .select_from(EventInstance)
        .join(Subject, Subject.id == EventInstance.subject_id)
        .join(Site, Site.id == Subject.site_id)
        .join(expected, and_(expected.c.version_id == Subject.study_version_id,
                             expected.c.event_oid == EventInstance.event_oid))
        .where(started, ~present)
        .order_by(Subject.subject_key, EventInstance.id, expected.c.position)
        .limit(LIST_LIMIT))
    due = (select(func.coalesce(func.sum(per_event.c.forms), 0))
           .select_from(EventInstance)
           .join(Subject, Subject.id == EventInstance.subject_id)
           .join(per_event, and_(per_event.c.version_id == Subject.study_version_id,
                                 per_event.c.event_oid == EventInstance.event_oid))
           .where(started).scalar_subquery())
    entered = (select(func.count(FormInstance.id))
               .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
               .join(Subject, Subject.id == EventInstance.subject_id)
               .where(started, tuple_(Subject.study_version_id, EventInstance.event_oid,
                                      FormInstance.form_oid)
                      .in_(select(expected.c.version_id, expected.c.event_oid,
                                  expected.c.form_oid)))
               .scalar_subquery())
    missing = [MissingForm(*row) for row in listed]
    return missing, int(session.scalar(select(due - entered)) or 0)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _middle(session: Session, stmt, count: int) -> list:
    """The middle row (odd count) or two middle rows (even) of an ordered statement."""
    if not count:
        return []
    return list(session.execute(stmt.offset((count - 1) // 2).limit(2 - count % 2)))


def _query_metrics(session: Session, study: Study, now: dt.datetime) -> QueryMetrics:
    """Counts by status and origin in one grouped statement; each median from the middle
    row(s) of the ordered queries (one statement each), never every query."""
    cutoff = now - dt.timedelta(days=30)
    closed = Query.status == "closed"
    by_status: Counter = Counter()
    by_origin: Counter = Counter()
    recent = 0
    for status, origin, count, closed_recently in session.execute(
            select(Query.status, Query.origin, func.count(),
                   func.sum(case((and_(closed, Query.status_changed_at >= cutoff), 1),
                                 else_=0)))
            .where(Query.study_id == study.id).group_by(Query.status, Query.origin)):
        by_status[status] += count
        by_origin[origin] += count
        recent += int(closed_recently or 0)
    n_closed = by_status.get("closed", 0)
    n_open = sum(by_status.values()) - n_closed
    of_study = select(Query.created_at, Query.status_changed_at).where(
        Query.study_id == study.id)
    by_age = of_study.where(~closed).order_by(Query.created_at.desc(), Query.id)
    open_ages = [(now - created).total_seconds() / 86400
                 for created, _changed in _middle(session, by_age, n_open)]
    if session.get_bind().dialect.name == "postgresql":
        duration = func.extract("epoch", Query.status_changed_at - Query.created_at)
    else:
        duration = func.julianday(Query.status_changed_at) - func.julianday(Query.created_at)
    quickest_first = of_study.where(closed).order_by(duration, Query.id)
    close_times = [(changed - created).total_seconds() / 86400
                   for created, changed in _middle(session, quickest_first, n_closed)]
    return QueryMetrics(by_status, by_origin, _median(open_ages), _median(close_times),
                        recent)


def _readiness(session: Session, study: Study, definitions: dict[int, StudyDefinition]
               ) -> tuple[list[Readiness], int, int]:
    """The first LIST_LIMIT unlocked subjects not ready to lock with what blocks them, the
    number ready and the number unlocked (window totals over every unlocked subject): one
    statement whatever the number of subjects."""
    of_study = Subject.study_id == study.id
    current = and_(Signature.study_id == study.id, Signature.broken_at.is_(None))
    covered = or_(  # by a signature of the form, of its event or of the casebook
        FormInstance.id.in_(select(Signature.form_instance_id).where(
            current, Signature.form_instance_id.is_not(None))),
        FormInstance.event_instance_id.in_(select(Signature.event_instance_id).where(
            current, Signature.scope == "event")),
        FormInstance.subject_id.in_(select(Signature.subject_id).where(
            current, Signature.scope == "casebook")))
    forms = (select(FormInstance.subject_id, func.count().label("forms"),
                    func.sum(case((FormInstance.status == "in_progress", 1), else_=0))
                    .label("in_progress"),
                    func.sum(case((covered, 0), else_=1)).label("unsigned"))
             .where(FormInstance.subject_id.in_(select(Subject.id).where(of_study)))
             .group_by(FormInstance.subject_id).subquery("forms"))
    unclosed = (select(Query.subject_id, func.count().label("unclosed"))
                .where(Query.study_id == study.id, Query.status.in_(("open", "answered")))
                .group_by(Query.subject_id).subquery("unclosed"))
    sdv = review.sdv_kept_counts(session, study, definitions)
    locked = select(Lock.id).where(Lock.subject_id == Subject.id, Lock.study_id == study.id,
                                   Lock.scope == "subject", Lock.unlocked_at.is_(None))
    n_forms = func.coalesce(forms.c.forms, 0)
    in_progress = func.coalesce(forms.c.in_progress, 0)
    n_unclosed = func.coalesce(unclosed.c.unclosed, 0)
    pending = func.coalesce(sdv.c.total - sdv.c.verified, 0)
    n_unsigned = func.coalesce(forms.c.unsigned, 0)
    blocked = or_(n_forms == 0, in_progress > 0, n_unclosed > 0, pending > 0, n_unsigned > 0)
    people = (select(Subject.subject_key, Site.code, n_forms, in_progress, n_unclosed, pending,
                     n_unsigned)
              .join(Site, Site.id == Subject.site_id)
              .outerjoin(forms, forms.c.subject_id == Subject.id)
              .outerjoin(unclosed, unclosed.c.subject_id == Subject.id)
              .outerjoin(sdv, sdv.c.subject_id == Subject.id)
              .where(of_study, ~locked.exists()))
    flag = case((blocked, 1), else_=0)
    found = session.execute(
        people.add_columns(flag, func.count().over(), func.sum(flag).over())
        .order_by(flag.desc(), Site.code, Subject.subject_key, Subject.id)
        .limit(LIST_LIMIT)).all()
    unlocked, not_ready = (int(found[0][-2] or 0), int(found[0][-1] or 0)) if found else (0, 0)
    rows = []
    for key, code, n, busy, open_queries, to_verify, not_signed, is_blocked, *_ in found:
        if not is_blocked:
            break
        blockers = []
        if not n:
            blockers.append("no data")
        if busy:
            blockers.append(f"{busy} form(s) in progress")
        if open_queries:
            blockers.append(f"{open_queries} unclosed query(ies)")
        if to_verify:
            blockers.append(f"{to_verify} item(s) to verify")
        if not_signed:
            blockers.append(f"{not_signed} form(s) not signed")
        rows.append(Readiness(key, code, blockers))
    return rows, unlocked - not_ready, unlocked


def data_manager(session: Session, user: User, study: Study, *,
                 now: dt.datetime | None = None) -> DataManagerBoard:
    """The data manager's board in a fixed number of statements; rows and counts come
    from SQL aggregates, whatever the number of subjects."""
    now = now or utcnow()
    definitions = _definitions(session, study)
    missing, total = _missing_forms(session, study, definitions)
    overdue = session.scalar(select(func.count()).select_from(ScheduledVisit)
                             .join(Subject, Subject.id == ScheduledVisit.subject_id)
                             .where(Subject.study_id == study.id,
                                    ScheduledVisit.status == "overdue")) or 0
    version = latest_version(session, study)
    escalation = version is not None and definition_for(version).dose_escalation is not None
    active = session.scalar(select(func.count()).select_from(Lock).where(
        Lock.study_id == study.id, Lock.unlocked_at.is_(None))) or 0
    readiness, ready, unlocked = _readiness(session, study, definitions)
    return DataManagerBoard(missing, total, overdue, _query_metrics(session, study, now),
                            readiness, escalation, study.status, active, ready, unlocked)


# --- sponsor viewer (aggregates only) ---------------------------------------------------------


@dataclass
class SponsorBoard:
    counts: capture.StudyCounts
    queries_by_status: Counter
    sdv_verified: int
    sdv_total: int
    forms_by_status: Counter
    series: dict[str, list[tuple[dt.date, int]]]  # site code -> (month, cumulative count)


def enrolment_series(session: Session, study: Study) -> dict[str, list[tuple[dt.date, int]]]:
    """Cumulative enrolment per site, month by month (one aggregate statement)."""
    rows = session.execute(select(Site.code, Subject.enrolled_on, func.count())
                           .join(Site, Site.id == Subject.site_id)
                           .where(Subject.study_id == study.id)
                           .group_by(Site.code, Subject.enrolled_on)).all()
    sites = [code for (code,) in session.execute(
        select(Site.code).join(StudySite, StudySite.site_id == Site.id)
        .where(StudySite.study_id == study.id).order_by(Site.code))]
    if not rows:
        return {code: [] for code in sites}
    per_month: dict[str, Counter] = defaultdict(Counter)
    for code, day, count in rows:
        per_month[code][dt.date(day.year, day.month, 1)] += count
    first = min(m for c in per_month.values() for m in c)
    today = utcnow().date()
    last = max(max(m for c in per_month.values() for m in c), dt.date(today.year, today.month, 1))
    months = []
    month = first
    while month <= last:
        months.append(month)
        month = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
    series = {}
    for code in sorted(set(sites) | set(per_month)):
        total, points = 0, []
        for month in months:
            total += per_month[code][month]
            points.append((month, total))
        series[code] = points
    return series


def sponsor(session: Session, study: Study) -> SponsorBoard:
    queries_by_status = Counter(dict(session.execute(
        select(Query.status, func.count()).where(Query.study_id == study.id)
        .group_by(Query.status)).all()))
    forms_by_status = Counter(dict(session.execute(
        select(FormInstance.status, func.count())
        .join(Subject, Subject.id == FormInstance.subject_id)
        .where(Subject.study_id == study.id).group_by(FormInstance.status)).all()))
    progress = review.sdv_site_progress(session, study, None, limit=0)
    return SponsorBoard(capture.study_counts(session, study), queries_by_status,
                        progress.verified, progress.total, forms_by_status,
                        enrolment_series(session, study))
