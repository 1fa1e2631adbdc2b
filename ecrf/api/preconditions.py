"""Entity tags and If-Match for every API write that can conflict.

A GET of a resource that others change (a query, an event, an SAE report, a form's SDV, a
subject's strata, randomisation or DLT assessments, the escalation board, a study) answers
with an ``ETag``: a digest of what it shows, leaving out what changes with the clock or
with the reader (a query's age, an SAE clock's minutes left, what your roles allow). A
write to that resource may send it back as ``If-Match``: when the resource changed since
(another user answered the query, closed the event, submitted the report), nothing is done
and the answer is 412 with the current tag, so a client never acts on a state it did not
see. Without If-Match a write behaves as before. A successful write answers with the new
tag. The form's own save keeps its version tags (``"3"``, see ``forms``); a form signature
takes the form's tag.

The table ``GUARDED`` names, for each write, the GET that shows its resource; the check
runs after the permission gate, by reading that resource as the GET would.
"""

from __future__ import annotations

import hashlib
import json

from flask import current_app, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from ecrf.api.blueprint import bp
from ecrf.api.errors import ApiProblem

# What changes with the clock or with the reader, not with the resource.
VOLATILE = frozenset({"age_days", "allowed", "clock", "overdue", "remaining_minutes",
                      "editable", "notifications", "computed_at", "schedule", "url",
                      "subjects_url", "changed", "blockers"})

# write endpoint -> the GET endpoint of its resource (and the path arguments it takes).
GUARDED: dict[str, tuple[str, tuple[str, ...]]] = {
    **{f"api.query_{action}": ("api.query", ("study_oid", "query_id"))
       for action in ("answer", "comment", "close", "reopen", "assign")},
    **{f"api.form_sdv_{action}": ("api.form_sdv", ("study_oid", "subject_key", "event_oid",
                                                    "repeat", "form_oid"))
       for action in ("verify", "unverify")},
    **{f"api.event_{action}": ("api.event", ("study_oid", "subject_key", "event_oid",
                                              "repeat"))
       for action in ("start", "not_done")},
    **{f"api.sae_{action}": ("api.sae_report", ("study_oid", "subject_key", "report_id"))
       for action in ("submit", "followup")},
    "api.stratum_correct": ("api.strata", ("study_oid", "subject_key")),
    "api.randomize": ("api.randomization", ("study_oid", "subject_key")),
    "api.randomization_undo": ("api.randomization", ("study_oid", "subject_key")),
    "api.dlt_decide": ("api.dlt", ("study_oid", "subject_key")),
    "api.dose_level": ("api.dlt", ("study_oid", "subject_key")),
    "api.escalation_decide": ("api.escalation", ("study_oid",)),
    "api.study_status": ("api.study", ("study_oid",)),
}

# Writes that check If-Match themselves (a signature: against the form, event or subject
# it signs, as its body says).
SELF_GUARDED = ("api.sign",)

# Reads whose answer carries an ETag (the resources above).
TAGGED = frozenset({*(read for read, _args in GUARDED.values()), "api.subject"})


def _stable(node: object) -> object:
    if isinstance(node, dict):
        return {k: _stable(v) for k, v in node.items() if k not in VOLATILE}
    if isinstance(node, list):
        return [_stable(v) for v in node]
    return node


def document_tag(document: dict) -> str:
    """A strong entity tag of what a document shows (its stable part)."""
    text = json.dumps(_stable(document), sort_keys=True, separators=(",", ":"), default=str)
    return '"s' + hashlib.sha256(text.encode()).hexdigest()[:24] + '"'


def read_document(endpoint: str, args: dict) -> dict:
    """The document the GET ``endpoint`` answers for these path arguments."""
    answer = current_app.view_functions[endpoint](**args)
    return answer[0] if isinstance(answer, tuple) else answer


def current_tag(endpoint: str, args: dict) -> str:
    return document_tag(read_document(endpoint, args))


def if_match_tags() -> list[str] | None:
    header = request.headers.get("If-Match")
    if header is None:
        return None
    tags = [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]
    if not tags or len(header) > 1000:
        raise ApiProblem(400, _("If-Match must be the ETag a GET of this resource gave (got "
                                "%(value)s).", value=header.strip()[:40]))
    return tags


def require_match(tag: str, tags: list[str] | None) -> None:
    """412 when the client's If-Match names another state than ``tag``."""
    if tags is None or "*" in tags or tag in tags:
        return
    raise ApiProblem(412, _("Nothing was done: this changed since you read it. Read it again "
                            "and decide on what it shows now."), current_etag=tag)


def _resource(endpoint: str | None) -> tuple[str, dict] | None:
    guarded = GUARDED.get(endpoint or "")
    if guarded is None:
        return None
    read, names = guarded
    args = {name: value for name, value in (request.view_args or {}).items() if name in names}
    return read, args


@bp.before_request
def _check_if_match():
    """Runs after the permission gate (an app-level hook): a guarded write whose If-Match
    no longer holds is refused before anything is done."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    resource = _resource(request.endpoint)
    if resource is None:
        return
    tags = if_match_tags()
    if tags is not None:
        require_match(current_tag(*resource), tags)


@bp.after_request
def _etag(response):
    """Reads of guarded resources and successful guarded writes carry the current tag."""
    if response.status_code not in (200, 201) or not response.is_json:
        return response
    if request.method == "GET" and request.endpoint in TAGGED:
        response.headers["ETag"] = document_tag(response.get_json())
    elif request.method == "POST":
        resource = _resource(request.endpoint)
        if resource is not None:
            try:
                response.headers["ETag"] = current_tag(*resource)
            except (ApiProblem, HTTPException):
                pass  # a resource the writer may not read (an admin's undo): no tag
    return response
