"""Background jobs through the API: start a data export, a CRF PDF or the subjects'
casebooks, list your jobs, follow one, cancel it, download its file.

The same job kinds, options, validation, permission (``data.export``) and audit rows
(``export.requested``, ``export.cancel_requested``, ``export.downloaded``) as the exports
page. A job is its creator's: anybody else's is simply not found (404). Jobs run in a
worker, so a start answers 201 at once with the job to poll.
"""

from __future__ import annotations

from flask import current_app, g, send_file, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from ecrf import jobs
from ecrf.accounts import Allow, request_actor
from ecrf.accounts import register_route as register
from ecrf.api.blueprint import bp
from ecrf.api.bodies import body_of, invalid, text_field
from ecrf.api.common import MAX_ID, iso, json_kind, paged
from ecrf.api.errors import ApiProblem
from ecrf.core import db
from ecrf.core.web import transaction
from ecrf.jobs import Job

JOBS_LIMIT = 10_000  # the user's newest jobs, then paged

register("api.jobs", Allow("data.export"))
register("api.job", Allow("data.export"))
register("api.job_create_data_export", Allow("data.export"))
register("api.job_create_crf", Allow("data.export"))
register("api.job_create_casebooks", Allow("data.export"))
register("api.job_cancel", Allow("data.export"))
register("api.job_download", Allow("data.export"))

JOBS = "/studies/<study_oid>/jobs"
JOB = JOBS + "/<int:job_id>"
# The formats of the exports page (``ecrf.outputs``' clinical_data job kind).
DATA_FORMATS = ("odm", "odm_transactional", "csv", "xpt", "sav", "sdtm", "sdtm_package")
VARIANTS = ("blank", "annotated")
MAX_CODE = 64


def job_document(job: Job) -> dict:
    labels = {name: str(kind.label) for name, kind in jobs.kinds().items()}
    done = job.status == "done"
    return {
        "id": job.id, "kind": job.kind, "kind_label": labels.get(job.kind, job.kind),
        "params": jobs.public_params(job.params), "status": job.status,
        "progress": job.progress,
        "message": job.message, "error": job.error, "finished": job.finished,
        "cancel_requested": bool(job.cancel_requested),
        "created_at": iso(job.created_at), "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "url": url_for("api.job", study_oid=g.study.oid, job_id=job.id),
        "download_url": url_for("api.job_download", study_oid=g.study.oid, job_id=job.id)
        if done else None,
    }


def _job_or_404(job_id: int) -> Job:
    job = jobs.get_job(db.session, current_user, g.study, job_id) if job_id <= MAX_ID \
        else None
    if job is None:
        raise ApiProblem(404, _("You have no job %(id)s in %(study)s.", id=job_id,
                                study=g.study.oid))
    return job


def _site(data: dict) -> str | None:
    site = text_field(data, "site", MAX_CODE)
    return site.strip() or None if site is not None else None


def _queue(kind: str, params: dict, field: str):
    try:
        with transaction():
            job = jobs.enqueue(db.session, request_actor("data.export", g.study), kind,
                               g.study, params)
            job_id = job.id
    except jobs.JobError as exc:
        message = str(exc)
        where = "site" if "site" in message.lower() and "site" in params else field
        if "language" in message and "language" in params:
            where = "language"
        raise invalid(where, message) from None
    jobs.nudge(current_app._get_current_object())
    document = job_document(_job_or_404(job_id))
    return document, 201, {"Location": document["url"]}


@bp.get(JOBS, endpoint="jobs")
def jobs_list(study_oid: str):
    found = jobs.jobs_for(db.session, current_user, g.study, limit=JOBS_LIMIT)
    return paged("jobs", found, key=lambda job: (job.id,), shape=(int,), descending=True,
                 render=job_document)


@bp.post(JOBS + "/data", endpoint="job_create_data_export")
def job_create_data_export(study_oid: str):
    data = body_of({"format", "site"})
    fmt = data.get("format")
    if fmt not in DATA_FORMATS:
        shown = fmt[:40] if isinstance(fmt, str) else json_kind(fmt)
        raise invalid("format", _("'format' must be one of %(formats)s (got %(value)s).",
                                  formats=", ".join(DATA_FORMATS), value=shown))
    return _queue("clinical_data", {"format": fmt, "site": _site(data)}, "format")


@bp.post(JOBS + "/casebooks", endpoint="job_create_casebooks")
def job_create_casebooks(study_oid: str):
    data = body_of({"site", "language"})
    language = text_field(data, "language", 16)
    # The casebooks print in the language asked for, else the requesting user's own.
    language = (language or "").strip() or str(get_locale() or "en")
    return _queue("casebooks", {"site": _site(data), "language": language}, "site")


@bp.post(JOBS + "/crf", endpoint="job_create_crf")
def job_create_crf(study_oid: str):
    data = body_of({"version", "variant", "language"})
    version = data.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or not 1 <= version <= MAX_ID):
        raise invalid("version", _("'version' must be a study version number (or null for "
                                   "the latest)."))
    variant = data.get("variant", "blank")
    if variant not in VARIANTS:
        raise invalid("variant", _("'variant' must be blank or annotated."))
    language = text_field(data, "language", 16)
    language = language.strip() or None if language is not None else None
    params = {"version": version, "annotated": variant == "annotated", "language": language}
    try:
        with transaction():
            job = jobs.enqueue(db.session, request_actor("data.export", g.study), "crf_pdf",
                               g.study, params)
            job_id = job.id
    except jobs.JobError as exc:
        message = str(exc)
        raise invalid("language" if "translation" in message else "version",
                      message) from None
    jobs.nudge(current_app._get_current_object())
    document = job_document(_job_or_404(job_id))
    return document, 201, {"Location": document["url"]}


@bp.get(JOB, endpoint="job")
def job_read(study_oid: str, job_id: int):
    return job_document(_job_or_404(job_id))


@bp.post(JOB + "/cancel", endpoint="job_cancel")
def job_cancel(study_oid: str, job_id: int):
    job = _job_or_404(job_id)
    try:
        with transaction():
            jobs.request_cancel(db.session, request_actor("data.export", g.study), job)
    except jobs.JobError as exc:
        raise ApiProblem(409, _("Job %(id)s has already finished (%(status)s): there is "
                                "nothing to cancel.", id=job_id, status=job.status)) from exc
    return job_document(_job_or_404(job_id))


@bp.get(JOB + "/download", endpoint="job_download")
def job_download(study_oid: str, job_id: int):
    job = _job_or_404(job_id)
    if job.status != "done":
        raise ApiProblem(409, _("Job %(id)s is %(status)s: its file can be downloaded once "
                                "it is done.", id=job_id, status=job.status))
    path = jobs.result_file(current_app._get_current_object(), job)
    if path is None:
        raise ApiProblem(404, _("The file of job %(id)s is no longer there: start the job "
                                "again.", id=job_id))
    with transaction():
        jobs.record_download(db.session, request_actor("data.export", g.study), job, path)
    return send_file(path, as_attachment=True, download_name=path.name, max_age=0)
