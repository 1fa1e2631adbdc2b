"""A user's own API tokens: create one (its secret shown once), list them, revoke one,
re-enable one suspended by a password change (giving the password again)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, StringField
from wtforms.validators import DataRequired, InputRequired, Length

from ecrf.accounts import tokens as api_tokens
from ecrf.accounts import users as accounts
from ecrf.accounts.passwords import verify_password
from ecrf.accounts.permissions import SIGNED_IN, register
from ecrf.accounts.web import request_actor
from ecrf.core import audit, db, utcnow
from ecrf.core.web import transaction

bp = Blueprint("tokens", __name__, url_prefix="/account/tokens")

register("tokens.index", SIGNED_IN)
register("tokens.create", SIGNED_IN)
register("tokens.revoke", SIGNED_IN)
register("tokens.resume", SIGNED_IN)

STATE_LABELS = {"active": _l("active"), "expired": _l("expired"), "revoked": _l("revoked"),
                "suspended": _l("suspended")}


class TokenForm(FlaskForm):
    name = StringField(_l("Name (what will use it, e.g. 'lab feed')"),
                       validators=[DataRequired(), Length(max=api_tokens.MAX_NAME)])
    days = IntegerField(_l("Valid for (days)"), validators=[InputRequired()], default=30)


class RevokeForm(FlaskForm):
    """No fields: the CSRF token alone."""


class ResumeForm(FlaskForm):
    password = PasswordField(_l("Your password"), validators=[DataRequired(), Length(max=256)],
                             render_kw={"autocomplete": "current-password"})


def max_days() -> int:
    return int(current_app.config.get("API_TOKEN_MAX_DAYS", api_tokens.DEFAULT_MAX_DAYS))


def _render_index(form: TokenForm, status: int = 200):
    tokens = api_tokens.list_tokens(db.session, current_user)
    now = utcnow()
    rows = [(t, api_tokens.token_state(t, now)) for t in tokens]
    return render_template("tokens/index.html", form=form, rows=rows, revoke=RevokeForm(),
                           resume=ResumeForm(), max_days=max_days(),
                           state_labels=STATE_LABELS), status


@bp.get("", endpoint="index")
def index():
    return _render_index(TokenForm())


@bp.post("", endpoint="create")
def create():
    form = TokenForm()
    if not form.validate_on_submit():
        return _render_index(form, 422)
    try:
        with transaction():
            created = api_tokens.create_token(db.session, request_actor(), current_user,
                                              form.name.data, days=form.days.data,
                                              max_days=max_days())
    except api_tokens.TokenError as exc:
        form.days.errors = [*form.days.errors, str(exc)]
        return _render_index(form, 422)
    # Rendered, not redirected: a secret must never travel in the session cookie (flash).
    return render_template("tokens/created.html", token=created.token, secret=created.secret,
                           api_url=url_for("api.studies", _external=True))


@bp.post("/<int:token_id>/revoke", endpoint="revoke")
def revoke(token_id: int):
    form = RevokeForm()
    token = api_tokens.get_token(db.session, token_id, current_user)
    if token is None:
        abort(404)  # another user's token is not there for this user
    if not form.validate_on_submit():
        abort(400)
    try:
        with transaction():
            api_tokens.revoke_token(db.session, request_actor(), token)
    except api_tokens.TokenError as exc:
        flash(str(exc), "warning")
    else:
        flash(_("Token %(prefix)s (%(name)s) is revoked: it no longer works.",
                prefix=token.prefix, name=token.name), "success")
    return redirect(url_for("tokens.index"))


@bp.post("/<int:token_id>/resume", endpoint="resume")
def resume(token_id: int):
    """Re-enable a suspended token: its owner confirms with their password (a wrong one is
    audited and counts toward the account lockout, as a failed signature does)."""
    form = ResumeForm()
    token = api_tokens.get_token(db.session, token_id, current_user)
    if token is None:
        abort(404)
    if not form.validate_on_submit():
        flash(_("Give your password to re-enable the token."), "danger")
        return redirect(url_for("tokens.index"))
    cfg = current_app.config
    actor = request_actor()
    if not verify_password(current_user.password_hash, form.password.data):
        with transaction():
            audit.record(db.session, actor, "api_token.resume_failed", category="security",
                         details={"token_id": token.id, "prefix": token.prefix,
                                  "reason": "wrong password"})
            # A lockout ends the user's sessions, this one included.
            accounts.failed_signature(
                db.session, current_user, actor, threshold=cfg["LOCKOUT_THRESHOLD"],
                minutes=cfg["LOCKOUT_MINUTES"], now=utcnow(), what="token_resume")
        flash(_("The password is not correct: the token stays suspended."), "danger")
        return redirect(url_for("tokens.index"))
    try:
        with transaction():
            api_tokens.resume_token(db.session, actor, token)
    except api_tokens.TokenError as exc:
        flash(str(exc), "warning")
    else:
        flash(_("Token %(prefix)s (%(name)s) works again.", prefix=token.prefix,
                name=token.name), "success")
    return redirect(url_for("tokens.index"))
