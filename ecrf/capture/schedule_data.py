"""What the schedule engine needs from the database, gathered for many subjects at once.

The engine (``domain/schedule.py``) is pure: it takes anchor dates, recorded occurrences,
the study end and a condition evaluator. This module builds them from stored rows: anchors
are the earliest recorded date of their item, ``FORM.ITEM`` in a condition is the
subject's most recent recorded value (typed as the item's definition says), and
``study.first.NAME`` is the earliest value of anchor NAME across the study's subjects.
Loads take a fixed number of statements whatever the number of subjects.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from ecrf.capture.models import EventInstance, FormInstance, GroupRow, ItemValue, Subject
from ecrf.capture.schedule_values import StoredValue, as_date, typed_value, zone
from ecrf.crf import StudyDefinition
from ecrf.domain.expressions import (
    ExpressionError,
    compile_cached,
    evaluate,
    evaluate_condition,
)
from ecrf.domain.schedule import EventKind, RecordedOccurrence, SubjectScheduleData
from ecrf.studies import Site

log = logging.getLogger(__name__)

ENROLMENT = "enrolment"
# Above this many subjects, rows are selected by study rather than by a list of ids: the
# statement stays the same size (and within SQLite's bound-parameter limit) at any scale.
_ID_LIST_LIMIT = 500


def local_today(timezone: str | None) -> dt.date:
    """Today in a site's time zone: a visit window closes at the site's midnight."""
    return dt.datetime.now(zone(timezone or "UTC")).date()


# --- what a definition reads -----------------------------------------------------------------


@dataclass(frozen=True)
class Needs:
    items: frozenset[tuple[str, str]]  # FORM.ITEM read by conditions, until, study end
    first: frozenset[str]  # study.first.NAME anchors
    expressions: tuple[str, ...]


_NEEDS: dict[int, tuple[StudyDefinition, Needs]] = {}


def needs(definition: StudyDefinition) -> Needs:
    cached = _NEEDS.get(id(definition))
    if cached is not None and cached[0] is definition:
        return cached[1]
    sources = [definition.study_end] if definition.study_end else []
    sources += [condition for _, condition in definition.schedule.stop.conditions]
    for rule in definition.events:
        if rule.condition:
            sources.append(rule.condition)
        if rule.repeat is not None and rule.repeat.until:
            sources.append(rule.repeat.until)
    items: set[tuple[str, str]] = set(definition.anchors.values())
    first: set[str] = set()
    for source in sources:
        for parts in compile_cached(source).references:
            if len(parts) == 2 and parts[0] not in ("subject", "anchor", "param"):
                items.add((parts[0], parts[1]))
            elif len(parts) == 3 and parts[:2] == ("study", "first"):
                first.add(parts[2])
    found = Needs(frozenset(items), frozenset(first), tuple(sources))
    _NEEDS[id(definition)] = (definition, found)
    return found


# --- loading recorded data in bulk ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubjectInfo:
    id: int
    study_id: int
    version_id: int
    site_code: str
    timezone: str
    arm: str | None
    dose_level: int | None
    enrolled_on: dt.date


SUBJECT_COLUMNS = (Subject.id, Subject.study_id, Subject.study_version_id, Site.code,
                   Site.timezone, Subject.arm, Subject.dose_level, Subject.enrolled_on)


def info_from_row(row) -> SubjectInfo:
    return SubjectInfo(*row)


def info_of(subject: Subject) -> SubjectInfo:
    site = subject.site
    return SubjectInfo(subject.id, subject.study_id, subject.study_version_id, site.code,
                       site.timezone, subject.arm, subject.dose_level, subject.enrolled_on)


def infos_of(session: Session, subjects: list[Subject]) -> list[SubjectInfo]:
    if len(subjects) == 1:
        return [info_of(subjects[0])]
    site_ids = {s.site_id for s in subjects}
    sites = {site.id: site for site in session.scalars(select(Site).where(Site.id.in_(site_ids)))}
    return [SubjectInfo(s.id, s.study_id, s.study_version_id, sites[s.site_id].code,
                        sites[s.site_id].timezone, s.arm, s.dose_level, s.enrolled_on)
            for s in subjects]


@dataclass
class Recorded:
    rows: dict[int, list[StoredValue]]
    occurrences: dict[int, list[tuple[str, int, str, dt.date | None]]]


def _subject_filter(column, subjects: list[SubjectInfo]):
    """A filter selecting at least these subjects' rows (reads drop the others)."""
    ids = [s.id for s in subjects]
    if len(ids) <= _ID_LIST_LIMIT:
        return column.in_(ids)
    study_ids = sorted({s.study_id for s in subjects})
    return column.in_(select(Subject.id).where(Subject.study_id.in_(study_ids)))


