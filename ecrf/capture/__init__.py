"""Data capture: subjects and their enrolment, stored visit schedules, events and forms
with their values (drafts, completion, reasons for change, no lost updates), item
history, the subject matrix, and moving subjects to another study version. Every write
sends the signals other areas react to (``ecrf.core.signals``)."""

from __future__ import annotations

from flask import Flask

from ecrf.capture.history import subject_audit_query
from ecrf.capture.labels import (
    EVENT_STATE_LABELS,
    FORM_STATUS_LABELS,
    SUBJECT_LABELS,
    VISIT_LABELS,
)
from ecrf.capture.locking import EntryLock, add_lock_reader, entry_lock
from ecrf.capture.models import (
    IMPORTED_TABLES,
    SUBJECT_STATUSES,
    CheckAcknowledgement,
    EventInstance,
    FormInstance,
    FormStatus,
    GroupRow,
    ItemValue,
    ScheduledVisit,
    Subject,
    SubjectStatus,
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
from ecrf.capture.status import recompute_status, recompute_study, study_tasks, subject_tasks
from ecrf.capture.subjects import (
    EnrolmentError,
    StudyCounts,
    enrol_subject,
    mark_on_study,
    study_counts,
    visible_subject,
)
from ecrf.capture.support import (
    MAX_REASON,
    NOT_STARTED,
    build_context,
    event_instance,
    event_path,
    event_rule,
    form_path,
    item_path,
    record_clinical,
    row_path,
)
from ecrf.capture.web import actor_for, may, subject_or_404

__all__ = [
    "CaptureError", "CheckAcknowledgement", "EVENT_STATE_LABELS", "EnrolmentError", "EntryLock",
    "EventForm", "EventInstance", "EventStateError", "FORM_STATUS_LABELS", "FormInstance",
    "FormStatus", "GroupRow", "IMPORTED_TABLES", "ItemValue", "MAX_REASON", "NOT_STARTED", "NotFoundError",
    "OpenForm", "SUBJECT_LABELS", "SUBJECT_STATUSES", "SaveResult", "ScheduledVisit",
    "StaleChange", "StaleFormError", "StudyCounts", "Subject", "SubjectStatus",
    "Submission", "VISIT_LABELS", "actor_for", "add_lock_reader", "build_context", "declare_not_done",
    "enrol_subject", "entry_lock", "event_forms", "event_instance", "event_path", "event_rule",
    "expected_events", "form_definition", "form_path", "form_snapshot", "item_history",
    "item_path", "load_form", "local_today", "mark_on_study", "may", "open_event",
    "preview_form", "recompute_status", "recompute_study", "record_clinical",
    "refresh_stale", "refresh_subject", "register", "row_path", "save_form",
    "schedule_rows", "study_counts", "study_tasks", "subject_audit_query",
    "subject_or_404", "subject_schedule_data", "subject_tasks", "visible_subject",
]


def register(app: Flask) -> None:
    """The subject pages (blueprint ``studies``), data entry (``entry``) and the capture
    commands; called by the app factory."""
    from ecrf.capture import cli, handlers, reconcile
    from ecrf.capture.views import entry, subjects

    app.register_blueprint(subjects.bp)
    app.register_blueprint(entry.bp)
    cli.register(app)
    handlers.register(app)
    reconcile.register()
