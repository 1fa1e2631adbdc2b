"""Locks: a form, a subject or a site locked by a data manager; a study frozen (no data
entry, review goes on) or locked (read-only).

Locked data cannot be changed by anyone: ``handlers`` asks ``ensure_writable`` before
every save, so the entry screen, the API and any script meet the same refusal, a
``DataLockedError`` whose message names the lock. Unlocking needs a data manager and a
reason; every lock and unlock is audited.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ecrf.capture import EntryLock, EventStateError, FormInstance, Subject, form_path
from ecrf.core import AuditEvent, audit, utcnow
from ecrf.core.audit import Actor
from ecrf.crf.values import N_, Message
from ecrf.review.models import Lock, LockScope
from ecrf.review.support import (
    REVIEW,
    ReviewError,
    check_allowed,
    clean_text,
    record_review,
    subject_path,
)
from ecrf.studies import Site, Study, StudySite, StudyStatus

__all__ = [
    "DataLockedError", "LockError", "STUDY_TRANSITIONS", "LockState", "active_locks",
    "blocking_lock", "change_study_status", "current_lock", "describe", "ensure_review_allowed",
    "ensure_writable", "entry_lock", "lock_form", "lock_site", "lock_subject", "lock_state", "unlock",
]

# transition -> (statuses it starts from, status it leads to)
STUDY_TRANSITIONS: dict[str, tuple[tuple[StudyStatus, ...], StudyStatus]] = {
    "freeze": ((StudyStatus.ACTIVE,), StudyStatus.FROZEN),
    "unfreeze": ((StudyStatus.FROZEN,), StudyStatus.ACTIVE),
    "lock": ((StudyStatus.ACTIVE, StudyStatus.FROZEN), StudyStatus.LOCKED),
    "unlock": ((StudyStatus.LOCKED,), StudyStatus.ACTIVE),
}


class LockError(ReviewError):
    """A lock or unlock request that cannot be carried out."""


class DataLockedError(EventStateError):
    """A change refused because the data is locked (or the study frozen or locked).

    A capture error, so every entry point that reports capture refusals shows it; ``lock``
    is the Lock row at fault, None when the study's status is.
    """

    def __init__(self, template: str, *, lock_row: Lock | None = None, **params) -> None:
        super().__init__(template, **params)
        self.lock = lock_row


# --- reading --------------------------------------------------------------------------------


def covering(subject: Subject, form_instance_id: int | None):
    """The condition of an active lock covering a form of ``subject`` (site, subject or
    form)."""
    covers = [and_(Lock.scope == "site", Lock.site_id == subject.site_id),
              and_(Lock.scope == "subject", Lock.subject_id == subject.id)]
    if form_instance_id is not None:
        covers.append(and_(Lock.scope == "form", Lock.form_instance_id == form_instance_id))
    return and_(Lock.study_id == subject.study_id, Lock.unlocked_at.is_(None), or_(*covers))


def blocking_lock(session: Session, subject: Subject, form_instance_id: int | None
                  ) -> Lock | None:
    """The active lock covering a form of ``subject`` (site, subject or form), if any."""
    return session.scalar(select(Lock).where(covering(subject, form_instance_id))
                          .order_by(Lock.id).limit(1))


def describe(lock: Lock) -> Message:
    """The lock as a sentence: what, by whom, when, why."""
    params = {"who": lock.locked_by, "when": lock.locked_at.strftime("%Y-%m-%d %H:%M UTC"),
              "reason": lock.reason or "-"}
    if lock.scope == "site":
        return Message(N_("Site %(site)s is locked (by %(who)s, %(when)s; reason: %(reason)s)."),
                       {**params, "site": lock.site.code})
    if lock.scope == "subject":
        return Message(N_("Subject %(subject)s is locked (by %(who)s, %(when)s; reason: "
                          "%(reason)s)."), {**params, "subject": lock.subject.subject_key})
    form = lock.form_instance
    return Message(N_("Form %(form)s of %(subject)s at %(event)s[%(repeat)s] is locked (by "
                      "%(who)s, %(when)s; reason: %(reason)s)."),
                   {**params, "form": form.form_oid, "subject": form.event.subject.subject_key,
                    "event": form.event.event_oid, "repeat": form.event.repeat})


def ensure_writable(session: Session, subject: Subject, form_instance_id: int | None) -> None:
    """Raise DataLockedError if a form of ``subject`` may not change now."""
    refuse_frozen(subject)
    refuse_lock(blocking_lock(session, subject, form_instance_id))


def refuse_frozen(subject: Subject) -> None:
    """Raise DataLockedError if the subject's study is frozen or locked."""
    study = subject.study
    if study.status == "frozen":
        raise DataLockedError(N_("Study %(study)s is frozen: no data can be entered or "
                                 "changed (queries are still answered). Nothing was saved."),
                              study=study.oid)
    if study.status == "locked":
        raise DataLockedError(N_("Study %(study)s is locked: its data is read-only. Nothing "
                                 "was saved."), study=study.oid)


