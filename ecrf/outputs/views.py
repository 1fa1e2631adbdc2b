"""Exports page: queue study-wide work (CRF PDFs now), follow it, download the result."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField
from wtforms.fields.choices import SelectChoice

from ecrf import accounts, jobs, safety, studies
from ecrf.accounts import Allow, request_actor
from ecrf.accounts import register_route as register
from ecrf.core import db, interface_language, record_export
from ecrf.core.web import transaction
from ecrf.jobs import Job, JobStatus

bp = Blueprint("exports", __name__)

register("exports.jobs", Allow("data.export"))
register("exports.create_crf", Allow("data.export"))
register("exports.job_status", Allow("data.export"))
register("exports.job_cancel", Allow("data.export"))
register("exports.job_download", Allow("data.export"))

STATUS_LABELS = {
    JobStatus.QUEUED: _l("Queued"),
    JobStatus.RUNNING: _l("Running"),
    JobStatus.DONE: _l("Done"),
    JobStatus.FAILED: _l("Failed"),
    JobStatus.CANCELLED: _l("Cancelled"),
}
STATUS_STYLES = {JobStatus.QUEUED: "secondary", JobStatus.RUNNING: "primary",
                 JobStatus.DONE: "success", JobStatus.FAILED: "danger",
                 JobStatus.CANCELLED: "warning"}


class CrfJobForm(FlaskForm):
    version = SelectField(_l("Study version"), coerce=int, validate_choice=True)
    variant = RadioField(_l("Variant"), default="blank", validate_choice=True, choices=[
        SelectChoice("blank", _l("Blank CRF (for printing)")),
        SelectChoice("annotated", _l("Annotated CRF (OIDs, SDTM, codes, ranges, conditions)")),
    ])
    language = SelectField(_l("Language of the form texts"), validate_choice=True)


@bp.before_app_request
def _start_worker():
    # The embedded setup needs no separate worker: the web process runs one thread.
    jobs.ensure_in_process_worker(current_app._get_current_object())


def _crf_form() -> CrfJobForm:
    form = CrfJobForm()
    versions = studies.study_versions(db.session, g.study)
    form.version.choices = [SelectChoice(v.number, v.label) for v in reversed(versions)]
    languages = studies.definition_for(versions[-1]).languages if versions else ("en",)
    form.language.choices = [SelectChoice(code, code) for code in languages]
    return form


def _job_or_404(job_id: int) -> Job:
    job = jobs.get_job(db.session, current_user, g.study, job_id)
    if job is None:
        abort(404)
    return job


def _status(job: Job) -> dict:
    return {
        "id": job.id,
        "status": job.status,
        "status_label": str(STATUS_LABELS[job.status]),
        "progress": job.progress,
        "message": job.message,
        "error": job.error,
        "finished": job.finished,
        "cancel_requested": job.cancel_requested,
        "download_url": url_for("exports.job_download", study_oid=g.study.oid, job_id=job.id)
        if job.status == "done" else None,
    }


@bp.route("/studies/<study_oid>/jobs", endpoint="jobs")
def jobs_page(study_oid: str):
    return _render(_crf_form())


def _render(form: CrfJobForm, status: int = 200):
    rows = jobs.jobs_for(db.session, current_user, g.study)
    kinds = {name: kind.label for name, kind in jobs.kinds().items()}
    active = any(not job.finished for job in rows)
    return render_template("exports/jobs.html", form=form, jobs=rows, kinds=kinds,
                           labels=STATUS_LABELS, styles=STATUS_STYLES, active=active), status


@bp.route("/studies/<study_oid>/jobs/crf", methods=["POST"])
def create_crf(study_oid: str):
    form = _crf_form()
    if not form.validate_on_submit():
        return _render(form, 400)
    try:
        with transaction():
            job = jobs.enqueue(db.session, request_actor("data.export", g.study), "crf_pdf",
                               g.study, {"version": form.version.data,
                                         "annotated": form.variant.data == "annotated",
                                         "language": form.language.data})
    except jobs.JobError as exc:
        form.version.errors = [str(exc)]
        return _render(form, 400)
    jobs.nudge(current_app._get_current_object())
    flash(_("CRF job %(id)s queued: it runs in the background; this page shows its "
            "progress.", id=job.id), "success")
    return redirect(url_for("exports.jobs", study_oid=g.study.oid))


@bp.route("/studies/<study_oid>/jobs/<int:job_id>.json")
def job_status(study_oid: str, job_id: int):
    return jsonify(_status(_job_or_404(job_id)))


@bp.route("/studies/<study_oid>/jobs/<int:job_id>/cancel", methods=["POST"])
def job_cancel(study_oid: str, job_id: int):
    job = _job_or_404(job_id)
    try:
        with transaction():
            status = jobs.request_cancel(db.session, request_actor("data.export", g.study), job)
    except jobs.JobError as exc:
        flash(str(exc), "warning")
    else:
        flash(_("Job %(id)s cancelled.", id=job_id) if status == "cancelled" else
              _("Job %(id)s will stop at its next step.", id=job_id), "info")
    return redirect(url_for("exports.jobs", study_oid=g.study.oid))


@bp.route("/studies/<study_oid>/jobs/<int:job_id>/download")
def job_download(study_oid: str, job_id: int):
    job = _job_or_404(job_id)
    path = jobs.result_file(current_app._get_current_object(), job)
    if path is None:
        abort(404, description=_("This job has no file to download (it is not done, or its "
                                 "file was removed)."))
    with transaction():
        jobs.record_download(db.session, request_actor("data.export", g.study), job, path)
    return send_file(path, as_attachment=True, download_name=path.name, max_age=0)


# --- clinical data: casebooks and data exports ----------------------------------------------

register("exports.create_casebooks", Allow("data.export"))
register("exports.create_data_export", Allow("data.export"))

DATA_FORMAT_LABELS = {
    "odm": _l("CDISC ODM 1.3.2, snapshot with audit records (XML)"),
    "odm_transactional": _l("CDISC ODM 1.3.2, transactional: every change (XML)"),
    "csv": _l("CSV per form, with the data dictionary (zip)"),
    "xpt": _l("SAS transport v5 and Dataset-JSON per form (zip)"),
    "sav": _l("SPSS per form (zip)"),
    "sdtm": _l("SDTM datasets, CSV and XPT (zip)"),
    "sdtm_package": _l("SDTM package (XPT, define.xml, manifest)"),
}


@bp.context_processor
def _clinical_export_choices():
    study = g.get("study")
    if study is None:
        return {}
    from ecrf.outputs.jobs import export_sites

    return {"export_sites": export_sites(db.session, study), "data_formats": DATA_FORMAT_LABELS}


def _queue(kind: str, params: dict):
    try:
        with transaction():
            job = jobs.enqueue(db.session, request_actor("data.export", g.study), kind, g.study,
                               params)
    except jobs.JobError as exc:
        flash(str(exc), "danger")
        return redirect(url_for("exports.jobs", study_oid=g.study.oid))
    jobs.nudge(current_app._get_current_object())
    flash(_("Job %(id)s queued: it runs in the background; this page shows its progress.",
            id=job.id), "success")
    return redirect(url_for("exports.jobs", study_oid=g.study.oid))


@bp.route("/studies/<study_oid>/jobs/casebooks", methods=["POST"])
def create_casebooks(study_oid: str):
    # The casebooks print in the language asked for, else the requesting user's own.
    return _queue("casebooks", {"site": request.form.get("site") or None,
                                "language": request.form.get("language") or str(get_locale())})


@bp.route("/studies/<study_oid>/jobs/data", methods=["POST"])
def create_data_export(study_oid: str):
    return _queue("clinical_data", {"format": request.form.get("format"),
                                    "site": request.form.get("site") or None})


# --- the study report ----------------------------------------------------------------------

register("exports.study_report", Allow("survival.view"))


@bp.get("/studies/<study_oid>/report.pdf")
def study_report(study_oid: str):
    """The study report PDF (overall survival), computed now; the per-subject listing only
    for a reader who may see subjects."""
    from ecrf.outputs.pdf.report import study_report_pdf

    study = g.study
    if not safety.has_survival_study(db.session, study):
        return render_template("errors/error.html", code=404, title=_("No study report"),
                               message=_("%(study)s declares no survival endpoint: there is "
                                         "no study report.", study=study.name)), 404
    with_subjects = accounts.can(current_user, "subjects.view", study)
    site_ids = accounts.site_ids_for(current_user, "survival.view", study)
    # In the language asked for (?language=fr), else the reader's own.
    language = request.args.get("language") or str(get_locale())
    if interface_language(language) is None:
        return render_template("errors/error.html", code=400, title=_("Unknown language"),
                               message=_("The report cannot be printed in %(language)s: the "
                                         "languages are %(languages)s.",
                                         language=language[:20],
                                         languages=", ".join(current_app.config["LANGUAGES"]))
                               ), 400
    data = study_report_pdf(db.session, study, site_ids, with_subjects=with_subjects,
                            generated_by=current_user.username, language=language)
    name = f"{study.oid}-study-report.pdf"
    with transaction():
        record_export(db.session, request_actor("survival.view", study), study, None,
                      "study_report", file_name=name,
                      details={"subject_listing": with_subjects})
    return Response(data, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
