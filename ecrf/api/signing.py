"""Electronic signatures and locks through the API, by the services the screens use.

Signing (21 CFR 11.50, 11.200): the body carries the signer's user id and password. An API
call has no login session, so every signing through the API is a first signing of a
session: both are asked each time. A wrong user id or password is counted toward lockout
and audited exactly as on the signing screen (the attempt is committed, nothing is
signed); the account locked by it answers 403. The password is never echoed, logged or
stored. Signatures are listed with their state: ``broken`` once the signed data changed.

Locks: a data manager locks and unlocks forms, subjects and sites (unlocking needs a
reason) and freezes, unfreezes, locks or unlocks the study, audited as on the locks
screen. Saves to locked data answer 423 (``forms.py``).
"""

from __future__ import annotations

from flask import current_app, g
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from ecrf import accounts, review
from ecrf.accounts import Allow
from ecrf.accounts import register_route as register
from ecrf.api import forms, preconditions
from ecrf.api.blueprint import bp
from ecrf.api.common import MAX_ID, iso, json_body, json_kind, paged, sort_time, subject_or_404
from ecrf.api.errors import ApiProblem
from ecrf.capture import EventInstance, FormInstance, Subject, actor_for
from ecrf.core import db
from ecrf.core.web import say, transaction
from ecrf.review import Lock, LockScope, Signature
from ecrf.studies import Site, StudySite

register("api.signatures", Allow("subjects.view"))
register("api.sign", Allow("data.sign"))
register("api.signatures_awaiting", Allow("data.sign"))
register("api.signatures_to_redo", Allow("data.sign"))
register("api.locks", Allow("data.lock"))
register("api.subject_lock", Allow("data.lock"))
register("api.subject_unlock", Allow("data.lock"))
register("api.form_lock", Allow("data.lock"))
register("api.form_unlock", Allow("data.lock"))
register("api.site_lock", Allow("data.lock"))
register("api.lock_release", Allow("data.lock"))
register("api.study_status", Allow("data.lock"))

STUDY = "/studies/<study_oid>"
SUBJECT = STUDY + "/subjects/<subject_key>"
FORM = SUBJECT + "/events/<event_oid>/<int:repeat>/forms/<form_oid>"

SCOPES = ("form", "event", "casebook")
MAX_TEXT = 4000  # reasons, as the services keep them
MAX_NAME = 200
AWAITING_LIMIT = 100_000  # read whole, then paged


# --- request bodies -----------------------------------------------------------------------


class _Body:
    """Reads fields of a JSON object, collecting every problem by field name."""

    def __init__(self, data: dict, allowed: tuple[str, ...]) -> None:
        self.data = data
        self.errors: dict[str, list[str]] = {}
        for name in sorted(set(data) - set(allowed)):
            self.fail(name[:60], _("Unknown field (expected: %(fields)s).",
                                   fields=", ".join(allowed)))

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def text(self, name: str, *, required: bool, limit: int = MAX_NAME,
             choices: tuple[str, ...] | None = None, echo: bool = True) -> str | None:
        value = self.data.get(name)
        if value is None:
            if required:
                self.fail(name, _("Required."))
            return None
        if not isinstance(value, str):
            self.fail(name, _("Must be a string, not %(kind)s.", kind=json_kind(value)))
            return None
        if required and not value.strip():
            self.fail(name, _("Must not be empty."))
            return None
        if len(value) > limit:
            self.fail(name, _("At most %(n)s characters.", n=limit))
            return None
        if choices is not None and value not in choices:
            if echo:
                self.fail(name, _("Must be one of %(choices)s (got '%(value)s').",
                                  choices=", ".join(choices), value=value[:40]))
            else:
                self.fail(name, _("Must be one of %(choices)s.", choices=", ".join(choices)))
            return None
        return value

    def repeat(self, name: str = "repeat") -> int:
        value = self.data.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 9999:
            self.fail(name, _("Must be a whole number from 1 to 9999."))
            return 1
        return value

    def check(self) -> None:
        if self.errors:
            raise ApiProblem(422, _("Nothing was done: the body has %(n)s problem(s).",
                                    n=len(self.errors)), errors=self.errors)


def _reason(*, required: bool) -> str | None:
    body = _Body(json_body(), ("reason",))
    reason = body.text("reason", required=required, limit=MAX_TEXT)
    body.check()
    return reason


# --- lookups ------------------------------------------------------------------------------


