"""One form of one event of a subject: read it (GET) and save it (PUT).

A save goes through ``capture.save_form`` exactly as the entry screen's does: the same
validation, reasons for change, warnings to acknowledge, version check and audit rows.
The view commits once when the service saved, and rolls back otherwise.
"""

from __future__ import annotations

import json
import re

from flask import request
from flask_babel import gettext as _
from flask_babel import ngettext

from ecrf import capture
from ecrf.accounts import Allow
from ecrf.accounts import register_route as register
from ecrf.api.blueprint import bp
from ecrf.api.common import iso, json_body, subject_or_404
from ecrf.api.errors import ApiProblem
from ecrf.api.submission import issue_text, key_text, read_save
from ecrf.capture import Subject, actor_for
from ecrf.core import db
from ecrf.core.web import say, transaction
from ecrf.crf import FormDef, ItemDef
from ecrf.crf.validation import Issue
from ecrf.crf.values import result_kind
from ecrf.review import DataLockedError

register("api.form", Allow("subjects.view"))
register("api.form_save", Allow("data.enter"))

FORM = "/studies/<study_oid>/subjects/<subject_key>/events/<event_oid>/<int:repeat>/forms/<form_oid>"


@bp.get(FORM, endpoint="form")
def form_read(study_oid: str, subject_key: str, event_oid: str, repeat: int, form_oid: str):
    subject = subject_or_404(subject_key, "subjects.view")
    try:
        opened = capture.load_form(db.session, subject, event_oid, repeat, form_oid)
    except capture.CaptureError as exc:
        raise _capture_problem(exc) from None
    document = form_document(subject, event_oid, repeat, opened)
    return document, 200, {"ETag": etag(document["version"])}


@bp.put(FORM, endpoint="form_save")
def form_save(study_oid: str, subject_key: str, event_oid: str, repeat: int, form_oid: str):
    subject = subject_or_404(subject_key, "data.enter")
    data = json_body()
    matched = if_match()
    if matched is not None:
        if "version" not in data:
            data = {**data, "version": matched or None}
        elif data["version"] != (matched or None):
            raise ApiProblem(400, _("The If-Match header names version %(header)s but the body "
                                    "version %(body)s; send one of them, or the same.",
                                    header=matched or 0, body=str(data["version"])[:20]))
    try:
        _definition, form_def = capture.form_definition(db.session, subject, event_oid,
                                                        repeat, form_oid)
    except capture.CaptureError as exc:
        raise _capture_problem(exc) from None
    asked = read_save(form_def, data)
    if asked.errors:
        raise ApiProblem(422, _("Nothing was saved: the body has %(n)s problem(s).",
                                n=len(asked.errors)), errors=asked.errors)
    actor = actor_for("data.enter", subject)
    try:
        with transaction() as unit:
            result = capture.save_form(db.session, actor, subject, event_oid, repeat,
                                       form_oid, asked.submission,
                                       base_version=asked.base_version,
                                       complete=asked.complete)
            if not result.saved:
                unit.discard()
    except capture.CaptureError as exc:
        problem = _capture_problem(exc)
        if matched is not None and isinstance(exc, capture.StaleFormError):
            problem.status = 412  # the precondition the client set does not hold
        raise problem from None
    if not result.saved:
        raise _refused(form_def, result)
    opened = capture.load_form(db.session, subject, event_oid, repeat, form_oid)
    document = form_document(subject, event_oid, repeat, opened)
    document["changed"] = [key_text(k) for k in result.changed]
    document["blockers"] = [say(m) for m in result.blockers]
    return document, 200, {"ETag": etag(document["version"])}


# --- versions as entity tags --------------------------------------------------------------

_ETAG = re.compile(r'(?:W/)?"([0-9]{1,9})"')


def etag(version: int | None) -> str:
    """The form's version as a strong entity tag; "0" for a form never saved."""
    return f'"{version or 0}"'


