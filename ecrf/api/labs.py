"""Laboratory results through the API: a hospital's laboratory feed sends the file it
exports (a laboratory CSV, HL7 v2 ORU^R01 messages or a FHIR R4 bundle of Observations) as
the request body, and the results go in exactly as on the coordinator's import page: mapped
by the study's ``labs`` block, matched to the subjects of the caller's sites, compared with
what is entered, stored through data capture with the file named in the audit, all or
nothing. ``dry_run=true`` answers the preview and stores nothing; a result that differs
from an entered value is kept as entered unless ``accept_conflicts=true``."""

from __future__ import annotations

from flask import g, request
from flask_babel import gettext as _
from flask_login import current_user

from ecrf import accounts, esource
from ecrf.accounts import Allow, request_actor
from ecrf.accounts import register_route as register
from ecrf.api.blueprint import bp
from ecrf.api.errors import ApiProblem
from ecrf.core import db
from ecrf.core.web import transaction

register("api.labs_import", Allow("data.enter"))

STUDY = "/studies/<study_oid>"
MAX_BYTES = 20 * 1024 * 1024
MAX_NAME = 200


def _flag(name: str) -> bool:
    text = request.args.get(name, "").strip().lower()
    if text not in ("", "true", "false"):
        raise ApiProblem(400, _("The query argument '%(name)s' must be true or false (got "
                                "'%(value)s').", name=name, value=text[:40]))
    return text == "true"


def _problem(problem: esource.Problem) -> dict:
    return {"where": problem.where, "reason": problem.reason}


def plan_document(plan: esource.LabImport) -> dict:
    return {
        "name": plan.name, "sha256": plan.sha256, "format": plan.format,
        "results": plan.results,
        "counts": {"new": plan.count(esource.NEW), "unchanged": plan.count(esource.UNCHANGED),
                   "conflict": plan.count(esource.CONFLICT), "skipped": len(plan.skipped),
                   "problems": len(plan.problems)},
        "lines": [{"where": line.where, "subject_key": line.subject_key, "event": line.event,
                   "repeat": line.repeat, "row": line.row, "date": line.date.isoformat(),
                   "item": line.item, "value": line.value, "source": line.source,
                   "stored": line.stored, "state": line.state, "new_row": line.new_row}
                  for line in plan.lines],
        "skipped": [_problem(p) for p in plan.skipped],
        "problems": [_problem(p) for p in plan.problems],
    }


@bp.post(STUDY + "/labs", endpoint="labs_import")
def labs_import(study_oid: str):
    fmt = request.args.get("format", "").strip() or None
    if fmt is not None and fmt not in esource.FORMATS:
        raise ApiProblem(400, _("The query argument 'format' must be one of %(formats)s (got "
                                "'%(value)s').", formats=", ".join(esource.FORMATS),
                                value=fmt[:40]))
    name = request.args.get("name", "").strip() or "upload"
    if len(name) > MAX_NAME or "\x00" in name:
        raise ApiProblem(400, _("The query argument 'name' must be a file name of at most "
                                "%(n)s characters.", n=MAX_NAME))
    dry_run, accept = _flag("dry_run"), _flag("accept_conflicts")
    if (request.content_length or 0) > MAX_BYTES:
        raise ApiProblem(413, _("The file is larger than %(n)s MB: send it in parts, or "
                                "use the ecrf import labs command.", n=MAX_BYTES // 2**20))
    data = request.get_data(cache=False)
    if len(data) > MAX_BYTES:
        raise ApiProblem(413, _("The file is larger than %(n)s MB: send it in parts, or "
                                "use the ecrf import labs command.", n=MAX_BYTES // 2**20))
    if not data.strip():
        raise ApiProblem(400, _("The body is empty: send the laboratory file as the body."))
    sites = accounts.site_ids_for(current_user, "data.enter", g.study)
    try:
        with transaction() as unit:
            plan = esource.plan_import(db.session, g.study, name, data, fmt, site_ids=sites)
            found = plan_document(plan)
            if plan.problems:
                unit.discard()
                raise ApiProblem(422, _("Nothing was stored: %(n)s result(s) cannot be "
                                        "imported.", n=len(plan.problems)), **found,
                                 dry_run=dry_run, stored=None)
            if dry_run:
                unit.discard()
                return {**found, "dry_run": True, "stored": None}
            stored = esource.apply_import(db.session, request_actor("data.enter", g.study),
                                          g.study, plan, accept=accept)
    except esource.LabImportRefused as exc:
        raise ApiProblem(422, _("Nothing was stored: %(problem)s.", problem=str(exc)),
                         problems=[_problem(p) for p in exc.problems]) from None
    except esource.LabFileError as exc:
        raise ApiProblem(400, _("This file cannot be read: %(reason)s", reason=str(exc))) \
            from None
    return {**found, "dry_run": False,
            "stored": {"values": stored.values, "forms": stored.forms, "kept": stored.kept}}
