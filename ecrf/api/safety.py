"""Safety through the API: a subject's safety state (SAE reports with their clocks and
notifications, AE prompts, DLT), the study's SAE clocks, and the decisions of the safety
page (open, submit and follow up an SAE report; accept or decline an AE prompt; retry a
notification).

Every operation calls the safety services the screens call, with the same permission
names, site scoping (a subject, report or prompt of another site is simply not found:
404) and audit rows. Awareness times are sent as on the screen: 'YYYY-MM-DD HH:MM' (or
'YYYY-MM-DDTHH:MM') in the time zone of the subject's site. A decline reason is bounded
as on the screen (MAX_REASON characters): a longer text is refused (422), never cut.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from flask import g, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ecrf import review, safety
from ecrf.accounts import Allow, request_actor, site_ids_for
from ecrf.accounts import register_route as register
from ecrf.api.blueprint import bp
from ecrf.api.bodies import body_of as _body
from ecrf.api.bodies import invalid as _invalid
from ecrf.api.bodies import no_nul as _no_nul
from ecrf.api.bodies import text_field as _string
from ecrf.api.common import MAX_ID, iso, paged, sort_time
from ecrf.api.common import subject_or_404 as _subject_or_404
from ecrf.api.errors import ApiProblem
from ecrf.capture import MAX_REASON, Subject, actor_for, may
from ecrf.core import bounded_moment, db, utcnow
from ecrf.core.web import transaction

register("api.subject_safety", Allow("subjects.view"))
register("api.sae_report", Allow("subjects.view"))
register("api.sae_clocks", Allow("subjects.view"))
register("api.prompt_accept", Allow("data.enter"))
register("api.prompt_decline", Allow("safety.assess"))
register("api.sae_create", Allow("data.enter"))
register("api.sae_submit", Allow("safety.assess"))
register("api.sae_followup", Allow("safety.assess"))
register("api.notification_retry", Allow("safety.notifications"))
register("api.notifications", Allow("safety.notifications"))

NOTIFICATION_STATES = ("problems", "failed", "retrying")
MAX_NOTIFICATIONS = 100_000

STUDY = "/studies/<study_oid>"
SAFETY = STUDY + "/subjects/<subject_key>/safety"
REPORT = SAFETY + "/sae/<int:report_id>"
PROMPT = SAFETY + "/prompts/<int:prompt_id>"

_LOCAL = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})[ T]([0-9]{2}:[0-9]{2})")


# --- reading bodies -----------------------------------------------------------------------










def _row(data: dict, name: str, *, required: bool) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise _invalid(name, _("'%(field)s' is required: the number of the AE row.",
                                   field=name))
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise _invalid(name, _("'%(field)s' must be a whole number from 1 to %(max)s.",
                               field=name, max=MAX_ID))
    return value


def _awareness(data: dict, subject: Subject, name: str = "awareness") -> dt.datetime:
    """The awareness date-time as the screen reads it: local time at the subject's site."""
    text = _string(data, name, 40)
    if text is None or not text.strip():
        raise _invalid(name, _("'%(field)s' is required: when the site became aware, as "
                               "YYYY-MM-DD HH:MM at the site.", field=name))
    match = _LOCAL.fullmatch(text.strip())
    try:
        if match is None:
            raise ValueError(text)
        naive = dt.datetime.strptime(f"{match[1]} {match[2]}", "%Y-%m-%d %H:%M")
        moment = bounded_moment(naive.replace(tzinfo=ZoneInfo(subject.site.timezone or "UTC")))
        if moment is None or moment.year < 1901:
            raise ValueError(text)
    except ValueError:
        raise _invalid(name, _("Enter the date and time as YYYY-MM-DD HH:MM (you entered "
                               "'%(value)s').", value=text.strip()[:40])) from None
    return moment.astimezone(dt.UTC)


def _subject(subject_key: str, action: str) -> Subject:
    _no_nul("subject_key", subject_key)
    if len(subject_key) > 64:  # longer than any subject key: nothing to look up
        raise ApiProblem(404, _("There is no subject %(key)s in %(study)s at your sites.",
                                key=subject_key[:64] + "...", study=g.study.oid))
    return _subject_or_404(subject_key, action)


def _forbid_unless(action: str, subject: Subject) -> None:
    if not may(action, subject):
        raise ApiProblem(403, _("Your roles in %(study)s do not allow this at site %(site)s "
                                "(it needs the permission '%(action)s').",
                                study=g.study.oid, site=subject.site.code, action=action))


