"""Events of a subject through the API: read one, start it on its actual date (or correct
the date, or reopen an event declared not done, with a reason), declare it not done.

The same services, permissions, site scoping (a subject of another site is not found:
404), lock checks (423) and audit rows as the event screen. A form can be read and saved
only once its event is started: this is what an integration calls first.
"""

from __future__ import annotations

from flask import g, url_for
from flask_babel import gettext as _

from ecrf import capture
from ecrf.accounts import Allow
from ecrf.accounts import register_route as register
from ecrf.api.blueprint import bp
from ecrf.api.bodies import body_of, date_field, invalid, text_field
from ecrf.api.common import MAX_ID, iso, subject_or_404
from ecrf.api.errors import ApiProblem
from ecrf.capture import Subject, actor_for, may
from ecrf.core import db
from ecrf.core.web import say, transaction
from ecrf.review import DataLockedError

register("api.event", Allow("subjects.view"))
register("api.event_start", Allow("data.enter"))
register("api.event_not_done", Allow("data.enter"))

EVENT = "/studies/<study_oid>/subjects/<subject_key>/events/<event_oid>/<int:repeat>"
MAX_REASON = capture.MAX_REASON


def _event_url(subject: Subject, event_oid: str, repeat: int) -> str:
    return url_for("api.event", study_oid=g.study.oid, subject_key=subject.subject_key,
                   event_oid=event_oid, repeat=repeat)


def event_document(subject: Subject, event_oid: str, repeat: int) -> dict:
    if repeat > MAX_ID:
        raise ApiProblem(404, _("%(event)s has no occurrence %(repeat)s.",
                                event=event_oid[:64], repeat=repeat))
    try:
        instance, forms = capture.event_forms(db.session, subject, event_oid, repeat)
    except capture.NotFoundError as exc:
        raise ApiProblem(404, say(exc.message)) from None
    return {
        "study_oid": g.study.oid, "subject_key": subject.subject_key,
        "event_oid": event_oid, "repeat": repeat,
        "state": instance.state if instance else "not_started",
        "actual_date": iso(instance.actual_date) if instance else None,
        "not_done_reason": instance.not_done_reason if instance else None,
        "editable": may("data.enter", subject),
        "forms": [{"form_oid": f.form.oid, "name": f.form.name, "status": f.status,
                   "version": f.instance.version if f.instance else None,
                   "url": url_for("api.form", study_oid=g.study.oid,
                                  subject_key=subject.subject_key, event_oid=event_oid,
                                  repeat=repeat, form_oid=f.form.oid)} for f in forms],
        "url": _event_url(subject, event_oid, repeat),
    }


def _problem(exc: capture.CaptureError, field: str) -> ApiProblem:
    message = say(exc.message)
    if isinstance(exc, capture.NotFoundError):
        return ApiProblem(404, message)
    if isinstance(exc, DataLockedError):
        return ApiProblem(423, message)
    if isinstance(exc, capture.EventStateError):
        return ApiProblem(409, message)
    if "reason" in exc.message.template:
        field = "reason"
    return invalid(field, message)


@bp.get(EVENT, endpoint="event")
def event_read(study_oid: str, subject_key: str, event_oid: str, repeat: int):
    subject = subject_or_404(subject_key, "subjects.view")
    return event_document(subject, event_oid, repeat)


@bp.post(EVENT + "/start", endpoint="event_start")
def event_start(study_oid: str, subject_key: str, event_oid: str, repeat: int):
    subject = subject_or_404(subject_key, "data.enter")
    before = event_document(subject, event_oid, repeat)  # 404 for an unknown event
    data = body_of({"actual_date", "reason"})
    day = date_field(data, "actual_date")
    reason = text_field(data, "reason", MAX_REASON)
    try:
        with transaction():
            capture.open_event(db.session, actor_for("data.enter", subject), subject,
                               event_oid, repeat, day, reason=reason)
    except capture.CaptureError as exc:
        raise _problem(exc, "actual_date") from None
    document = event_document(subject, event_oid, repeat)
    if before["state"] == "not_started":
        return document, 201, {"Location": document["url"]}
    return document


@bp.post(EVENT + "/not-done", endpoint="event_not_done")
def event_not_done(study_oid: str, subject_key: str, event_oid: str, repeat: int):
    subject = subject_or_404(subject_key, "data.enter")
    event_document(subject, event_oid, repeat)  # 404 for an unknown event
    data = body_of({"reason"})
    reason = text_field(data, "reason", MAX_REASON)
    if reason is None or not reason.strip():
        raise invalid("reason", _("'reason' is required: why the event did not take "
                                  "place."))
    try:
        with transaction():
            capture.declare_not_done(db.session, actor_for("data.enter", subject), subject,
                                     event_oid, repeat, reason)
    except capture.CaptureError as exc:
        raise _problem(exc, "reason") from None
    return event_document(subject, event_oid, repeat)
