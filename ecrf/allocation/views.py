"""Treatment allocation: randomizing a subject, the concealed lists, dose escalation."""

from __future__ import annotations

import json

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length

from ecrf import accounts, studies
from ecrf.accounts import Allow, request_actor
from ecrf.accounts import register_route as register
from ecrf.allocation import decisions, escalation, randomization, strata
from ecrf.allocation.models import RandomizationList
from ecrf.capture import CaptureError, Subject, subject_or_404
from ecrf.core import db
from ecrf.core.web import say, transaction

bp = Blueprint("allocation", __name__)

register("allocation.randomize", Allow("subjects.randomize"))
register("allocation.undo", Allow("randomization.undo"))
register("allocation.lists", Allow("randomization.manage"))
register("allocation.list_detail", Allow("randomization.manage"))
register("allocation.escalation", Allow("study.view"))
register("allocation.decide", Allow("escalation.decide"))
register("allocation.dose_level", Allow("subjects.enrol"))
register("allocation.strata", Allow("strata.correct"))

DECISION_LABELS = {
    "escalate": _l("Escalate to the next level"),
    "stay": _l("Stay: enrol another cohort at the current level"),
    "de-escalate": _l("De-escalate"),
    "declare_mtd": _l("Declare the MTD"),
    "stop": _l("Stop the escalation without an MTD"),
}


class UndoForm(FlaskForm):
    reason = TextAreaField(_l("Reason for undoing the randomization"),
                           validators=[DataRequired(), Length(max=2000)])


class DecisionForm(FlaskForm):
    action = SelectField(_l("Decision"), choices=[], validate_choice=True)
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=4000)])
    password = PasswordField(_l("Your password (electronic signature)"),
                             validators=[DataRequired(), Length(max=256)],
                             render_kw={"autocomplete": "current-password"})


def list_kind() -> str:
    """A training instance sets RANDOMIZATION_KIND = "test"; real ones use production."""
    return current_app.config.get("RANDOMIZATION_KIND", "production")


def _arm_names(subject: Subject) -> dict[str, str]:
    defn = studies.definition_for(subject.study_version)
    return {arm.code: arm.name for arm in defn.arms}


def _subject_page(subject: Subject, template: str, **context):
    history = randomization.allocations_of(db.session, subject)
    readiness = randomization.check_readiness(db.session, subject)
    frozen = {a.id: json.loads(a.strata) for a in history}
    language = str(get_locale() or "en").split("_")[0]
    return render_template(template, subject=subject, history=history, readiness=readiness,
                           frozen=frozen, arms=_arm_names(subject), kind=list_kind(),
                           strata=strata.strata_rows(db.session, subject, language)
                           if subject.arm else [], **context)


@bp.route("/studies/<study_oid>/subjects/<subject_key>/randomize", methods=["GET", "POST"])
def randomize(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key, "subjects.randomize")
    if request.method == "POST":
        try:
            with transaction():
                allocation = randomization.randomize(
                    db.session, request_actor("subjects.randomize", g.study), subject,
                    kind=list_kind())
        except randomization.RandomizationServiceError as exc:
            reasons = getattr(exc, "reasons", [str(exc)])
            flash(_("The subject was not randomized: %(why)s", why="; ".join(reasons)),
                  "danger")
            return _subject_page(subject, "allocation/randomize.html", refused=reasons), 409
        flash(_("%(key)s was randomized to arm %(arm)s.", key=subject.subject_key,
                arm=allocation.arm), "success")
        return redirect(url_for(".randomize", study_oid=study_oid, subject_key=subject_key))
    return _subject_page(subject, "allocation/randomize.html", refused=None)


@bp.route("/studies/<study_oid>/subjects/<subject_key>/randomization/undo",
          methods=["GET", "POST"])
def undo(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key, "randomization.undo")
    form = UndoForm()
    if form.validate_on_submit():
        try:
            with transaction():
                randomization.undo_randomization(
                    db.session, request_actor("randomization.undo", g.study), subject,
                    form.reason.data)
        except randomization.RandomizationServiceError as exc:
            form.reason.errors = [str(exc)]
        else:
            flash(_("The randomization of %(key)s was undone; the original allocation stays "
                    "on record.", key=subject.subject_key), "success")
            return redirect(url_for(".undo", study_oid=study_oid, subject_key=subject_key))
    return _subject_page(subject, "allocation/undo.html", form=form)


@bp.route("/studies/<study_oid>/randomization")
def lists(study_oid: str):
    rows = randomization.lists_of(db.session, g.study)
    version = studies.latest_version(db.session, g.study)
    arms = [a.code for a in studies.definition_for(version).arms] if version else []
    summaries = [(rlist, randomization.balance(db.session, rlist, arms)) for rlist in rows]
    return render_template("allocation/lists.html", summaries=summaries, arms=arms,
                           kind=list_kind())


