"""Sign in, sign out, change password."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length

from ecrf.accounts import credentials, devices, sessions, throttle
from ecrf.accounts import tokens as api_tokens
from ecrf.accounts import users as accounts
from ecrf.accounts.passwords import policy_from_config
from ecrf.accounts.web import request_actor
from ecrf.core import audit, db
from ecrf.core.audit import Actor
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
    tokens = RadioField(_l("API tokens"), default=credentials.SUSPEND, choices=[
        SelectChoice(credentials.SUSPEND, _l("Suspend my API tokens until I re-enable them")),
        SelectChoice(credentials.REVOKE,
                     _l("Revoke my API tokens (they can never be used again)")),
    ])


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _throttled(form: LoginForm, wait: int):
    """The answer to an address (or device) that must wait: no password is checked."""
    flash(_("Too many failed sign-in attempts from this network address. Wait %(s)d "
            "seconds before trying again.", s=wait), "danger")
    response = make_response(render_template("auth/login.html", form=form), 429)
    response.headers["Retry-After"] = str(wait)
    return response


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        cfg = current_app.config
        policy = throttle.policy_from_config(cfg)
        address = request.remote_addr
        wait = throttle.seconds_to_wait(db.session, throttle.login_key(address))
        if wait:
            return _throttled(form, wait)
        device = devices.read(request)
        candidate = accounts.get_user(db.session, form.username.data)
        trusted = bool(device and candidate and device.knows(candidate.id)
                       and not throttle.seconds_to_wait(db.session,
                                                        throttle.device_key(device.device_id)))
        # A failure, any lockout and the address's count are part of the record: committed.
        with transaction():
            user = accounts.authenticate(
                db.session, form.username.data, form.password.data,
                ip_address=address,
                lockout_threshold=cfg["LOCKOUT_THRESHOLD"],
                lockout_minutes=cfg["LOCKOUT_MINUTES"],
                trusted=trusted,
            )
            if user is not None:
                token = sessions.start(db.session, user, ip_address=address,
                                       user_agent=request.user_agent.string)
            else:
                wait = throttle.register_failure(db.session, throttle.login_key(address),
                                                 policy)
                if trusted:
                    throttle.register_failure(db.session,
                                              throttle.device_key(device.device_id), policy)
                if wait:
                    audit.record(db.session, Actor(None, "anonymous", ip_address=address),
                                 "login.throttled", category="security",
                                 details={"address": address, "wait_seconds": wait})
        if user is None:
            flash(_("Sign-in failed. Check your username and password. After %(n)d failed "
                    "attempts an account is locked for %(m)d minutes.",
                    n=cfg["LOCKOUT_THRESHOLD"], m=cfg["LOCKOUT_MINUTES"]), "danger")
            return render_template("auth/login.html", form=form), 200
        session.clear()  # a fresh session on sign-in: no fixation of a pre-login cookie
        session["sid"] = token
        login_user(user)
        response = redirect(_safe_next(request.args.get("next")) or url_for("main.index"))
        devices.remember(response, request, user.id)
        return response
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout():
    with transaction():
        live = sessions.find(db.session, session.get("sid"))
        if live is not None:
            sessions.end(db.session, live, "logout")
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    form = ChangePasswordForm()
    policy = policy_from_config(current_app.config)
    active_tokens = len(api_tokens.usable_tokens(db.session, current_user))
    if form.validate_on_submit():
        try:
            # A wrong current password is audited and kept; a policy refusal writes nothing.
            with transaction(keep=(accounts.AccountError,)):
                after = credentials.change_password(
                    db.session, request_actor(), current_user,
                    current=form.current.data, new=form.new.data, policy=policy,
                    tokens=form.tokens.data if active_tokens else credentials.SUSPEND,
                    keep=sessions.find(db.session, session.get("sid")))
        except accounts.PasswordPolicyError as exc:
            form.new.errors = list(exc.problems)
        except accounts.AccountError as exc:
            form.current.errors = [str(exc)]
        else:
            flash(_("Your password was changed."), "success")
            _flash_aftermath(after)
            return redirect(url_for("main.index"))
    forced = current_user.must_change_password
    return render_template("auth/change_password.html", form=form, forced=forced, policy=policy,
                           active_tokens=active_tokens)


def _flash_aftermath(after: credentials.Aftermath) -> None:
    if after.sessions_ended:
        flash(ngettext("Signed out elsewhere: %(num)d other session.",
                       "Signed out elsewhere: %(num)d other sessions.", after.sessions_ended),
              "info")
    if after.tokens_suspended:
        flash(ngettext("%(num)d API token suspended: re-enable it on the API tokens page.",
                       "%(num)d API tokens suspended: re-enable them on the API tokens page.",
                       after.tokens_suspended), "info")
    if after.tokens_revoked:
        flash(ngettext("%(num)d API token revoked.", "%(num)d API tokens revoked.",
                       after.tokens_revoked), "info")
