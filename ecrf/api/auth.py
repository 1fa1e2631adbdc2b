"""Bearer tokens for /api/ paths, plugged into Flask-Login so that ``current_user`` and the
permission gate (``ecrf.accounts.web``) work unchanged.

Flask-Login asks the session loader first and the request loader only when it finds no
user. On /api/ paths a request that carries an ``Authorization`` header is decided by its
token alone, so the session loader is skipped for it; everywhere else nothing changes.
Each use of a token is audited and committed at once, so the record survives whatever the
request does next (a refused save rolls back its own transaction, not the audit of the
call).
"""

from __future__ import annotations

from flask import Flask, Request, current_app, g, request, session
from flask_babel import gettext as _
from flask_login import current_user

from ecrf import accounts
from ecrf.api.blueprint import bp
from ecrf.api.errors import ApiProblem
from ecrf.core import db, login_manager
from ecrf.core.web import transaction

API_PREFIX = "/api/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIX)


def _wants_token(req: Request) -> bool:
    return is_api_path(req.path) and "Authorization" in req.headers


def load_from_token(req: Request):
    """Flask-Login request loader: the user behind a valid bearer token on /api/ paths."""
    if not _wants_token(req):
        return None
    scheme, _sep, secret = req.headers["Authorization"].strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        g.api_auth_problem = ("invalid_request",
                              _("Send the token as 'Authorization: Bearer <token>'."))
        return None
    address = req.remote_addr
    wait = accounts.throttle_wait(db.session, accounts.api_throttle_key(address))
    if wait:  # guessing secrets from this address: answered without looking anything up
        raise ApiProblem(429, _("Too many requests with unknown API tokens from this "
                                "network address. Wait %(s)d seconds before trying again.",
                                s=wait), retry_after=wait)
    try:
        # A refused token stays in the audit trail: committed like an accepted one.
        with transaction(keep=(accounts.AuthenticationError,)):
            try:
                token = accounts.authenticate_token(
                    db.session, secret, method=req.method, path=req.path,
                    ip_address=address,
                    password_max_age_days=current_app.config.get("PASSWORD_MAX_AGE_DAYS", 0))
            except accounts.AuthenticationError as exc:
                if exc.reason == "unknown":  # a guess, not a known token refused
                    accounts.throttle_failure(
                        db.session, accounts.api_throttle_key(address),
                        accounts.throttle_policy(current_app.config))
                raise
    except accounts.AuthenticationError as exc:
        g.api_auth_problem = ("invalid_token", str(exc))
        return None
    g.api_token = token
    return token.user


@bp.record_once
def _install(state) -> None:
    # Runs when the blueprint is registered, after web.install set the session loader.
    app: Flask = state.app
    session_loader = login_manager._user_callback

    def load_user(user_id: str):
        if _wants_token(request):
            return None  # the token decides, never a cookie sent along with it
        return session_loader(user_id) if session_loader is not None else None

    login_manager.user_loader(load_user)
    login_manager.request_loader(load_from_token)
    app.logger.debug("API bearer-token authentication installed")


@bp.before_request
def _writes_need_a_token():
    """A browser's cookie must not write through the API: CSRF protects the screens only."""
    if request.method not in SAFE_METHODS and g.get("api_token") is None \
            and current_user.is_authenticated:
        raise ApiProblem(401, _("Writing through the API needs an API token "
                                "('Authorization: Bearer <token>'); a browser session cannot "
                                "write here."))


@bp.after_request
def _no_session_cookie(response):
    # The gate remembers the study in the session; a token client has no session to keep.
    if g.get("api_token") is not None:
        session.modified = False
    return response
