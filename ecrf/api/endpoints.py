"""Study endpoints through the API: the per-level summaries and the per-subject values the
endpoint pages show, and overall survival as the dashboards show it, computed now from
the stored data by the same services.

Summaries need ``aggregate.view`` (``survival.view`` for survival) and cover the subjects
of the user's sites; per-subject values need ``subjects.view`` and list only subjects of
the sites where the user holds it.
Numbers that are not counts are exact decimal strings ("33.3"), as everywhere in the API.
"""

from __future__ import annotations

from decimal import Decimal

from flask import g, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ecrf import accounts, safety
from ecrf.accounts import Allow
from ecrf.accounts import register_route as register
from ecrf.api.blueprint import bp
from ecrf.api.common import paged, subject_or_404
from ecrf.api.errors import ApiProblem
from ecrf.core import db

register("api.endpoints", Allow("aggregate.view"))
register("api.endpoint_subjects", Allow("subjects.view"))
register("api.subject_endpoints", Allow("subjects.view"))
register("api.survival", Allow("survival.view"))
register("api.survival_subjects", Allow("subjects.view"))

STUDY = "/studies/<study_oid>"

SUMMARY_FIELDS = ("group", "endpoint", "n", "events", "not_evaluable", "percent", "ci_low",
                  "ci_high", "censored", "median", "median_low", "median_high", "minimum",
                  "maximum")


def _text(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def _computed(action: str, subject=None) -> safety.StudyEndpoints:
    site_ids = accounts.site_ids_for(current_user, action, g.study) if subject is None \
        else {subject.site_id}
    try:
        return safety.study_endpoints(db.session, g.study, site_ids,
                                      subject_id=subject.id if subject is not None else None)
    except safety.EndpointsError as exc:
        raise ApiProblem(404, str(exc)) from None


def summary_json(row) -> dict:
    found = {name: _text(getattr(row, name)) for name in SUMMARY_FIELDS}
    found["kind"] = str(row.kind)
    found["text"] = row.text()
    return found


def _subject_json(key: str, rows: list) -> dict:
    first = rows[0]
    return {"subject_key": key, "site_code": first.site_code, "group": first.group,
            "endpoints": [{"endpoint": r.endpoint, "status": r.status, "value": r.value,
                           "day": r.day, "rule": r.rule, "evaluable": r.evaluable,
                           "reason": r.reason} for r in rows]}


def _by_subject(rows: list) -> dict[str, list]:
    found: dict[str, list] = {}
    for row in rows:
        found.setdefault(row.subject_key, []).append(row)
    return found


@bp.get(STUDY + "/endpoints", endpoint="endpoints")
def study_endpoints(study_oid: str):
    result = _computed("aggregate.view")
    params = {name: _text(value) for name, value in vars(result.params).items()}
    return {
        "study": g.study.oid,
        "groups": list(result.groups),
        "parameters": params,
        "rules": result.rules,
        "summary": [summary_json(row) for row in result.summary],
        "subjects_url": url_for("api.endpoint_subjects", study_oid=g.study.oid),
    }


@bp.get(STUDY + "/endpoints/subjects", endpoint="endpoint_subjects")
def endpoint_subjects(study_oid: str):
    result = _computed("subjects.view")
    wanted = request.args.get("endpoint", "").strip()
    if wanted and wanted not in safety.SUBJECT_ENDPOINT_NAMES:
        raise ApiProblem(400, _("There is no endpoint '%(name)s'; endpoints are: %(names)s.",
                                name=wanted[:60],
                                names=", ".join(safety.SUBJECT_ENDPOINT_NAMES)))
    rows = [r for r in result.subject_rows() if not wanted or r.endpoint == wanted]
    subjects = _by_subject(rows)
    return paged("endpoint-subjects", list(subjects), key=lambda key: (key,), shape=(str,),
                 render=lambda key: _subject_json(key, subjects[key]))


@bp.get(STUDY + "/subjects/<subject_key>/endpoints", endpoint="subject_endpoints")
def subject_endpoints(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key, "subjects.view")
    result = _computed("subjects.view", subject)
    rows = _by_subject(result.subject_rows()).get(subject.subject_key)
    if not rows:
        raise ApiProblem(404, _("%(key)s has no endpoint values.", key=subject.subject_key))
    return _subject_json(subject.subject_key, rows)


# --- overall survival -------------------------------------------------------------------


def _survival(action: str, subject=None) -> safety.StudySurvival:
    site_ids = accounts.site_ids_for(current_user, action, g.study) if subject is None \
        else {subject.site_id}
    try:
        return safety.study_survival(db.session, g.study, site_ids)
    except safety.SurvivalError as exc:
        raise ApiProblem(404, str(exc)) from None


def _blank_to_none(row: dict) -> dict:
    return {key: (None if value == "" else value) for key, value in row.items()}


@bp.get(STUDY + "/survival", endpoint="survival")
def study_survival(study_oid: str):
    result = _survival("survival.view")
    found = result.as_json()
    found.pop("subjects")  # aggregates only: a sponsor viewer never sees a subject here
    found["summary"] = [_blank_to_none(row) for row in found["summary"]]
    found["rule"] = result.rule
    found["subjects_url"] = url_for("api.survival_subjects", study_oid=g.study.oid)
    return found


@bp.get(STUDY + "/survival/subjects", endpoint="survival_subjects")
def survival_subjects(study_oid: str):
    rows = [_blank_to_none(row) for row in _survival("subjects.view").subject_rows()]
    return paged("survival-subjects", rows, key=lambda row: (row["subject"],), shape=(str,),
                 render=lambda row: row)