def if_match() -> int | None:
    """The version named by an If-Match header (None: no header; 0 is read as a form never
    saved, i.e. a null body version). A header that is not one of this API's tags is 400."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    found = _ETAG.fullmatch(header.strip())
    if found is None:
        raise ApiProblem(400, _('If-Match must be the ETag a GET of the form gave, e.g. "3" '
                                '(got %(value)s).', value=header.strip()[:40]))
    return int(found.group(1))


# --- reading ------------------------------------------------------------------------------


def typed(item: ItemDef, text: str | None) -> object:
    """Stored canonical text as JSON: numbers stay strings (exact decimals), dates and
    partial dates ISO 8601 text, a multiple choice a list of codes."""
    if text is None:
        return None
    if result_kind(item) == "multiple_choice":
        try:
            return list(json.loads(text))
        except (ValueError, TypeError):
            return text  # stored under another definition: given as stored
    return text


def form_document(subject: Subject, event_oid: str, repeat: int,
                  opened: capture.OpenForm) -> dict:
    form, instance, validation = opened.form, opened.instance, opened.validation
    values: dict[str, object] = {}
    live = set()
    for group in form.groups:
        for row in opened.rows.get(group.oid, ()) if group.repeating else (1,):
            for item in group.items:
                key = (group.oid, row, item.oid)
                live.add(key)
                values[key_text(key)] = typed(item, opened.values.get(key))
    removed = {}
    for (group_oid, row), record in sorted(opened.removed.items()):
        group = form.group(group_oid)
        removed[f"{group_oid}.{row}"] = {
            "removed_at": iso(record.removed_at), "reason": record.removal_reason,
            "values": {item.oid: typed(item, opened.values.get((group_oid, row, item.oid)))
                       for item in group.items}}
    version = instance.study_version if instance else subject.study_version
    event = opened.event
    return {
        "study_oid": subject.study.oid, "subject_key": subject.subject_key,
        "event": {"event_oid": event_oid, "repeat": repeat, "state": event.state,
                  "actual_date": iso(event.actual_date)},
        "form_oid": form.oid, "name": form.name, "status": opened.status,
        "version": opened.version, "study_version": version.label,
        "updated_at": iso(instance.updated_at) if instance else None,
        "values": values,
        "rows": {g.oid: list(opened.rows.get(g.oid, ())) for g in form.groups if g.repeating},
        "removed_rows": removed,
        "grades": {key_text(k): {"grade": grade.grade, "term": grade.term,
                                 "version": grade.version, "basis": grade.basis}
                   for k, grade in sorted(validation.grades.items())
                   if grade.gradable and k in live},
        "issues": [_issue(issue, opened) for issue in validation.issues],
        "acknowledgements": {issue_text(k): {"justification": ack.justification,
                                             "acknowledged_at": iso(ack.acknowledged_at)}
                             for k, ack in sorted(opened.acknowledgements.items())},
    }


def _issue(issue: Issue, opened: capture.OpenForm | None = None) -> dict:
    ack = opened.acknowledgements.get(issue.key) if opened is not None else None
    return {"id": issue.id, "row": issue.row, "key": issue_text(issue.key),
            "severity": issue.severity.value, "message": say(issue.message),
            "items": [key_text(k) for k in issue.keys],
            "acknowledged": ack.justification if ack is not None else None}


# --- refusals -----------------------------------------------------------------------------


def _refused(form: FormDef, result: capture.SaveResult) -> ApiProblem:
    """422 naming each refused value where it was sent, or why completion was refused."""
    needed = set(result.reasons_needed)
    errors: dict[str, list[str]] = {}
    for key, messages in result.errors.items():
        group, row, item = key
        if not item:
            where = f"removed_rows.{group}.{row}"
        else:
            where = f"{'reasons' if key in needed else 'values'}.{key_text(key)}"
        errors.setdefault(where, []).extend(say(m) for m in messages)
    details = {
        "errors": errors,
        "form_errors": [say(m) for m in result.form_errors],
        "reasons_needed": [key_text(k) for k in result.reasons_needed],
        "missing": [key_text(k) for k in result.missing],
        "check_errors": [_issue(i) for i in result.check_errors],
        "unacknowledged": [_issue(i) for i in result.unacknowledged],
        "blockers": [say(m) for m in result.blockers],
    }
    if errors or result.form_errors:
        count = len(errors) + len(result.form_errors)
        message = ngettext("Nothing was saved: %(num)s problem.",
                           "Nothing was saved: %(num)s problems.", count)
    else:
        message = _("Nothing was saved: the form cannot be marked complete: %(why)s",
                    why=" ".join(details["blockers"]))
    return ApiProblem(422, message, **details)


def _capture_problem(exc: capture.CaptureError) -> ApiProblem:
    message = say(exc.message)
    if isinstance(exc, capture.StaleFormError):
        return ApiProblem(409, message, current_version=exc.current_version, changes=[
            {"username": c.username, "occurred_at": iso(c.occurred_at), "action": c.action,
             "path": c.path, "item": c.item, "old_value": c.old_value,
             "new_value": c.new_value} for c in exc.changes])
    if isinstance(exc, capture.NotFoundError):
        return ApiProblem(404, message)
    if isinstance(exc, DataLockedError):
        return ApiProblem(423, message)
    if isinstance(exc, capture.EventStateError):
        return ApiProblem(409, message)
    return ApiProblem(422, message)
