"""Studies, subjects, the subject matrix and the subject page."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from urllib.parse import quote

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from sqlalchemy import select
from wtforms import DateField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from ecrf import accounts, studies
from ecrf.accounts import Allow, request_actor
from ecrf.accounts import register_route as register
from ecrf.capture import schedule, subjects
from ecrf.capture.labels import SUBJECT_LABELS, VISIT_LABELS
from ecrf.capture.models import SUBJECT_STATUSES, EventInstance
from ecrf.capture.notes import say_note
from ecrf.capture.schedule import local_today
from ecrf.capture.study_dates import study_dates
from ecrf.capture.web import may, subject_or_404
from ecrf.core import db, whole_number
from ecrf.core.web import store_derived, transaction
from ecrf.crf import UnknownOidError
from ecrf.domain.schedule import EventKind
from ecrf.studies import Site, StudySite, StudyVersion

bp = Blueprint("studies", __name__, url_prefix="/studies")

register("studies.study", Allow("study.view"))
register("studies.matrix", Allow("subjects.view"))
register("studies.enrol", Allow("subjects.enrol"))
register("studies.subject", Allow("subjects.view"))

PAGE_SIZES = ("25", "50", "100", "250", "500", "all")

class EnrolForm(FlaskForm):
    site = SelectField(_l("Site"), choices=[])
    subject_key = StringField(_l("Screening number"),
                              validators=[DataRequired(), Length(max=64)])
    enrolled_on = DateField(_l("Enrolment date"), validators=[DataRequired()])


# --- helpers ---------------------------------------------------------------------------------


_EVENT_LABELS: dict[str, dict[str, dict[str, str]]] = {}


def _event_names(version: StudyVersion | None) -> dict[str, str]:
    """Event names in the user's language, from the version's stored content."""
    if version is None:
        return {}
    labels = _EVENT_LABELS.get(version.content_hash)
    if labels is None:
        content = json.loads(version.content)
        labels = {e["oid"]: {"en": e["name"], **e.get("labels", {})}
                  for e in content["study"]["events"]}
        _EVENT_LABELS[version.content_hash] = labels
    language = str(get_locale() or "en")
    return {oid: names.get(language) or names.get(language.split("_")[0]) or names["en"]
            for oid, names in labels.items()}


def _entry_url(study_oid: str, subject_key: str, event_oid: str, repeat: int) -> str | None:
    # Data entry lives in another blueprint; link to it only once it exists.
    if "entry.event" not in current_app.view_functions:
        return None
    return url_for("entry.event", study_oid=study_oid, subject_key=subject_key,
                   event_oid=event_oid, repeat=repeat)


def _visible_sites(study, action: str) -> list[Site]:
    allowed = accounts.site_ids_for(current_user, action, study)
    stmt = (select(Site).join(StudySite, StudySite.site_id == Site.id)
            .where(StudySite.study_id == study.id).order_by(Site.code))
    return list(db.session.scalars(accounts.scope_to_sites(stmt, Site.id, allowed)))


# --- study page ------------------------------------------------------------------------------


@bp.route("/<study_oid>")
def study(study_oid: str):
    study = g.study
    version_list = studies.study_versions(db.session, study)
    latest = version_list[-1] if version_list else None
    definition = studies.definition_for(latest) if latest else None
    counts = subjects.study_counts(db.session, study)
    site_rows = db.session.execute(
        select(Site, StudySite.active).join(StudySite, StudySite.site_id == Site.id)
        .where(StudySite.study_id == study.id).order_by(Site.code)).all()
    dates = None
    if definition is not None:
        timezones = [site.timezone for site, _active in site_rows]
        today = local_today(timezones[0] if len(set(timezones)) == 1 else None)
        dates = study_dates(db.session, definition, study.id, today)
    # A subject key is shown only to those who may see that site's subjects.
    visible = accounts.site_ids_for(current_user, "subjects.view", study)
    return render_template("studies/study.html", study=study, versions=version_list,
                           latest=latest, definition=definition, counts=counts,
                           sites=site_rows, subject_labels=SUBJECT_LABELS,
                           visit_labels=VISIT_LABELS, dates=dates,
                           names=studies.naming_of(latest),
                           may_see_site=lambda site_id: visible is None or site_id in visible)


# --- subject matrix --------------------------------------------------------------------------


@bp.route("/<study_oid>/subjects")
def matrix(study_oid: str):
    study = g.study
    store_derived(lambda: schedule.refresh_stale(db.session, study))
    version = studies.latest_version(db.session, study)
    definition = studies.definition_for(version) if version else None
    site_choices = _visible_sites(study, "subjects.view")
    codes = {s.code for s in site_choices}
    args = request.args
    site = args.get("site", "").strip().upper()
    status = args.get("status", "")
    visit = args.get("visit", "")
    per_page_arg = args.get("per_page", "100")
    per_page_arg = per_page_arg if per_page_arg in PAGE_SIZES else "100"
    page = max(1, whole_number(args.get("page", "1"), maximum=10**6) or 1)
    result = subjects.subject_matrix(
        db.session, current_user, study, definition,
        site=site if site in codes else None,
        status=status if status in SUBJECT_STATUSES else None,
        visit_status=visit if visit in VISIT_LABELS else None,
        page=page, per_page=None if per_page_arg == "all" else int(per_page_arg))
    names = _event_names(version)
    labels = {k: str(v) for k, v in VISIT_LABELS.items()}
    filters = {"site": site if site in codes else "",
               "status": status if status in SUBJECT_STATUSES else "",
               "visit": visit if visit in VISIT_LABELS else "", "per_page": per_page_arg}
    headers = [(names.get(c.oid, c.name), c.repeating) for c in result.columns]
    arms = {a.code: studies.naming_of(version).arm(a.code)
            for a in (definition.arms if definition else ())}
    body = _matrix_body(result, labels, arms)
    link_args = {k: v for k, v in filters.items() if v}
    return render_template("studies/matrix.html", study=study, matrix=result, body=body,
                           headers=headers, sites=site_choices, filters=filters,
                           link_args=link_args,
                           page_sizes=PAGE_SIZES, subject_labels=SUBJECT_LABELS,
                           visit_labels=VISIT_LABELS, has_version=version is not None)


def _matrix_body(result: subjects.Matrix, labels: dict[str, str],
                 arms: dict[str, str] | None = None) -> Markup:
    """The table body, built here rather than cell by cell in Jinja: thousands of rows
    times a dozen events would otherwise cost a template call and an escape per cell.
    Every value that comes from data is escaped; statuses come from a fixed vocabulary."""
    statuses = {k: str(escape(v)) for k, v in labels.items()}
    subject_labels = {k: str(escape(v)) for k, v in SUBJECT_LABELS.items()}
    planned = str(escape(_("planned")))
    base = url_for("studies.subject", study_oid=g.study.oid, subject_key="__KEY__")
    empty = '<td class="cell-empty">–</td>'
    lines = []
    for row in result.rows:
        cells = []
        for cell in row.cells:
            if cell is None:
                cells.append(empty)
                continue
            text = statuses[cell.status]
            if cell.total:
                text = f"{cell.done}/{cell.total} · {text}"
            title = f' title="{planned} {cell.planned}"' if cell.planned else ""
            cells.append(f'<td class="status-{cell.status}"{title}>{text}</td>')
        url = escape(base.replace("__KEY__", quote(row.key, safe="")))
        status = subject_labels.get(row.status) or escape(row.status)
        arm = escape(row.arm or "")
        if row.arm and (arms or {}).get(row.arm):  # the code fits the column; the name is its title
            arm = f'<abbr title="{escape(arms[row.arm])}">{arm}</abbr>'
        lines.append(f'<tr><th scope="row"><a href="{url}">{escape(row.key)}</a></th>'
                     f"<td>{escape(row.site)}</td><td>{status}</td>"
                     f"<td>{arm}</td>{''.join(cells)}</tr>")
    return Markup("\n".join(lines))


def _note(note: str | None, definition, event_oid: str, naming) -> str:
    """The schedule's note with the condition and the stop anchor said by their labels
    ("condition not met: Planned salvage therapy at randomization is Azacitidine")."""
    if not note:
        return ""
    try:
        rule = definition.event(event_oid)
    except UnknownOidError:
        return note
    condition = str(naming.condition(rule.condition)) if rule.condition else ""
    anchors = {name.replace("_", " "): str(naming.anchor(name))
               for name in (*definition.anchors, "enrolment")}
    return say_note(note, rule.condition, condition, anchors)


# --- enrolment -------------------------------------------------------------------------------


@bp.route("/<study_oid>/subjects/new", methods=["GET", "POST"])
def enrol(study_oid: str):
    study = g.study
    sites = subjects.enrol_sites(db.session, current_user, study)
    form = EnrolForm()
    form.site.choices = [(s.code, f"{s.code} — {s.name}") for s in sites]
    if request.method == "GET":
        if sites:
            form.site.data = sites[0].code
        form.enrolled_on.data = local_today(sites[0].timezone if sites else g.get("display_tz"))
    if sites and form.validate_on_submit():
        site = next(s for s in sites if s.code == form.site.data)
        actor = dataclasses.replace(request_actor("subjects.enrol", study), site_code=site.code)
        try:
            with transaction():
                subject = subjects.enrol_subject(db.session, actor, study, site,
                                                 form.subject_key.data, form.enrolled_on.data)
                key = subject.subject_key
        except subjects.EnrolmentError as exc:
            target = getattr(form, exc.field, None) if exc.field else None
            if target is not None:
                target.errors = [*target.errors, str(exc)]
            else:
                flash(str(exc), "danger")
        else:
            flash(_("Subject %(key)s enrolled at %(site)s.", key=key, site=site.code),
                  "success")
            return redirect(url_for("studies.subject", study_oid=study.oid, subject_key=key))
    status = 422 if request.method == "POST" else 200
    return render_template("studies/enrol.html", study=study, form=form, sites=sites), status


# --- subject page ----------------------------------------------------------------------------


@bp.route("/<study_oid>/subjects/<subject_key>")
def subject(study_oid: str, subject_key: str):
    study = g.study
    found = subject_or_404(subject_key)
    today = local_today(found.site.timezone)
    if found.schedule_computed_on is None or found.schedule_computed_on < today:
        store_derived(lambda: schedule.refresh_subject(db.session, found, today) or 1)
    rows = schedule.schedule_rows(db.session, found, today)
    version = found.study_version
    definition = studies.definition_for(version)
    names = _event_names(version)
    recorded = list(db.session.scalars(select(EventInstance).where(
        EventInstance.subject_id == found.id).order_by(EventInstance.event_oid,
                                                       EventInstance.repeat)))
    by_event: dict[str, list[EventInstance]] = defaultdict(list)
    for instance in recorded:
        by_event[instance.event_oid].append(instance)
    data = schedule.subject_schedule_data(db.session, definition, found, today=today)
    logs, unscheduled = [], []
    for rule in definition.events:
        if rule.kind is EventKind.LOG:
            instance = by_event.get(rule.oid, [None])[0]
            applicable = rule.condition is None or data.evaluate(rule.condition)
            logs.append((rule, names.get(rule.oid, rule.name), instance, applicable,
                         _entry_url(study.oid, found.subject_key, rule.oid, 1)))
        elif rule.kind is EventKind.UNSCHEDULED:
            following = max((i.repeat for i in by_event.get(rule.oid, [])), default=0) + 1
            unscheduled.append((rule, names.get(rule.oid, rule.name),
                                _entry_url(study.oid, found.subject_key, rule.oid, following)))
    known = {rule.oid for rule in definition.events}
    foreign = [i for i in recorded if i.event_oid not in known]
    naming = studies.naming_of(version)
    timeline = [(row, names.get(row.event_oid, row.event_oid),
                 _entry_url(study.oid, found.subject_key, row.event_oid, row.repeat),
                 _note(row.note, definition, row.event_oid, naming))
                for row in rows]
    return render_template("studies/subject.html", study=study, subject=found,
                           version=version, timeline=timeline, logs=logs,
                           unscheduled=unscheduled, foreign=foreign, today=today,
                           visit_labels=VISIT_LABELS, subject_labels=SUBJECT_LABELS,
                           can_enter=may("data.enter", found))
