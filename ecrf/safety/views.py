"""Safety pages: the study's SAE dashboard, a subject's safety page (graded labs, AE
prompts, AE consistency, SAE reports and their clocks, DLT), blood count charts, and the
recovery endpoints with their CSV. Thin: parse, call a service, commit once, render."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from ecrf import accounts
from ecrf.accounts import Allow, request_actor
from ecrf.accounts import register_route as register
from ecrf.capture import EventStateError, Subject, actor_for, may, subject_or_404
from ecrf.core import (
    ChartPanel,
    Threshold,
    bounded_moment,
    db,
    dose_level_anc_svg,
    subject_counts_svg,
    utcnow,
    whole_number,
)
from ecrf.core.web import transaction
from ecrf.safety import endpoints, notify, survival
from ecrf.safety import operations as safety
from ecrf.safety.grading import load_lab_values
from ecrf.safety.models import AeGradePrompt, DltAssessment, NotificationLog, SaeReport
from ecrf.safety.support import ae_log
from ecrf.studies import definition_for

bp = Blueprint("safety", __name__)

SUBJECT = "/studies/<study_oid>/subjects/<subject_key>/safety"

register("safety.dashboard", Allow("subjects.view"))
register("safety.subject", Allow("subjects.view"))
register("safety.subject_plot", Allow("subjects.view"))
register("safety.prompt_accept", Allow("data.enter"))
register("safety.prompt_decline", Allow("safety.assess"))
register("safety.sae_create", Allow("data.enter"))
register("safety.sae_submit", Allow("safety.assess"))
register("safety.sae_followup", Allow("safety.assess"))
register("safety.dlt_decide", Allow("safety.assess"))
register("safety.notification_retry", Allow("safety.notifications"))
register("safety.endpoints", Allow("aggregate.view"))
register("safety.endpoints_csv", Allow("aggregate.view"))
# One row per subject: per-subject data, like the per-subject table of the endpoints page.
register("safety.endpoints_subjects_csv", Allow("subjects.view"))
register("safety.endpoints_plot", Allow("aggregate.view"))
register("safety.survival_plot", Allow("survival.view"))

# An SVG chart is a document of its own: its inline styles are matplotlib's, nothing runs.
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _site_ids(action: str) -> set[int] | None:
    return accounts.site_ids_for(current_user, action, g.study)


def _owned(model, object_id: int, subject: Subject):
    found = db.session.get(model, object_id)
    if found is None or found.subject_id != subject.id:
        abort(404)
    return found


def _back(subject: Subject):
    return redirect(url_for(".subject", study_oid=g.study.oid, subject_key=subject.subject_key))


def parse_local(text: str, timezone: str) -> dt.datetime:
    """'YYYY-MM-DD HH:MM' (or the browser's 'YYYY-MM-DDTHH:MM') at the site, as UTC."""
    cleaned = (text or "").strip().replace("T", " ")
    try:
        naive = dt.datetime.strptime(cleaned[:16], "%Y-%m-%d %H:%M")
        moment = bounded_moment(naive.replace(tzinfo=ZoneInfo(timezone)))
        if moment is None or moment.year < 1901:
            raise ValueError(cleaned)
    except ValueError:
        raise safety.SafetyError(_("Enter the date and time as YYYY-MM-DD HH:MM (you entered "
                                   "'%(value)s').", value=cleaned[:40])) from None
    return moment.astimezone(dt.UTC)


def _row_number(text: str) -> int:
    number = whole_number(text or "")
    if number is None:
        raise safety.SafetyError(_("Choose an AE row."))
    return number


def remaining_text(delta: dt.timedelta | None) -> str:
    if delta is None:
        return ""
    minutes = int(abs(delta).total_seconds() // 60)
    span = _("%(h)s h %(m)s min", h=minutes // 60, m=minutes % 60)
    return _("%(span)s left", span=span) if delta >= dt.timedelta(0) else \
        _("overdue by %(span)s", span=span)


CLOCK_LABELS = {"due": _l("Due"), "overdue": _l("Overdue"),
                "submitted_in_time": _l("Submitted in time"),
                "submitted_late": _l("Submitted late")}
PROMPT_LABELS = {"open": _l("Open"), "accepted": _l("Accepted: recorded as an AE"),
                 "declined": _l("Declined"), "withdrawn": _l("Withdrawn")}
DELIVERY_LABELS = {"pending": _l("queued"), "retrying": _l("retrying"),
                   "failed": _l("failed"), "sent": _l("sent"), "logged": _l("logged (no SMTP)")}
DLT_LABELS = {"candidate": _l("Candidate"), "confirmed": _l("Confirmed DLT"),
              "rejected": _l("Not a DLT"), "withdrawn": _l("Withdrawn")}


@bp.app_template_global()
def sae_clocks(subject: Subject) -> list[dict]:
    """The SAE clocks of a subject, for ``safety/_sae_clock.html`` on any subject page."""
    now = utcnow()
    reports = db.session.scalars(select(SaeReport).where(SaeReport.subject_id == subject.id)
                                 .order_by(SaeReport.awareness_at.desc(), SaeReport.id))
    found = []
    for report in reports:
        state = safety.clock(report, now)
        found.append({"report": report, "state": state.state,
                      "label": str(CLOCK_LABELS[state.state]), "due_at": state.due_at,
                      "remaining": remaining_text(state.remaining),
                      "term": safety.report_term(report)})
    return found


# --- dashboard and subject page -------------------------------------------------------------


@bp.get("/studies/<study_oid>/safety")
def dashboard(study_oid: str):
    sites = _site_ids("subjects.view")
    now = utcnow()
    reports = safety.study_reports(db.session, g.study, sites, now)
    prompts, dlts = safety.study_pending(db.session, g.study, sites)
    counts = {state: sum(1 for v in reports if v.clock.state == state) for state in CLOCK_LABELS}
    return render_template("safety/dashboard.html", study=g.study, reports=reports,
                           prompts=prompts, dlts=dlts, counts=counts, labels=CLOCK_LABELS,
                           remaining=remaining_text)


def _render_subject(subject: Subject, *, errors: dict | None = None, status: int = 200):
    definition = definition_for(subject.study_version)
    overview = safety.subject_safety(db.session, subject)
    tests = {i.lab.test for i in definition.iter_items() if i.lab is not None}
    labs = sorted((lv for lv in load_lab_values(db.session, subject, definition, tests)
                   if lv.iv.grade_version and (lv.iv.grade or 0) >= 1),
                  key=lambda lv: (lv.day or dt.date.max, lv.test))
    return render_template(
        "safety/subject.html", study=g.study, subject=subject, overview=overview, labs=labs,
        errors=errors or {}, form=request.form, has_counts=endpoints.has_counts(definition),
        can_enter=may("data.enter", subject), can_assess=may("safety.assess", subject),
        clock=safety.clock, labels=CLOCK_LABELS, remaining=remaining_text,
        prompt_labels=PROMPT_LABELS, dlt_labels=DLT_LABELS, delivery_labels=DELIVERY_LABELS,
        log=ae_log(definition)), status


@bp.get(SUBJECT)
def subject(study_oid: str, subject_key: str):
    return _render_subject(subject_or_404(subject_key))


def _apply(subject: Subject, key: str, work: Callable[[], object],
           message: Callable[[object], str]):
    """Run one safety decision in the request's transaction: commit and go back to the
    subject's safety page, or roll back and show the refusal next to the control ``key``
    with the page re-rendered (the user's entries come from the posted form)."""
    try:
        with transaction():
            result = work()
    except EventStateError as exc:  # the data is locked: nothing written, said in place
        return _render_subject(subject_or_404(subject.subject_key), errors={key: str(exc)},
                               status=423)
    except (safety.SafetyError, safety.DltError) as exc:
        return _render_subject(subject_or_404(subject.subject_key), errors={key: str(exc)},
                               status=422)
    flash(message(result), "success")
    return _back(subject)


@bp.post(SUBJECT + "/prompts/<int:prompt_id>/accept")
def prompt_accept(study_oid: str, subject_key: str, prompt_id: int):
    subject = subject_or_404(subject_key, "data.enter")
    prompt = _owned(AeGradePrompt, prompt_id, subject)
    link = (request.form.get("link_row") or "").strip()

    def work():
        row = _row_number(link) if link else None
        safety.accept_prompt(db.session, actor_for("data.enter", subject), prompt, link_row=row)

    return _apply(subject, f"prompt-{prompt_id}", work, lambda _r: _(
        "The adverse event was recorded: %(how)s. Complete it in the AE log.",
        how=prompt.reason))


@bp.post(SUBJECT + "/prompts/<int:prompt_id>/decline")
def prompt_decline(study_oid: str, subject_key: str, prompt_id: int):
    subject = subject_or_404(subject_key, "safety.assess")
    prompt = _owned(AeGradePrompt, prompt_id, subject)
    return _apply(
        subject, f"prompt-{prompt_id}",
        lambda: safety.decline_prompt(db.session, actor_for("safety.assess", subject), prompt,
                                      request.form.get("reason", "")),
        lambda _r: _("Recorded: no adverse event for this value."))


@bp.post(SUBJECT + "/sae")
def sae_create(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key, "data.enter")

    def work():
        row = _row_number(request.form.get("row", ""))
        awareness = parse_local(request.form.get("awareness", ""), subject.site.timezone)
        safety.create_report(db.session, actor_for("data.enter", subject), subject, row,
                             awareness)

    return _apply(subject, "sae-create", work, lambda _r: _(
        "SAE report opened; the 24-hour clock runs from the awareness time."))


@bp.post(SUBJECT + "/sae/<int:report_id>/submit")
def sae_submit(study_oid: str, subject_key: str, report_id: int):
    subject = subject_or_404(subject_key, "safety.assess")
    report = _owned(SaeReport, report_id, subject)
    return _apply(
        subject, f"sae-{report_id}",
        lambda: safety.submit_report(db.session, actor_for("safety.assess", subject), report),
        lambda _r: _("SAE report version %(v)s submitted to the sponsor.", v=report.version))


@bp.post(SUBJECT + "/sae/<int:report_id>/followup")
def sae_followup(study_oid: str, subject_key: str, report_id: int):
    subject = subject_or_404(subject_key, "safety.assess")
    report = _owned(SaeReport, report_id, subject)

    def work():
        awareness = parse_local(request.form.get("awareness", ""), subject.site.timezone)
        return safety.add_followup(db.session, actor_for("safety.assess", subject), report,
                                   awareness)

    return _apply(subject, f"sae-{report_id}", work, lambda followup: _(
        "Follow-up report version %(v)s opened.", v=followup.version))


@bp.post(SUBJECT + "/dlt/<int:assessment_id>")
def dlt_decide(study_oid: str, subject_key: str, assessment_id: int):
    subject = subject_or_404(subject_key, "safety.assess")
    assessment = _owned(DltAssessment, assessment_id, subject)
    return _apply(
        subject, f"dlt-{assessment_id}",
        lambda: safety.decide_dlt(db.session, actor_for("safety.assess", subject), assessment,
                                  request.form.get("decision", ""),
                                  request.form.get("reason", "")),
        lambda _r: _("DLT decision recorded."))


@bp.post("/studies/<study_oid>/safety/notifications/<int:entry_id>/retry")
def notification_retry(study_oid: str, entry_id: int):
    """Send a failed or waiting SAE notification again now (from the data manager's
    dashboard); audited."""
    entry = db.session.get(NotificationLog, entry_id)
    if entry is None or entry.study_id != g.study.id:
        abort(404)
    try:
        with transaction():
            job = notify.retry(db.session, request_actor("safety.notifications", g.study),
                               entry)
    except notify.NotificationError as exc:
        flash(str(exc), "warning")
    else:
        flash(_("Notification %(id)s queued again (job %(job)s): it is sent in the "
                "background.", id=entry_id, job=job.id), "success")
    return redirect(url_for("dashboards.dashboard", study_oid=g.study.oid,
                            role="data_manager") + "#sae-notifications")


def _svg(text: str) -> Response:
    response = Response(text, mimetype="image/svg+xml")
    response.headers["Content-Security-Policy"] = SVG_CSP
    return response


@bp.get(SUBJECT + "/counts.svg")
def subject_plot(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key)
    definition = definition_for(subject.study_version)
    if not endpoints.has_counts(definition):
        abort(404)
    try:
        params = endpoints.recovery_parameters(definition)
    except endpoints.EndpointsError as exc:
        abort(404, description=str(exc))
    series = endpoints.subject_series(db.session, subject)
    panels = [
        ChartPanel("anc", _("ANC"), "10^9/L", {c.day: c.anc for c in series.counts if c.anc is not None},
              [Threshold(params.anc_recovery, _("recovery %(v)s", v=params.anc_recovery))],
              log=True),
        ChartPanel("plt", _("Platelets"), "10^9/L",
              {c.day: c.plt for c in series.counts if c.plt is not None},
              [Threshold(params.plt_recovery, _("recovery %(v)s", v=params.plt_recovery)),
               Threshold(params.severe_thrombocytopenia,
                         _("severe < %(v)s", v=params.severe_thrombocytopenia))]),
        ChartPanel("hgb", _("Haemoglobin"), "g/L",
              {c.day: c.hgb for c in series.counts if c.hgb is not None},
              [Threshold(params.severe_anemia, _("severe < %(v)s", v=params.severe_anemia))]),
    ]
    return _svg(subject_counts_svg(
        panels, horizon=params.horizon_day, infusion_day=series.infusion_day,
        transfusions=[(t.day, t.product) for t in series.transfusions],
        title=f"{subject.subject_key} · {g.study.name}"))


# --- recovery endpoints ---------------------------------------------------------------------


def _study_endpoints(action: str = "aggregate.view"):
    try:
        return endpoints.kept_study_endpoints(db.session, g.study, _site_ids(action))
    except endpoints.EndpointsError as exc:
        return exc


ENDPOINTS_PAGE = 100  # subjects per page of the endpoints page's per-subject table


@bp.get("/studies/<study_oid>/endpoints", endpoint="endpoints")
def endpoints_page(study_oid: str):
    result = _study_endpoints()
    problem = str(result) if isinstance(result, Exception) else None
    count = 0 if problem else len(result.subjects)
    pages = max(1, -(-count // ENDPOINTS_PAGE))
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), pages)
    return render_template("safety/endpoints.html", study=g.study,
                           result=None if problem else result, problem=problem,
                           can_see_subjects=accounts.can(current_user, "subjects.view", g.study),
                           subjects=[] if problem else result.subjects[
                               (page - 1) * ENDPOINTS_PAGE:page * ENDPOINTS_PAGE],
                           page=page, pages=pages)


@bp.get("/studies/<study_oid>/endpoints.csv")
def endpoints_csv(study_oid: str):
    result = _study_endpoints()
    if isinstance(result, Exception):
        abort(404, description=str(result))
    return Response(result.csv(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{g.study.oid}-endpoints.csv"'})


@bp.get("/studies/<study_oid>/endpoints/subjects.csv")
def endpoints_subjects_csv(study_oid: str):
    result = _study_endpoints("subjects.view")
    if isinstance(result, Exception):
        abort(404, description=str(result))
    return Response(result.subjects_csv(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{g.study.oid}-endpoints-subjects.csv"'})


@bp.get("/studies/<study_oid>/endpoints/anc-<int:index>.svg")
def endpoints_plot(study_oid: str, index: int):
    result = _study_endpoints()
    if isinstance(result, Exception) or not 0 <= index < len(result.groups):
        abort(404)
    group = result.groups[index]
    curves = {f"{n}": {c.day: c.anc for c in r.series.counts if c.anc is not None}
              for n, r in enumerate(result.subjects)
              if r.series.group == group and r.endpoints is not None}
    params = result.params
    return _svg(dose_level_anc_svg(
        curves, horizon=params.horizon_day,
        threshold=Threshold(params.anc_recovery, _("recovery %(v)s", v=params.anc_recovery)),
        title=f"{g.study.name} · {group}"))


# --- overall survival -----------------------------------------------------------------------


@bp.get("/studies/<study_oid>/survival.svg")
def survival_plot(study_oid: str):
    """The Kaplan-Meier plot by arm and pooled, with the numbers at risk (computed now)."""
    try:
        result = survival.kept_study_survival(db.session, g.study,
                                              _site_ids("survival.view"))
    except survival.SurvivalError as exc:
        abort(404, description=str(exc))
    return _svg(result.plot_svg(
        x_label=_("Months from %(origin)s", origin=result.spec.origin.replace("_", " ")),
        y_label=_("Survival probability"),
        at_risk_title=_("Number at risk"),
        title=f"{g.study.name} · {result.spec.name}"))
