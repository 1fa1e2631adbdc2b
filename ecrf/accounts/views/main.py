"""Home, study switcher, language choice, profile and the health check."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select, text

from ecrf.accounts import access
from ecrf.core import db
from ecrf.studies import Study

bp = Blueprint("main", __name__)


@bp.route("/")
def index():
    studies = access.studies_for(db.session, current_user)
    grants = sorted(access.active_grants(current_user),
                    key=lambda g: (g.study.oid if g.study else "", g.role))
    return render_template("main/index.html", studies=studies, grants=grants)


@bp.route("/study", methods=["POST"])
def switch_study():
    oid = request.form.get("study_oid", "")
    study = db.session.scalar(select(Study).where(Study.oid == oid))
    if study is None or study not in access.studies_for(db.session, current_user):
        abort(403)
    session["study_oid"] = study.oid
    target = request.form.get("next") or ""
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("main.index")
    return redirect(target)


@bp.route("/language", methods=["POST"])
def set_language():
    lang = request.form.get("lang")
    if lang in current_app.config["LANGUAGES"]:
        session["lang"] = lang
        if current_user.is_authenticated and current_user.language != lang:
            current_user.language = lang  # remembered for the user's next sessions
            db.session.commit()
    target = request.form.get("next") or ""
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("main.index")
    return redirect(target)


@bp.route("/account")
def profile():
    grants = access.active_grants(current_user)
    return render_template("main/profile.html", grants=grants)


@bp.route("/health")
def health():
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # the health check reports, it never raises
        return {"status": "error", "database": "unreachable"}, 503
    return {"status": "ok"}