def _event_or_404(subject: Subject, event_oid: str, repeat: int) -> EventInstance:
    found = None if repeat > MAX_ID else db.session.scalar(select(EventInstance).where(
        EventInstance.subject_id == subject.id, EventInstance.event_oid == event_oid,
        EventInstance.repeat == repeat))
    if found is None:
        raise ApiProblem(404, _("Subject %(subject)s has no event %(event)s[%(repeat)s].",
                                subject=subject.subject_key, event=event_oid[:60],
                                repeat=repeat))
    return found


def _form_or_404(subject: Subject, event: EventInstance, form_oid: str) -> FormInstance:
    found = db.session.scalar(select(FormInstance).where(
        FormInstance.event_instance_id == event.id, FormInstance.form_oid == form_oid))
    if found is None:
        raise ApiProblem(404, _("Form %(form)s of %(subject)s at %(event)s[%(repeat)s] has not "
                                "been started.", form=form_oid[:60],
                                subject=subject.subject_key, event=event.event_oid,
                                repeat=event.repeat))
    return found


def _lock_sites() -> set[int] | None:
    return accounts.site_ids_for(current_user, "data.lock", g.study)


def _site_of(lock: Lock) -> int:
    if lock.scope == "site":
        return lock.site_id
    if lock.scope == "subject":
        return lock.subject.site_id
    return lock.form_instance.event.subject.site_id


# --- documents ----------------------------------------------------------------------------


def signature_json(signature: Signature) -> dict:
    event, form = signature.event_instance, signature.form_instance
    return {
        "id": signature.id, "scope": signature.scope,
        "subject_key": signature.subject.subject_key,
        "event_oid": event.event_oid if event is not None else None,
        "repeat": event.repeat if event is not None else None,
        "form_oid": form.form_oid if form is not None and signature.scope == "form" else None,
        "signer_username": signature.signer_username, "signer_name": signature.signer_name,
        "signer_role": signature.signer_role, "meaning": signature.meaning,
        "signed_hash": signature.signed_hash, "signed_at": iso(signature.signed_at),
        "state": "valid" if signature.valid else "broken",
        "broken_at": iso(signature.broken_at), "broken_reason": signature.broken_reason,
    }


def lock_json(lock: Lock) -> dict:
    form = lock.form_instance
    subject = lock.subject if lock.scope == "subject" else form.event.subject if form else None
    return {
        "id": lock.id, "scope": lock.scope,
        "site": lock.site.code if lock.scope == "site" else subject.site.code,
        "subject_key": subject.subject_key if subject is not None else None,
        "event_oid": form.event.event_oid if form is not None else None,
        "repeat": form.event.repeat if form is not None else None,
        "form_oid": form.form_oid if form is not None else None,
        "active": lock.active, "locked_by": lock.locked_by, "locked_at": iso(lock.locked_at),
        "reason": lock.reason, "unlocked_by": lock.unlocked_by,
        "unlocked_at": iso(lock.unlocked_at), "unlock_reason": lock.unlock_reason,
        "description": say(review.describe_lock(lock)),
    }


def _review_problem(exc: review.ReviewError) -> ApiProblem:
    """A refusal of a review service: 403 for roles or sites, 409 for the state of the
    data (already locked, not locked, a study status that does not allow it), else 422."""
    message = say(exc.message)
    if isinstance(exc, review.ReviewPermissionError):
        return ApiProblem(403, message)
    if isinstance(exc, review.LockError):
        return ApiProblem(409, message)
    return ApiProblem(422, message)


# --- signatures ---------------------------------------------------------------------------


@bp.get(SUBJECT + "/signatures", endpoint="signatures")
def signatures_list(study_oid: str, subject_key: str):
    found = subject_or_404(subject_key, "subjects.view")
    items = review.signatures_of(db.session, found)
    return {"subject_key": found.subject_key, **_signature_page("signatures", items)}


def _signature_page(listing: str, items: list[Signature]) -> dict:
    # Newest first, as signed.
    return paged(listing, items, key=lambda s: (sort_time(s.signed_at), s.id),
                 shape=(str, int), descending=True, render=signature_json)


