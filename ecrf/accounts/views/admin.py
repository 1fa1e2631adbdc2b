"""System administration: users, role grants, sites, the security log."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import EmailField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional

from ecrf import studies
from ecrf.accounts import credentials, sessions
from ecrf.accounts import tokens as api_tokens
from ecrf.accounts import users as accounts
from ecrf.accounts.models import RoleGrant, User
from ecrf.accounts.passwords import policy_from_config
from ecrf.accounts.roles import Role, RoleError
from ecrf.accounts.web import request_actor
from ecrf.core import db, whole_number
from ecrf.core.audit import AuditEvent
from ecrf.core.web import transaction
from ecrf.studies import Study

bp = Blueprint("admin", __name__, url_prefix="/admin")


class UserForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    full_name = StringField(_l("Full name (printed with signatures)"),
                            validators=[DataRequired(), Length(max=200)])
    email = EmailField(_l("Email"), validators=[Optional(), Email(), Length(max=254)])


class GrantForm(FlaskForm):
    role = SelectField(_l("Role"), choices=[(r.value, r.label) for r in Role])
    study = SelectField(_l("Study"), choices=[], validate_choice=False)
    site = SelectField(_l("Site"), choices=[], validate_choice=False)


class SiteForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=32)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    timezone = StringField(_l("Time zone (IANA, e.g. Europe/Paris)"),
                           validators=[DataRequired(), Length(max=64)], default="UTC")
    country = StringField(_l("Country (ISO 3166 two letters)"),
                          validators=[Optional(), Length(min=2, max=2)])


def _user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.route("/users")
def users():
    rows = db.session.scalars(select(User).order_by(User.username)).all()
    return render_template("admin/users.html", users=rows)


@bp.route("/users/new", methods=["GET", "POST"])
def user_new():
    form = UserForm()
    if form.validate_on_submit():
        try:
            with transaction():
                user, temporary = accounts.create_user(
                    db.session, request_actor("users.manage"),
                    username=form.username.data, full_name=form.full_name.data,
                    email=form.email.data, policy=policy_from_config(current_app.config),
                )
        except accounts.AccountError as exc:
            form.username.errors = [str(exc)]
        else:
            flash(_("Account %(u)s created. Temporary password (shown once, to be changed at "
                    "first sign-in): %(p)s", u=user.username, p=temporary), "success")
            return redirect(url_for("admin.user_detail", user_id=user.id))
    return render_template("admin/user_new.html", form=form)


def _grant_form(user: User) -> GrantForm:
    form = GrantForm()
    study_rows = db.session.scalars(select(Study).order_by(Study.oid)).all()
    form.study.choices = [("", _("(none: system role)"))] + [(s.oid, f"{s.oid} — {s.name}")
                                                             for s in study_rows]
    all_sites = studies.list_sites(db.session)
    form.site.choices = [("", _("(none: whole study)"))] + [(s.code, f"{s.code} — {s.name}") for s in all_sites]
    return form


@bp.route("/users/<int:user_id>")
def user_detail(user_id: int):
    user = _user_or_404(user_id)
    grants = sorted(user.grants, key=lambda g: (g.revoked_at is not None, g.granted_at))
    return render_template("admin/user_detail.html", user=user, grants=grants,
                           grant_form=_grant_form(user),
                           active_tokens=len(api_tokens.usable_tokens(db.session, user)))


@bp.route("/users/<int:user_id>/disable", methods=["POST"])
def user_disable(user_id: int):
    return _set_active(user_id, False)


@bp.route("/users/<int:user_id>/enable", methods=["POST"])
def user_enable(user_id: int):
    return _set_active(user_id, True)


def _set_active(user_id: int, active: bool):
    user = _user_or_404(user_id)
    try:
        with transaction():
            accounts.set_active(db.session, request_actor("users.manage"), user, active,
                                reason=request.form.get("reason", "").strip())
            if not active:
                sessions.end_all_for(db.session, user, "account_disabled")
    except accounts.AccountError as exc:
        flash(str(exc), "danger")
    else:
        flash(_("Account %(u)s is now %(s)s.", u=user.username,
                s=_("active") if active else _("disabled")), "success")
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/<int:user_id>/reset-password", methods=["POST"])
def user_reset_password(user_id: int):
    user = _user_or_404(user_id)
    choice = request.form.get("tokens", credentials.SUSPEND)
    if choice not in credentials.TOKEN_CHOICES:
        flash(_("Choose whether the API tokens are suspended or revoked."), "danger")
        return redirect(url_for("admin.user_detail", user_id=user.id))
    with transaction():
        temporary, after = credentials.reset_password(
            db.session, request_actor("users.manage"), user, tokens=choice)
    flash(_("New temporary password for %(u)s (shown once): %(p)s", u=user.username, p=temporary),
          "success")
    flash(_("%(u)s was signed out of %(n)d session(s); API tokens suspended: %(s)d, revoked: "
            "%(r)d.", u=user.username, n=after.sessions_ended, s=after.tokens_suspended,
            r=after.tokens_revoked), "info")
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/<int:user_id>/grants", methods=["POST"])
def user_grant(user_id: int):
    user = _user_or_404(user_id)
    form = _grant_form(user)
    if form.validate_on_submit():
        study = db.session.scalar(select(Study).where(Study.oid == form.study.data)) if form.study.data else None
        site = studies.get_site(db.session, form.site.data) if form.site.data else None
        try:
            with transaction():
                accounts.grant_role(db.session, request_actor("users.manage"), user,
                                    Role(form.role.data), study=study, site=site)
        except (accounts.AccountError, RoleError, ValueError) as exc:
            flash(str(exc), "danger")
        else:
            flash(_("Role granted."), "success")
    else:
        flash(_("The role could not be granted: the form was incomplete."), "danger")
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/grants/<int:grant_id>/revoke", methods=["POST"])
def user_revoke(grant_id: int):
    grant = db.session.get(RoleGrant, grant_id)
    if grant is None:
        abort(404)
    try:
        with transaction():
            accounts.revoke_role(db.session, request_actor("users.manage"), grant,
                                 reason=request.form.get("reason", "").strip())
    except accounts.AccountError as exc:
        flash(str(exc), "danger")
    else:
        flash(_("Role revoked."), "success")
    return redirect(url_for("admin.user_detail", user_id=grant.user_id))


@bp.route("/sites", endpoint="sites")
def sites_index():
    return render_template("admin/sites.html", sites=studies.list_sites(db.session))


@bp.route("/sites/new", methods=["GET", "POST"])
def site_new():
    form = SiteForm()
    if form.validate_on_submit():
        try:
            with transaction():
                site = studies.create_site(db.session, request_actor("sites.manage"),
                                         code=form.code.data, name=form.name.data,
                                         timezone=form.timezone.data.strip(),
                                         country=form.country.data)
        except studies.SiteError as exc:
            form.code.errors = [str(exc)]
        else:
            flash(_("Site %(c)s created.", c=site.code), "success")
            return redirect(url_for("admin.sites"))
    return render_template("admin/site_new.html", form=form)


@bp.route("/security-log")
def security_log():
    page = max(whole_number(request.args.get("page", "1"), maximum=10**6) or 1, 1)
    per_page = 100
    rows = db.session.scalars(
        select(AuditEvent).where(AuditEvent.category.in_(("security", "admin")))
        .order_by(AuditEvent.seq.desc()).offset((page - 1) * per_page).limit(per_page + 1)
    ).all()
    return render_template("admin/security_log.html", rows=rows[:per_page], page=page,
                           has_more=len(rows) > per_page)