def refuse_lock(lock: Lock | None) -> None:
    """Raise DataLockedError naming ``lock``, if there is one."""
    if lock is not None:
        text = describe(lock)
        raise DataLockedError(N_("%(lock)s Nothing was saved: a data manager must unlock it "
                                 "first."), lock_row=lock, lock=str(text))


def ensure_review_allowed(session: Session, subject: Subject, form_instance_id: int | None,
                          *, what: str) -> None:
    """Review actions that mark data (SDV) stop at locks too; ``what`` names the action."""
    if subject.study.status == "locked":
        raise LockError(N_("Study %(study)s is locked: it is read-only (%(what)s refused)."),
                        study=subject.study.oid, what=what)
    lock = blocking_lock(session, subject, form_instance_id)
    if lock is not None:
        raise LockError(N_("%(lock)s (%(what)s refused.)"), lock=str(describe(lock)), what=what)


@dataclass(frozen=True)
class LockState:
    study_status: str
    lock: Lock | None

    @property
    def writable(self) -> bool:
        return self.study_status == "active" and self.lock is None

    @property
    def message(self) -> Message | None:
        if self.lock is not None:
            return describe(self.lock)
        if self.study_status == "frozen":
            return Message(N_("The study is frozen: no data entry; queries go on."))
        if self.study_status == "locked":
            return Message(N_("The study is locked: read-only."))
        return None


def lock_state(session: Session, subject: Subject, form_instance_id: int | None = None
               ) -> LockState:
    """Whether a subject's form may change, and why not (for screens that show it)."""
    return LockState(subject.study.status, blocking_lock(session, subject, form_instance_id))


def entry_lock(session: Session, subject: Subject, form_instance: FormInstance | None
               ) -> EntryLock | None:
    """The lock the entry screen shows (capture's lock reader): who locked, when, why."""
    study = subject.study
    if study.status in ("frozen", "locked"):
        changed = session.scalar(
            select(AuditEvent).where(AuditEvent.study_oid == study.oid,
                                     AuditEvent.action == f"study.{study.status}",
                                     AuditEvent.path == study.oid)
            .order_by(AuditEvent.seq.desc()).limit(1))
        who = changed.username if changed is not None else None
        when = changed.occurred_at if changed is not None else None
        reason = changed.reason if changed is not None else None
        params = {"study": study.oid, "who": who or "-", "reason": reason or "-",
                  "when": when.strftime("%Y-%m-%d %H:%M UTC") if when else "-"}
        template = (N_("Study %(study)s is frozen (by %(who)s, %(when)s; reason: %(reason)s): "
                       "no data can be entered or changed; queries are still answered.")
                    if study.status == "frozen" else
                    N_("Study %(study)s is locked (by %(who)s, %(when)s; reason: %(reason)s): "
                       "its data is read-only."))
        return EntryLock(f"study_{study.status}", Message(template, params), who, when, reason)
    lock = blocking_lock(session, subject, form_instance.id if form_instance else None)
    if lock is None:
        return None
    return EntryLock(str(lock.scope), describe(lock), lock.locked_by, lock.locked_at,
                     lock.reason)


def active_locks(session: Session, study: Study) -> list[Lock]:
    return list(session.scalars(select(Lock).where(Lock.study_id == study.id,
                                                   Lock.unlocked_at.is_(None))
                                .order_by(Lock.locked_at, Lock.id)))


def current_lock(session: Session, scope: LockScope, **target: int) -> Lock | None:
    """The lock in force on one target: ``form_instance_id=``, ``subject_id=``, or
    ``study_id=`` with ``site_id=``."""
    stmt = select(Lock).where(Lock.scope == scope, Lock.unlocked_at.is_(None))
    for column, value in target.items():
        stmt = stmt.where(getattr(Lock, column) == value)
    return session.scalar(stmt)


# --- changing ---------------------------------------------------------------------------------


def _new_lock(session: Session, actor: Actor, study: Study, scope: str, reason: str | None,
              **target) -> Lock:
    lock = Lock(study_id=study.id, scope=scope, locked_by_id=actor.user_id,
                locked_by=actor.username, locked_at=utcnow(), reason=clean_text(reason) or None,
                **target)
    session.add(lock)
    session.flush()
    return lock


def lock_form(session: Session, actor: Actor, form_instance: FormInstance,
              reason: str | None = None) -> Lock:
    audit.bind_actor(session, actor)
    subject = form_instance.event.subject
    check_allowed(session, actor, "data.lock", subject.study, subject.site_id)
    if current_lock(session, LockScope.FORM, form_instance_id=form_instance.id) is not None:
        raise LockError(N_("This form is already locked."))
    lock = _new_lock(session, actor, subject.study, "form", reason,
                     form_instance_id=form_instance.id)
    event = form_instance.event
    record_review(session, actor, "lock.applied", subject,
                  form_path(subject, event.event_oid, event.repeat, form_instance.form_oid),
                  new="locked", reason=lock.reason, details={"lock_id": lock.id, "scope": "form"})
    return lock


