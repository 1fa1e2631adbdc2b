"""Dose-limiting toxicities: the DLT window, candidate AEs, the investigator's decision and
each subject's DLT-evaluable status.

The window runs from the infusion date-time (the ``dose_escalation.dlt_anchor`` date with
the first time item beside it, at the site's zone; midnight when no time is recorded) for
``dlt_window``. An AE row is a candidate when its onset falls in the window (a partial onset
that may fall in it counts, and says so), the investigator's causality for the drug under
escalation (``dose_escalation.dlt_drug``, an entry of ``adverse_events.causality``) is
related (possible, probable, definite) and its grade is at least the parameter
``dlt_min_grade`` (default 3). A study that names no ``dlt_drug`` has no candidates. Onsets
are dates, so the window's first and last calendar days are inside it whatever the hour.

A subject is DLT-evaluable when a DLT was confirmed (or recorded on ``dose_escalation``'s
``dlt_item``), or when the full dose was received (``full_dose_item``, when declared) and
the window is over without the subject leaving the study (the ``stop.anchors`` dates)
before its end.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ecrf.capture import MAX_REASON, FormInstance, GroupRow, ItemValue, Subject, record_clinical
from ecrf.core import audit, utcnow
from ecrf.core.audit import Actor
from ecrf.crf import ItemType, StudyDefinition, UnknownOidError
from ecrf.domain.adverse_events import DEFAULT_RELATED, Causality
from ecrf.safety.models import DltAssessment
from ecrf.safety.support import (
    AeLog,
    AeRow,
    ae_log,
    ae_row_path,
    dlt_causality_item,
    int_param,
    load_ae_rows,
    onset_of,
)
from ecrf.studies import definition_for

CLOSED = ("screen_failed", "completed", "withdrawn", "lost_to_follow_up", "died")
DECISIONS = ("confirmed", "rejected")


class DltError(ValueError):
    """A DLT decision that cannot be recorded; the message says why."""


@dataclass(frozen=True)
class DltWindow:
    start: dt.datetime  # aware UTC
    end: dt.datetime  # aware UTC
    timezone: str
    time_known: bool

    def local(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(ZoneInfo(self.timezone))

    @property
    def first_day(self) -> dt.date:
        return self.local(self.start).date()

    @property
    def last_day(self) -> dt.date:
        return self.local(self.end).date()

    def __str__(self) -> str:
        fmt = "%Y-%m-%d %H:%M" if self.time_known else "%Y-%m-%d"
        return (f"{self.local(self.start):{fmt}} to {self.local(self.end):{fmt}} "
                f"({self.timezone})")


@dataclass(frozen=True)
class DltStatus:
    """A subject's DLT evaluability, for the escalation board."""

    evaluable: bool
    has_dlt: bool
    window_end: dt.datetime | None  # aware UTC; None before the infusion is recorded
    reason: str
    # not_treated | in_window | awaiting | evaluable | dlt | not_evaluable
    state: str = "not_treated"
    window_start: dt.datetime | None = None
    full_dose: bool | None = None
    pending_candidates: int = 0


@dataclass(frozen=True)
class _Sources:
    anchor: tuple[str, str]
    time: tuple[str, str] | None
    full_dose: tuple[str, str] | None
    dlt: tuple[str, str] | None
    stops: tuple[tuple[str, str], ...]


def _item_key(definition: StudyDefinition, name: str) -> tuple[str, str] | None:
    """A FORM.ITEM of the ``dose_escalation`` block (checked when the study was loaded)."""
    declared = getattr(definition.dose_escalation, name, None)
    if declared is None:
        return None
    try:
        definition.item(*declared)
    except UnknownOidError:
        return None
    return declared


def _sources(definition: StudyDefinition) -> _Sources | None:
    esc = definition.dose_escalation
    if esc is None or esc.dlt_anchor not in definition.anchors:
        return None
    anchor = definition.anchors[esc.dlt_anchor]
    form = definition.form(anchor[0])
    group = form.group(form.item(anchor[1]).group)
    times = [i.oid for i in group.items if i.type is ItemType.TIME]
    stops = tuple(definition.anchors[a] for a in definition.schedule.stop.anchors
                  if a in definition.anchors)
    return _Sources(anchor, (form.oid, times[0]) if times else None,
                    _item_key(definition, "full_dose_item"), _item_key(definition, "dlt_item"),
                    stops)


def _values(session: Session, subject: Subject, keys: set[tuple[str, str]]):
    if not keys:
        return {}
    rows = session.execute(
        select(ItemValue.form_oid, ItemValue.item_oid, ItemValue.value, ItemValue.value_date)
        .outerjoin(GroupRow, and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                                  GroupRow.group_oid == ItemValue.group_oid,
                                  GroupRow.row == ItemValue.row))
        .where(ItemValue.subject_id == subject.id,
               ItemValue.item_oid.in_(sorted({i for _, i in keys})),
               ItemValue.value.is_not(None), GroupRow.removed_at.is_(None))
        .order_by(ItemValue.id))
    found: dict[tuple[str, str], list[tuple[str, dt.date | None]]] = {}
    for form_oid, item_oid, value, day in rows:
        if (form_oid, item_oid) in keys:
            found.setdefault((form_oid, item_oid), []).append((value, day))
    return found


