"""Request plumbing shared by every blueprint: sign-in sessions, the permission gate,
security headers, error pages, locale and time-zone display."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import (
    Flask,
    abort,
    current_app,
    flash,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, logout_user
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from ecrf.accounts import access, sessions
from ecrf.accounts import users as accounts
from ecrf.accounts.models import User
from ecrf.accounts.permissions import ROUTES, Allow, Public, SignedIn
from ecrf.extensions import db, login_manager
from ecrf.services.audit import Actor
from ecrf.studies.models import Study

# Endpoints a user who must change their password may still reach.
_PASSWORD_CHANGE_EXEMPT = {"auth.change_password", "auth.logout", "static", "bootstrap.static",
                           "main.set_language", "main.health"}


class _SessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie Secure whenever the request itself came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config.get("SESSION_COOKIE_SECURE") or app.config.get("FORCE_HTTPS_COOKIES"):
            return True
        try:
            return request.is_secure
        except RuntimeError:
            return False


def select_locale() -> str | None:
    if not has_request_context():  # CLI commands and jobs speak the default language
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    chosen = session.get("lang")
    languages = current_app.config["LANGUAGES"]
    if chosen in languages:
        return chosen
    return request.accept_languages.best_match(languages) or "en"


def select_timezone() -> str:
    if not has_request_context():
        return "UTC"
    return g.get("display_tz") or "UTC"


def request_actor(action: str | None = None, study: Study | None = None) -> Actor:
    user = current_user
    role = access.acting_role(user, action, study) if action else None
    return Actor(
        user_id=user.id,
        username=user.username,
        role=role.value if role else None,
        ip_address=request.remote_addr,
    )


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
    ``randomization``, ``escalation``, ``endpoints``."""
    if study is None:
        return frozenset()
    cache = g.setdefault("study_features", {})
    if study.id not in cache:
        from ecrf.studies.store import definition_for, latest_version

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
        cache[study.id] = frozenset(found)
    return cache[study.id]


def format_local(value: dt.datetime | None, tz_name: str | None = None) -> str:
    """A UTC time shown in a site's zone with the zone named: '2026-03-02 14:05 CET (Europe/Paris)'."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    name = tz_name or g.get("display_tz") or "UTC"
    local = value.astimezone(ZoneInfo(name))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({name})"


def install(app: Flask) -> None:
    if app.config.get("PROXY_FIX"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    app.session_interface = _SessionInterface()

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
        study = db.session.scalar(select(Study).where(Study.oid == oid)) if oid else None
        if study is None:
            abort(404)
        if not access.can(user, decision.action, study):
            abort(403)
        g.study = study
        session["study_oid"] = study.oid
        return None

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
            "frame-ancestors 'none'",
        )
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "same-origin"
        headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if request.is_secure:
            headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if request.endpoint not in ("static", "bootstrap.static"):
            # Clinical data must not linger in shared browser caches.
            headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_template("errors/error.html", code=400,
                               title=_("The form expired"),
                               message=_("The page was open too long or was submitted from "
                                         "elsewhere. Go back, reload the page and submit "
                                         "again.")), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if request.path.startswith("/api/"):
            return {"error": error.name, "message": error.description}, error.code
        titles = {
            403: _("You do not have access to this page"),
            404: _("Page not found"),
            405: _("This action is not allowed here"),
            413: _("The upload is too large"),
        }
        return render_template("errors/error.html", code=error.code,
                               title=titles.get(error.code, error.name),
                               message=error.description if error.code not in (403, 404) else None), error.code

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        db.session.rollback()
        app.logger.exception("unexpected error on %s %s", request.method, request.path)
        if request.path.startswith("/api/"):
            return {"error": "Internal Server Error",
                    "message": "The request failed and nothing was saved."}, 500
        return render_template("errors/error.html", code=500,
                               title=_("Something went wrong"),
                               message=_("Nothing was saved. The error has been logged; "
                                         "please try again or contact your data manager.")), 500

    @app.context_processor
    def template_helpers():
        def can(action: str, study: Study | None = None) -> bool:
            return current_user.is_authenticated and access.can(current_user, action, study)

        studies = []
        if current_user.is_authenticated:
            studies = access.studies_for(db.session, current_user)
        return {"can": can, "current_study": current_study, "my_studies": studies,
                "get_locale": get_locale, "study_features": study_features}

    app.jinja_env.filters["localtime"] = format_local


def _user_timezone(user: User) -> str:
    for grant in access.active_grants(user):
        if grant.site is not None:
            return grant.site.timezone
    return "UTC"
