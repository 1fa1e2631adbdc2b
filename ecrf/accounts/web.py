"""In front of every request: the signed-in user from the server-side session, the
permission gate that decides each route from the one permission table, the actor a view
records in the audit trail, and what templates ask about the user and the study."""

from __future__ import annotations

import datetime as dt

from flask import (
    Flask,
    abort,
    flash,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, logout_user
from sqlalchemy import select

from ecrf.accounts import access, sessions
from ecrf.accounts import users as accounts
from ecrf.accounts.models import User
from ecrf.accounts.permissions import ROUTES, Allow, Public, SignedIn
from ecrf.core import db, login_manager
from ecrf.core.audit import Actor
from ecrf.studies import Study

# Endpoints a user who must change their password may still reach.
_PASSWORD_CHANGE_EXEMPT = {"auth.change_password", "auth.logout", "static", "bootstrap.static",
                           "main.set_language", "main.health"}


def request_actor(action: str | None = None, study: Study | None = None) -> Actor:
    user = current_user
    role = access.acting_role(user, action, study) if action else None
    return Actor(
        user_id=user.id,
        username=user.username,
        role=role.value if role else None,
        ip_address=request.remote_addr,
    )


def _study_by_oid(user, oid: str) -> Study | None:
    """The study ``oid``: from the user's grants when one names it (loaded with the
    session), else from the database."""
    for grant in user.active_grants():
        if grant.study is not None and grant.study.oid == oid:
            return grant.study
    return db.session.scalar(select(Study).where(Study.oid == oid))


def current_study() -> Study | None:
    if "study" in g:
        return g.study
    oid = session.get("study_oid")
    study = None
    if oid and current_user.is_authenticated:
        study = db.session.scalar(select(Study).where(Study.oid == oid))
        if study is not None and study not in access.studies_for(db.session, current_user):
            study = None
    g.study = study
    return study


def study_features(study: Study | None) -> frozenset[str]:
    """What the study's current definition offers, so menus only show what exists:
    ``randomization``, ``escalation``, ``endpoints``, ``labs``."""
    if study is None:
        return frozenset()
    cache = g.setdefault("study_features", {})
    if study.id not in cache:
        from ecrf.studies import definition_for, latest_version

        version = latest_version(db.session, study)
        found: set[str] = set()
        if version is not None:
            definition = definition_for(version)
            if definition.randomization is not None:
                found.add("randomization")
            if definition.dose_escalation is not None:
                found.add("escalation")
            if getattr(definition, "recovery_endpoints", None) is not None:
                found.add("endpoints")
            if getattr(definition, "labs", None) is not None:
                found.add("labs")
        cache[study.id] = frozenset(found)
    return cache[study.id]


def install(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    login_manager.session_protection = None  # the server-side session is the protection

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        live, reason = sessions.resume(
            db.session,
            session.get("sid"),
            idle=dt.timedelta(minutes=app.config["SESSION_IDLE_MINUTES"]),
            absolute=dt.timedelta(hours=app.config["SESSION_ABSOLUTE_HOURS"]),
        )
        if live is None or str(live.user_id) != str(user_id):
            if reason in ("idle_timeout", "absolute_timeout"):
                g.session_expired = True
            if reason:
                db.session.commit()
            session.pop("sid", None)
            return None
        if db.session.dirty:
            db.session.commit()
        return live.user

    @login_manager.unauthorized_handler
    def unauthorized():
        if request.blueprint == "api" or request.path.startswith("/api/"):
            abort(401)
        if g.get("session_expired"):
            flash(_("Your session expired. Please sign in again."), "warning")
        return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))

    @app.before_request
    def gate():
        endpoint = request.endpoint
        if endpoint is None:
            return None  # unmatched URL: the 404 handler answers
        decision = ROUTES.get(endpoint)
        if decision is None:
            app.logger.error("route %s has no permission decision: refused", endpoint)
            abort(403)
        if isinstance(decision, Public):
            return None
        if not current_user.is_authenticated:
            logout_user()
            return login_manager.unauthorized()
        user = current_user
        if g.get("display_tz") is None:
            g.display_tz = _user_timezone(user)
        if endpoint not in _PASSWORD_CHANGE_EXEMPT and (
            user.must_change_password
            or accounts.password_expired(user, app.config["PASSWORD_MAX_AGE_DAYS"])
        ):
            return redirect(url_for("auth.change_password"))
        if isinstance(decision, SignedIn):
            return None
        assert isinstance(decision, Allow)
        if decision.scope == "system":
            if not access.can(user, decision.action):
                abort(403)
            return None
        oid = (request.view_args or {}).get("study_oid")
        study = _study_by_oid(user, oid) if oid else None
        if study is None:
            abort(404)
        if not access.can(user, decision.action, study):
            abort(403)
        g.study = study
        session["study_oid"] = study.oid
        return None

    @app.context_processor
    def template_helpers():
        def can(action: str, study: Study | None = None) -> bool:
            return current_user.is_authenticated and access.can(current_user, action, study)

        studies = []
        if current_user.is_authenticated:
            studies = access.studies_for(db.session, current_user)
        return {"can": can, "current_study": current_study, "my_studies": studies,
                "get_locale": get_locale, "study_features": study_features}


def _user_timezone(user: User) -> str:
    for grant in access.active_grants(user):
        if grant.site is not None:
            return grant.site.timezone
    return "UTC"
