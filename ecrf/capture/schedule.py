"""The stored schedule of subjects: the pure engine fed with recorded data.

``compute_schedule`` (domain) is pure; ``schedule_data`` gathers its input from the
database, and this module stores the result as ``ScheduledVisit`` rows, so lists of
thousands of subjects read a table instead of recomputing. Stored rows are derived data,
not audited. They are recomputed after every save that can move an anchor or an occurrence
(``refresh_subject``), and at the latest a day later (``refresh_stale``), because statuses
depend on today's date. A refresh takes a fixed number of statements whatever the number
of subjects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import bindparam, case, literal, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ecrf.capture.models import ScheduledVisit, Subject
from ecrf.capture.schedule_data import (
    SUBJECT_COLUMNS,
    SubjectInfo,
    build_data,
    info_from_row,
    infos_of,
    load_recorded,
    local_today,
    needs,
    study_first_dates,
    subject_schedule_data,
)
from ecrf.domain.schedule import ExpectedEvent, compute_schedule
from ecrf.studies import Site, Study, StudyVersion, definition_for

__all__ = [
    "expected_events",
    "local_today",
    "refresh_stale",
    "refresh_subject",
    "refresh_subjects",
    "schedule_rows",
    "subject_schedule_data",
]

_VISITS = ScheduledVisit.__table__
_DELETE_VISITS = _VISITS.delete().where(_VISITS.c.subject_id == bindparam("sid"))


def expected_events(session: Session, subject: Subject, on: dt.date | None = None
                    ) -> list[ExpectedEvent]:
    """The subject's schedule computed afresh on ``on`` (default: today at the site)."""
    definition = definition_for(subject.study_version)
    on = on or local_today(subject.site.timezone)
    return compute_schedule(definition.schedule,
                            subject_schedule_data(session, definition, subject, today=on), on)


# --- recomputing and storing ------------------------------------------------------------------


def _recompute(session: Session, subjects: list[SubjectInfo],
               today_of: Callable[[SubjectInfo], dt.date]) -> int:
    if not subjects:
        return 0
    version_ids = sorted({s.version_id for s in subjects})
    definitions = {v.id: definition_for(v) for v in session.scalars(
        select(StudyVersion).where(StudyVersion.id.in_(version_ids)))}
    needed: set[tuple[str, str]] = set()
    for definition in definitions.values():
        needed |= needs(definition).items
    recorded = load_recorded(session, subjects, needed)
    first_all = study_first_dates(session, definitions.values(), {s.study_id for s in subjects})
    params = {vid: d.parameter_values() for vid, d in definitions.items()}
    visits: list[dict] = []
    computed: list[dict] = []
    for info in subjects:
        definition = definitions[info.version_id]
        today = today_of(info)
        first = {name: day for (study_id, name), day in first_all.items()
                 if study_id == info.study_id}
        data = build_data(definition, info, recorded.rows.get(info.id, []),
                      recorded.occurrences.get(info.id, []), first, today,
                      params[info.version_id])
        for position, row in enumerate(compute_schedule(definition.schedule, data, today)):
            visits.append({"subject_id": info.id, "event_oid": row.event_oid,
                           "repeat": row.repeat, "position": position, "planned": row.planned,
                           "window_start": row.window_start, "window_end": row.window_end,
                           "status": row.status.value, "actual_date": row.actual_date,
                           "note": row.note})
        computed.append({"id": info.id, "schedule_computed_on": today})
    # Touch the subjects first: on PostgreSQL the row locks serialise two workers
    # refreshing the same subjects, so the second one deletes what the first inserted.
    computed.sort(key=lambda r: r["id"])
    session.execute(update(Subject), computed)
    # One executemany, whatever the number of subjects, and never wider than them.
    session.execute(_DELETE_VISITS, [{"sid": row["id"]} for row in computed])
    if visits:
        session.execute(_VISITS.insert(), visits)
    _sync_loaded(session, computed)
    return len(subjects)


def _sync_loaded(session: Session, computed: list[dict]) -> None:
    """Loaded Subject objects see the new date without a flush (the rows were written by
    bulk statements, which bypass the audited-change hook: this is derived data)."""
    for row in computed:
        subject = session.identity_map.get((Subject, (row["id"],), None))
        if subject is not None:
            set_committed_value(subject, "schedule_computed_on", row["schedule_computed_on"])


def refresh_subject(session: Session, subject: Subject, today: dt.date | None = None) -> None:
    """Recompute and store one subject's schedule (call after any save that can change an
    anchor or an occurrence)."""
    refresh_subjects(session, [subject], today)


def refresh_subjects(session: Session, subjects: list[Subject],
                     today: dt.date | None = None) -> int:
    """Recompute and store the schedules of several subjects in a fixed number of
    statements (each on its site's today unless ``today`` is given)."""
    session.flush()
    infos = infos_of(session, subjects)
    return _recompute(session, infos, lambda info: today or local_today(info.timezone))


def refresh_stale(session: Session, study: Study, today: dt.date | None = None) -> int:
    """Recompute every subject of ``study`` whose schedule is older than today (each site's
    today unless ``today`` is given); returns how many were recomputed."""
    if today is not None:
        cutoff = literal(today)
    else:
        # Each site's own today, decided in the query so that fresh subjects (the usual
        # case) are not even read.
        zones = sorted(set(session.scalars(select(Site.timezone).distinct())))
        cutoff = case({zone: local_today(zone) for zone in zones}, value=Site.timezone,
                      else_=local_today("UTC")) if zones else literal(local_today("UTC"))
    rows = session.execute(
        select(*SUBJECT_COLUMNS).join(Site, Site.id == Subject.site_id)
        .where(Subject.study_id == study.id,
               or_(Subject.schedule_computed_on.is_(None),
                   Subject.schedule_computed_on < cutoff))
    ).all()
    stale = [info_from_row(row) for row in rows]
    return _recompute(session, stale, lambda info: today or local_today(info.timezone))


def schedule_rows(session: Session, subject: Subject, today: dt.date | None = None
                  ) -> list[ScheduledVisit]:
    """The stored schedule for display, recomputed first if it is from an earlier day."""
    day = today or local_today(subject.site.timezone)
    if subject.schedule_computed_on is None or subject.schedule_computed_on < day:
        refresh_subject(session, subject, day)
    return list(session.scalars(select(ScheduledVisit).where(
        ScheduledVisit.subject_id == subject.id).order_by(ScheduledVisit.position)))
