"""The study-wide boards: the data manager's (missing forms, query metrics, lock
readiness) and the sponsor viewer's, which holds aggregates only: no subject identifier
ever reaches it. A fixed number of statements each, whatever the number of subjects."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ecrf import capture, review
from ecrf.accounts import User
from ecrf.capture import EventInstance, FormInstance, ScheduledVisit, Subject
from ecrf.core import utcnow
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
    missing: list[MissingForm]
    missing_total: int
    overdue_visits: int
    metrics: QueryMetrics
    readiness: list[Readiness]
    escalation: bool
    study_status: str
    active_locks: int

    @property
    def ready_count(self) -> int:
        return sum(1 for r in self.readiness if r.ready)


def _missing_forms(session: Session, study: Study) -> tuple[list[MissingForm], int]:
    events = session.execute(
        select(EventInstance.id, EventInstance.event_oid, EventInstance.repeat,
               Subject.subject_key, Site.code, Subject.study_version_id)
        .join(Subject, Subject.id == EventInstance.subject_id)
        .join(Site, Site.id == Subject.site_id)
        .where(Subject.study_id == study.id, EventInstance.state != "not_done")
        .order_by(Subject.subject_key, EventInstance.id)).all()
    present: dict[int, set[str]] = defaultdict(set)
    for event_id, form_oid in session.execute(
            select(FormInstance.event_instance_id, FormInstance.form_oid)
            .join(Subject, Subject.id == FormInstance.subject_id)
            .where(Subject.study_id == study.id)):
        present[event_id].add(form_oid)
    versions = {v.id: v for v in session.scalars(select(StudyVersion).where(
        StudyVersion.study_id == study.id))}
    missing, total = [], 0
    for event_id, event_oid, repeat, key, code, version_id in events:
        definition = definition_for(versions[version_id])
        try:
            expected = definition.event(event_oid).forms
        except Exception:  # an event that the subject's version no longer has
            continue
        for form_oid in expected:
            if form_oid not in present[event_id]:
                total += 1
                if len(missing) < LIST_LIMIT:
                    missing.append(MissingForm(key, code, event_oid, repeat, form_oid))
    return missing, total


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _query_metrics(session: Session, study: Study, now: dt.datetime) -> QueryMetrics:
    rows = session.execute(select(Query.status, Query.origin, Query.created_at,
                                  Query.status_changed_at)
                           .where(Query.study_id == study.id)).all()
    by_status: Counter = Counter()
    by_origin: Counter = Counter()
    open_ages, close_times, recent = [], [], 0
    for status, origin, created, changed in rows:
        by_status[status] += 1
        by_origin[origin] += 1
        if status == "closed":
            close_times.append((changed - created).total_seconds() / 86400)
            recent += changed >= now - dt.timedelta(days=30)
        else:
            open_ages.append((now - created).total_seconds() / 86400)
    return QueryMetrics(by_status, by_origin, _median(open_ages), _median(close_times),
                        recent)


def _readiness(session: Session, user: User, study: Study, now: dt.datetime
               ) -> list[Readiness]:
    people = session.execute(select(Subject.id, Subject.subject_key, Site.code)
                             .join(Site, Site.id == Subject.site_id)
                             .where(Subject.study_id == study.id)
                             .order_by(Site.code, Subject.subject_key)).all()
    ids = [p[0] for p in people]
    statuses: dict[int, Counter] = defaultdict(Counter)
    for subject_id, status, count in session.execute(
            select(FormInstance.subject_id, FormInstance.status, func.count())
            .join(Subject, Subject.id == FormInstance.subject_id)
            .where(Subject.study_id == study.id)
            .group_by(FormInstance.subject_id, FormInstance.status)):
        statuses[subject_id][status] = count
    counts = review.query_counts(session, study, ids, now=now)
    progress = {s.subject_id: s for s in review.sdv_progress(session, user, study).subjects}
    covered = select(Signature.id).where(
        Signature.subject_id == FormInstance.subject_id, Signature.broken_at.is_(None),
        (Signature.form_instance_id == FormInstance.id)
        | ((Signature.scope == "event")
           & (Signature.event_instance_id == FormInstance.event_instance_id))
        | (Signature.scope == "casebook"))
    unsigned = dict(session.execute(
        select(FormInstance.subject_id, func.count())
        .join(Subject, Subject.id == FormInstance.subject_id)
        .where(Subject.study_id == study.id, ~covered.exists())
        .group_by(FormInstance.subject_id)).all())
    locked = set(session.scalars(select(Lock.subject_id).where(
        Lock.study_id == study.id, Lock.scope == "subject", Lock.unlocked_at.is_(None))))
    result = []
    for subject_id, key, code in people:
        if subject_id in locked:
            continue  # already locked: nothing to prepare
        blockers = []
        forms = statuses.get(subject_id, Counter())
        if not forms:
            blockers.append("no data")
        if forms.get("in_progress"):
            blockers.append(f"{forms['in_progress']} form(s) in progress")
        opened, answered, _age = counts.get(subject_id, (0, 0, None))
        if opened or answered:
            blockers.append(f"{opened + answered} unclosed query(ies)")
        entry = progress.get(subject_id)
        if entry is not None and entry.pending:
            blockers.append(f"{entry.pending} item(s) to verify")
        if unsigned.get(subject_id):
            blockers.append(f"{unsigned[subject_id]} form(s) not signed")
        result.append(Readiness(key, code, blockers))
    return result


def data_manager(session: Session, user: User, study: Study, *,
                 now: dt.datetime | None = None) -> DataManagerBoard:
    now = now or utcnow()
    missing, total = _missing_forms(session, study)
    overdue = session.scalar(select(func.count()).select_from(ScheduledVisit)
                             .join(Subject, Subject.id == ScheduledVisit.subject_id)
                             .where(Subject.study_id == study.id,
                                    ScheduledVisit.status == "overdue")) or 0
    version = latest_version(session, study)
    escalation = version is not None and definition_for(version).dose_escalation is not None
    active = session.scalar(select(func.count()).select_from(Lock).where(
        Lock.study_id == study.id, Lock.unlocked_at.is_(None))) or 0
    return DataManagerBoard(missing, total, overdue, _query_metrics(session, study, now),
                            _readiness(session, user, study, now), escalation, study.status,
                            active)


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
    progress = review.sdv_site_progress(session, study, None)
    return SponsorBoard(capture.study_counts(session, study), queries_by_status,
                        progress.verified, progress.total, forms_by_status,
                        enrolment_series(session, study))
