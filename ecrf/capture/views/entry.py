"""Data entry: events, forms, item history and audit trails.

Thin: parse the request, call the capture service, commit or roll back once, render.
Subjects are looked up through the user's sites for the action at hand, so a subject at
another site is simply not found (404).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from ecrf import accounts
from ecrf.accounts import Allow
from ecrf.accounts import register_route as register
from ecrf.capture import history
from ecrf.capture import operations as capture
from ecrf.capture.labels import EVENT_STATE_LABELS, FORM_STATUS_LABELS
from ecrf.capture.locking import entry_lock
from ecrf.capture.models import ScheduledVisit, Subject
from ecrf.capture.schedule import local_today
from ecrf.capture.views import entry_grid
from ecrf.capture.views.entry_page import (
    build_page,
    completion_blockers,
    items_for,
    posted_number,
    posted_rows,
    read_submission,
)
from ecrf.capture.views.grid_rows import render_grid_rows
from ecrf.capture.web import actor_for, may, subject_or_404
from ecrf.core import audit, bounded_day, db
from ecrf.core.web import naming, reader, say, transaction
from ecrf.crf import UnknownOidError
from ecrf.crf.fields import build_form, field_name, initial_data, read_raw
from ecrf.crf.validation import codes_for
from ecrf.crf.values import display
from ecrf.studies import Site, definition_for

bp = Blueprint("entry", __name__)

SUBJECT = "/studies/<study_oid>/subjects/<path:subject_key>"
EVENT = SUBJECT + "/events/<event_oid>/<int:repeat>"
FORM = EVENT + "/forms/<form_oid>"

register("entry.event", Allow("subjects.view"))
register("entry.event_start", Allow("data.enter"))
register("entry.event_not_done", Allow("data.enter"))
register("entry.form", Allow("subjects.view"))
register("entry.form_save", Allow("data.enter"))
register("entry.item_history", Allow("subjects.view"))
register("entry.subject_audit", Allow("audit.view"))
register("entry.subject_audit_csv", Allow("audit.view"))
register("entry.study_audit_csv", Allow("audit.view"))



def _language() -> str:
    return str(get_locale() or "en").split("_")[0]


def _event_url(subject: Subject, event_oid: str, repeat: int) -> str:
    return url_for("entry.event", study_oid=g.study.oid, subject_key=subject.subject_key,
                   event_oid=event_oid, repeat=repeat)


def _form_url(subject: Subject, event_oid: str, repeat: int, form_oid: str) -> str:
    return url_for("entry.form", study_oid=g.study.oid, subject_key=subject.subject_key,
                   event_oid=event_oid, repeat=repeat, form_oid=form_oid)


# --- events ---------------------------------------------------------------------------------


@bp.get(EVENT)
def event(study_oid: str, subject_key: str, event_oid: str, repeat: int):
    subject = subject_or_404(subject_key)
    return _render_event(subject, event_oid, repeat)


def _render_event(subject: Subject, event_oid: str, repeat: int, *, errors=None, status=200):
    definition = definition_for(subject.study_version)
    try:
        rule = capture.event_rule(definition, event_oid, repeat)
        instance, forms = capture.event_forms(db.session, subject, event_oid, repeat)
    except capture.NotFoundError:
        abort(404)
    visit = db.session.scalar(select(ScheduledVisit).where(
        ScheduledVisit.subject_id == subject.id, ScheduledVisit.event_oid == event_oid,
        ScheduledVisit.repeat == repeat))
    language = _language()
    lock = entry_lock(db.session, subject, None)  # a subject, site or study lock
    return render_template(
        "entry/event.html", lock=lock,
        lock_title=LOCK_TITLES.get(lock.scope, "") if lock else "",
        lock_message=say(lock.message) if lock else "", study=g.study, subject=subject, rule=rule, repeat=repeat,
        event_name=naming(definition).event_name(event_oid).text_in(reader()),
        event_place=naming(definition).event(event_oid, repeat), instance=instance,
        forms=[(f, f.form.name_in(language), _form_url(subject, event_oid, repeat, f.form.oid))
               for f in forms],
        visit=visit, editable=may("data.enter", subject), errors=errors or {},
        posted=request.form if request.method == "POST" else {},
        status_labels=FORM_STATUS_LABELS, event_states=EVENT_STATE_LABELS,
        today=local_today(subject.site.timezone),
    ), status


LAST_DAYS = dt.date(9999, 12, 30)


def _parse_date(text: str) -> dt.date | None:
    """A day typed in a filter, within the years 1900-9999 (None otherwise)."""
    try:
        return bounded_day(dt.date.fromisoformat(text.strip())) if text.strip() else None
    except ValueError:
        return None


@bp.post(EVENT + "/start")
def event_start(study_oid: str, subject_key: str, event_oid: str, repeat: int):
    subject = subject_or_404(subject_key, "data.enter")
    text = request.form.get("actual_date", "")
    day = _parse_date(text)
    if text.strip() and day is None:
        return _render_event(subject, event_oid, repeat, status=422, errors={
            "actual_date": _("Enter the date as YYYY-MM-DD (you entered '%(value)s').",
                             value=text[:40])})
    try:
        with transaction():
            capture.open_event(db.session, actor_for("data.enter", subject), subject,
                               event_oid, repeat, day, reason=request.form.get("reason"))
    except capture.NotFoundError:
        abort(404)
    except capture.CaptureError as exc:
        return _render_event(subject, event_oid, repeat, status=422,
                             errors={"actual_date": say(exc.message)})
    flash(_("The event is started: enter its forms."), "success")
    return redirect(_event_url(subject, event_oid, repeat))


@bp.post(EVENT + "/not-done")
def event_not_done(study_oid: str, subject_key: str, event_oid: str, repeat: int):
    subject = subject_or_404(subject_key, "data.enter")
    try:
        with transaction():
            capture.declare_not_done(db.session, actor_for("data.enter", subject), subject,
                                     event_oid, repeat, request.form.get("not_done_reason", ""))
    except capture.NotFoundError:
        abort(404)
    except capture.CaptureError as exc:
        return _render_event(subject, event_oid, repeat, status=422,
                             errors={"not_done_reason": say(exc.message)})
    flash(_("The event is recorded as not done."), "success")
    return redirect(_event_url(subject, event_oid, repeat))


# --- forms ----------------------------------------------------------------------------------


@bp.get(FORM)
def form(study_oid: str, subject_key: str, event_oid: str, repeat: int, form_oid: str):
    subject = subject_or_404(subject_key)
    try:
        opened = capture.load_form(db.session, subject, event_oid, repeat, form_oid)
    except capture.NotFoundError:
        abort(404)
    except capture.EventStateError as exc:
        flash(say(exc.message), "warning")
        return redirect(_event_url(subject, event_oid, repeat))
    opened, rows, planned = entry_grid.offer_planned(db.session, subject, opened, event_oid,
                                                     repeat)
    items = items_for(opened.form, rows)
    wtform = build_form(items, opened.definition.codelists, _language())
    wtform.process(data=initial_data(items, {**opened.values, **planned}))
    lock = entry_lock(db.session, subject, opened.instance)
    # A form never saved opens clean: nothing is wrong with a form nobody has filled in.
    page = build_page(opened, wtform, rows, language=_language(),
                      validation=opened.validation, quiet=opened.instance is None,
                      can_add=lock is None, history_url=_history_link(
                          subject, event_oid, repeat, form_oid))
    return _render_form(subject, event_oid, repeat, opened, page, opened.version, lock=lock)


@bp.post(FORM)
def form_save(study_oid: str, subject_key: str, event_oid: str, repeat: int, form_oid: str):
    subject = subject_or_404(subject_key, "data.enter")
    action = request.form.get("action", "save")
    try:
        # A save loads (and locks) the form here once, for the save below.
        definition, form_def = capture.form_definition(db.session, subject, event_oid, repeat,
                                                       form_oid,
                                                       for_save=action in ("save", "complete"))
    except capture.NotFoundError:
        abort(404)
    rows = posted_rows(form_def, request.form)
    base = request.form.get("base_version", "").strip()
    base_version = posted_number(base)
    stale = refused = None
    if action.startswith("add:"):
        group = action[4:]
        if group in rows:
            rows[group] = rows[group] + (_next_row(subject, event_oid, repeat, form_oid,
                                                   group, rows[group]),)
    rows, formdata = entry_grid.extend(db.session, subject, event_oid, repeat, definition,
                                       form_def, action, rows, request.form)
    items = items_for(form_def, rows)
    wtform = build_form(items, definition.codelists, _language())
    wtform.process(formdata=formdata)
    raw, problems = read_raw(wtform, items)
    submission = read_submission(form_def, formdata, raw, rows)
    result = None
    code = 200
    if action in ("save", "complete") and not problems:
        try:
            with transaction() as unit:
                result = capture.save_form(db.session, actor_for("data.enter", subject),
                                           subject, event_oid, repeat, form_oid,
                                           entry_grid.unplanned(db.session, subject, event_oid,
                                                                repeat, definition, form_def,
                                                                submission),
                                           base_version=base_version,
                                           complete=action == "complete")
                if result.saved:
                    # Everything the response needs is read before the commit expires it.
                    target = _form_url(subject, event_oid, repeat, form_oid)
                    message = _saved_message(form_def, result)
                    category = "success" if result.status == "complete" else "info"
                else:
                    unit.discard()
        except capture.StaleFormError as exc:
            stale, code = exc, 409
            base_version = exc.current_version
        except capture.EventStateError as exc:
            # Locked meanwhile (or the event closed): nothing was saved. A lock is shown
            # below with everything the user typed; anything else goes back to the event.
            refused, result = exc, None
        else:
            if result.saved:
                flash(message, category)
                return redirect(target)
            code = 422
    elif problems:
        code = 422
    try:
        opened, preview = capture.preview_form(db.session, subject, event_oid, repeat,
                                               form_oid, submission)
    except capture.EventStateError as exc:
        flash(say(exc.message), "warning")
        return redirect(_event_url(subject, event_oid, repeat))
    lock = entry_lock(db.session, subject, opened.instance)
    if lock is not None:
        code = 423
    elif refused is not None:
        flash(say(refused.message), "warning")
        return redirect(_event_url(subject, event_oid, repeat))
    # An added row dropped before it was saved leaves the page.
    rows = {g: tuple(n for n in numbers if n in opened.rows.get(g, ()))
            for g, numbers in rows.items()}
    page = build_page(opened, wtform, rows, language=_language(),
                      validation=preview.validation,
                      result=None if lock is not None else result or preview,
                      posted=formdata, problems=problems,
                      show_reason_errors=result is not None,
                      show_missing=action == "complete" and result is not None,
                      can_add=lock is None,
                      history_url=_history_link(subject, event_oid, repeat, form_oid))
    if result is None and action in ("save", "complete") and problems:
        page.form_errors.insert(0, _("Some entries could not be read; nothing was saved."))
    if action.startswith("add:") and rows.get(action[4:]):
        page.focus = f"row-{action[4:]}-{rows[action[4:]][-1]}"
    response = _render_form(subject, event_oid, repeat, opened, page, base_version,
                            stale=stale, attempted=result is not None, lock=lock,
                            kept=lock is not None)
    return response, code


def _next_row(subject, event_oid, repeat, form_oid, group, shown) -> int:
    opened = capture.load_form(db.session, subject, event_oid, repeat, form_oid)
    return max(opened.next_row(group), max(shown, default=0) + 1)


def _saved_message(form_def, result) -> str:
    if result.status == "complete":
        return _("Saved. The form is complete.")
    blockers = completion_blockers(form_def, result, _language())
    if blockers:
        return _("Saved as in progress. Not complete yet: %(why)s", why=" ".join(blockers))
    return _("Saved as in progress.")


def _history_link(subject, event_oid, repeat, form_oid):
    base = url_for("entry.item_history", study_oid=g.study.oid,
                   subject_key=subject.subject_key, event_oid=event_oid, repeat=repeat,
                   form_oid=form_oid)

    def link(key) -> str:
        group, row, item = key
        return f"{base}?group={group}&row={row}&item={item}"

    return link


LOCK_TITLES = {
    "form": _l("This form is locked"), "subject": _l("This subject is locked"),
    "site": _l("This site is locked"), "study_frozen": _l("The study is frozen"),
    "study_locked": _l("The study is locked"),
}


def _render_form(subject, event_oid, repeat, opened, page, base_version, *, stale=None,
                 attempted=False, lock=None, kept=False):
    """``lock``: the form is read-only, with a banner; ``kept``: the lock arrived while the
    user was typing, so the page shows their entries (disabled) instead of the values."""
    language = _language()
    definition = opened.definition
    editable = may("data.enter", subject)
    stale_rows = []
    if stale is not None:
        tz = subject.site.timezone
        stale_rows = [(c, _local(c.occurred_at, tz)) for c in stale.changes]
    return render_template(
        "entry/form.html", study=g.study, subject=subject, event_oid=event_oid, repeat=repeat,
        event_place=naming(definition).event(event_oid, repeat),
        form_def=opened.form, form_name=opened.form.name_in(language), opened=opened,
        page=page, base_version=base_version, editable=editable,
        writable=editable and lock is None, inputs=editable and (lock is None or kept),
        lock=lock, lock_title=LOCK_TITLES.get(lock.scope, "") if lock else "",
        lock_message=say(lock.message) if lock else "", kept=kept,
        status_labels=FORM_STATUS_LABELS, stale=stale, stale_rows=stale_rows,
        stale_message=say(stale.message) if stale is not None else None, attempted=attempted,
        event_url=_event_url(subject, event_oid, repeat), version_label=(
            opened.instance.study_version.label if opened.instance
            else subject.study_version.label),
        definition=definition, grid_rows=render_grid_rows,
    )


def subject_definition(subject: Subject):
    return definition_for(subject.study_version)


def _local(moment: dt.datetime, tz: str) -> str:
    local = moment.astimezone(ZoneInfo(tz))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


# --- history and audit trails ---------------------------------------------------------------


@bp.get(FORM + "/history")
def item_history(study_oid: str, subject_key: str, event_oid: str, repeat: int, form_oid: str):
    subject = subject_or_404(subject_key)
    group, item_oid = request.args.get("group", ""), request.args.get("item", "")
    row = posted_number(request.args.get("row", "1"))
    if row is None:
        abort(404)
    try:
        definition, form_def = capture.form_definition(db.session, subject, event_oid, repeat,
                                                       form_oid)
        item = form_def.item(item_oid)
        if form_def.group(group).oid != group or item not in form_def.group(group).items:
            abort(404)
    except (capture.NotFoundError, UnknownOidError):
        abort(404)
    rows = capture.item_history(db.session, subject, event_oid, repeat, form_oid, group,
                                row, item_oid)
    codes = codes_for(item, definition.codelists)
    language = _language()
    shown = [(r, display(item, r.old_value, codes, language) if r.action.startswith("item.")
              else r.old_value, display(item, r.new_value, codes, language)
              if r.action.startswith("item.") else r.new_value) for r in rows]
    return render_template(
        "entry/history.html", study=g.study, subject=subject, item=item,
        label=item.label_in(language), group=group, row=row, rows=shown,
        form_name=form_def.name_in(language), event_oid=event_oid, repeat=repeat,
        form_url=_form_url(subject, event_oid, repeat, form_oid)
        + f"#wrap-{field_name((group, row, item_oid))}",
    )


def _audit_filters(subject: Subject) -> dict:
    args = request.args
    tz = ZoneInfo(subject.site.timezone)
    since_day, until_day = _parse_date(args.get("from", "")), _parse_date(args.get("to", ""))
    return {
        "action": args.get("action") or None,
        "username": args.get("user") or None,
        "form_oid": args.get("form") or None,
        "since": dt.datetime.combine(since_day, dt.time(), tz) if since_day else None,
        # Up to the last days of 9999: no bound (the next midnight is past the calendar).
        "until": (dt.datetime.combine(until_day + dt.timedelta(days=1), dt.time(), tz)
                  if until_day and until_day < LAST_DAYS else None),
    }


@bp.get(SUBJECT + "/audit")
def subject_audit(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key, "audit.view")
    filters = _audit_filters(subject)
    limit = 2000
    rows = capture.subject_audit(db.session, subject, limit=limit + 1, **filters)
    actions, users = history.subject_audit_choices(db.session, subject)
    forms = sorted(definition_for(subject.study_version).forms)
    return render_template(
        "entry/subject_audit.html", study=g.study, subject=subject, rows=rows[:limit],
        truncated=len(rows) > limit, actions=actions, users=users, forms=forms,
        args=request.args, csv_url=url_for("entry.subject_audit_csv", study_oid=g.study.oid,
                                           subject_key=subject.subject_key, **request.args),
    )


def _csv_response(rows, filename: str) -> Response:
    response = Response(stream_with_context(audit.audit_csv(rows)),
                        mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get(SUBJECT + "/audit.csv")
def subject_audit_csv(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key, "audit.view")
    stmt = history.subject_audit_query(subject, **_audit_filters(subject))
    safe_key = "".join(c if c.isalnum() or c in "-_." else "_" for c in subject.subject_key)
    return _csv_response(audit.stream_rows(db.session, stmt),
                         f"audit-{g.study.oid}-{safe_key}.csv")


@bp.get("/studies/<study_oid>/audit.csv")
def study_audit_csv(study_oid: str):
    allowed = accounts.site_ids_for(current_user, "audit.view", g.study)
    codes = None
    if allowed is not None:
        codes = list(db.session.scalars(select(Site.code).where(Site.id.in_(allowed or {-1}))))
    stmt = audit.study_audit_query(g.study.oid, site_codes=codes)
    return _csv_response(audit.stream_rows(db.session, stmt), f"audit-{g.study.oid}.csv")
