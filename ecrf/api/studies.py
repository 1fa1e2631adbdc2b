"""Studies and subjects: the user's studies, one study, its subjects and one subject with
its schedule and recorded events. Site scoping is applied in every query."""

from __future__ import annotations

from flask import g, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import selectinload

from ecrf import accounts, capture, studies
from ecrf.accounts import SIGNED_IN, Allow
from ecrf.accounts import register_route as register
from ecrf.api.blueprint import bp
from ecrf.api.common import (
    encode_cursor,
    iso,
    page_of,
    paged,
    paging_args,
    subject_or_404,
    version_json,
)
from ecrf.api.errors import ApiProblem
from ecrf.capture import SUBJECT_STATUSES, EventInstance, FormInstance, Subject, local_today
from ecrf.core import db
from ecrf.core.web import store_derived
from ecrf.crf import UnknownOidError
from ecrf.studies import Site, StudySite, StudyVersion

register("api.studies", SIGNED_IN)
register("api.study", Allow("study.view"))
register("api.subjects", Allow("subjects.view"))
register("api.subject", Allow("subjects.view"))

STUDY = "/studies/<study_oid>"
SUBJECT = STUDY + "/subjects/<subject_key>"


@bp.get("/studies", endpoint="studies")
def studies_list():
    found = accounts.studies_for(db.session, current_user)
    latest = studies.latest_versions(db.session, [s.id for s in found])

    def render(study) -> dict:
        roles = sorted(r.value for r in accounts.roles_in_study(current_user, study.id))
        return {"oid": study.oid, "name": study.name, "status": study.status,
                "roles": roles, "current_version": version_json(latest.get(study.id)),
                "url": url_for("api.study", study_oid=study.oid)}

    return paged("studies", found, key=lambda study: (study.oid,), shape=(str,),
                 render=render)


@bp.get(STUDY, endpoint="study")
def study_detail(study_oid: str):
    study = g.study
    versions = studies.study_versions(db.session, study)
    current = versions[-1] if versions else None
    definition = studies.definition_for(current) if current else None
    sites = db.session.execute(
        select(Site.code, Site.name, Site.timezone, StudySite.active)
        .join(StudySite, StudySite.site_id == Site.id)
        .where(StudySite.study_id == study.id).order_by(Site.code)).all()
    return {
        "oid": study.oid, "name": study.name, "status": study.status,
        "created_at": iso(study.created_at),
        "current_version": version_json(current),
        "versions": [version_json(v) for v in versions],
        "sites": [{"code": code, "name": name, "timezone": tz, "active": active}
                  for code, name, tz, active in sites],
        "events": [{"oid": rule.oid, "name": rule.name, "kind": rule.kind.value,
                    "forms": list(rule.forms)} for rule in definition.events]
        if definition else [],
        "forms": [{"oid": form.oid, "name": form.name} for form in definition.forms.values()]
        if definition else [],
        "subjects_url": url_for("api.subjects", study_oid=study.oid),
    }


