"""Safety use cases: the API the views, CLI and other areas call. AE prompts from graded
labs and their decisions, the subject and study safety overviews; SAE reports
(``sae``) and DLT (``dlt``) are re-exported here. Functions take
(session, actor, ...), flush, never commit.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf import accounts, capture
from ecrf.accounts import User
from ecrf.capture import MAX_REASON, Subject, record_clinical, subject_schedule_data
from ecrf.core import DashboardPanel, add_panel, audit, utcnow
from ecrf.core.audit import Actor
from ecrf.domain.adverse_events import ClockStatus, Finding, check_consistency
from ecrf.safety.dlt import (  # noqa: F401  (the safety API, in one place)
    DltError,
    DltStatus,
    decide_dlt,
    dlt_status,
)
from ecrf.safety.models import AeGradePrompt, DltAssessment, SaeReport
from ecrf.safety.notify import NotificationView, notification_problems, report_notifications
from ecrf.safety.sae import (  # noqa: F401
    SafetyError,
    add_followup,
    clock,
    create_report,
    report_path,
    report_term,
    subject_ae_log,
    submit_report,
    sync_reports,
)
from ecrf.safety.support import AeLog, AeRow, Definitions, ae_log, load_ae_rows, to_adverse_event
from ecrf.studies import Site, Study, definition_for

# --- AE prompts -------------------------------------------------------------------------------


def accept_prompt(session: Session, actor: Actor, prompt: AeGradePrompt, *,
                  link_row: int | None = None, today: dt.date | None = None) -> AeGradePrompt:
    """Record the suggested AE (a new AE log row, pre-filled) or link an existing row."""
    audit.bind_actor(session, actor)
    if prompt.status != "open":
        raise SafetyError(f"this suggestion was already {prompt.status}")
    subject = prompt.subject
    log = subject_ae_log(subject)
    if log.event_oid is None:
        raise SafetyError(f"no event holds the AE log form {log.form_oid}")
    if link_row is not None:
        rows = load_ae_rows(session, [subject.id], log).get(subject.id, [])
        row = next((r for r in rows if r.row == link_row), None)
        if row is None:
            raise SafetyError(f"there is no AE row {link_row} to link")
        fi_id, number, how = row.form_instance_id, row.row, f"linked to AE row {link_row}"
    else:
        event = capture.event_instance(session, subject, log.event_oid, 1)
        if event is None:
            capture.open_event(session, actor, subject, log.event_oid, 1, None, today=today)
        opened = capture.load_form(session, subject, log.event_oid, 1, log.form_oid,
                                   today=today)
        number = opened.next_row(log.group)
        values = {(log.group, number, log.spec.term): prompt.term,
                  (log.group, number, log.spec.grade): str(prompt.grade)}
        if prompt.first_date is not None:
            values[(log.group, number, log.spec.onset)] = prompt.first_date.isoformat()
        result = capture.save_form(session, actor, subject, log.event_oid, 1, log.form_oid,
                                   capture.Submission(values=values, partial=True),
                                   base_version=opened.version, complete=False, today=today)
        if not result.saved:
            problems = [str(m) for messages in result.errors.values() for m in messages]
            problems += [str(m) for m in result.form_errors]
            raise SafetyError("the AE row could not be saved: " + "; ".join(problems))
        fi_id, how = result.form_instance.id, f"recorded as AE row {number}"
    prompt.status, prompt.decided_at, prompt.decided_by_id = "accepted", utcnow(), actor.user_id
    prompt.ae_form_instance_id, prompt.ae_group_oid, prompt.ae_row = fi_id, log.group, number
    prompt.reason = how
    record_clinical(session, actor, subject, "ae_prompt.accepted", prompt_path(prompt),
                    version_label=subject.study_version.label, old="open", new="accepted",
                    reason=how)
    session.flush()
    return prompt


def decline_prompt(session: Session, actor: Actor, prompt: AeGradePrompt,
                   reason: str) -> AeGradePrompt:
    audit.bind_actor(session, actor)
    if prompt.status != "open":
        raise SafetyError(f"this suggestion was already {prompt.status}")
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise SafetyError(f"the reason is {len(reason)} characters long; at most {MAX_REASON} "
                          "are allowed")
    if not reason:
        raise SafetyError("give the reason for not recording this AE")
    prompt.status, prompt.reason = "declined", reason
    prompt.decided_at, prompt.decided_by_id = utcnow(), actor.user_id
    record_clinical(session, actor, prompt.subject, "ae_prompt.declined", prompt_path(prompt),
                    version_label=prompt.subject.study_version.label, old="open",
                    new="declined", reason=reason)
    session.flush()
    return prompt


def prompt_path(prompt: AeGradePrompt) -> str:
    subject = prompt.subject
    return f"{subject.study.oid}/{subject.subject_key}/ae_prompt/{prompt.id}"


# --- overviews --------------------------------------------------------------------------------


@dataclass
class RowSafety:
    row: AeRow
    findings: list[Finding]
    reports: list[SaeReport]
    dlt: DltAssessment | None


@dataclass
class SubjectSafety:
    subject: Subject
    log: AeLog | None
    rows: list[RowSafety] = field(default_factory=list)
    prompts: list[AeGradePrompt] = field(default_factory=list)
    dlt: DltStatus | None = None
    # SAE report id -> its notifications with their delivery state
    notifications: dict[int, list[NotificationView]] = field(default_factory=dict)


def subject_safety(session: Session, subject: Subject,
                   now: dt.datetime | None = None) -> SubjectSafety:
    """Everything the subject's safety page shows, in a fixed number of queries."""
    definition = definition_for(subject.study_version)
    log = ae_log(definition)
    result = SubjectSafety(subject, log)
    result.prompts = list(session.scalars(select(AeGradePrompt).where(
        AeGradePrompt.subject_id == subject.id).order_by(AeGradePrompt.id.desc())))
    if definition.dose_escalation is not None:
        result.dlt = dlt_status(session, subject, now)
    if log is None:
        return result
    consent = subject_schedule_data(session, definition, subject).anchors.get("consent")
    reports = defaultdict(list)
    for report in session.scalars(select(SaeReport).where(
            SaeReport.subject_id == subject.id).order_by(SaeReport.version)):
        reports[(report.form_instance_id, report.group_oid, report.row)].append(report)
    dlts = {(a.form_instance_id, a.group_oid, a.row): a for a in session.scalars(
        select(DltAssessment).where(DltAssessment.subject_id == subject.id))}
    for row in load_ae_rows(session, [subject.id], log).get(subject.id, []):
        findings = check_consistency(to_adverse_event(row, log), consent_date=consent)
        result.rows.append(RowSafety(row, findings, reports.get(row.key, []),
                                     dlts.get(row.key)))
    result.notifications = report_notifications(
        session, [r.id for versions in reports.values() for r in versions])
    return result