def _sign_target(found: Subject, body: _Body) -> review.SignTarget | None:
    scope = body.text("scope", required=True, choices=SCOPES)
    event_oid = body.text("event_oid", required=scope in ("form", "event"))
    form_oid = body.text("form_oid", required=scope == "form")
    repeat = body.repeat()
    if scope in ("casebook", "event"):
        for name in ("form_oid",) + (("event_oid", "repeat") if scope == "casebook" else ()):
            if name in body.data:
                body.fail(name, _("Not used when signing a %(scope)s.", scope=scope))
    body.text("meaning", required=True, choices=tuple(review.MEANINGS))
    body.text("username", required=True)
    body.text("password", required=True, limit=1024, echo=False)
    if body.errors:
        if "meaning" in body.errors:
            raise ApiProblem(422, _("Nothing was signed: the body has %(n)s problem(s).",
                                    n=len(body.errors)), errors=body.errors,
                             meanings={k: _(v) for k, v in review.MEANINGS.items()})
        raise ApiProblem(422, _("Nothing was signed: the body has %(n)s problem(s).",
                                n=len(body.errors)), errors=body.errors)
    if scope == "casebook":
        return review.SignTarget(found, "casebook")
    event = _event_or_404(found, event_oid, repeat)
    if scope == "event":
        return review.SignTarget(found, "event", event=event)
    return review.SignTarget(found, "form", event=event, form=_form_or_404(found, event,
                                                                           form_oid))


def _signed_as_read(found: Subject, target: review.SignTarget) -> None:
    """With If-Match, sign only what was read: the form's ETag (its version) for a form,
    the event's or the subject's ETag for an event or a casebook (412 when it changed)."""
    tags = preconditions.if_match_tags()
    if tags is None:
        return
    if target.scope == "form":
        preconditions.require_match(forms.etag(target.form.version), tags)
        return
    args = {"study_oid": g.study.oid, "subject_key": found.subject_key}
    if target.scope == "event":
        args.update(event_oid=target.event.event_oid, repeat=target.event.repeat)
        preconditions.require_match(preconditions.current_tag("api.event", args), tags)
    else:
        preconditions.require_match(preconditions.current_tag("api.subject", args), tags)


@bp.post(SUBJECT + "/signatures", endpoint="sign")
def sign(study_oid: str, subject_key: str):
    found = subject_or_404(subject_key, "data.sign")
    body = _Body(json_body(), ("scope", "event_oid", "repeat", "form_oid", "meaning",
                               "username", "password"))
    target = _sign_target(found, body)
    _signed_as_read(found, target)
    try:
        # A wrong password is kept: it counts toward lockout (as on the signing screen).
        with transaction(keep=(review.SignatureError,)):
            signature = review.sign(
                db.session, actor_for("data.sign", found), target,
                password=body.data["password"], username=body.data["username"],
                meaning=body.data["meaning"], require_username=True,
                lockout_threshold=current_app.config["LOCKOUT_THRESHOLD"],
                lockout_minutes=current_app.config["LOCKOUT_MINUTES"])
    except review.SignatureError as exc:
        if exc.locked:
            raise ApiProblem(403, _("Too many wrong passwords: your account is locked; "
                                    "nothing was signed."), account_locked=True) from None
        raise ApiProblem(422, _("The user id or password is not correct: nothing was "
                                "signed."), errors={"password": [
                                    _("The user id or password is not correct.")]}) from None
    except review.SignatureRefused as exc:
        status = 423 if found.study.status == "locked" else 409
        raise ApiProblem(status, say(exc.message),
                         problems=[say(p) for p in exc.problems]) from None
    except review.ReviewError as exc:
        raise _review_problem(exc) from None
    return signature_json(signature), 201


@bp.get(STUDY + "/signatures/awaiting", endpoint="signatures_awaiting")
def signatures_awaiting(study_oid: str):
    found = review.awaiting_signature(db.session, current_user, g.study,
                                      limit=AWAITING_LIMIT)
    return paged("awaiting", found, key=lambda a: (a.site_code, a.subject_key, a.form.id),
                 shape=(str, str, int),
                 render=lambda a: {"subject_key": a.subject_key, "site": a.site_code,
                                   "event_oid": a.form.event.event_oid,
                                   "repeat": a.form.event.repeat,
                                   "form_oid": a.form.form_oid, "status": a.form.status,
                                   "updated_at": iso(a.form.updated_at)})


@bp.get(STUDY + "/signatures/to-redo", endpoint="signatures_to_redo")
def signatures_to_redo(study_oid: str):
    found = review.signatures_to_redo(db.session, current_user, g.study)
    return _signature_page("to-redo", found)


# --- locks --------------------------------------------------------------------------------


