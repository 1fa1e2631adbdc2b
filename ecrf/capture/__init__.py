"""Data capture: subjects and their enrolment, stored visit schedules, events and forms
with their values (drafts, completion, reasons for change, no lost updates), item
history, the subject matrix, and moving subjects to another study version. Every write
sends the signals other areas react to (``ecrf.core.signals``)."""

from __future__ import annotations

from flask import Flask

from ecrf.capture.models import (
    SUBJECT_STATUSES,
    CheckAcknowledgement,
    EventInstance,
    FormInstance,
    GroupRow,
    ItemValue,
    ScheduledVisit,
    Subject,
)
from ecrf.capture.operations import (
    CaptureError,
    EventForm,
    EventStateError,
    NotFoundError,
    OpenForm,
    SaveResult,
    StaleChange,
    StaleFormError,
    Submission,
    declare_not_done,
    event_forms,
    form_definition,
    form_snapshot,
    item_history,
    load_form,
    open_event,
    preview_form,
    save_form,
)
from ecrf.capture.schedule import (
    expected_events,
    local_today,
    refresh_stale,
    refresh_subject,
    schedule_rows,
    subject_schedule_data,
)
from ecrf.capture.subjects import EnrolmentError, enrol_subject, visible_subject
from ecrf.capture.web import actor_for, may, subject_or_404

__all__ = [
    "SUBJECT_STATUSES", "CaptureError", "CheckAcknowledgement", "EnrolmentError",
    "EventForm", "EventInstance", "EventStateError", "FormInstance", "GroupRow", "ItemValue",
    "NotFoundError", "OpenForm", "SaveResult", "ScheduledVisit", "StaleChange",
    "StaleFormError", "Subject", "Submission", "actor_for", "declare_not_done",
    "enrol_subject", "event_forms", "expected_events", "form_definition", "form_snapshot",
    "item_history", "load_form", "local_today", "may", "open_event", "preview_form",
    "refresh_stale", "refresh_subject", "register", "save_form", "schedule_rows",
    "subject_or_404", "subject_schedule_data", "visible_subject",
]


def register(app: Flask) -> None:
    """The subject pages (blueprint ``studies``), data entry (``entry``) and the capture
    commands; called by the app factory."""
    from ecrf.capture import cli
    from ecrf.capture.views import entry, subjects

    app.register_blueprint(subjects.bp)
    app.register_blueprint(entry.bp)
    cli.register(app)