def _window(definition: StudyDefinition, sources: _Sources, values, subject: Subject
            ) -> DltWindow | None:
    days = [d for _, d in values.get(sources.anchor, []) if d is not None]
    if not days:
        return None
    day = min(days)
    clock, known = dt.time(0, 0), False
    if sources.time and values.get(sources.time):
        try:
            clock, known = dt.time.fromisoformat(values[sources.time][0][0]), True
        except ValueError:
            pass
    zone = subject.site.timezone or "UTC"
    start = dt.datetime.combine(day, clock, ZoneInfo(zone))
    period = definition.dose_escalation.dlt_window
    end = dt.datetime.combine(period.add_to(day), clock, ZoneInfo(zone))
    return DltWindow(start.astimezone(dt.UTC), end.astimezone(dt.UTC), zone, known)


def subject_window(session: Session, subject: Subject) -> DltWindow | None:
    definition = definition_for(subject.study_version)
    sources = _sources(definition)
    if sources is None:
        return None
    return _window(definition, sources, _values(session, subject, {sources.anchor,
                                                                  *([sources.time]
                                                                    if sources.time else [])}),
                   subject)


# --- candidates ---------------------------------------------------------------------------


def criteria(row: AeRow, log: AeLog, definition: StudyDefinition, window: DltWindow | None
             ) -> tuple[bool, str]:
    """Whether the AE row meets the DLT criteria, and the reason in words."""
    if window is None:
        return False, "the infusion is not recorded, so there is no DLT window"
    onset = onset_of(row)
    if onset is None:
        return False, "no onset date"
    earliest, latest = onset.earliest(), onset.latest()
    if latest < window.first_day or earliest > window.last_day:
        return False, f"onset {onset} is outside the DLT window ({window})"
    inside = "within" if window.first_day <= earliest and latest <= window.last_day \
        else "possibly within"
    item = dlt_causality_item(definition, log)
    if item is None:
        return False, "the study names no dose_escalation.dlt_drug"
    drug = definition.dose_escalation.dlt_drug
    text = row.get(item)
    try:
        causality = Causality(text) if text else None
    except ValueError:
        causality = None
    if causality is None or causality not in DEFAULT_RELATED:
        return False, f"not related to {drug} ({item} = {text or 'blank'})"
    minimum = int_param(definition, "dlt_min_grade", 3)
    if row.grade is None or row.grade < minimum:
        return False, f"grade {row.grade or 'blank'} is below the DLT grade {minimum}"
    adverb = {"possible": "possibly", "probable": "probably", "definite": "definitely"}
    return True, (f"grade {row.grade} '{row.term}', onset {onset} {inside} the DLT "
                  f"window ({window}), {adverb[causality.value]} related to {drug} ({item})")


def refresh_candidates(session: Session, actor: Actor, subject: Subject,
                       rows: list[AeRow] | None = None,
                       removed: tuple[tuple[int, str, int], ...] = ()) -> list[DltAssessment]:
    """Flag, update or withdraw DLT candidates for the given AE rows (all when None)."""
    definition = definition_for(subject.study_version)
    log = ae_log(definition)
    if log is None or definition.dose_escalation is None \
            or dlt_causality_item(definition, log) is None:
        return []
    if rows is None:
        rows = load_ae_rows(session, [subject.id], log).get(subject.id, [])
    window = subject_window(session, subject)
    existing = {(a.form_instance_id, a.group_oid, a.row): a for a in session.scalars(
        select(DltAssessment).where(DltAssessment.subject_id == subject.id))}
    touched = []
    label = subject.study_version.label
    for row in rows:
        meets, why = criteria(row, log, definition, window)
        found = existing.get(row.key)
        path = ae_row_path(subject, row, log) + "/dlt"
        if found is None:
            if not meets:
                continue
            found = DltAssessment(subject_id=subject.id, form_instance_id=row.form_instance_id,
                                  group_oid=row.group, row=row.row, term=row.term,
                                  candidate_reason=why, meets_criteria=True, status="candidate")
            session.add(found)
            record_clinical(session, actor, subject, "dlt.candidate", path,
                            version_label=label, new="candidate", reason=why)
        elif found.status in ("candidate", "withdrawn"):
            status = "candidate" if meets else "withdrawn"
            if status == found.status and found.candidate_reason == why:
                continue
            record_clinical(session, actor, subject, f"dlt.{status}", path,
                            version_label=label, old=found.status, new=status, reason=why)
            found.status, found.candidate_reason, found.meets_criteria = status, why, meets
            found.term = row.term
        elif found.meets_criteria != meets:
            record_clinical(session, actor, subject, "dlt.criteria_changed", path,
                            version_label=label, old=found.status, new=found.status,
                            reason=f"{'meets' if meets else 'no longer meets'} the criteria: "
                                   f"{why}; the decision stands until reviewed")
            found.meets_criteria = meets
        else:
            continue
        touched.append(found)
    for key in removed:
        found = existing.get(key)
        if found is not None and found.status == "candidate":
            found.status, found.meets_criteria = "withdrawn", False
            record_clinical(session, actor, subject, "dlt.withdrawn",
                            f"{subject.study.oid}/{subject.subject_key}/dlt/{found.id}",
                            version_label=label, old="candidate", new="withdrawn",
                            reason="the AE row was removed")
            touched.append(found)
    session.flush()
    return touched