@bp.get(STUDY + "/subjects", endpoint="subjects")
def subjects_list(study_oid: str):
    study = g.study
    page, per_page, cursor = paging_args("subjects", (str, str))
    site = request.args.get("site", "").strip().upper()
    status = request.args.get("status", "").strip()
    if status and status not in SUBJECT_STATUSES:
        raise ApiProblem(400, _("Unknown subject status '%(value)s'; expected one of: "
                                "%(known)s.", value=status[:40],
                                known=", ".join(SUBJECT_STATUSES)))
    base = (select(Subject.id).join(Site, Site.id == Subject.site_id)
            .where(Subject.study_id == study.id))
    base = accounts.scope_to_sites(base, Subject.site_id,
                                 accounts.site_ids_for(current_user, "subjects.view", study))
    if site:
        base = base.where(Site.code == site)
    if status:
        base = base.where(Subject.status == status)
    total = db.session.scalar(select(func.count()).select_from(base.subquery())) or 0
    listing = (base.with_only_columns(Subject.subject_key, Site.code, Subject.status,
                                      Subject.arm, Subject.dose_level, Subject.enrolled_on,
                                      StudyVersion.number, StudyVersion.protocol_version)
               .join(StudyVersion, StudyVersion.id == Subject.study_version_id)
               .order_by(Site.code, Subject.subject_key))
    if cursor is not None:  # keyset: the rows after the last one given
        code, key = cursor
        listing = listing.where(or_(Site.code > code,
                                    and_(Site.code == code, Subject.subject_key > key)))
    else:
        listing = listing.offset((page - 1) * per_page)
    rows = db.session.execute(listing.limit(per_page + 1)).all()
    items = []
    for key, code, state, arm, dose, enrolled, number, protocol in rows[:per_page]:
        label = f"v{number}" + (f" (protocol {protocol})" if protocol else "")
        items.append({"subject_key": key, "site": code, "status": state, "arm": arm,
                      "dose_level": dose, "enrolled_on": iso(enrolled),
                      "study_version": label,
                      "url": url_for("api.subject", study_oid=study.oid, subject_key=key)})
    last = rows[per_page - 1] if len(rows) > per_page else None
    return page_of(items, page=page, per_page=per_page, total=total,
                   next_cursor=encode_cursor("subjects", (last[1], last[0])) if last else None)


@bp.get(SUBJECT, endpoint="subject")
def subject_detail(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key, "subjects.view")
    today = local_today(subject.site.timezone)
    if subject.schedule_computed_on is None or subject.schedule_computed_on < today:
        # Derived data, stored so the next reader need not recompute.
        store_derived(lambda: capture.refresh_subject(db.session, subject, today) or 1)
    rows = capture.schedule_rows(db.session, subject, today)
    definition = studies.definition_for(subject.study_version)
    recorded = db.session.scalars(
        select(EventInstance).where(EventInstance.subject_id == subject.id)
        .options(selectinload(EventInstance.forms))
        .order_by(EventInstance.event_oid, EventInstance.repeat))
    return {
        "subject_key": subject.subject_key, "site": subject.site.code,
        "site_timezone": subject.site.timezone, "status": subject.status,
        "arm": subject.arm, "dose_level": subject.dose_level,
        "enrolled_on": iso(subject.enrolled_on),
        "study_version": subject.study_version.label, "today": iso(today),
        "schedule": [{
            "event_oid": row.event_oid, "event_name": _event_name(definition, row.event_oid),
            "repeat": row.repeat, "planned": iso(row.planned),
            "window": {"start": iso(row.window_start), "end": iso(row.window_end)},
            "status": row.status, "actual_date": iso(row.actual_date), "note": row.note,
        } for row in rows],
        "events": [_event_json(subject, instance) for instance in recorded],
        "audit_url": url_for("api.subject_audit", study_oid=g.study.oid,
                             subject_key=subject.subject_key),
    }


def _event_name(definition, event_oid: str) -> str:
    try:
        return definition.event(event_oid).name
    except UnknownOidError:
        return event_oid  # recorded under another version of the study


def _event_json(subject: Subject, instance: EventInstance) -> dict:
    return {
        "event_oid": instance.event_oid, "repeat": instance.repeat, "state": instance.state,
        "actual_date": iso(instance.actual_date), "not_done_reason": instance.not_done_reason,
        "forms": [_form_link(subject, instance, form) for form in instance.forms],
    }


def _form_link(subject: Subject, instance: EventInstance, form: FormInstance) -> dict:
    return {"form_oid": form.form_oid, "status": form.status, "version": form.version,
            "updated_at": iso(form.updated_at),
            "url": url_for("api.form", study_oid=g.study.oid, subject_key=subject.subject_key,
                           event_oid=instance.event_oid, repeat=instance.repeat,
                           form_oid=form.form_oid)}
