"""Electronic signatures on screen: what is signed, the meaning, and the credentials
(user id and password on the first signing of a login session, the password alone after,
per 21 CFR 11.200). Routes of the ``review`` blueprint."""

from __future__ import annotations

import hashlib

from flask import (
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import logout_user
from sqlalchemy import select

from ecrf.accounts import Allow
from ecrf.accounts import register_route as register
from ecrf.capture import EventInstance, FormInstance, Subject, actor_for, subject_or_404
from ecrf.core import db, whole_number
from ecrf.core.web import error_text, say, transaction
from ecrf.review import signatures
from ecrf.review.support import ReviewError
from ecrf.review.views.blueprint import bp
from ecrf.review.views.forms import SUBJECT, review_url
from ecrf.studies import naming_of

register("review.sign", Allow("data.sign"))


def _session_marker() -> str:
    """Identifies the login session, so a later signing in it needs only the password."""
    return hashlib.sha256(str(session.get("sid", "")).encode()).hexdigest()[:32]


def _sign_target(found: Subject, values) -> signatures.SignTarget:
    scope = values.get("scope", "form")
    if scope == "casebook":
        return signatures.SignTarget(found, "casebook")
    event_oid = values.get("event", "")
    repeat = values.get("repeat", "1")
    event = db.session.scalar(select(EventInstance).where(
        EventInstance.subject_id == found.id, EventInstance.event_oid == event_oid,
        EventInstance.repeat == (whole_number(repeat) or 0)))
    if event is None:
        abort(404)
    if scope == "event":
        return signatures.SignTarget(found, "event", event=event)
    if scope != "form":
        abort(404)
    instance = db.session.scalar(select(FormInstance).where(
        FormInstance.event_instance_id == event.id,
        FormInstance.form_oid == values.get("form", "")))
    if instance is None:
        abort(404)
    return signatures.SignTarget(found, "form", event=event, form=instance)


def _target_url(target: signatures.SignTarget) -> str:
    if target.scope == "form":
        event = target.form.event
        return review_url(target.subject, event.event_oid, event.repeat, target.form.form_oid)
    return url_for("review.subject", study_oid=g.study.oid,
                   subject_key=target.subject.subject_key)


def _target_label(target: signatures.SignTarget) -> str:
    names = naming_of(target.subject.study_version)
    if target.scope == "form":
        event = target.form.event
        return _("Form %(form)s at %(event)s of %(subject)s",
                 form=names.form(target.form.form_oid), event=names.event(event.event_oid,
                                                                          event.repeat),
                 subject=target.subject.subject_key)
    if target.scope == "event":
        return _("Event %(event)s of %(subject)s",
                 event=names.event(target.event.event_oid, target.event.repeat),
                 subject=target.subject.subject_key)
    return _("The whole casebook of %(subject)s", subject=target.subject.subject_key)


@bp.route(SUBJECT + "/sign", methods=["GET", "POST"])
def sign(study_oid: str, subject_key: str):
    found = subject_or_404(subject_key, "data.sign")
    values = request.form if request.method == "POST" else request.args
    target = _sign_target(found, values)
    first = session.get("esig_session") != _session_marker()
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        try:
            # A wrong password is kept: it counts toward lockout.
            with transaction(keep=(signatures.SignatureError,)):
                signatures.sign(
                    db.session, actor_for("data.sign", found), target,
                    password=request.form.get("password", ""),
                    username=request.form.get("username") if first else None,
                    meaning=request.form.get("meaning", ""), require_username=first,
                    lockout_threshold=current_app.config["LOCKOUT_THRESHOLD"],
                    lockout_minutes=current_app.config["LOCKOUT_MINUTES"])
        except signatures.SignatureError as exc:
            if exc.locked:
                logout_user()
                session.pop("sid", None)
                flash(_("Too many wrong passwords: your account is locked."), "danger")
                return redirect(url_for("auth.login"))
            errors["password"] = _("The user id or password is not correct: nothing was "
                                   "signed.")
            status = 422
        except ReviewError as exc:
            errors["form"] = error_text(exc)
            status = 422
        else:
            session["esig_session"] = _session_marker()
            flash(_("Signed: %(what)s.", what=_target_label(target)), "success")
            return redirect(_target_url(target))
    problems = [say(p) for p in signatures.problems(db.session, target)]
    content = signatures.signed_content(db.session, target)
    return render_template(
        "review/sign.html", study=g.study, subject=found, target=target,
        label=_target_label(target), problems=problems, content=content, first=first,
        meanings={k: _(v) for k, v in signatures.MEANINGS.items()}, errors=errors,
        posted=request.form if request.method == "POST" else {},
        back_url=_target_url(target),
        signatures=signatures.signatures_of(db.session, found, form=target.form,
                                            event=target.event)), status