def _owned(model, object_id: int, subject: Subject, what: str):
    found = db.session.get(model, object_id) if object_id <= MAX_ID else None
    if found is None or found.subject_id != subject.id:
        raise ApiProblem(404, _("%(subject)s has no %(what)s %(id)s.",
                                subject=subject.subject_key, what=what, id=object_id))
    return found


def _run(work):
    try:
        with transaction():
            return work()
    except (safety.SafetyError, safety.DltError) as exc:
        raise ApiProblem(422, _("Nothing was done: %(problem)s", problem=str(exc))) from None
    except review.DataLockedError as exc:  # the AE log form, its subject or site is locked
        raise ApiProblem(423, _("Nothing was done: %(problem)s", problem=str(exc))) from None


# --- documents ----------------------------------------------------------------------------


def _minutes(delta: dt.timedelta | None) -> int | None:
    return None if delta is None else int(delta.total_seconds() // 60)


def _notification(view) -> dict:
    entry = view.entry
    return {"id": entry.id, "sae_report_id": entry.sae_report_id, "channel": entry.channel,
            "subject": entry.subject, "logged_at": iso(entry.logged_at),
            "sent_at": iso(entry.sent_at), "error": entry.error, "state": str(view.state),
            "attempts": view.attempts, "max_attempts": view.max_attempts,
            "next_attempt": iso(view.next_attempt)}


def report_document(report, term: str, subject_key: str, site_code: str, *,
                    now: dt.datetime, notifications: list | None = None,
                    followups: list[int] | None = None) -> dict:
    state = safety.clock(report, now)
    found = {
        "id": report.id, "subject_key": subject_key, "site_code": site_code,
        "group_oid": report.group_oid, "row": report.row, "version": report.version,
        "initial_id": report.initial_id, "term": term,
        "awareness_at": iso(report.awareness_at), "awareness_source": report.awareness_source,
        "due_at": iso(state.due_at), "submitted_at": iso(report.submitted_at),
        "clock": str(state.state), "overdue": state.state in ("overdue", "submitted_late"),
        "remaining_minutes": _minutes(state.remaining),
        "susar": report.susar, "susar_fatal": report.susar_fatal,
        "susar_due": iso(report.susar_due), "created_at": iso(report.created_at),
        "url": url_for("api.sae_report", study_oid=g.study.oid, subject_key=subject_key,
                       report_id=report.id)}
    if notifications is not None:
        found["notifications"] = [_notification(v) for v in notifications]
    if followups is not None:
        found["followup_ids"] = followups
    return found


def _prompt(prompt, subject_key: str) -> dict:
    return {"id": prompt.id, "status": prompt.status, "test": prompt.test,
            "term": prompt.term, "grade": prompt.grade, "grade_version": prompt.grade_version,
            "value": prompt.value, "unit": prompt.unit, "first_date": iso(prompt.first_date),
            "last_date": iso(prompt.last_date), "reason": prompt.reason,
            "ae_group_oid": prompt.ae_group_oid, "ae_row": prompt.ae_row,
            "created_at": iso(prompt.created_at), "decided_at": iso(prompt.decided_at),
            "url": url_for("api.subject_safety", study_oid=g.study.oid,
                           subject_key=subject_key) + f"#prompt-{prompt.id}"}


def _dlt(assessment) -> dict:
    return {"id": assessment.id, "group_oid": assessment.group_oid, "row": assessment.row,
            "term": assessment.term, "status": assessment.status,
            "candidate_reason": assessment.candidate_reason,
            "meets_criteria": assessment.meets_criteria, "reason": assessment.reason,
            "created_at": iso(assessment.created_at), "decided_at": iso(assessment.decided_at)}


def _dlt_status(status) -> dict | None:
    if status is None:
        return None
    return {"state": status.state, "evaluable": status.evaluable, "has_dlt": status.has_dlt,
            "reason": status.reason, "window_start": iso(status.window_start),
            "window_end": iso(status.window_end), "full_dose": status.full_dose,
            "pending_candidates": status.pending_candidates}


def safety_document(subject: Subject) -> dict:
    now = utcnow()
    overview = safety.subject_safety(db.session, subject, now)
    key, code = subject.subject_key, subject.site.code
    reports, rows, dlts = [], [], []
    for entry in overview.rows:
        followups = [r.id for r in entry.reports if r.version > 1]
        for report in entry.reports:
            reports.append(report_document(
                report, safety.report_term(report, overview.log), key, code, now=now,
                notifications=overview.notifications.get(report.id, []),
                followups=followups if report.version == 1 else []))
        if entry.dlt is not None:
            dlts.append(_dlt(entry.dlt))
        row = entry.row
        rows.append({"group_oid": row.group, "row": row.row, "term": row.term,
                     "serious": bool(row.serious),
                     "sae_report_ids": [r.id for r in entry.reports],
                     "findings": [{"code": f.code, "severity": str(f.severity),
                                   "message": f.message} for f in entry.findings]})
    reports.sort(key=lambda r: (r["awareness_at"], r["id"]), reverse=True)
    return {
        "study_oid": g.study.oid, "subject_key": key, "site_code": code,
        "timezone": subject.site.timezone or "UTC", "has_ae_log": overview.log is not None,
        "ae_rows": rows, "sae_reports": reports,
        "prompts": [_prompt(p, key) for p in overview.prompts],
        "dlt": _dlt_status(overview.dlt), "dlt_assessments": dlts,
        "allowed": {"enter": may("data.enter", subject),
                    "assess": may("safety.assess", subject)}}


def _report_view(subject: Subject, report) -> dict:
    overview = safety.subject_safety(db.session, subject)
    entry = next((e for e in overview.rows if report in e.reports), None)
    followups = [r.id for r in entry.reports if r.version > 1] if entry else []
    return report_document(
        report, safety.report_term(report, overview.log), subject.subject_key,
        subject.site.code, now=utcnow(), notifications=overview.notifications.get(
            report.id, []), followups=followups if report.version == 1 else [])


def _created(subject: Subject, report_id: int):
    document = _report_view(subject, db.session.get(safety.SaeReport, report_id))
    return document, 201, {"Location": document["url"]}


# --- reading ------------------------------------------------------------------------------


@bp.get(SAFETY, endpoint="subject_safety")
def subject_safety(study_oid: str, subject_key: str):
    return safety_document(_subject(subject_key, "subjects.view"))


@bp.get(REPORT, endpoint="sae_report")
def sae_report(study_oid: str, subject_key: str, report_id: int):
    subject = _subject(subject_key, "subjects.view")
    return _report_view(subject, _owned(safety.SaeReport, report_id, subject, "SAE report"))


@bp.get(STUDY + "/safety/sae-clocks", endpoint="sae_clocks")
def sae_clocks(study_oid: str):
    running = request.args.get("running", "").strip() or "true"
    if running not in ("true", "false"):
        raise ApiProblem(400, _("The query argument 'running' must be true or false (got "
                                "'%(value)s').", value=running[:40]))
    now = utcnow()
    if running == "true":
        views = safety.running_sae_clocks(db.session, current_user, g.study)
    else:
        views = safety.study_reports(db.session, g.study,
                                     site_ids_for(current_user, "subjects.view", g.study), now)
    counts = {state: sum(1 for v in views if v.clock.state == state)
              for state in ("due", "overdue", "submitted_in_time", "submitted_late")}
    # Most urgent first: by the deadline, then the report.
    found = paged("sae-clocks", views, key=lambda v: (sort_time(v.clock.due_at), v.report.id),
                  shape=(str, int),
                  render=lambda v: report_document(v.report, v.term, v.subject_key,
                                                   v.site_code, now=now))
    return {**found, "counts": counts}


# --- SAE reports --------------------------------------------------------------------------


@bp.post(SAFETY + "/sae", endpoint="sae_create")
def sae_create(study_oid: str, subject_key: str):
    subject = _subject(subject_key, "data.enter")
    data = _body({"row", "awareness"})
    row = _row(data, "row", required=True)
    awareness = _awareness(data, subject)
    _forbid_unless("data.enter", subject)
    report = _run(lambda: safety.create_report(
        db.session, actor_for("data.enter", subject), subject, row, awareness))
    return _created(subject, report.id)


@bp.post(REPORT + "/submit", endpoint="sae_submit")
def sae_submit(study_oid: str, subject_key: str, report_id: int):
    subject = _subject(subject_key, "safety.assess")
    report = _owned(safety.SaeReport, report_id, subject, "SAE report")
    _body(set(), optional=True)
    _forbid_unless("safety.assess", subject)
    _run(lambda: safety.submit_report(db.session, actor_for("safety.assess", subject),
                                      report))
    return _report_view(subject, report)


@bp.post(REPORT + "/followup", endpoint="sae_followup")
def sae_followup(study_oid: str, subject_key: str, report_id: int):
    subject = _subject(subject_key, "safety.assess")
    report = _owned(safety.SaeReport, report_id, subject, "SAE report")
    awareness = _awareness(_body({"awareness"}), subject)
    _forbid_unless("safety.assess", subject)
    followup = _run(lambda: safety.add_followup(
        db.session, actor_for("safety.assess", subject), report, awareness))
    return _created(subject, followup.id)


# --- AE prompts ---------------------------------------------------------------------------


def _prompt_result(subject: Subject, prompt) -> dict:
    db.session.refresh(prompt)
    return _prompt(prompt, subject.subject_key)


@bp.post(PROMPT + "/accept", endpoint="prompt_accept")
def prompt_accept(study_oid: str, subject_key: str, prompt_id: int):
    subject = _subject(subject_key, "data.enter")
    prompt = _owned(safety.AeGradePrompt, prompt_id, subject, "AE prompt")
    link = _row(_body({"link_row"}, optional=True), "link_row", required=False)
    _forbid_unless("data.enter", subject)
    _run(lambda: safety.accept_prompt(db.session, actor_for("data.enter", subject), prompt,
                                      link_row=link))
    return _prompt_result(subject, prompt)


@bp.post(PROMPT + "/decline", endpoint="prompt_decline")
def prompt_decline(study_oid: str, subject_key: str, prompt_id: int):
    subject = _subject(subject_key, "safety.assess")
    prompt = _owned(safety.AeGradePrompt, prompt_id, subject, "AE prompt")
    reason = _string(_body({"reason"}), "reason", MAX_REASON)
    if reason is None or not reason.strip():
        raise _invalid("reason", _("'reason' is required: why no adverse event is recorded "
                                   "for this value."))
    _forbid_unless("safety.assess", subject)
    _run(lambda: safety.decline_prompt(db.session, actor_for("safety.assess", subject),
                                       prompt, reason))
    return _prompt_result(subject, prompt)


# --- notifications ------------------------------------------------------------------------


def _notification_json(entry, job, state, **extra) -> dict:
    return {"id": entry.id, "sae_report_id": entry.sae_report_id, "channel": entry.channel,
            "subject": entry.subject, "logged_at": iso(entry.logged_at),
            "sent_at": iso(entry.sent_at), "error": entry.error, "state": str(state),
            "attempts": job.attempts if job else (1 if entry.error else 0),
            "max_attempts": job.max_attempts if job else 1,
            "next_attempt": iso(job.run_after) if job and state == "retrying" else None,
            "job_id": job.id if job else None, **extra}


@bp.get(STUDY + "/safety/notifications", endpoint="notifications")
def notifications_list(study_oid: str):
    state = request.args.get("state", "").strip() or "problems"
    if state not in NOTIFICATION_STATES:
        raise ApiProblem(400, _("The query argument 'state' must be one of %(states)s (got "
                                "'%(value)s').", states=", ".join(NOTIFICATION_STATES),
                                value=state[:40]))
    found = safety.notification_problems(db.session, g.study, limit=MAX_NOTIFICATIONS)
    views = {"problems": found.failed + found.retrying, "failed": found.failed,
             "retrying": found.retrying}[state]
    listing = paged("notifications", views, key=lambda v: (v.entry.id,), shape=(int,),
                    descending=True,
                    render=lambda v: _notification_json(
                        v.entry, v.job, v.state, subject_key=v.subject_key,
                        site=v.site_code, report_version=v.report_version))
    return {**listing, "failed": len(found.failed), "retrying": len(found.retrying),
            "pending": found.pending}


@bp.post(STUDY + "/safety/notifications/<int:entry_id>/retry", endpoint="notification_retry")
def notification_retry(study_oid: str, entry_id: int):
    entry = db.session.get(safety.NotificationLog, entry_id) if entry_id <= MAX_ID else None
    if entry is None or entry.study_id != g.study.id:
        raise ApiProblem(404, _("There is no notification %(id)s in %(study)s.",
                                id=entry_id, study=g.study.oid))
    _body(set(), optional=True)
    try:
        with transaction():
            job = safety.retry_notification(
                db.session, request_actor("safety.notifications", g.study), entry)
    except safety.NotificationError as exc:
        raise ApiProblem(422, _("Nothing was done: %(problem)s", problem=str(exc))) from None
    return _notification_json(entry, job, safety.delivery_state(entry, job))