@bp.route("/studies/<study_oid>/randomization/lists/<int:list_id>")
def list_detail(study_oid: str, list_id: int):
    rlist = db.session.get(RandomizationList, list_id)
    if rlist is None or rlist.study_id != g.study.id:
        abort(404)
    slots = randomization.list_slots(db.session, rlist)
    allocations = {a.slot_id: a for a in randomization.list_allocations(db.session, rlist)}
    keys = dict(db.session.execute(select(Subject.id, Subject.subject_key).where(
        Subject.id.in_({s.subject_id for s in slots if s.subject_id}))).all())
    return render_template("allocation/list_detail.html", rlist=rlist, slots=slots,
                           allocations=allocations, keys=keys)


def _board_or_404():
    try:
        return escalation.board(db.session, g.study)
    except (escalation.EscalationServiceError,
            randomization.RandomizationServiceError) as exc:
        abort(404, description=str(exc))


def _decision_form(state) -> DecisionForm:
    form = DecisionForm()
    form.action.choices = [(a, str(DECISION_LABELS[a])) for a in state.allowed]
    if not form.is_submitted() and state.proposed_decision in state.allowed:
        form.action.data = state.proposed_decision
    return form


def _render_board(state, form, status: int = 200):
    visible = accounts.site_ids_for(current_user, "subjects.view", g.study)
    can_see_keys = accounts.can(current_user, "subjects.view", g.study)
    return render_template("allocation/escalation.html", board=state, form=form,
                           labels=DECISION_LABELS, visible_sites=visible,
                           can_see_keys=can_see_keys), status


def escalation_board(study_oid: str):
    state = _board_or_404()
    return _render_board(state, _decision_form(state))


bp.add_url_rule("/studies/<study_oid>/escalation", endpoint="escalation",
                view_func=escalation_board)


@bp.route("/studies/<study_oid>/escalation/decide", methods=["POST"])
def decide(study_oid: str):
    state = _board_or_404()
    form = _decision_form(state)
    if not form.validate_on_submit():
        return _render_board(state, form, 400)
    try:
        # A wrong password is kept: it counts toward lockout.
        with transaction(keep=(decisions.SignatureError,)):
            decisions.record_decision(
                db.session, request_actor("escalation.decide", g.study), g.study,
                action=form.action.data, reason=form.reason.data, password=form.password.data,
                lockout_threshold=current_app.config["LOCKOUT_THRESHOLD"],
                lockout_minutes=current_app.config["LOCKOUT_MINUTES"])
    except decisions.SignatureError as exc:
        if exc.locked:
            logout_user()
            flash(_("Too many wrong passwords: your account is locked."), "danger")
            return redirect(url_for("auth.login"))
        form.password.errors = [_("The password is not correct: the decision was not "
                                  "recorded.")]
        return _render_board(escalation.board(db.session, g.study), form, 400)
    except escalation.EscalationServiceError as exc:
        form.action.errors = [str(exc)]
        return _render_board(escalation.board(db.session, g.study), form, 400)
    flash(_("The decision was recorded and signed."), "success")
    return redirect(url_for(".escalation", study_oid=study_oid))


@bp.route("/studies/<study_oid>/subjects/<subject_key>/dose-level", methods=["GET", "POST"])
def dose_level(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key, "subjects.enrol")
    error = None
    if request.method == "POST":
        try:
            with transaction():
                level = escalation.assign_dose_level(
                    db.session, request_actor("subjects.enrol", g.study), subject)
        except (escalation.EscalationServiceError,
                randomization.RandomizationServiceError) as exc:
            error = str(exc)
        else:
            flash(_("%(key)s was assigned dose level %(level)s.", key=subject.subject_key,
                    level=level), "success")
            return redirect(url_for(".dose_level", study_oid=study_oid,
                                    subject_key=subject_key))
    state = _board_or_404()
    return render_template("allocation/dose_level.html", subject=subject, board=state,
                           error=error), 409 if error else 200


@bp.route("/studies/<study_oid>/subjects/<subject_key>/randomization/strata",
          methods=["GET", "POST"], endpoint="strata")
def strata_page(study_oid: str, subject_key: str):
    """The strata used at randomization beside those recorded now; the data manager
    corrects a stratification factor here (the allocation and the schedule stay)."""
    subject = subject_or_404(subject_key, "strata.correct")
    errors: dict[str, list[str]] = {}
    posted = request.form if request.method == "POST" else {}
    if request.method == "POST":
        name = request.form.get("stratum", "")
        try:
            with transaction():
                strata.correct_stratum(db.session, request_actor("strata.correct", g.study),
                                       subject, name, request.form.get("value", ""),
                                       request.form.get("reason", ""))
        except strata.StratumCorrectionError as exc:
            errors[name] = [say(m) for m in exc.messages]
        except CaptureError as exc:  # locked or frozen data, a concurrent save
            errors[name] = [say(exc.message)]
        else:
            flash(_("The stratification factor was corrected. The allocation and the "
                    "schedule keep the stratum used at randomization; a query documents "
                    "the mis-stratification."), "success")
            return redirect(url_for(".strata", study_oid=study_oid,
                                    subject_key=subject_key))
    return _subject_page(subject, "allocation/strata.html", errors=errors,
                         posted=posted), 422 if errors else 200