@dataclass(frozen=True)
class ReportView:
    report: SaeReport
    subject_key: str
    site_code: str
    timezone: str
    term: str
    clock: ClockStatus


def study_reports(session: Session, study: Study, site_ids: set[int] | None,
                  now: dt.datetime | None = None) -> list[ReportView]:
    """Every SAE report version of the study at the given sites, newest first (one query)."""
    now = now or utcnow()
    stmt = (select(SaeReport, Subject.subject_key, Site.code, Site.timezone,
                   Subject.study_version_id)
            .join(Subject, Subject.id == SaeReport.subject_id)
            .join(Site, Site.id == Subject.site_id)
            .where(Subject.study_id == study.id)
            .order_by(SaeReport.awareness_at.desc(), SaeReport.id.desc()))
    if site_ids is not None:
        stmt = stmt.where(Subject.site_id.in_(site_ids or {-1}))
    views = []
    definitions = Definitions(session)  # one statement per version, not per report
    for report, key, code, tz, version_id in session.execute(stmt):
        term = report_term(report, ae_log(definitions.get(version_id)))
        views.append(ReportView(report, key, code, tz, term, clock(report, now)))
    return views


def running_sae_clocks(session: Session, user: User, study: Study) -> list[ReportView]:
    """SAE reports whose reporting clock still runs, at the user's sites."""
    site_ids = accounts.site_ids_for(user, "subjects.view", study)
    return [view for view in study_reports(session, study, site_ids)
            if view.clock.remaining is not None]


SAE_CLOCKS_PANEL = DashboardPanel("safety.sae_clocks", frozenset({"investigator"}),
                         "safety/_dashboard_sae_clocks.html", running_sae_clocks)


NOTIFICATIONS_PANEL = DashboardPanel(
    "safety.notifications", frozenset({"data_manager"}),
    "safety/_dashboard_notifications.html",
    lambda session, user, study: notification_problems(session, study))


def register() -> None:
    """Add safety's panels to the dashboards; the app factory calls this at start-up."""
    add_panel(SAE_CLOCKS_PANEL)
    add_panel(NOTIFICATIONS_PANEL)


def study_pending(session: Session, study: Study, site_ids: set[int] | None
                  ) -> tuple[list[tuple[AeGradePrompt, str]], list[tuple[DltAssessment, str]]]:
    """Open AE prompts and undecided DLT candidates of the study (two queries)."""
    def scoped(stmt):
        stmt = stmt.join(Subject).where(Subject.study_id == study.id)
        return stmt.where(Subject.site_id.in_(site_ids or {-1})) if site_ids is not None \
            else stmt

    prompts = session.execute(scoped(select(AeGradePrompt, Subject.subject_key).where(
        AeGradePrompt.status == "open")).order_by(AeGradePrompt.id)).all()
    dlts = session.execute(scoped(select(DltAssessment, Subject.subject_key).where(
        DltAssessment.status == "candidate")).order_by(DltAssessment.id)).all()
    return [tuple(r) for r in prompts], [tuple(r) for r in dlts]
