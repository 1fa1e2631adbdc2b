"""The shared kernel every area builds on: configuration, the database base and
extensions, the audit trail, the signals between areas, dashboard panels, the language
and time zone of a request, web plumbing (headers, errors, one transaction per request),
what every command shares, and the server-drawn charts."""

from __future__ import annotations

from flask import Flask

from ecrf.core.audit import (
    GENESIS_HASH,
    SYSTEM,
    Actor,
    AuditChainHead,
    AuditError,
    AuditEvent,
    VerifyResult,
    audit_csv,
    bind_actor,
    compute_hash,
    current_actor,
    record,
    record_export,
    stream_rows,
    study_audit_query,
    verify_chain,
)
from ecrf.core.base import (
    ANALYZE_THRESHOLD,
    Audited,
    Base,
    UTCDateTime,
    analyze_after_import,
    literal_table,
    one_of,
    utcnow,
)
from ecrf.core.cli import TEXT, add_group, cli_actor, fail, guard_commands
from ecrf.core.config import PROJECT_ROOT, VERSION, load_config
from ecrf.core.csvcells import csv_cell
from ecrf.core.extensions import babel, csrf, db, login_manager, migrate
from ecrf.core.i18n import format_day, format_local, interface_language, ui_locale
from ecrf.core.panels import DashboardPanel, add_panel, panels_for
from ecrf.core.plots import (
    ChartPanel,
    SurvivalCurve,
    Threshold,
    dose_level_anc_svg,
    kaplan_meier_svg,
    subject_counts_svg,
)
from ecrf.core.signals import (
    FormChange,
    ItemChange,
    connect,
    form_changing,
    form_saved,
    receivers_of,
)
from ecrf.core.web import (
    MAX_ARG_LENGTH,
    MAX_ID,
    MAX_JSON_DEPTH,
    MAX_SEQ,
    BadInput,
    Transaction,
    bounded_day,
    bounded_moment,
    check_text,
    error_text,
    json_depth,
    json_problems,
    load_json,
    say,
    store_derived,
    text_problem,
    transaction,
    whole_number,
)

__all__ = [
    "ANALYZE_THRESHOLD", "analyze_after_import",
    "BadInput", "MAX_ARG_LENGTH", "MAX_ID", "MAX_JSON_DEPTH", "MAX_SEQ", "bounded_day", "bounded_moment",
    "check_text", "json_depth", "json_problems", "load_json", "text_problem", "whole_number", "TEXT",
    "guard_commands",
    "Actor", "AuditChainHead", "AuditError", "AuditEvent", "Audited", "Base", "ChartPanel",
    "DashboardPanel", "FormChange", "GENESIS_HASH", "ItemChange", "PROJECT_ROOT", "SYSTEM",
    "SurvivalCurve", "Threshold", "Transaction", "UTCDateTime", "VERSION", "VerifyResult", "add_group",
    "add_panel", "audit_csv", "babel", "bind_actor", "cli_actor", "compute_hash",
    "connect", "csrf", "csv_cell", "current_actor", "db", "dose_level_anc_svg",
    "error_text", "fail", "form_changing", "form_saved", "format_day", "format_local",
    "interface_language", "kaplan_meier_svg", "load_config",
    "literal_table", "login_manager", "migrate", "one_of", "panels_for", "receivers_of", "record", "record_export",
    "register", "say", "store_derived", "stream_rows", "study_audit_query",
    "subject_counts_svg", "transaction", "ui_locale", "utcnow", "verify_chain",
]


def register(app: Flask) -> None:
    """The database and the extensions, the request's language and time zone, security
    headers and error pages, and ``ecrf audit verify``; the app factory calls this first."""
    from flask_bootstrap import Bootstrap5

    from ecrf.core import i18n, web
    from ecrf.core.audit.cli import audit_cli

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), compare_type=True,
                     render_as_batch=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    Bootstrap5(app)
    i18n.install(app)
    web.install(app)
    add_group(app, audit_cli)