def load_recorded(session: Session, subjects: list[SubjectInfo],
                  items: Iterable[tuple[str, str]]) -> Recorded:
    wanted = set(items)
    ids = {s.id for s in subjects}
    rows: dict[int, list[StoredValue]] = defaultdict(list)
    if wanted and subjects:
        removed = and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                       GroupRow.group_oid == ItemValue.group_oid, GroupRow.row == ItemValue.row)
        stmt = (
            select(ItemValue.subject_id, ItemValue.form_oid, ItemValue.item_oid, ItemValue.value,
                   ItemValue.value_number, ItemValue.value_date, ItemValue.value_datetime,
                   ItemValue.updated_at, EventInstance.actual_date, EventInstance.created_at)
            .join(FormInstance, FormInstance.id == ItemValue.form_instance_id)
            .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
            .outerjoin(GroupRow, removed)
            .where(_subject_filter(ItemValue.subject_id, subjects),
                   ItemValue.item_oid.in_(sorted({i for _, i in wanted})),
                   ItemValue.form_oid.in_(sorted({f for f, _ in wanted})),
                   ItemValue.value.is_not(None), GroupRow.removed_at.is_(None))
        )
        for (subject_id, form, item, value, number, day, moment, updated, actual,
             created) in session.execute(stmt):
            if subject_id not in ids or (form, item) not in wanted or value == "":
                continue
            # "Most recent" is clinical time (the event's date), then entry time.
            when = actual or (created.date() if created else dt.date.min)
            rows[subject_id].append(StoredValue(form, item, value, number, day, moment,
                                         (when, updated or created)))
    occurrences: dict[int, list] = defaultdict(list)
    if subjects:
        stmt = (select(EventInstance.subject_id, EventInstance.event_oid, EventInstance.repeat,
                       EventInstance.state, EventInstance.actual_date)
                .where(_subject_filter(EventInstance.subject_id, subjects)))
        for subject_id, event_oid, repeat, state, actual in session.execute(stmt):
            if subject_id in ids:
                occurrences[subject_id].append((event_oid, repeat, state, actual))
    return Recorded(rows, occurrences)


def study_first_dates(session: Session, definitions: Iterable[StudyDefinition],
                      study_ids: Iterable[int]) -> dict[tuple[int, str], dt.date]:
    """``study.first.NAME``: the earliest value of anchor NAME across a study's subjects."""
    pairs: dict[tuple[str, str], set[str]] = defaultdict(set)
    enrolment = False
    for definition in definitions:
        for name in needs(definition).first:
            if name == ENROLMENT:
                enrolment = True
            elif name in definition.anchors:
                pairs[definition.anchors[name]].add(name)
    found: dict[tuple[int, str], dt.date] = {}
    study_ids = sorted(set(study_ids))
    if not study_ids:
        return found
    if pairs:
        removed = and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                       GroupRow.group_oid == ItemValue.group_oid, GroupRow.row == ItemValue.row)
        stmt = (
            select(Subject.study_id, ItemValue.form_oid, ItemValue.item_oid,
                   func.min(ItemValue.value_date), func.min(ItemValue.value_datetime),
                   func.min(ItemValue.value))
            .join(Subject, Subject.id == ItemValue.subject_id)
            .outerjoin(GroupRow, removed)
            .where(Subject.study_id.in_(study_ids),
                   ItemValue.item_oid.in_(sorted({i for _, i in pairs})),
                   ItemValue.form_oid.in_(sorted({f for f, _ in pairs})),
                   ItemValue.value.is_not(None), GroupRow.removed_at.is_(None))
            .group_by(Subject.study_id, ItemValue.form_oid, ItemValue.item_oid)
        )
        for study_id, form, item, day, moment, text in session.execute(stmt):
            # ISO text sorts chronologically: the fallback when no typed shadow was stored.
            first = day or (moment.astimezone(dt.UTC).date() if moment else None)
            if first is None and text:
                try:
                    first = dt.date.fromisoformat(text[:10])
                except ValueError:
                    first = None
            for name in pairs.get((form, item), ()):
                if first is not None:
                    found[(study_id, name)] = first
    if enrolment:
        stmt = (select(Subject.study_id, func.min(Subject.enrolled_on))
                .where(Subject.study_id.in_(study_ids)).group_by(Subject.study_id))
        for study_id, first in session.execute(stmt):
            if first is not None:
                found[(study_id, ENROLMENT)] = first
    return found