@bp.get(STUDY + "/locks", endpoint="locks")
def locks_list(study_oid: str):
    allowed = _lock_sites()
    found = [lock for lock in review.active_locks(db.session, g.study)
             if allowed is None or _site_of(lock) in allowed]
    return {"study_oid": g.study.oid, "status": g.study.status,
            **paged("locks", found, key=lambda lock: (sort_time(lock.locked_at), lock.id),
                    shape=(str, int), render=lock_json)}


def _locked(work) -> dict:
    try:
        with transaction():
            lock = work()
    except review.ReviewError as exc:
        raise _review_problem(exc) from None
    return lock_json(lock)


def _release(subject: Subject, scope: LockScope, what: str, **target: int):
    reason = _reason(required=True)
    lock = review.current_lock(db.session, scope, **target)
    if lock is None:
        raise ApiProblem(409, what)
    return _locked(lambda: review.unlock(db.session, actor_for("data.lock", subject), lock,
                                         reason))


@bp.post(SUBJECT + "/lock", endpoint="subject_lock")
def subject_lock(study_oid: str, subject_key: str):
    found = subject_or_404(subject_key, "data.lock")
    reason = _reason(required=False)
    return _locked(lambda: review.lock_subject(db.session, actor_for("data.lock", found),
                                               found, reason)), 201


@bp.post(SUBJECT + "/unlock", endpoint="subject_unlock")
def subject_unlock(study_oid: str, subject_key: str):
    found = subject_or_404(subject_key, "data.lock")
    return _release(found, LockScope.SUBJECT, _("This subject is not locked."), subject_id=found.id)


@bp.post(FORM + "/lock", endpoint="form_lock")
def form_lock(study_oid: str, subject_key: str, event_oid: str, repeat: int, form_oid: str):
    found = subject_or_404(subject_key, "data.lock")
    instance = _form_or_404(found, _event_or_404(found, event_oid, repeat), form_oid)
    reason = _reason(required=False)
    return _locked(lambda: review.lock_form(db.session, actor_for("data.lock", found),
                                            instance, reason)), 201


@bp.post(FORM + "/unlock", endpoint="form_unlock")
def form_unlock(study_oid: str, subject_key: str, event_oid: str, repeat: int, form_oid: str):
    found = subject_or_404(subject_key, "data.lock")
    instance = _form_or_404(found, _event_or_404(found, event_oid, repeat), form_oid)
    return _release(found, LockScope.FORM, _("This form is not locked."),
                    form_instance_id=instance.id)


@bp.post(STUDY + "/sites/<site_code>/lock", endpoint="site_lock")
def site_lock(study_oid: str, site_code: str):
    allowed = _lock_sites()
    site = db.session.scalar(
        select(Site).join(StudySite, StudySite.site_id == Site.id)
        .where(StudySite.study_id == g.study.id, Site.code == site_code.strip().upper()))
    if site is None or (allowed is not None and site.id not in allowed):
        raise ApiProblem(404, _("There is no site %(site)s in %(study)s at your sites.",
                                site=site_code[:20], study=g.study.oid))
    reason = _reason(required=False)
    return _locked(lambda: review.lock_site(db.session, actor_for("data.lock"), g.study, site,
                                            reason)), 201


@bp.post(STUDY + "/locks/<int:lock_id>/unlock", endpoint="lock_release")
def lock_release(study_oid: str, lock_id: int):
    lock = db.session.get(Lock, lock_id) if lock_id <= MAX_ID else None
    allowed = _lock_sites()
    if lock is None or lock.study_id != g.study.id or (
            allowed is not None and _site_of(lock) not in allowed):
        raise ApiProblem(404, _("There is no lock %(id)s in %(study)s at your sites.",
                                id=lock_id, study=g.study.oid))
    reason = _reason(required=True)
    return _locked(lambda: review.unlock(db.session, actor_for("data.lock"), lock, reason))


@bp.post(STUDY + "/status", endpoint="study_status")
def study_status(study_oid: str):
    body = _Body(json_body(), ("transition", "reason"))
    transition = body.text("transition", required=True, choices=tuple(review.STUDY_TRANSITIONS))
    reason = body.text("reason", required=True, limit=MAX_TEXT)
    body.check()
    previous = g.study.status
    try:
        with transaction():
            review.change_study_status(db.session, actor_for("data.lock"), g.study,
                                       transition, reason)
    except review.ReviewError as exc:
        raise _review_problem(exc) from None
    return {"study_oid": g.study.oid, "status": g.study.status, "previous_status": previous}
