"""Sign in, sign out, change password."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from ecrf.accounts import sessions
from ecrf.accounts import users as accounts
from ecrf.accounts.models import UserSession
from ecrf.accounts.passwords import policy_from_config
from ecrf.accounts.web import request_actor
from ecrf.core import db
from ecrf.core.web import transaction

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)],
                           render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)],
                             render_kw={"autocomplete": "current-password"})


class ChangePasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired()],
                            render_kw={"autocomplete": "current-password"})
    new = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=256)],
                        render_kw={"autocomplete": "new-password"})
    confirm = PasswordField(_l("Repeat the new password"),
                            validators=[DataRequired(), EqualTo("new", _l("The two entries differ."))],
                            render_kw={"autocomplete": "new-password"})


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        cfg = current_app.config
        # A failure and any lockout are part of the record: committed like a success.
        with transaction():
            user = accounts.authenticate(
                db.session, form.username.data, form.password.data,
                ip_address=request.remote_addr,
                lockout_threshold=cfg["LOCKOUT_THRESHOLD"],
                lockout_minutes=cfg["LOCKOUT_MINUTES"],
            )
            if user is not None:
                token = sessions.start(db.session, user, ip_address=request.remote_addr,
                                       user_agent=request.user_agent.string)
        if user is None:
            flash(_("Sign-in failed. Check your username and password. After %(n)d failed "
                    "attempts an account is locked for %(m)d minutes.",
                    n=cfg["LOCKOUT_THRESHOLD"], m=cfg["LOCKOUT_MINUTES"]), "danger")
            return render_template("auth/login.html", form=form), 200
        session.clear()  # a fresh session on sign-in: no fixation of a pre-login cookie
        session["sid"] = token
        login_user(user)
        return redirect(_safe_next(request.args.get("next")) or url_for("main.index"))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout():
    with transaction():
        live = db.session.scalar(select(UserSession).where(
            UserSession.token_hash == sessions._digest(session.get("sid", ""))))
        if live is not None and live.ended_at is None:
            sessions.end(db.session, live, "logout")
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    form = ChangePasswordForm()
    policy = policy_from_config(current_app.config)
    if form.validate_on_submit():
        try:
            # A wrong current password is audited and kept; a policy refusal writes nothing.
            with transaction(keep=(accounts.AccountError,)):
                accounts.change_password(db.session, request_actor(), current_user,
                                         current=form.current.data, new=form.new.data,
                                         policy=policy)
        except accounts.PasswordPolicyError as exc:
            form.new.errors = list(exc.problems)
        except accounts.AccountError as exc:
            form.current.errors = [str(exc)]
        else:
            flash(_("Your password was changed."), "success")
            return redirect(url_for("main.index"))
    forced = current_user.must_change_password
    return render_template("auth/change_password.html", form=form, forced=forced, policy=policy)
