"""Electronic signatures (21 CFR 11.50, 11.70, 11.200, 11.300).

An investigator signs a form, an event or a subject's whole casebook by entering their
password (and their user id on the first signing of a login session). The signature keeps
the printed name, the UTC time, the meaning, and the SHA-256 of the canonical JSON of the
values in scope. A later save that changes those values breaks it (``broken_at`` and a
reason, audited and logged) and the signer sees it among the signatures to redo.

Wrong passwords count toward account lockout exactly like failed sign-ins and are audited
(``signature.failed``). What may be signed is configurable per study with two boolean
parameters: ``signature_requires_complete`` (default true: every form in scope complete)
and ``signature_blocks_open_queries`` (default true: no open query in scope).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, joinedload

from ecrf import accounts
from ecrf.accounts import User, verify_password
from ecrf.capture import EventInstance, FormInstance, Subject, event_path, form_path
from ecrf.core import audit, utcnow
from ecrf.core.audit import Actor
from ecrf.crf.naming import Names, Naming
from ecrf.crf.values import N_, Message
from ecrf.review.models import Query, Signature
from ecrf.review.support import (
    ReviewError,
    boolean_parameter,
    check_allowed,
    live_values,
    record_review,
    subject_path,
)
from ecrf.studies import Site, Study, definition_for

__all__ = [
    "MEANINGS", "SignatureError", "SignatureRefused", "SignTarget", "awaiting_signature",
    "break_changed", "content_hash", "problems", "sign", "signatures_of", "signed_content",
    "to_redo",
]

log = logging.getLogger(__name__)

# The meanings offered to the signer; the text stored is the one shown (11.50(a)(3)).
MEANINGS = {
    "approval": N_("Approved: I have reviewed this data and confirm it is accurate"),
    "review": N_("Reviewed: I have reviewed this data"),
    "responsibility": N_("Responsibility: I take responsibility for this data as the "
                         "investigator"),
}


class SignatureError(ReviewError):
    """The user id or password did not match. The failure was recorded (it counts toward
    lockout): the caller must commit. ``locked`` says the account is now locked."""

    def __init__(self, template: str, *, locked: bool = False, **params) -> None:
        super().__init__(template, **params)
        self.locked = locked


class SignatureRefused(ReviewError):
    """The data in scope may not be signed (yet); nothing was recorded."""

    def __init__(self, problems: list[Message]) -> None:
        super().__init__(N_("This cannot be signed yet: %(why)s"),
                         why=" ".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class SignTarget:
    """What is signed: a form instance, an event instance or the casebook (neither)."""

    subject: Subject
    scope: str
    event: EventInstance | None = None
    form: FormInstance | None = None

    @property
    def path(self) -> str:
        if self.scope == "form":
            return form_path(self.subject, self.form.event.event_oid, self.form.event.repeat,
                             self.form.form_oid)
        if self.scope == "event":
            return event_path(self.subject, self.event.event_oid, self.event.repeat)
        return subject_path(self.subject)


def _forms_in_scope(session: Session, target: SignTarget) -> list[FormInstance]:
    if target.scope == "form":
        return [target.form]
    stmt = select(FormInstance).join(EventInstance,
                                     EventInstance.id == FormInstance.event_instance_id)
    if target.scope == "event":
        stmt = stmt.where(FormInstance.event_instance_id == target.event.id)
    else:
        stmt = stmt.where(FormInstance.subject_id == target.subject.id)
    return list(session.scalars(stmt.order_by(EventInstance.event_oid, EventInstance.repeat,
                                              FormInstance.form_oid)))


def signed_content(session: Session, target: SignTarget) -> dict:
    """The data a signature is bound to: every value in scope, canonically keyed."""
    forms = _forms_in_scope(session, target)
    values = live_values(session, [f.id for f in forms])
    return {
        "study": target.subject.study.oid, "subject": target.subject.subject_key,
        "scope": target.scope,
        "forms": [{"event": f.event.event_oid, "repeat": f.event.repeat, "form": f.form_oid,
                   "values": {f"{g}[{r}].{i}": v for (g, r, i), v in
                              sorted(values.get(f.id, {}).items()) if v is not None}}
                  for f in forms],
    }


def content_hash(content: dict) -> str:
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def problems(session: Session, target: SignTarget) -> list[Message]:
    """Why the target may not be signed now (empty: it may)."""
    subject = target.subject
    found: list[Message] = []
    if subject.study.status == "locked":
        found.append(Message(N_("the study is locked (read-only).")))
    forms = _forms_in_scope(session, target)
    if not forms:
        found.append(Message(N_("there is no data to sign.")))
    definition = definition_for(subject.study_version)
    if boolean_parameter(definition, "signature_requires_complete", True):
        names = Naming(definition)
        incomplete = [names.form_place(f.event.event_oid, f.event.repeat, f.form_oid)
                      for f in forms if f.status != "complete"]
        if target.scope == "event":
            rule = definition.event(target.event.event_oid)
            started = {f.form_oid for f in forms}
            incomplete += [names.form_place(target.event.event_oid, target.event.repeat, oid)
                           for oid in rule.forms if oid not in started]
        if incomplete:
            found.append(Message(N_("not complete: %(forms)s."),
                                 {"forms": Names(tuple(incomplete))}))
    if boolean_parameter(definition, "signature_blocks_open_queries", True):
        stmt = select(Query.id).where(Query.subject_id == subject.id, Query.status == "open")
        if target.scope == "form":
            stmt = stmt.where(Query.form_instance_id == target.form.id)
        elif target.scope == "event":
            stmt = stmt.where(Query.event_instance_id == target.event.id)
        open_ids = list(session.scalars(stmt))
        if open_ids:
            found.append(Message(N_("open queries: %(ids)s."),
                                 {"ids": ", ".join(f"#{i}" for i in open_ids)}))
    return found


def sign(session: Session, actor: Actor, target: SignTarget, *, password: str,
         meaning: str, username: str | None = None, require_username: bool,
         lockout_threshold: int, lockout_minutes: int) -> Signature:
    """Sign ``target``; flushes. ``username`` is required when ``require_username`` (the
    first signing of a session). Raises SignatureError for wrong credentials (commit: the
    attempt is recorded) and SignatureRefused / ReviewError when it may not be signed."""
    audit.bind_actor(session, actor)
    subject = target.subject
    user = check_allowed(session, actor, "data.sign", subject.study, subject.site_id)
    if user is None:
        raise ReviewError(N_("Only a person can sign: sign in as the investigator."))
    if meaning not in MEANINGS:
        raise ReviewError(N_("Choose the meaning of the signature."))
    now = utcnow()
    if accounts.signing_locked_out(session, user, now):
        raise SignatureError(N_("Your account is locked after repeated wrong passwords."),
                             locked=True)
    given = (username or "").strip().lower()
    if require_username and not given:
        raise ReviewError(N_("Enter your user id and your password to sign."))
    if (given and given != user.username) or not verify_password(user.password_hash,
                                                                password or ""):
        locked = accounts.failed_signature(session, user, actor, threshold=lockout_threshold,
                                           minutes=lockout_minutes, now=now)
        raise SignatureError(N_("The user id or password is not correct: nothing was signed."),
                             locked=locked)
    user.failed_logins = 0
    found = problems(session, target)
    if found:
        raise SignatureRefused(found)
    content = signed_content(session, target)
    digest = content_hash(content)
    signature = Signature(
        study_id=subject.study_id, subject_id=subject.id, scope=target.scope,
        event_instance_id=(target.event.id if target.event else
                           target.form.event_instance_id if target.form else None),
        form_instance_id=target.form.id if target.form else None, signer_id=user.id,
        signer_username=user.username, signer_name=user.full_name, signer_role=actor.role,
        meaning=MEANINGS[meaning], signed_hash=digest, signed_at=now)
    session.add(signature)
    session.flush()
    record_review(session, actor, "signature.signed", subject, target.path, new=digest,
                  reason=signature.meaning,
                  details={"signature_id": signature.id, "scope": target.scope,
                           "signer": user.full_name, "forms": len(content["forms"])})
    return signature


def valid_over(subject: Subject, form: FormInstance):
    """The condition of the valid signatures whose signed data includes ``form``."""
    return and_(Signature.subject_id == subject.id, Signature.broken_at.is_(None),
                or_(and_(Signature.scope == "form", Signature.form_instance_id == form.id),
                    and_(Signature.scope == "event",
                         Signature.event_instance_id == form.event_instance_id),
                    Signature.scope == "casebook"))


def break_changed(session: Session, actor: Actor, subject: Subject, form: FormInstance,
                  reason: str) -> list[Signature]:
    """After a save of ``form``: break every valid signature whose data changed."""
    stmt = select(Signature).where(valid_over(subject, form))
    broken = []
    now = utcnow()
    for signature in session.scalars(stmt):
        target = SignTarget(subject, signature.scope, signature.event_instance,
                            signature.form_instance)
        if content_hash(signed_content(session, target)) == signature.signed_hash:
            continue
        signature.broken_at, signature.broken_reason = now, reason
        broken.append(signature)
        record_review(session, actor, "signature.broken", subject, target.path,
                      old=signature.signed_hash, new="broken", reason=reason,
                      details={"signature_id": signature.id, "signer": signature.signer_username})
        # No mail server is configured in ecrf: the signer learns it from the dashboard
        # ("signatures to redo") and the operators from this log line.
        log.warning("signature %s of %s (%s, %s) broken: %s", signature.id,
                    signature.signer_username, subject.subject_key, signature.scope, reason)
    session.flush()
    return broken


# --- reading -------------------------------------------------------------------------------


def signatures_of(session: Session, subject: Subject, *, form: FormInstance | None = None,
                  event: EventInstance | None = None) -> list[Signature]:
    """Signatures of the subject (all scopes), or those covering one form or event."""
    stmt = select(Signature).where(Signature.subject_id == subject.id)
    if form is not None:
        stmt = stmt.where(or_(Signature.form_instance_id == form.id,
                              and_(Signature.scope == "event",
                                   Signature.event_instance_id == form.event_instance_id),
                              Signature.scope == "casebook"))
    elif event is not None:
        stmt = stmt.where(or_(Signature.event_instance_id == event.id,
                              Signature.scope == "casebook"))
    return list(session.scalars(stmt.order_by(Signature.signed_at.desc(),
                                              Signature.id.desc())))


def _target_key(signature: Signature) -> tuple:
    return (signature.subject_id, signature.scope, signature.event_instance_id,
            signature.form_instance_id)


def to_redo(session: Session, user: User, study: Study) -> list[Signature]:
    """The user's broken signatures not signed again since: one statement."""
    mine = list(session.scalars(select(Signature).where(
        Signature.study_id == study.id, Signature.signer_id == user.id)
        .options(joinedload(Signature.subject)).order_by(Signature.signed_at, Signature.id)))
    latest: dict[tuple, Signature] = {}
    for signature in mine:
        latest[_target_key(signature)] = signature
    return [s for s in latest.values() if s.broken_at is not None]