def lock_subject(session: Session, actor: Actor, subject: Subject,
                 reason: str | None = None) -> Lock:
    audit.bind_actor(session, actor)
    check_allowed(session, actor, "data.lock", subject.study, subject.site_id)
    if current_lock(session, LockScope.SUBJECT, subject_id=subject.id) is not None:
        raise LockError(N_("Subject %(subject)s is already locked."), subject=subject.subject_key)
    lock = _new_lock(session, actor, subject.study, "subject", reason, subject_id=subject.id)
    record_review(session, actor, "lock.applied", subject, subject_path(subject), new="locked",
                  reason=lock.reason, details={"lock_id": lock.id, "scope": "subject"})
    return lock


def lock_site(session: Session, actor: Actor, study: Study, site: Site,
              reason: str | None = None) -> Lock:
    audit.bind_actor(session, actor)
    check_allowed(session, actor, "data.lock", study, site.id)
    taking_part = session.scalar(select(StudySite.id).where(StudySite.study_id == study.id,
                                                            StudySite.site_id == site.id))
    if taking_part is None:
        raise LockError(N_("Site %(site)s does not take part in %(study)s."), site=site.code,
                        study=study.oid)
    if current_lock(session, LockScope.SITE, study_id=study.id, site_id=site.id) is not None:
        raise LockError(N_("Site %(site)s is already locked."), site=site.code)
    lock = _new_lock(session, actor, study, "site", reason, site_id=site.id)
    audit.record(session, actor, "lock.applied", category=REVIEW, study_oid=study.oid,
                 site_code=site.code, path=f"{study.oid}@{site.code}", new_value="locked",
                 reason=lock.reason, details={"lock_id": lock.id, "scope": "site"})
    return lock


def unlock(session: Session, actor: Actor, lock: Lock, reason: str) -> Lock:
    """Release a lock: a data manager, with a reason."""
    audit.bind_actor(session, actor)
    study = session.get(Study, lock.study_id)
    site_id = lock.site_id if lock.scope == "site" else (
        lock.subject.site_id if lock.scope == "subject"
        else lock.form_instance.event.subject.site_id)
    check_allowed(session, actor, "data.lock", study, site_id)
    reason = clean_text(reason)
    if not reason:
        raise LockError(N_("Give the reason for unlocking."))
    if lock.unlocked_at is not None:
        raise LockError(N_("This lock was already released on %(when)s by %(who)s."),
                        when=lock.unlocked_at.strftime("%Y-%m-%d %H:%M UTC"),
                        who=lock.unlocked_by or "")
    lock.unlocked_at, lock.unlocked_by_id = utcnow(), actor.user_id
    lock.unlocked_by, lock.unlock_reason = actor.username, reason
    details = {"lock_id": lock.id, "scope": lock.scope}
    if lock.scope == "site":
        audit.record(session, actor, "lock.released", category=REVIEW, study_oid=study.oid,
                     site_code=lock.site.code, path=f"{study.oid}@{lock.site.code}",
                     old_value="locked", new_value="unlocked", reason=reason, details=details)
    elif lock.scope == "subject":
        record_review(session, actor, "lock.released", lock.subject, subject_path(lock.subject),
                      old="locked", new="unlocked", reason=reason, details=details)
    else:
        form = lock.form_instance
        subject = form.event.subject
        record_review(session, actor, "lock.released", subject,
                      form_path(subject, form.event.event_oid, form.event.repeat, form.form_oid),
                      old="locked", new="unlocked", reason=reason, details=details)
    session.flush()
    return lock


def change_study_status(session: Session, actor: Actor, study: Study, transition: str,
                        reason: str) -> Study:
    """Freeze, unfreeze, lock or unlock a study (a data manager, with a reason)."""
    audit.bind_actor(session, actor)
    if transition not in STUDY_TRANSITIONS:
        raise LockError(N_("Unknown study transition %(name)s: use freeze, unfreeze, lock or "
                           "unlock."), name=transition)
    check_allowed(session, actor, "data.lock", study, None)
    reason = clean_text(reason)
    if not reason:
        raise LockError(N_("Give the reason to %(transition)s the study."), transition=transition)
    sources, target = STUDY_TRANSITIONS[transition]
    if study.status not in sources:
        raise LockError(N_("Study %(study)s is %(status)s: it cannot be %(transition)s now."),
                        study=study.oid, status=study.status, transition=_past(transition))
    old = study.status
    study.status = target
    audit.record(session, actor, f"study.{_past(transition)}", category=REVIEW,
                 study_oid=study.oid, path=study.oid, old_value=old, new_value=target,
                 reason=reason)
    session.flush()
    return study


def _past(transition: str) -> str:
    return {"freeze": "frozen", "unfreeze": "unfrozen", "lock": "locked",
            "unlock": "unlocked"}[transition]