# --- building the engine's input -------------------------------------------------------------


def _latest_values(definition: StudyDefinition, rows: list[StoredValue], tz: str
                   ) -> dict[tuple[str, str], object]:
    latest: dict[tuple[str, str], StoredValue] = {}
    for row in rows:
        key = (row.form, row.item)
        current = latest.get(key)
        if current is None or row.order >= current.order:
            latest[key] = row
    values: dict[tuple[str, str], object] = {}
    forms = definition.forms
    for key, row in latest.items():
        form = forms.get(key[0])
        if form is None:
            continue
        try:
            item = form.item(key[1])
        except LookupError:
            continue
        values[key] = typed_value(row, item.value_type, tz)
    return values


def _anchors(definition: StudyDefinition, rows: list[StoredValue], tz: str,
             enrolled_on: dt.date) -> dict[str, dt.date]:
    by_item: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, key in definition.anchors.items():
        by_item[key].append(name)
    anchors: dict[str, dt.date] = {}
    for row in rows:
        names = by_item.get((row.form, row.item))
        if not names:
            continue
        day = as_date(row, tz)
        if day is None:
            continue
        for name in names:
            if name not in anchors or day < anchors[name]:
                anchors[name] = day
    anchors[ENROLMENT] = enrolled_on
    return anchors


def _occurrences(definition: StudyDefinition, recorded: list) -> list[RecordedOccurrence]:
    kinds = {rule.oid: rule.kind for rule in definition.events}
    result = []
    for event_oid, repeat, state, actual in recorded:
        kind = kinds.get(event_oid)
        # Occurrences of events this version does not have (or a second occurrence of a
        # single event) cannot be placed on its schedule; the subject page lists them.
        if kind is None or (kind is not EventKind.REPEATING and repeat != 1):
            continue
        result.append(RecordedOccurrence(event_oid, repeat, actual, state))
    return result


def build_data(definition: StudyDefinition, info: SubjectInfo, rows: list[StoredValue],
               recorded: list, first: Mapping[str, dt.date], today: dt.date,
               params: Mapping[str, object] | None = None) -> SubjectScheduleData:
    """The engine's input for one subject from rows loaded by ``load_recorded``."""
    latest = _latest_values(definition, rows, info.timezone)
    anchors = _anchors(definition, rows, info.timezone, info.enrolled_on)
    params = params if params is not None else definition.parameter_values()
    fields = {
        "arm": info.arm,
        "dose_level": str(info.dose_level) if info.dose_level is not None else None,
        "site": info.site_code,
    }

    def resolve(parts: tuple[str, ...]) -> object:
        if len(parts) == 2:
            head, name = parts
            if head == "anchor":
                return anchors.get(name)
            if head == "param":
                return params.get(name)
            if head == "subject":
                return fields.get(name)
            return latest.get(parts)
        if len(parts) == 3 and parts[0] == "study" and parts[1] == "first":
            return first.get(parts[2])
        return None

    def condition(source: str) -> bool:
        try:
            return evaluate_condition(compile_cached(source), resolve, today=today)
        except ExpressionError as exc:
            # A definition that passed the checker only fails here on data it did not
            # foresee; an unknown condition counts as false, as a blank one does.
            log.warning("schedule expression %r failed for subject %s: %s", source, info.id, exc)
            return False

    study_end = None
    if definition.study_end:
        try:
            value = evaluate(compile_cached(definition.study_end), resolve, today=today)
        except ExpressionError as exc:
            log.warning("study end %r failed for subject %s: %s", definition.study_end,
                        info.id, exc)
            value = None
        if isinstance(value, dt.datetime):
            value = value.date()
        study_end = value if isinstance(value, dt.date) else None
    return SubjectScheduleData(anchors=anchors,
                               occurrences=_occurrences(definition, recorded),
                               study_end=study_end, evaluate=condition)


def subject_schedule_data(session: Session, definition: StudyDefinition, subject: Subject, *,
                          today: dt.date | None = None,
                          study_first: Mapping[str, dt.date] | None = None,
                          ) -> SubjectScheduleData:
    """The engine's input for one subject: anchors, occurrences, study end, conditions."""
    info = info_of(subject)
    today = today or local_today(info.timezone)
    recorded = load_recorded(session, [info], needs(definition).items)
    if study_first is None:
        found = study_first_dates(session, [definition], [info.study_id])
        study_first = {name: day for (_, name), day in found.items()}
    return build_data(definition, info, recorded.rows.get(info.id, []),
                  recorded.occurrences.get(info.id, []), study_first, today)