def decide_dlt(session: Session, actor: Actor, assessment: DltAssessment, decision: str,
               reason: str) -> DltAssessment:
    """The investigator confirms or rejects a candidate (or revises a decision)."""
    audit.bind_actor(session, actor)
    if decision not in DECISIONS:
        raise DltError(f"decision {decision!r} must be one of {', '.join(DECISIONS)}")
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise DltError(f"the reason is {len(reason)} characters long; at most {MAX_REASON} "
                       "are allowed")
    if not reason:
        raise DltError("give the reason for the decision")
    if assessment.status == "withdrawn":
        raise DltError("this AE row no longer meets the DLT criteria: nothing to decide")
    if assessment.status == decision:
        raise DltError(f"the DLT candidate is already {decision}")
    subject = assessment.subject
    old = assessment.status
    assessment.status, assessment.reason = decision, reason
    assessment.decided_at, assessment.decided_by_id = utcnow(), actor.user_id
    fi = session.get(FormInstance, assessment.form_instance_id)
    event = fi.event
    record_clinical(session, actor, subject, f"dlt.{decision}",
                    f"{subject.study.oid}/{subject.subject_key}/{event.event_oid}"
                    f"[{event.repeat}]/{fi.form_oid}/{assessment.group_oid}"
                    f"[{assessment.row}]/dlt",
                    version_label=subject.study_version.label, old=old, new=decision,
                    reason=reason)
    session.flush()
    return assessment


# --- evaluability ---------------------------------------------------------------------------


def dlt_status(session: Session, subject: Subject, now: dt.datetime | None = None
               ) -> DltStatus:
    """DLT evaluability: full dose received and window completed, or a DLT."""
    now = now or utcnow()
    definition = definition_for(subject.study_version)
    sources = _sources(definition)
    if sources is None:
        return DltStatus(False, False, None, "the study has no dose escalation",
                         "not_evaluable")
    keys = {sources.anchor, *sources.stops}
    keys |= {k for k in (sources.time, sources.full_dose, sources.dlt) if k}
    values = _values(session, subject, keys)
    window = _window(definition, sources, values, subject)
    assessments = list(session.scalars(select(DltAssessment).where(
        DltAssessment.subject_id == subject.id).order_by(DltAssessment.id)))
    confirmed = [a for a in assessments if a.status == "confirmed"]
    pending = sum(a.status == "candidate" for a in assessments)
    form_dlt = sources.dlt is not None and any(
        v == "Y" for v, _ in values.get(sources.dlt, []))
    full_values = values.get(sources.full_dose, []) if sources.full_dose else []
    full = None if not full_values else full_values[-1][0] == "Y"
    start, end = (window.start, window.end) if window else (None, None)

    def status(evaluable: bool, has_dlt: bool, reason: str, state: str) -> DltStatus:
        return DltStatus(evaluable, has_dlt, end, reason, state, start, full, pending)

    if confirmed or form_dlt:
        what = "; ".join(f"{a.term or 'AE'} (row {a.row})" for a in confirmed)
        reason = f"DLT confirmed: {what}" if confirmed else \
            f"DLT recorded on {'.'.join(sources.dlt)}"
        return status(True, True, reason, "dlt")
    if window is None:
        return status(False, False, "the infusion is not recorded", "not_treated")
    if full is False:
        return status(False, False, "the full dose was not received", "not_evaluable")
    left = [d for key in sources.stops for _, d in values.get(key, []) if d is not None]
    if left and min(left) < window.last_day:
        return status(False, False, f"left the study on {min(left)}, before the end of the "
                                    f"DLT window ({window})", "not_evaluable")
    if now < window.end:
        if subject.status in CLOSED:
            return status(False, False, f"subject {subject.status.replace('_', ' ')} before "
                                        f"the end of the DLT window", "not_evaluable")
        return status(False, False, f"in the DLT window until {window}", "in_window")
    if pending:
        return status(False, False, f"{pending} DLT candidate(s) await the investigator's "
                                    f"decision", "awaiting")
    if full is None and sources.full_dose is not None:
        return status(False, False, f"the window is over; {'.'.join(sources.full_dose)} "
                                    f"(full dose received) is not recorded", "awaiting")
    return status(True, False, f"full dose received and the DLT window ({window}) completed "
                               f"without a DLT", "evaluable")
