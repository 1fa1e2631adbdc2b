"""Role dashboards: what each role needs to see first in a study.

Each board is built from a fixed number of statements whatever the number of subjects,
counted by the database (lists limited by SQL, totals as aggregates or window functions),
and is scoped to the user's sites in the queries themselves. The site roles' and the
monitor's boards are here; the data manager's and the sponsor viewer's (aggregates only)
are in ``study_boards``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from ecrf import accounts, review
from ecrf.accounts import Role, User
from ecrf.capture import EventInstance, FormInstance, ScheduledVisit, Subject
from ecrf.core import DashboardPanel, panels_for, utcnow
from ecrf.dashboards.study_boards import (  # the study-wide boards, served from here too
    DataManagerBoard,
    SponsorBoard,
    data_manager,
    enrolment_series,
    sponsor,
)
from ecrf.review import Query, Signature
from ecrf.studies import Site, Study

__all__ = [
    "AGE_BUCKETS", "DASHBOARD_ROLES", "DataManagerBoard", "SponsorBoard", "choose_role",
    "coordinator", "data_manager", "enrolment_series", "held_roles", "investigator",
    "monitor", "panels", "sponsor",
]

# Which board a user holding several roles in a study sees first.
DASHBOARD_ROLES = (Role.DATA_MANAGER, Role.INVESTIGATOR, Role.MONITOR, Role.COORDINATOR,
                   Role.SPONSOR_VIEWER)
AGE_BUCKETS = ("0-7", "8-14", "15-30", ">30")
LIST_LIMIT = 100


def choose_role(user: User, study: Study, wanted: str | None = None) -> Role | None:
    held = accounts.roles_in_study(user, study.id)
    if wanted:
        for role in held:
            if role.value == wanted:
                return role
    return next((r for r in DASHBOARD_ROLES if r in held), None)


def held_roles(user: User, study: Study) -> list[Role]:
    held = accounts.roles_in_study(user, study.id)
    return [r for r in DASHBOARD_ROLES if r in held]


def panels(session: Session, user: User, study: Study, role: Role
           ) -> list[tuple[DashboardPanel, object]]:
    """The panels other areas added for ``role``, each with its data."""
    return [(panel, panel.build(session, user, study)) for panel in panels_for(role.value)]


# --- shared pieces -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VisitRow:
    subject_key: str
    site_code: str
    event_oid: str
    repeat: int
    status: str
    planned: dt.date | None
    window_end: dt.date | None


def _visits(session: Session, study: Study, site_ids: set[int] | None,
            statuses: tuple[str, ...]) -> list[VisitRow]:
    stmt = (select(Subject.subject_key, Site.code, ScheduledVisit.event_oid,
                   ScheduledVisit.repeat, ScheduledVisit.status, ScheduledVisit.planned,
                   ScheduledVisit.window_end)
            .join(Subject, Subject.id == ScheduledVisit.subject_id)
            .join(Site, Site.id == Subject.site_id)
            .where(Subject.study_id == study.id, ScheduledVisit.status.in_(statuses))
            .order_by(ScheduledVisit.window_end, ScheduledVisit.planned, Subject.subject_key)
            .limit(LIST_LIMIT))
    stmt = accounts.scope_to_sites(stmt, Subject.site_id, site_ids)
    return [VisitRow(*row) for row in session.execute(stmt)]


@dataclass(frozen=True)
class FormRow:
    subject_key: str
    site_code: str
    event_oid: str
    repeat: int
    form_oid: str
    updated_at: dt.datetime


def _forms_in_progress(session: Session, study: Study, site_ids: set[int] | None
                       ) -> list[FormRow]:
    stmt = (select(Subject.subject_key, Site.code, EventInstance.event_oid,
                   EventInstance.repeat, FormInstance.form_oid, FormInstance.updated_at)
            .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
            .join(Subject, Subject.id == FormInstance.subject_id)
            .join(Site, Site.id == Subject.site_id)
            .where(Subject.study_id == study.id, FormInstance.status == "in_progress")
            .order_by(FormInstance.updated_at).limit(LIST_LIMIT))
    stmt = accounts.scope_to_sites(stmt, Subject.site_id, site_ids)
    return [FormRow(*row) for row in session.execute(stmt)]


# --- investigator --------------------------------------------------------------------------------


@dataclass
class InvestigatorBoard:
    subjects_by_status: Counter
    subject_rows: list[tuple[str, str, str]]  # key, site, status
    overdue: list[VisitRow]
    open_queries: list[review.QueryRow]
    awaiting: list[review.AwaitingForm]
    to_redo: list[Signature]


def investigator(session: Session, user: User, study: Study) -> InvestigatorBoard:
    site_ids = accounts.site_ids_for(user, "subjects.view", study)
    counted = select(Subject.status, func.count()).where(Subject.study_id == study.id)
    counted = accounts.scope_to_sites(counted, Subject.site_id, site_ids).group_by(Subject.status)
    listed = (select(Subject.subject_key, Site.code, Subject.status)
              .join(Site, Site.id == Subject.site_id).where(Subject.study_id == study.id)
              .order_by(Subject.subject_key).limit(LIST_LIMIT))
    listed = accounts.scope_to_sites(listed, Subject.site_id, site_ids)
    return InvestigatorBoard(
        Counter(dict(session.execute(counted).all())),
        [tuple(r) for r in session.execute(listed)],
        _visits(session, study, site_ids, ("overdue",)),
        review.list_queries(session, user, study, status="unclosed", limit=LIST_LIMIT),
        review.awaiting_signature(session, user, study, limit=LIST_LIMIT),
        review.signatures_to_redo(session, user, study))


# --- coordinator ---------------------------------------------------------------------------------


@dataclass
class CoordinatorBoard:
    visits: list[VisitRow]
    in_progress: list[FormRow]
    to_answer: list[review.QueryRow]


def coordinator(session: Session, user: User, study: Study) -> CoordinatorBoard:
    site_ids = accounts.site_ids_for(user, "data.enter", study)
    open_rows = review.list_queries(session, user, study, status="open", limit=LIST_LIMIT)
    return CoordinatorBoard(
        _visits(session, study, site_ids, ("overdue", "due")),
        _forms_in_progress(session, study, site_ids),
        [r for r in open_rows if r.query.assignee_id in (None, user.id)])


# --- monitor -----------------------------------------------------------------------------------


@dataclass
class SitePreparation:
    site_code: str
    sdv_pending: int = 0
    sdv_total: int = 0
    open: int = 0
    answered: int = 0
    oldest_days: int | None = None
    subjects: list[tuple[str, int, int, int]] = field(default_factory=list)
    # subject key, items to verify, open queries, answered queries


@dataclass
class MonitorBoard:
    progress: review.SdvProgress
    backlog: list[review.SubjectSdv]
    ages: dict[str, Counter]  # status -> bucket -> count
    sites: list[SitePreparation]


def _age_bucket(now: dt.datetime):
    return case((Query.created_at >= now - dt.timedelta(days=7), "0-7"),
                (Query.created_at >= now - dt.timedelta(days=14), "8-14"),
                (Query.created_at >= now - dt.timedelta(days=30), "15-30"), else_=">30")


def _query_ages(session: Session, study: Study, site_ids: set[int] | None,
                now: dt.datetime) -> dict[str, Counter]:
    bucket = _age_bucket(now)
    stmt = (select(Query.status, bucket, func.count())
            .join(Subject, Subject.id == Query.subject_id)
            .where(Query.study_id == study.id, Query.status != "closed")
            .group_by(Query.status, bucket))
    stmt = accounts.scope_to_sites(stmt, Subject.site_id, site_ids)
    ages: dict[str, Counter] = {"open": Counter(), "answered": Counter()}
    for status, name, count in session.execute(stmt):
        ages.setdefault(status, Counter())[name] = count
    return ages


def _as_utc(value) -> dt.datetime | None:
    if isinstance(value, str):  # SQLite may give MIN() of a timestamp as text
        value = dt.datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def monitor(session: Session, user: User, study: Study, *,
            now: dt.datetime | None = None) -> MonitorBoard:
    """The monitor's board: SDV and query counts per site and subject summed by the
    database, the backlog and each site's subjects limited to LIST_LIMIT rows by SQL."""
    now = now or utcnow()
    site_ids = accounts.site_ids_for(user, "subjects.view", study)
    sdv = review.sdv_kept_counts(session, study)
    unclosed = Query.status != "closed"
    queries = (select(Query.subject_id,
                      func.sum(case((Query.status == "open", 1), else_=0)).label("open"),
                      func.sum(case((Query.status == "answered", 1), else_=0))
                      .label("answered"),
                      func.min(Query.created_at).label("oldest"))
               .where(Query.study_id == study.id, unclosed)
               .group_by(Query.subject_id).subquery("unclosed"))
    total = func.coalesce(sdv.c.total, 0)
    pending = func.coalesce(sdv.c.total - sdv.c.verified, 0)
    opened = func.coalesce(queries.c.open, 0)
    answered = func.coalesce(queries.c.answered, 0)
    flagged = case((or_(pending > 0, opened > 0, answered > 0), 1), else_=0)
    to_verify = case((pending > 0, 1), else_=0)
    by_site = {"partition_by": Site.code}
    people = (select(Subject.id.label("id"), Subject.subject_key.label("key"),
                     Site.code.label("code"), total.label("total"), pending.label("pending"),
                     opened.label("opened"), answered.label("answered"),
                     flagged.label("flagged"),
                     func.sum(pending).over(**by_site).label("site_pending"),
                     func.sum(total).over(**by_site).label("site_total"),
                     func.sum(opened).over(**by_site).label("site_open"),
                     func.sum(answered).over(**by_site).label("site_answered"),
                     func.min(queries.c.oldest).over(**by_site).label("site_oldest"),
                     func.row_number().over(partition_by=Site.code,
                                            order_by=(Subject.subject_key, Subject.id))
                     .label("site_rank"),
                     func.sum(flagged).over(partition_by=Site.code,
                                            order_by=(Subject.subject_key, Subject.id),
                                            rows=(None, 0)).label("flagged_rank"),
                     func.sum(to_verify).over(
                         order_by=(pending.desc(), Subject.subject_key, Subject.id),
                         rows=(None, 0)).label("backlog_rank"))
              .select_from(Subject)
              .join(Site, Site.id == Subject.site_id)
              .outerjoin(sdv, sdv.c.subject_id == Subject.id)
              .outerjoin(queries, queries.c.subject_id == Subject.id)
              .where(Subject.study_id == study.id))
    rows = accounts.scope_to_sites(people, Subject.site_id, site_ids).subquery("people")
    in_backlog = and_(rows.c.pending > 0, rows.c.backlog_rank <= LIST_LIMIT)
    listed = and_(rows.c.flagged == 1, rows.c.flagged_rank <= LIST_LIMIT)
    sites: dict[str, SitePreparation] = {}
    backlog: list[tuple[int, review.SubjectSdv]] = []
    for row in session.execute(select(rows).where(or_(rows.c.site_rank == 1, in_backlog,
                                                      listed))
                               .order_by(rows.c.code, rows.c.key, rows.c.id)):
        if row.site_rank == 1:
            oldest = _as_utc(row.site_oldest)
            sites[row.code] = SitePreparation(
                row.code, int(row.site_pending or 0), int(row.site_total or 0),
                int(row.site_open or 0), int(row.site_answered or 0),
                None if oldest is None else max(0, (now - oldest).days))
        if row.flagged == 1 and row.flagged_rank <= LIST_LIMIT:
            sites[row.code].subjects.append((row.key, int(row.pending), int(row.opened),
                                             int(row.answered)))
        if row.pending > 0 and row.backlog_rank <= LIST_LIMIT:
            backlog.append((row.backlog_rank, review.SubjectSdv(
                row.id, row.key, row.code, int(row.total), int(row.total - row.pending))))
    progress = review.SdvProgress(
        [], {code: (s.sdv_total - s.sdv_pending, s.sdv_total) for code, s in sites.items()})
    backlog = [entry for _rank, entry in sorted(backlog, key=lambda pair: pair[0])]
    return MonitorBoard(progress, backlog, _query_ages(session, study, site_ids, now),
                        [sites[code] for code in sorted(sites)])
