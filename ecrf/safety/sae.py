"""SAE reports: creation from serious AE rows (or by hand), the 24-hour reporting clock,
submission to the sponsor, follow-up versions and SUSAR deadlines.

An SAE report is created when an AE row is saved serious (by the safety hook) or from the
safety page; its awareness is the row's awareness date-time, else the time the row was
first saved serious (an upper bound, replaced once the item is filled). The report counts
as submitted to the sponsor when it is submitted here or when the row's sponsor-report
date-time is recorded. Follow-up reports are new versions linked to the initial one.

SUSAR deadlines are calendar days from the awareness day at the site (day 0): 7 days when
fatal or life-threatening, otherwise 15; the follow-up of a fatal or life-threatening
SUSAR is due 8 days after the initial report, other follow-ups 15 days after the new
information. Functions take (session, actor, ...), flush, never commit.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf.capture import FormInstance, Subject, record_clinical, row_path
from ecrf.core import audit, utcnow
from ecrf.core.audit import Actor
from ecrf.domain.adverse_events import (
    ClockStatus,
    sae_clock_status,
    susar_due,
    susar_followup_due,
)
from ecrf.safety.models import SaeReport
from ecrf.safety.notify import notify
from ecrf.safety.support import (
    AeLog,
    AeRow,
    ae_log,
    fatal_or_life_threatening,
    is_susar,
    load_ae_rows,
    row_snapshot,
)
from ecrf.studies import definition_for

NOTIFICATIONS = "notifications"  # held back while historical data is imported


class SafetyError(ValueError):
    """A safety request that cannot be carried out; the message says why."""


def _zone(subject: Subject) -> ZoneInfo:
    return ZoneInfo(subject.site.timezone or "UTC")


def local_day(subject: Subject, moment: dt.datetime) -> dt.date:
    return moment.astimezone(_zone(subject)).date()


def report_path(subject: Subject, report: SaeReport, event_oid: str, repeat: int,
                form_oid: str) -> str:
    return (row_path(subject, event_oid, repeat, form_oid, report.group_oid, report.row)
            + f"/sae/v{report.version}")


def _path(session: Session, subject: Subject, report: SaeReport) -> str:
    fi = session.get(FormInstance, report.form_instance_id)
    return report_path(subject, report, fi.event.event_oid, fi.event.repeat, fi.form_oid)


def clock(report: SaeReport, now: dt.datetime | None = None) -> ClockStatus:
    return sae_clock_status(report.awareness_at, report.submitted_at, now or utcnow())


# --- SAE reports ------------------------------------------------------------------------------


def _susar_fields(subject: Subject, report: SaeReport, row: AeRow | None, log: AeLog,
                  initial: SaeReport | None) -> tuple[bool, bool, dt.date | None]:
    if row is None:
        return report.susar, report.susar_fatal, report.susar_due
    susar = is_susar(row, log)
    fatal = susar and fatal_or_life_threatening(row)
    if not susar:
        return False, False, None
    aware = local_day(subject, report.awareness_at)
    if initial is None:
        return True, fatal, susar_due(aware, fatal)
    if initial.susar_fatal:
        first = local_day(subject, initial.submitted_at) if initial.submitted_at else None
        return True, fatal, susar_followup_due(local_day(subject, initial.awareness_at),
                                               initial_report_date=first)
    return True, fatal, susar_due(aware, False)


def _notify_report(session: Session, actor: Actor, subject: Subject, report: SaeReport,
                   what: str, row: AeRow | None) -> None:
    """Tell the safety desk (queued, in this transaction). The clock above is computed
    from the report alone: a notification that cannot leave changes nothing in it. Never
    while historical data is imported: that would e-mail about past events."""
    if audit.held_back(session, NOTIFICATIONS):
        return
    term = (row.term if row else None) or report_term(report)
    due = clock(report).due_at
    lines = [f"Study: {subject.study.name} ({subject.study.oid})",
             f"Subject: {subject.subject_key} (site {subject.site.code}, {subject.site.name})",
             f"Adverse event: {term}",
             f"Report version: {report.version}",
             f"Awareness: {report.awareness_at:%Y-%m-%d %H:%M} UTC",
             f"Report due to the sponsor by: {due:%Y-%m-%d %H:%M} UTC"]
    if report.submitted_at:
        lines.append(f"Submitted: {report.submitted_at:%Y-%m-%d %H:%M} UTC")
    if report.susar:
        lines.append(f"SUSAR: expedited report due by {report.susar_due} "
                     f"({'fatal or life-threatening' if report.susar_fatal else 'other'})")
    notify(session, study_id=subject.study_id, sae_report_id=report.id, actor=actor,
           subject=f"[{subject.study.oid}] {what}: {subject.subject_key} {term}"[:300],
           body="\n".join(lines))


def sync_reports(session: Session, actor: Actor, subject: Subject, log: AeLog,
                 rows: list[AeRow], now: dt.datetime | None = None) -> list[SaeReport]:
    """Create or update the SAE reports of these AE rows from their stored values."""
    now = now or utcnow()
    keys = {r.key for r in rows}
    reports = defaultdict(list)
    for report in session.scalars(select(SaeReport).where(
            SaeReport.subject_id == subject.id).order_by(SaeReport.version)):
        reports[(report.form_instance_id, report.group_oid, report.row)].append(report)
    label = subject.study_version.label
    touched = []
    for row in rows:
        versions = reports.get(row.key, [])
        path_base = row_path(subject, row.event_oid, row.repeat, log.form_oid, row.group,
                             row.row)
        aware = row.awareness
        if not versions:
            if not row.serious:
                continue
            report = SaeReport(subject_id=subject.id, form_instance_id=row.form_instance_id,
                               group_oid=row.group, row=row.row, version=1,
                               awareness_at=aware or now,
                               awareness_source="form" if aware else "entry",
                               content=json.dumps(row_snapshot(row)), created_at=now,
                               created_by_id=actor.user_id)
            report.susar, report.susar_fatal, report.susar_due = _susar_fields(
                subject, report, row, log, None)
            session.add(report)
            session.flush()
            record_clinical(session, actor, subject, "sae.created", f"{path_base}/sae/v1",
                            version_label=label,
                            new=f"awareness {report.awareness_at:%Y-%m-%d %H:%M} UTC "
                                f"({report.awareness_source})",
                            reason="AE row saved as serious",
                            details={"susar": report.susar, "susar_due": report.susar_due})
            _notify_report(session, actor, subject, report, "New SAE", row)
            touched.append(report)
            versions = [report]
        initial, latest = versions[0], versions[-1]
        path = f"{path_base}/sae/v{initial.version}"
        if aware is not None and (aware != initial.awareness_at
                                  or initial.awareness_source != "form"):
            record_clinical(session, actor, subject, "sae.awareness_changed", path,
                            version_label=label, old=initial.awareness_at, new=aware,
                            reason=f"from {log.form_oid}.{log.spec.awareness}")
            initial.awareness_at, initial.awareness_source = aware, "form"
            touched.append(initial)
        reported = row.sponsor_report
        if reported is not None and initial.submitted_at is None:
            initial.submitted_at, initial.submitted_by_id = reported, actor.user_id
            initial.content = json.dumps(row_snapshot(row))
            record_clinical(session, actor, subject, "sae.submitted", path,
                            version_label=label, new=reported,
                            reason=f"reported to the sponsor "
                                   f"({log.form_oid}.{log.spec.sponsor_report})")
            _notify_report(session, actor, subject, initial, "SAE submitted", row)
            touched.append(initial)
        for report in {initial, latest}:
            found = _susar_fields(subject, report, row, log,
                                  None if report is initial else initial)
            current = (report.susar, report.susar_fatal, report.susar_due)
            if found != current:
                record_clinical(session, actor, subject, "sae.susar", path,
                                version_label=label, old=_susar_text(*current),
                                new=_susar_text(*found),
                                reason="seriousness, causality or expectedness changed")
                report.susar, report.susar_fatal, report.susar_due = found
                if found[0] and not current[0]:
                    _notify_report(session, actor, subject, report, "SUSAR", row)
                touched.append(report)
        if latest.submitted_at is None and row.key in keys:
            latest.content = json.dumps(row_snapshot(row))
    session.flush()
    return touched


def _susar_text(susar: bool, fatal: bool, due: dt.date | None) -> str:
    if not susar:
        return "not a SUSAR"
    return f"SUSAR ({'fatal or life-threatening' if fatal else 'other'}), due {due}"


def _row_for(session: Session, subject: Subject, log: AeLog, report: SaeReport) -> AeRow | None:
    rows = load_ae_rows(session, [subject.id], log,
                        form_instance_id=report.form_instance_id).get(subject.id, [])
    return next((r for r in rows if r.key == (report.form_instance_id, report.group_oid,
                                              report.row)), None)


def create_report(session: Session, actor: Actor, subject: Subject, row_number: int,
                  awareness_at: dt.datetime) -> SaeReport:
    """Open an SAE report by hand for a serious AE row that has none."""
    audit.bind_actor(session, actor)
    log = subject_ae_log(subject)
    if awareness_at.tzinfo is None:
        raise SafetyError("the awareness time needs a time zone")
    if awareness_at > utcnow():
        raise SafetyError("the awareness time is in the future")
    rows = load_ae_rows(session, [subject.id], log).get(subject.id, [])
    row = next((r for r in rows if r.row == row_number), None)
    if row is None:
        raise SafetyError(f"there is no AE row {row_number}")
    if not row.serious:
        raise SafetyError(f"AE row {row_number} is not serious: record serious = Yes and its "
                          f"criteria in the AE log first")
    if session.scalar(select(SaeReport.id).where(
            SaeReport.form_instance_id == row.form_instance_id,
            SaeReport.group_oid == row.group, SaeReport.row == row.row)):
        raise SafetyError(f"AE row {row_number} already has an SAE report")
    report = SaeReport(subject_id=subject.id, form_instance_id=row.form_instance_id,
                       group_oid=row.group, row=row.row, version=1,
                       awareness_at=awareness_at.astimezone(dt.UTC), awareness_source="manual",
                       content=json.dumps(row_snapshot(row)), created_by_id=actor.user_id)
    report.susar, report.susar_fatal, report.susar_due = _susar_fields(subject, report, row,
                                                                       log, None)
    session.add(report)
    session.flush()
    record_clinical(session, actor, subject, "sae.created", _path(session, subject, report),
                    version_label=subject.study_version.label,
                    new=f"awareness {report.awareness_at:%Y-%m-%d %H:%M} UTC (manual)",
                    reason="opened from the safety page")
    _notify_report(session, actor, subject, report, "New SAE", row)
    return report


def submit_report(session: Session, actor: Actor, report: SaeReport,
                  now: dt.datetime | None = None) -> SaeReport:
    """Record the submission of a report version to the sponsor, now."""
    audit.bind_actor(session, actor)
    now = now or utcnow()
    if report.submitted_at is not None:
        raise SafetyError(f"version {report.version} was already submitted")
    subject = report.subject
    log = subject_ae_log(subject)
    row = _row_for(session, subject, log, report)
    if row is not None:
        report.content = json.dumps(row_snapshot(row))
    report.submitted_at, report.submitted_by_id = now, actor.user_id
    state = clock(report, now).state
    record_clinical(session, actor, subject, "sae.submitted", _path(session, subject, report),
                    version_label=subject.study_version.label, new=now,
                    reason=f"submitted to the sponsor ({state.replace('_', ' ')})")
    _notify_report(session, actor, subject, report, "SAE submitted", row)
    session.flush()
    return report


def add_followup(session: Session, actor: Actor, report: SaeReport,
                 awareness_at: dt.datetime) -> SaeReport:
    """A follow-up report (new information), as the next version of the SAE report."""
    audit.bind_actor(session, actor)
    if awareness_at.tzinfo is None:
        raise SafetyError("the awareness time needs a time zone")
    if awareness_at > utcnow():
        raise SafetyError("the awareness time is in the future")
    subject = report.subject
    versions = list(session.scalars(select(SaeReport).where(
        SaeReport.form_instance_id == report.form_instance_id,
        SaeReport.group_oid == report.group_oid, SaeReport.row == report.row)
        .order_by(SaeReport.version)))
    initial, latest = versions[0], versions[-1]
    if latest.submitted_at is None:
        raise SafetyError(f"version {latest.version} is not submitted yet: submit it before "
                          f"adding a follow-up")
    if awareness_at < initial.awareness_at:
        raise SafetyError("new information cannot predate the initial awareness")
    log = subject_ae_log(subject)
    row = _row_for(session, subject, log, report)
    followup = SaeReport(subject_id=subject.id, form_instance_id=report.form_instance_id,
                         group_oid=report.group_oid, row=report.row,
                         version=latest.version + 1, initial_id=initial.id,
                         awareness_at=awareness_at.astimezone(dt.UTC),
                         awareness_source="manual",
                         content=json.dumps(row_snapshot(row)) if row else latest.content,
                         created_by_id=actor.user_id)
    followup.susar, followup.susar_fatal, followup.susar_due = _susar_fields(
        subject, followup, row, log, initial) if row else (
        initial.susar, initial.susar_fatal, None)
    session.add(followup)
    session.flush()
    record_clinical(session, actor, subject, "sae.followup_created",
                    _path(session, subject, followup),
                    version_label=subject.study_version.label,
                    new=f"version {followup.version}, new information "
                        f"{followup.awareness_at:%Y-%m-%d %H:%M} UTC",
                    reason="follow-up report")
    _notify_report(session, actor, subject, followup, "SAE follow-up", row)
    return followup


def subject_ae_log(subject: Subject) -> AeLog:
    log = ae_log(definition_for(subject.study_version))
    if log is None:
        raise SafetyError(f"{subject.study.name} has no AE log: its study definition declares "
                          f"no adverse_events block")
    return log


def report_term(report: SaeReport, log: AeLog | None = None) -> str:
    """The AE term of a report's snapshot, read with the AE log of ``log`` (default: the
    subject's definition)."""
    if log is None:
        log = ae_log(definition_for(report.subject.study_version))
    if log is None:
        return ""
    return json.loads(report.content or "{}").get(log.spec.term, "")