@dataclass(frozen=True)
class AwaitingForm:
    form: FormInstance
    subject_key: str
    site_code: str


def awaiting_signature(session: Session, user: User, study: Study, *,
                       limit: int = 200) -> list[AwaitingForm]:
    """Complete forms at the user's signing sites with no valid signature covering them."""
    allowed = accounts.site_ids_for(user, "data.sign", study)
    if not accounts.can(user, "data.sign", study):
        return []
    covered = select(Signature.id).where(
        Signature.subject_id == FormInstance.subject_id, Signature.broken_at.is_(None),
        or_(Signature.form_instance_id == FormInstance.id,
            and_(Signature.scope == "event",
                 Signature.event_instance_id == FormInstance.event_instance_id),
            Signature.scope == "casebook"))
    stmt = (select(FormInstance, Subject.subject_key, Site.code)
            .options(joinedload(FormInstance.event))
            .join(Subject, Subject.id == FormInstance.subject_id)
            .join(Site, Site.id == Subject.site_id)
            .where(Subject.study_id == study.id, FormInstance.status == "complete",
                   ~covered.exists())
            .order_by(Site.code, Subject.subject_key, FormInstance.id).limit(limit))
    stmt = accounts.scope_to_sites(stmt, Subject.site_id, allowed)
    return [AwaitingForm(f, key, code) for f, key, code in session.execute(stmt)]
