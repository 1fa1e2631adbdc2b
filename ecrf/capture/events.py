"""Events of a subject: started on their actual date, declared not done, reopened.

Every change is audited (category "clinical") in the caller's transaction and the stored
schedule is refreshed, since an event's date and state move the subject's visits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ecrf.capture.models import EventInstance, FormInstance, Subject
from ecrf.capture.schedule import local_today, refresh_subject
from ecrf.capture.support import (
    MAX_REASON,
    NOT_STARTED,
    CaptureError,
    EventStateError,
    event_instance,
    event_path,
    event_rule,
    record_clinical,
)
from ecrf.core import FormChange, audit, form_changing
from ecrf.core.audit import Actor
from ecrf.crf import FormDef
from ecrf.crf.values import N_
from ecrf.domain.schedule import EventKind
from ecrf.studies import definition_for


def open_event(session: Session, actor: Actor, subject: Subject, event_oid: str, repeat: int,
               actual_date: dt.date | None, *, reason: str | None = None,
               today: dt.date | None = None) -> EventInstance:
    """Start an event on its actual date; on a started event, correct the date (reason
    required); on an event declared not done, reopen it (reason required)."""
    audit.bind_actor(session, actor)
    definition = definition_for(subject.study_version)
    rule = event_rule(definition, event_oid, repeat)
    today = today or local_today(subject.site.timezone)
    reason = _reason(reason) or None
    if actual_date is None and rule.kind is not EventKind.LOG:
        raise CaptureError(N_("Give the date the %(event)s took place."), event=rule.name)
    if actual_date is not None and actual_date > today:
        raise CaptureError(N_("%(date)s is in the future (today is %(today)s)."),
                           date=actual_date.isoformat(), today=today.isoformat())
    instance = event_instance(session, subject, event_oid, repeat, lock=True)
    _refuse_if_locked(session, actor, subject, event_oid, repeat)
    path = event_path(subject, event_oid, repeat)
    label = subject.study_version.label
    if instance is None:
        instance = EventInstance(subject_id=subject.id, event_oid=event_oid, repeat=repeat,
                                 state="in_progress", actual_date=actual_date)
        session.add(instance)
        session.flush()
        record_clinical(session, actor, subject, "event.started", path, version_label=label,
                        new=actual_date, reason=reason)
    elif instance.state == "not_done":
        if not reason:
            raise CaptureError(N_("Give a reason for reopening %(event)s, declared not done."),
                               event=rule.name)
        record_clinical(session, actor, subject, "event.reopened", path, version_label=label,
                        old="not_done", new="in_progress", reason=reason)
        instance.state, instance.not_done_reason = "in_progress", None
        if actual_date != instance.actual_date:
            record_clinical(session, actor, subject, "event.date_changed", path,
                            version_label=label, old=instance.actual_date, new=actual_date,
                            reason=reason)
            instance.actual_date = actual_date
    elif actual_date != instance.actual_date:
        if instance.actual_date is not None and not reason:
            raise CaptureError(N_("Give a reason for changing the date of %(event)s."),
                               event=rule.name)
        record_clinical(session, actor, subject, "event.date_changed", path, version_label=label,
                        old=instance.actual_date, new=actual_date, reason=reason)
        instance.actual_date = actual_date
    session.flush()
    refresh_subject(session, subject)
    return instance


def declare_not_done(session: Session, actor: Actor, subject: Subject, event_oid: str,
                     repeat: int, reason: str) -> EventInstance:
    """Record that an event did not take place; refused once any of its forms has data."""
    audit.bind_actor(session, actor)
    definition = definition_for(subject.study_version)
    rule = event_rule(definition, event_oid, repeat)
    reason = _reason(reason)
    if not reason:
        raise CaptureError(N_("Give the reason why %(event)s was not done."), event=rule.name)
    instance = event_instance(session, subject, event_oid, repeat, lock=True)
    _refuse_if_locked(session, actor, subject, event_oid, repeat)
    _refuse_if_locked(session, actor, subject, event_oid, repeat)
    path = event_path(subject, event_oid, repeat)
    label = subject.study_version.label
    if instance is None:
        instance = EventInstance(subject_id=subject.id, event_oid=event_oid, repeat=repeat,
                                 state="not_done", not_done_reason=reason)
        session.add(instance)
        session.flush()
        old = None
    else:
        if instance.state == "not_done":
            raise EventStateError(N_("%(event)s is already declared not done."),
                                  event=rule.name)
        if instance.forms:
            raise EventStateError(N_("%(event)s already has data in %(n)s form(s); it cannot "
                                     "be declared not done."), event=rule.name,
                                  n=len(instance.forms))
        old = instance.state
        instance.state, instance.not_done_reason = "not_done", reason
    record_clinical(session, actor, subject, "event.not_done", path, version_label=label, old=old,
                    new="not_done", reason=reason)
    session.flush()
    refresh_subject(session, subject)
    return instance


@dataclass(frozen=True)
class EventForm:
    form: FormDef
    status: str
    instance: FormInstance | None


def event_forms(session: Session, subject: Subject, event_oid: str, repeat: int
                ) -> tuple[EventInstance | None, list[EventForm]]:
    """The event's instance (None if not started) and each of its forms with its status."""
    definition = definition_for(subject.study_version)
    rule = event_rule(definition, event_oid, repeat)
    instance = event_instance(session, subject, event_oid, repeat)
    stored = {fi.form_oid: fi for fi in instance.forms} if instance else {}
    forms = []
    for oid in rule.forms:
        fi = stored.get(oid)
        form = definition_for(fi.study_version).form(oid) if fi else definition.form(oid)
        forms.append(EventForm(form, fi.status if fi else NOT_STARTED, fi))
    return instance, forms


def _refuse_if_locked(session: Session, actor: Actor, subject: Subject, event_oid: str,
                      repeat: int) -> None:
    # Starting, redating or declaring an event not done is a clinical write like any
    # other: subject, site and study locks refuse it the same way.
    form_changing.send(FormChange(session, actor, subject, event_oid, repeat, "", None))


def _reason(text: str | None) -> str:
    """A reason trimmed; refused when longer than MAX_REASON (never cut)."""
    text = (text or "").strip()
    if len(text) > MAX_REASON:
        raise CaptureError(N_("The reason is %(n)s characters long; at most %(limit)s are "
                              "allowed."), n=len(text), limit=MAX_REASON)
    return text
