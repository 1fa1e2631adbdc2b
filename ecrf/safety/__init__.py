"""Safety: CTCAE grading of lab values as they are saved, AE prompts, AE/SAE consistency,
SAE reporting clocks and notifications, DLT candidates in the DLT window, and the
hematologic recovery endpoints with their plots."""

from __future__ import annotations

from flask import Flask

from ecrf.safety.endpoints import (
    SUBJECT_ENDPOINT_NAMES,
    EndpointsError,
    StudyEndpoints,
    SubjectEndpointRow,
    has_counts,
    recovery_parameters,
    study_endpoints,
    subject_series,
)
from ecrf.safety.handlers import react
from ecrf.safety.handlers import react as react_to_save
from ecrf.safety.models import (
    AeGradePrompt,
    AssessmentStatus,
    AwarenessSource,
    DltAssessment,
    NotificationChannel,
    NotificationLog,
    PromptStatus,
    SaeReport,
)
from ecrf.safety.notify import (
    DeliveryState,
    NotificationError,
    NotificationView,
    delivery_state,
    notification_problems,
)
from ecrf.safety.notify import retry as retry_notification
from ecrf.safety.operations import (
    DltError,
    SafetyError,
    accept_prompt,
    add_followup,
    clock,
    create_report,
    decide_dlt,
    decline_prompt,
    dlt_status,
    report_term,
    running_sae_clocks,
    study_pending,
    study_reports,
    subject_safety,
    submit_report,
)
from ecrf.safety.support import ae_log, load_ae_rows
from ecrf.safety.survival import (
    StudySurvival,
    SurvivalError,
    has_survival,
    has_survival_study,
    study_survival,
)

__all__ = [
    "AeGradePrompt", "AssessmentStatus", "AwarenessSource", "DeliveryState",
    "DltAssessment", "DltError", "EndpointsError", "NotificationChannel",
    "NotificationError", "NotificationLog", "PromptStatus",
    "SUBJECT_ENDPOINT_NAMES", "SaeReport", "SafetyError", "StudyEndpoints",
    "StudySurvival", "SubjectEndpointRow", "SurvivalError", "accept_prompt",
    "add_followup", "ae_log", "clock", "create_report", "decide_dlt", "decline_prompt",
    "delivery_state", "dlt_status", "has_counts", "has_survival", "has_survival_study",
    "load_ae_rows", "react", "react_to_save", "recovery_parameters", "register",
    "notification_problems", "NotificationView", "report_term", "retry_notification", "running_sae_clocks", "study_endpoints", "study_pending",
    "study_reports", "study_survival", "subject_safety", "subject_series", "submit_report",
]


def register(app: Flask) -> None:
    """The safety pages and commands, its reactions to data capture and its dashboard
    panel; called by the app factory."""
    from ecrf.safety import handlers, operations, survival
    from ecrf.safety.cli import ctcae_cli, endpoints_command, survival_command
    from ecrf.safety.views import bp

    app.register_blueprint(bp)
    handlers.register()
    operations.register()
    survival.register()
    app.cli.add_command(ctcae_cli)
    app.cli.add_command(endpoints_command)
    app.cli.add_command(survival_command)
