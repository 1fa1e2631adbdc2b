"""Enrolment, randomisation, dose escalation and DLT decisions through the API.

Each write calls the service its screen calls, with the same permission, site scoping,
actor and audit rows: enrolment (``studies.enrol``), randomising and undoing it
(``allocation.randomize``, ``allocation.undo``), a subject's dose level
(``allocation.dose_level``), a signed escalation decision (``allocation.decide``, the
password re-entered in the body as on the screen) and the investigator's decision on a DLT
candidate (``safety.dlt_decide``). A refused write changes nothing, except a wrong
signature password, which is recorded (it counts toward lockout) as on the screen.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

from flask import current_app, g, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from ecrf import accounts, allocation, capture, safety, studies
from ecrf.accounts import Allow, request_actor
from ecrf.accounts import register_route as register
from ecrf.api.blueprint import bp
from ecrf.api.common import MAX_ID, iso, json_body, json_kind, subject_or_404
from ecrf.api.errors import ApiProblem
from ecrf.capture import Subject, actor_for
from ecrf.core import db
from ecrf.core.web import transaction
from ecrf.studies import Site

register("api.subject_enrol", Allow("subjects.enrol"))
register("api.randomization", Allow("subjects.randomize"))
register("api.randomize", Allow("subjects.randomize"))
register("api.randomization_undo", Allow("randomization.undo"))
register("api.escalation", Allow("study.view"))
register("api.escalation_decide", Allow("escalation.decide"))
register("api.dose_level", Allow("subjects.enrol"))
register("api.dlt", Allow("subjects.view"))
register("api.dlt_decide", Allow("safety.assess"))

STUDY = "/studies/<study_oid>"
SUBJECT = STUDY + "/subjects/<subject_key>"

MAX_KEY = 64
MAX_UNDO_REASON = 2000
MAX_DECISION_REASON = 4000
MAX_PASSWORD = 256
DLT_DECISIONS = ("confirmed", "rejected")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


# --- request bodies -------------------------------------------------------------------------


def _fields(data: dict, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    return {name: [_("Unknown field: expected only %(names)s.",
                     names=", ".join(allowed) or _("none"))]
            for name in data if name not in allowed}


def _text(data: dict, name: str, errors: dict, *, maximum: int, required: bool = True
          ) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            errors.setdefault(name, []).append(_("Required."))
        return None
    if not isinstance(value, str):
        errors.setdefault(name, []).append(_("Must be a string, not %(kind)s.",
                                             kind=json_kind(value)))
        return None
    if required and not value.strip():
        errors.setdefault(name, []).append(_("Must not be blank."))
        return None
    if len(value) > maximum:
        errors.setdefault(name, []).append(_("At most %(n)s characters (got %(got)s).",
                                             n=maximum, got=len(value)))
        return None
    return value


def _choice(data: dict, name: str, errors: dict, choices: tuple[str, ...]) -> str | None:
    value = _text(data, name, errors, maximum=64)
    if value is not None and value not in choices:
        errors.setdefault(name, []).append(_("'%(value)s' is not one of: %(choices)s.",
                                             value=value[:40], choices=", ".join(choices)))
        return None
    return value


def _refuse(errors: dict) -> None:
    if errors:
        raise ApiProblem(422, _("Nothing was recorded: the body has %(n)s problem(s).",
                                n=len(errors)), errors=errors)


def _optional_body() -> dict:
    """The body of an action that takes no fields: none at all, or an empty JSON object."""
    if not request.get_data(cache=True).strip():
        return {}
    data = json_body()
    _refuse(_fields(data, ()))
    return data


# --- enrolment ------------------------------------------------------------------------------


@bp.post(STUDY + "/subjects", endpoint="subject_enrol")
def subject_enrol(study_oid: str):
    study = g.study
    data = json_body()
    errors = _fields(data, ("site", "subject_key", "enrolled_on"))
    code = _text(data, "site", errors, maximum=32)
    key = _text(data, "subject_key", errors, maximum=MAX_KEY)
    day_text = _text(data, "enrolled_on", errors, maximum=10)
    site = None
    if code is not None:
        site = db.session.scalar(select(Site).where(Site.code == code.strip().upper()))
        if site is None:
            errors.setdefault("site", []).append(_("There is no site '%(code)s'.",
                                                   code=code[:32]))
    enrolled_on = None
    if day_text is not None:
        try:
            if not DATE_RE.match(day_text):
                raise ValueError(day_text)
            enrolled_on = dt.date.fromisoformat(day_text)
        except ValueError:
            errors.setdefault("enrolled_on", []).append(
                _("Must be a date written YYYY-MM-DD (got '%(value)s').", value=day_text))
    _refuse(errors)
    actor = dataclasses.replace(request_actor("subjects.enrol", study), site_code=site.code)
    try:
        with transaction():
            subject = capture.enrol_subject(db.session, actor, study, site, key, enrolled_on)
    except capture.EnrolmentError as exc:
        if exc.field is None:  # the study is not open to enrolment
            raise ApiProblem(409, str(exc)) from None
        raise ApiProblem(422, _("The subject was not enrolled."),
                         errors={exc.field: [str(exc)]}) from None
    url = url_for("api.subject", study_oid=study.oid, subject_key=subject.subject_key)
    document = {"subject_key": subject.subject_key, "site": site.code,
                "status": subject.status, "arm": subject.arm,
                "dose_level": subject.dose_level, "enrolled_on": iso(subject.enrolled_on),
                "study_version": subject.study_version.label, "url": url}
    return document, 201, {"Location": url}


# --- randomisation --------------------------------------------------------------------------


def list_kind() -> str:
    """As on the screen: a training instance allocates from its test list."""
    return current_app.config.get("RANDOMIZATION_KIND", "production")


def _arm_names(subject: Subject) -> dict[str, str]:
    return {arm.code: arm.name for arm in studies.definition_for(subject.study_version).arms}


def _allocation_json(found: allocation.Allocation, arms: dict[str, str]) -> dict:
    # No list sequence number: as on the screen, it would tell a site about block sizes.
    return {"arm": found.arm, "arm_name": arms.get(found.arm),
            "stratum": found.stratum, "strata": json.loads(found.strata),
            "randomized_on": iso(found.randomized_on), "allocated_by": found.allocated_by,
            "allocated_at": iso(found.allocated_at),
            "state": "undone" if found.undone_at else "in_force",
            "undone_at": iso(found.undone_at), "undone_by": found.undone_by,
            "undo_reason": found.undo_reason}


def randomization_document(subject: Subject) -> dict:
    readiness = allocation.check_readiness(db.session, subject)
    arms = _arm_names(subject)
    history = allocation.allocations_of(db.session, subject)
    return {
        "subject_key": subject.subject_key, "site": subject.site.code,
        "list_kind": list_kind(), "arm": subject.arm, "arm_name": arms.get(subject.arm),
        "ready": readiness.ok,
        "checks": [{"key": c.key, "ok": c.ok, "message": c.message}
                   for c in readiness.checks],
        "missing": readiness.reasons,
        "strata": dict(readiness.strata),
        "allocations": [_allocation_json(a, arms) for a in history],
    }


@bp.get(SUBJECT + "/randomization", endpoint="randomization")
def randomization_read(study_oid: str, subject_key: str):
    return randomization_document(subject_or_404(subject_key, "subjects.randomize"))


@bp.post(SUBJECT + "/randomization", endpoint="randomize")
def randomize(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key, "subjects.randomize")
    _optional_body()
    try:
        with transaction():
            allocation.randomize(db.session, request_actor("subjects.randomize", g.study),
                                 subject, kind=list_kind())
    except allocation.RandomizationServiceError as exc:
        reasons = getattr(exc, "reasons", [str(exc)])
        raise ApiProblem(409, _("The subject was not randomized: %(why)s",
                                why="; ".join(reasons)), reasons=reasons) from None
    return randomization_document(subject), 201


@bp.post(SUBJECT + "/randomization/undo", endpoint="randomization_undo")
def randomization_undo(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key, "randomization.undo")
    data = json_body()
    errors = _fields(data, ("reason",))
    reason = _text(data, "reason", errors, maximum=MAX_UNDO_REASON)
    _refuse(errors)
    if not accounts.is_admin(current_user):
        raise ApiProblem(403, _("Only a system administrator can undo a randomization."))
    try:
        with transaction():
            allocation.undo_randomization(
                db.session, request_actor("randomization.undo", g.study), subject, reason)
    except allocation.RandomizationServiceError as exc:
        raise ApiProblem(409, str(exc)) from None
    return randomization_document(subject)


# --- dose escalation ------------------------------------------------------------------------


def _board() -> allocation.Board:
    try:
        return allocation.board(db.session, g.study)
    except (allocation.EscalationServiceError,
            allocation.RandomizationServiceError) as exc:
        raise ApiProblem(404, str(exc)) from None


def _decision_json(decision: allocation.EscalationDecision) -> dict:
    return {"decided_at": iso(decision.decided_at), "decided_by": decision.decided_by,
            "signer_name": decision.signer_name, "role": decision.decided_role,
            "signature_meaning": decision.signature_meaning, "level": decision.level,
            "action": decision.action, "next_level": decision.next_level,
            "mtd_level": decision.mtd_level, "proposed_action": decision.proposed_action,
            "proposal": decision.proposal, "reason": decision.reason}


def board_document(state: allocation.Board) -> dict:
    visible = accounts.site_ids_for(current_user, "subjects.view", g.study)
    see_keys = accounts.can(current_user, "subjects.view", g.study)

    def key_of(member) -> str | None:
        # As on the screen: subjects of other sites are counted, never named.
        if see_keys and (visible is None or member.site_id in visible):
            return member.subject_key
        return None

    proposal = state.proposal
    return {
        "study": g.study.oid, "design": state.design, "target_dlt_rate": state.target,
        "boundaries": {"escalate_at_or_below": state.boundaries[0],
                       "de_escalate_at_or_above": state.boundaries[1]}
        if state.boundaries else None,
        "current_level": state.current_level, "mtd_level": state.mtd,
        "proposal": {"action": proposal.action.value, "level": proposal.level,
                     "reason": proposal.reason, "mtd": proposal.mtd,
                     "decision": state.proposed_decision} if proposal else None,
        "allowed_decisions": list(state.allowed),
        "levels": [{
            "level": row.level, "label": row.label, "dose": row.dose,
            "treated": row.state.treated, "evaluable": row.state.evaluable,
            "dlts": row.state.dlts, "to_replace": row.replacements, "pending": row.pending,
            "places_taken": len(row.subjects), "capacity": row.capacity,
            "open": row.level == state.current_level,
            "subjects": [{"subject_key": key_of(m), "state": m.state,
                          "treated_on": iso(m.treated_on), "window_end": iso(m.window_end)}
                         for m in row.subjects],
        } for row in state.levels],
        "decisions": [_decision_json(d) for d in state.decisions],
    }


@bp.get(STUDY + "/escalation", endpoint="escalation")
def escalation_read(study_oid: str):
    return board_document(_board())


@bp.post(STUDY + "/escalation/decisions", endpoint="escalation_decide")
def escalation_decide(study_oid: str):
    _board()  # 404 for a study without dose escalation
    data = json_body()
    errors = _fields(data, ("action", "reason", "password"))
    action = _choice(data, "action", errors, allocation.DECISIONS)
    reason = _text(data, "reason", errors, maximum=MAX_DECISION_REASON)
    password = _text(data, "password", errors, maximum=MAX_PASSWORD)
    _refuse(errors)
    try:
        # A wrong password is kept: it counts toward lockout, as on the screen.
        with transaction(keep=(allocation.SignatureError,)):
            decision = allocation.record_decision(
                db.session, request_actor("escalation.decide", g.study), g.study,
                action=action, reason=reason, password=password,
                lockout_threshold=current_app.config["LOCKOUT_THRESHOLD"],
                lockout_minutes=current_app.config["LOCKOUT_MINUTES"])
    except allocation.SignatureError as exc:
        if exc.locked:
            raise ApiProblem(403, _("Too many wrong passwords: your account is locked; the "
                                    "decision was not recorded.")) from None
        raise ApiProblem(422, _("The decision was not recorded."), errors={
            "password": [_("The password is not correct (it counts toward the lockout of "
                           "your account).")]}) from None
    except allocation.EscalationServiceError as exc:
        raise ApiProblem(409, _("The decision was not recorded: %(why)s", why=str(exc)),
                         allowed_decisions=list(_board().allowed)) from None
    document = board_document(_board())
    document["decision"] = _decision_json(decision)
    return document, 201


@bp.post(SUBJECT + "/dose-level", endpoint="dose_level")
def dose_level(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key, "subjects.enrol")
    _optional_body()
    _board()
    try:
        with transaction():
            level = allocation.assign_dose_level(
                db.session, request_actor("subjects.enrol", g.study), subject)
    except (allocation.EscalationServiceError,
            allocation.RandomizationServiceError) as exc:
        raise ApiProblem(409, _("No dose level was assigned: %(why)s", why=str(exc))) from None
    row = _board().level(level)
    return {"subject_key": subject.subject_key, "dose_level": level, "label": row.label,
            "dose": row.dose, "place": len(row.subjects), "capacity": row.capacity}, 201


# --- DLT ------------------------------------------------------------------------------------


def _assessment_json(found: safety.DltAssessment) -> dict:
    return {"id": found.id, "group_oid": found.group_oid, "row": found.row,
            "term": found.term, "status": found.status,
            "candidate_reason": found.candidate_reason,
            "meets_criteria": found.meets_criteria, "reason": found.reason,
            "created_at": iso(found.created_at), "decided_at": iso(found.decided_at)}


def dlt_document(subject: Subject) -> dict:
    status = safety.dlt_status(db.session, subject)
    found = db.session.scalars(select(safety.DltAssessment).where(
        safety.DltAssessment.subject_id == subject.id).order_by(safety.DltAssessment.id))
    return {"subject_key": subject.subject_key, "dose_level": subject.dose_level,
            "state": status.state, "evaluable": status.evaluable, "has_dlt": status.has_dlt,
            "reason": status.reason, "window_start": iso(status.window_start),
            "window_end": iso(status.window_end), "full_dose": status.full_dose,
            "pending_candidates": status.pending_candidates,
            "assessments": [_assessment_json(a) for a in found]}


@bp.get(SUBJECT + "/dlt", endpoint="dlt")
def dlt_read(study_oid: str, subject_key: str):
    return dlt_document(subject_or_404(subject_key, "subjects.view"))


@bp.post(SUBJECT + "/dlt/<int:assessment_id>", endpoint="dlt_decide")
def dlt_decide(study_oid: str, subject_key: str, assessment_id: int):
    subject = subject_or_404(subject_key, "safety.assess")
    found = db.session.get(safety.DltAssessment, assessment_id) \
        if assessment_id <= MAX_ID else None
    if found is None or found.subject_id != subject.id:
        raise ApiProblem(404, _("%(key)s has no DLT assessment %(id)s.",
                                key=subject.subject_key, id=assessment_id))
    data = json_body()
    errors = _fields(data, ("decision", "reason"))
    decision = _choice(data, "decision", errors, DLT_DECISIONS)
    reason = _text(data, "reason", errors, maximum=capture.MAX_REASON)
    _refuse(errors)
    try:
        with transaction():
            safety.decide_dlt(db.session, actor_for("safety.assess", subject), found,
                              decision, reason)
    except (safety.DltError, safety.SafetyError) as exc:
        raise ApiProblem(409, _("The decision was not recorded: %(why)s",
                                why=str(exc))) from None
    return dlt_document(subject)
