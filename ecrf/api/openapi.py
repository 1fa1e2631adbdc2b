"""The OpenAPI 3.1 document of the API, built in code and served at /api/v1/openapi.json.

Public: it describes the API and exposes no data. A test compares it with the routes the
app really has (paths, methods, path parameters) and validates responses against it.
"""

from __future__ import annotations

import re

from flask import current_app

from ecrf.accounts import PUBLIC
from ecrf.accounts import register_route as register
from ecrf.api import preconditions
from ecrf.api.blueprint import bp
from ecrf.api.common import MAX_ID, MAX_JSON_BYTES
from ecrf.capture import MAX_REASON
from ecrf.core import MAX_ARG_LENGTH, MAX_JSON_DEPTH, MAX_SEQ, VERSION

register("api.openapi", PUBLIC)

PREFIX = "/api/v1"
JSON = "application/json"


def _ref(name: str, kind: str = "schemas") -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _nullable(schema: dict) -> dict:
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema.get("type")
    return {**schema, "type": [kind, "null"] if isinstance(kind, str) else [*kind, "null"]}


def _obj(properties: dict, required: list[str] | None = None, *, extra: bool = False,
         description: str | None = None) -> dict:
    schema: dict = {"type": "object", "properties": properties,
                    "required": required if required is not None else sorted(properties),
                    "additionalProperties": extra}
    if description:
        schema["description"] = description
    return schema


def _array(items: dict) -> dict:
    return {"type": "array", "items": items}


def _paging() -> dict:
    """The fields of every list's page (numbered or by cursor)."""
    count = {"type": "integer", "minimum": 0}
    return {
        "page": {"type": ["integer", "null"], "minimum": 1,
                 "description": "This page's number; null when read by cursor."},
        "per_page": {"type": "integer", "minimum": 1, "maximum": 500},
        "total": {**count, "description": "Rows in the whole list."},
        "pages": {"type": ["integer", "null"], "minimum": 1,
                  "description": "Numbered pages in the list; null when read by cursor."},
        "next_cursor": {"type": ["string", "null"],
                        "description": "Pass as `cursor` to read the rows after this page "
                                       "(null: this is the last page)."},
    }


def _page(items: dict, extra: dict | None = None, *, description: str | None = None) -> dict:
    return _obj({"items": _array(items), **_paging(), **(extra or {})},
                description=description)


STR = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
DATE = {"type": "string", "format": "date"}
DATETIME = {"type": "string", "format": "date-time"}
URL = {"type": "string", "format": "uri-reference"}
STR_LIST = _array(STR)
ERRORS_MAP = {"type": "object", "additionalProperties": STR_LIST,
              "description": "Location in the request body (e.g. `values.VS.1.WEIGHT`, "
                             "`reasons.VS.1.WEIGHT`, `complete`) -> messages."}
VALUE = {"type": ["string", "array", "null"], "items": STR,
         "description": "Text for every type: numbers as exact decimal strings ('72.50'), "
                        "dates 'YYYY-MM-DD', partial dates truncated ISO 8601 ('2024', "
                        "'2024-03'), times 'HH:MM', date-times ISO 8601 with offset, codes "
                        "of single choices ('Y'/'N' for yes/no); a list of codes for a "
                        "multiple choice; null when blank."}


def _schemas() -> dict:
    version = _obj({"number": INT, "label": STR, "protocol_version": _nullable(STR),
                    "content_hash": STR, "loaded_at": DATETIME})
    issue = _obj({"id": STR, "row": INT, "key": STR,
                  "severity": {"type": "string", "enum": ["error", "warning"]},
                  "message": STR, "items": STR_LIST, "acknowledged": _nullable(STR)})
    stale_change = _obj({"username": STR, "occurred_at": DATETIME, "action": STR,
                         "path": STR, "item": STR, "old_value": _nullable(STR),
                         "new_value": _nullable(STR)})
    form_properties = {
        "study_oid": STR, "subject_key": STR,
        "event": _obj({"event_oid": STR, "repeat": INT,
                       "state": {"type": "string", "enum": ["in_progress", "done", "not_done"]},
                       "actual_date": _nullable(DATE)}),
        "form_oid": STR, "name": STR,
        "status": {"type": "string", "enum": ["not_started", "in_progress", "complete"]},
        "version": _nullable(INT), "study_version": STR, "updated_at": _nullable(DATETIME),
        "values": {"type": "object", "additionalProperties": _ref("Value"),
                   "description": "GROUP.ROW.ITEM -> value, for every item of every live "
                                  "row (row 1 outside repeating groups), calculated items "
                                  "included."},
        "rows": {"type": "object", "additionalProperties": _array(INT),
                 "description": "Live rows of each repeating group."},
        "removed_rows": {"type": "object", "additionalProperties": _obj({
            "removed_at": DATETIME, "reason": _nullable(STR),
            "values": {"type": "object", "additionalProperties": _ref("Value")}})},
        "grades": {"type": "object", "additionalProperties": _obj({
            "grade": _nullable(INT), "term": _nullable(STR), "version": STR, "basis": STR})},
        "issues": _array(_ref("Issue")),
        "acknowledgements": {"type": "object", "additionalProperties": _obj({
            "justification": STR, "acknowledged_at": DATETIME}),
            "description": "CHECK.ROW (row 0 outside repeating groups) -> justification."},
    }
    form = _obj(form_properties)
    saved = _obj({**form_properties,
                  "changed": {**STR_LIST, "description": "Items whose value this save changed."},
                  "blockers": {**STR_LIST, "description": "Why the form is not complete yet "
                                                          "(empty when it is)."}})
    texts = {"type": "object", "additionalProperties": {"type": "string",
                                                        "maxLength": MAX_REASON}}
    form_save = _obj({
        "version": {"type": ["integer", "null"], "minimum": 1,
                    "description": "The form version read with GET (null for a form not "
                                   "started). A save based on an older version is refused "
                                   "with 409 and the changes made since."},
        "values": {"type": "object", "additionalProperties": {
            "type": ["string", "number", "array", "null"], "items": STR},
            "description": "GROUP.ROW.ITEM -> value, in the shape GET returns (JSON numbers "
                           "are accepted for numeric items and read exactly). Absent items "
                           "are blank unless `partial` is true; saved rows of repeating "
                           "groups stay unless named in `removed_rows`."},
        "reasons": {**texts, "description": "GROUP.ROW.ITEM -> reason for changing or "
                                            "clearing a saved value (required for those)."},
        "acknowledgements": {**texts, "description": "CHECK.ROW -> justification of a "
                                                     "warning (ITEM.soft_range for a value "
                                                     "outside its expected range)."},
        "removed_rows": {**texts, "description": "GROUP.ROW -> reason for removing a saved "
                                                 "row of a repeating group."},
        "complete": {**BOOL, "default": False,
                     "description": "Mark the form complete; refused (422, nothing saved) "
                                    "if it does not qualify."},
        "partial": {**BOOL, "default": False,
                    "description": "Keep the saved value of every item not in `values`."},
    }, ["version"], description="A save of the whole form (or, with `partial`, of the items "
                                "given), validated as on the entry screen.")
    subject_summary = _obj({"subject_key": STR, "site": STR, "status": STR,
                            "arm": _nullable(STR), "dose_level": _nullable(INT),
                            "enrolled_on": DATE, "study_version": STR, "url": URL})
    schedule_row = _obj({"event_oid": STR, "event_name": STR, "repeat": INT,
                         "planned": _nullable(DATE),
                         "window": _obj({"start": _nullable(DATE), "end": _nullable(DATE)}),
                         "status": {"type": "string", "enum": [
                             "upcoming", "due", "overdue", "done", "done_out_of_window",
                             "missed", "not_expected", "not_applicable"]},
                         "actual_date": _nullable(DATE), "note": _nullable(STR)})
    form_link = _obj({"form_oid": STR, "status": STR, "version": INT,
                      "updated_at": DATETIME, "url": URL})
    recorded = _obj({"event_oid": STR, "repeat": INT, "state": STR,
                     "actual_date": _nullable(DATE), "not_done_reason": _nullable(STR),
                     "forms": _array(form_link)})
    subject = _obj({"subject_key": STR, "site": STR, "site_timezone": STR, "status": STR,
                    "arm": _nullable(STR), "dose_level": _nullable(INT), "enrolled_on": DATE,
                    "study_version": STR, "today": DATE,
                    "schedule": _array(schedule_row), "events": _array(recorded),
                    "audit_url": URL})
    study_summary = _obj({"oid": STR, "name": STR, "status": STR, "roles": STR_LIST,
                          "current_version": _nullable(_ref("Version")), "url": URL})
    study = _obj({
        "oid": STR, "name": STR, "status": {"type": "string",
                                            "enum": ["active", "frozen", "locked"]},
        "created_at": DATETIME, "current_version": _nullable(_ref("Version")),
        "versions": _array(_ref("Version")),
        "sites": _array(_obj({"code": STR, "name": STR, "timezone": STR, "active": BOOL})),
        "events": _array(_obj({"oid": STR, "name": STR, "kind": STR, "forms": STR_LIST})),
        "forms": _array(_obj({"oid": STR, "name": STR})), "subjects_url": URL})
    audit_row = _obj({
        "seq": INT, "occurred_at": DATETIME, "category": STR, "action": STR,
        "username": _nullable(STR), "role": _nullable(STR), "study_oid": _nullable(STR),
        "site": _nullable(STR), "subject_key": _nullable(STR), "path": _nullable(STR),
        "old_value": _nullable(STR), "new_value": _nullable(STR), "reason": _nullable(STR),
        "study_version": _nullable(STR),
        "details": {"type": ["object", "string", "null"]},
        "ip_address": _nullable(STR), "row_hash": STR})
    error = _obj({"error": STR, "message": STR}, extra=True)
    return {
        "Error": error,
        "ValidationError": {"allOf": [_ref("Error"), {"type": "object", "properties": {
            "errors": ERRORS_MAP, "form_errors": STR_LIST, "reasons_needed": STR_LIST,
            "missing": STR_LIST, "check_errors": _array(_ref("Issue")),
            "unacknowledged": _array(_ref("Issue")), "blockers": STR_LIST}}]},
        "Precondition": {"allOf": [_ref("Error"), {"type": "object", "properties": {
            "current_etag": STR}}]},
        "Conflict": {"allOf": [_ref("Error"), {"type": "object", "properties": {
            "current_version": _nullable(INT), "changes": _array(_ref("StaleChange"))}}]},
        "Version": version,
        "StudySummary": study_summary,
        "StudyList": _page(_ref("StudySummary"), description="By study OID."),
        "Study": study,
        "SubjectSummary": subject_summary,
        "SubjectPage": _page(_ref("SubjectSummary"), description="By site, then subject "
                                                                  "key."),
        "Subject": subject,
        "Value": VALUE,
        "Issue": issue,
        "StaleChange": stale_change,
        "Form": form,
        "FormSave": form_save,
        "FormSaved": saved,
        "AuditRow": audit_row,
        "AuditPage": _obj({"items": _array(_ref("AuditRow")), "limit": INT, "after": INT,
                           "next_after": _nullable(INT), "next_cursor": {
                               "type": ["string", "null"], "description": "Pass as "
                               "`cursor` to read the rows after this page (null: the end "
                               "of the trail so far); the same as `after=next_after`."}}),
        **_endpoint_schemas(),
        **_events_schemas(),
        **_jobs_schemas(),
        **_review_schemas(),
        **_safety_schemas(),
        **_signing_schemas(),
        **_allocation_schemas(),
        **_strata_schemas(),
        **_labs_schemas(),
    }


DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
           "description": "An exact decimal number as text."}


def _endpoint_schemas() -> dict:
    summary_row = _obj({
        "group": STR, "endpoint": STR,
        "kind": {"type": "string", "enum": ["incidence", "time", "duration"]},
        "n": {**INT, "minimum": 0, "description": "Evaluable subjects (at risk, for times)."},
        "events": {**INT, "minimum": 0},
        "not_evaluable": {**INT, "minimum": 0,
                          "description": "Subjects of the group left out of n: without "
                                         "the data the endpoint needs."},
        "percent": _nullable(DECIMAL), "ci_low": _nullable(DECIMAL),
        "ci_high": _nullable(DECIMAL),
        "censored": _nullable({**INT, "minimum": 0}),
        "median": _nullable(DECIMAL), "median_low": _nullable(DECIMAL),
        "median_high": _nullable(DECIMAL), "minimum": _nullable(DECIMAL),
        "maximum": _nullable(DECIMAL), "text": STR,
    }, description="Incidence: events of n with the exact (Clopper-Pearson) 95 % interval "
                   "in percent. Time: Kaplan-Meier median with its 95 % interval (null: "
                   "not reached), censored at the horizon. Duration: median over the "
                   "subjects with the event.")
    value = _obj({
        "endpoint": STR,
        "status": {"type": "string", "enum": ["event", "no_event", "censored",
                                              "not_applicable", "not_evaluable",
                                              "observed"]},
        "value": _nullable(STR), "day": _nullable(INT), "rule": STR, "evaluable": BOOL,
        "reason": _nullable(STR)})
    subject = _obj({"subject_key": STR, "site_code": STR, "group": STR,
                    "endpoints": _array(_ref("SubjectEndpointValue"))})
    return {
        "EndpointSummary": _obj({
            "study": STR, "groups": STR_LIST,
            "parameters": {"type": "object", "description": "The study's parameters "
                           "the endpoints were computed with."},
            "rules": {"type": "object", "additionalProperties": STR,
                      "description": "Endpoint name -> its rule in words."},
            "summary": _array(_ref("EndpointSummaryRow")), "subjects_url": URL}),
        "EndpointSummaryRow": summary_row,
        "SubjectEndpointValue": value,
        "SubjectEndpoints": subject,
        "SubjectEndpointsPage": _page(_ref("SubjectEndpoints"), description="By subject "
                                                                             "key."),
        "Survival": _obj({
            "study": STR, "endpoint": STR, "rule": STR, "computed_at": DATETIME,
            "cutoff": _nullable(DATE), "unit": {"type": "string", "enum": ["months"]},
            "days_per_month": {"type": "number"},
            "summary": _array(_obj({
                "group": STR, "arm": _nullable(STR), "n": INT, "events": INT,
                "censored": INT,
                "median_months": NUM_OR_NULL, "median_ci_low": NUM_OR_NULL,
                "median_ci_high": NUM_OR_NULL,
            }, required=["group", "arm", "n", "events", "censored", "median_months",
                         "median_ci_low", "median_ci_high"],
                extra=True, description="One row per arm, then all subjects (arm null). "
                "Medians in months (null: not reached); `survival_<m>m` the Kaplan-Meier "
                "estimate at each landmark month (null: nobody followed that long).")),
            "at_risk": _obj({"months": _array(INT), "groups": {
                "type": "object", "additionalProperties": _array(INT),
                "description": "Arm code (or All) -> numbers at risk at those months."}}),
            "subjects_url": URL}, description="Kaplan-Meier estimates by arm and pooled."),
        "SurvivalSubjectPage": _obj({"items": _array(_obj({
            "subject": STR, "site": STR, "arm": _nullable(STR), "origin": _nullable(DATE),
            "end": _nullable(DATE), "days": _nullable(INT),
            "months": _nullable(DECIMAL),
            "status": {"type": "string", "enum": ["event", "censored", "excluded"]},
            "reason": _nullable(STR), "problems": _nullable(STR)})), **_paging()},
            description="By subject key."),
    }


NUM_OR_NULL = {"type": ["number", "null"]}
# A day (a whole day) or a point in time with or without its offset.
MOMENT = {"type": "string", "maxLength": 40,
          "anyOf": [{"format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                    {"format": "date-time",
                     "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+)?$"}]}


_PATH_PARAMS = {
    "study_oid": ("Study OID, e.g. DEXAML03.", STR),
    "subject_key": ("Subject key (screening number).", STR),
    "event_oid": ("Event OID of the study definition.", STR),
    "repeat": ("Occurrence of the event (1 for a single event).", {"type": "integer",
                                                                     "minimum": 1}),
    "form_oid": ("Form OID of the event.", STR),
}


def _parameters() -> dict:
    params = {name: {"name": name, "in": "path", "required": True, "description": text,
                     "schema": schema} for name, (text, schema) in _PATH_PARAMS.items()}

    def query(name: str, text: str, schema: dict) -> dict:
        return {"name": name, "in": "query", "required": False, "description": text,
                "schema": schema}

    params.update({
        "page": query("page", "Page number, from 1.", {"type": "integer", "minimum": 1,
                                                       "maximum": 10**6, "default": 1}),
        "per_page": query("per_page", "Rows per page.", {
            "type": "integer", "minimum": 1, "maximum": 500, "default": 100}),
        "cursor": query("cursor", "Read the rows after the previous page: its `next_cursor`, "
                                  "unchanged (not with `page`). Rows added or removed "
                                  "meanwhile never make a row appear twice or be skipped.",
                        {"type": "string", "maxLength": 2048}),
        "If-Match": {"name": "If-Match", "in": "header", "required": False,
                     "description": 'The ETag of the form as read (e.g. "3"; "0" for a form '
                                    "never saved), instead of the body's `version`.",
                     "schema": {"type": "string", "pattern": '^(W/)?"[0-9]{1,9}"$'}},
        "If-Match-State": {"name": "If-Match", "in": "header", "required": False,
                           "description": "The ETag a GET of this resource gave: when it "
                                          "changed since, nothing is done (412).",
                           "schema": {"type": "string", "maxLength": 1000}},
        "after": query("after", "Return rows after this sequence number (the "
                                "`next_after` of the previous page).",
                       {"type": "integer", "minimum": 0, "maximum": MAX_SEQ, "default": 0}),
        "limit": query("limit", "Rows per page.", {"type": "integer", "minimum": 1,
                                                   "maximum": 5000, "default": 500}),
        "action": query("action", "Only this action (e.g. item.changed).", STR),
        "user": query("user", "Only rows by this username.", STR),
        "from": query("from", "From this date (YYYY-MM-DD, a whole day in the subject's "
                              "site zone; UTC for the study trail) or date-time "
                              "(ISO 8601, UTC without an offset), in the years 1900-9999.",
                      MOMENT),
        "to": query("to", "Up to this date (inclusive) or date-time (exclusive), in the "
                          "years 1900-9999.", MOMENT),
    })
    return params


def _error_responses() -> dict:
    def answer(text: str, schema: str = "Error") -> dict:
        return {"description": text, "content": {JSON: {"schema": _ref(schema)}}}

    return {
        "BadRequest": answer("Malformed request: the body is not JSON, not an object, or "
                             "a query argument is invalid; the message names the problem."),
        "Unauthorized": {**answer("No token, or an unknown, expired, revoked or suspended "
                                  "token (a password change suspends tokens until their "
                                  "owner re-enables them), a disabled account, or a write "
                                  "sent with a browser session instead of a token."),
                         "headers": {"WWW-Authenticate": {"schema": STR}}},
        "TooManyRequests": {**answer("Too many unknown tokens were sent from this network "
                                     "address: nothing is looked up until `Retry-After` "
                                     "seconds have passed (the wait doubles with each "
                                     "further unknown token, up to 15 minutes)."),
                            "headers": {"Retry-After": {"schema": INT}}},
        "Forbidden": answer("Your roles in this study do not allow the action."),
        "NotFound": answer("No such study, subject (at your sites), event or form."),
        "Conflict": answer("The form was saved by someone else since the version you sent "
                           "(nothing saved; `changes` says what changed and "
                           "`current_version` what to base a new save on), or the event is "
                           "not open for data entry.", "Conflict"),
        "UnsupportedMediaType": answer("The body is not sent as application/json."),
        "Unprocessable": answer("Nothing was saved: unknown fields, refused values, missing "
                                "reasons for change, or completion refused; each problem "
                                "is named where it was sent.", "ValidationError"),
        "Locked": answer("The data is locked; unlock it before changing it."),
        "PayloadTooLarge": answer(f"The body is larger than a request may be ({MAX_JSON_BYTES} "
                                  "bytes for a JSON body); nothing was done."),
        "StateChanged": answer("The If-Match tag is no longer the resource's: someone "
                               "changed it since you read it; nothing was done. "
                               "`current_etag` is the tag of what it shows now.",
                               "Precondition"),
        "PreconditionFailed": answer("The If-Match version is no longer the form's: someone "
                                     "saved it since (nothing saved; `changes` says what "
                                     "changed and `current_version` what to base a new save "
                                     "on).", "Conflict"),
    }


def _op(operation_id: str, summary: str, tag: str, response: str, params: list[str], *,
        errors: tuple[str, ...] = ("Unauthorized", "Forbidden", "NotFound"),
        description: str = "", body: str | None = None, public: bool = False) -> dict:
    operation: dict = {
        "operationId": operation_id, "summary": summary, "tags": [tag],
        "parameters": [_ref(p, "parameters") for p in params],
        "responses": {"200": {"description": "OK",
                              "content": {JSON: {"schema": _ref(response)}}}},
    }
    if description:
        operation["description"] = description
    if body:
        operation["requestBody"] = {"required": True,
                                    "content": {JSON: {"schema": _ref(body)}}}
    codes = {"BadRequest": "400", "Unauthorized": "401", "Forbidden": "403",
             "NotFound": "404", "Conflict": "409", "UnsupportedMediaType": "415",
             "Unprocessable": "422", "Locked": "423", "PreconditionFailed": "412"}
    for name in errors:
        operation["responses"][codes[name]] = _ref(name, "responses")
    if public:
        operation["security"] = []
    else:
        operation["responses"]["429"] = _ref("TooManyRequests", "responses")
    return operation


def _with_etag(operation: dict) -> dict:
    """The 200 answer carries the form's version as its ETag."""
    operation["responses"]["200"]["headers"] = {"ETag": {
        "description": 'The form\'s version as an entity tag ("0" before its first save).',
        "schema": {"type": "string"}}}
    return operation


STUDY = "/studies/{study_oid}"
SUBJECT = STUDY + "/subjects/{subject_key}"
FORM = SUBJECT + "/events/{event_oid}/{repeat}/forms/{form_oid}"
FORM_PARAMS = ["study_oid", "subject_key", "event_oid", "repeat", "form_oid"]
AUDIT_FILTERS = ["action", "user", "from", "to", "after", "limit"]


def _paths() -> dict:
    read_errors = ("Unauthorized", "Forbidden", "NotFound")
    return {
        "/openapi.json": {"get": {
            "operationId": "getOpenApi", "summary": "This document.", "tags": ["meta"],
            "security": [], "responses": {"200": {"description": "The OpenAPI document.",
                                                  "content": {JSON: {"schema": {
                                                      "type": "object"}}}}}}},
        "/docs": {"get": {
            "operationId": "getDocs", "summary": "This document for people, as one HTML "
            "page (no script, no external asset).", "tags": ["meta"], "security": [],
            "responses": {"200": {"description": "The API reference.",
                                  "content": {"text/html": {"schema": STR}}}}}},
        "/studies": {"get": _op("listStudies", "The studies you hold a role in.", "studies",
                                "StudyList", [], errors=("Unauthorized",))},
        STUDY: {"get": _op("getStudy", "A study: identity, versions, sites, events and "
                                       "forms.", "studies", "Study", ["study_oid"],
                           description="Needs `study.view`.")},
        STUDY + "/subjects": {"get": {
            **_op("listSubjects", "Subjects at your sites, a page at a time.", "subjects",
                  "SubjectPage", ["study_oid", "page", "per_page"],
                  errors=("BadRequest", *read_errors), description="Needs `subjects.view`; "
                  "only subjects of the sites where you hold it."),
        }, "post": _enrol_operation()},
        SUBJECT: {"get": _op("getSubject", "A subject with its schedule (planned dates, "
                                           "windows, statuses) and its recorded events.",
                             "subjects", "Subject", ["study_oid", "subject_key"],
                             description="Needs `subjects.view` at the subject's site.")},
        FORM: {
            "get": _with_etag(_op(
                "getForm", "A form of an event, values typed as JSON.", "forms", "Form",
                FORM_PARAMS, errors=(*read_errors, "Conflict"),
                description="Needs `subjects.view`. 409 when the event has not been "
                            "started or was declared not done. The `ETag` header is the "
                            "form's version, for `If-Match` on the next save.")),
            "put": _with_etag(_op(
                "saveForm", "Save a form, as the entry screen does.", "forms",
                "FormSaved", [*FORM_PARAMS, "If-Match"], body="FormSave",
                errors=("BadRequest", "Unauthorized", "Forbidden", "NotFound",
                        "Conflict", "PreconditionFailed", "UnsupportedMediaType",
                        "Unprocessable", "Locked"),
                description="Needs `data.enter` at the subject's site and an API token "
                            "(a browser session cannot write). The same validation, "
                            "reasons for change, warnings to acknowledge and audit "
                            "trail as the entry screen; nothing is saved unless "
                            "everything is accepted. The version read is sent as the "
                            "body's `version` or as `If-Match` (the GET's ETag): a stale "
                            "one answers 409 (412 when sent as If-Match).")),
        },
        SUBJECT + "/audit": {"get": _op(
            "getSubjectAudit", "A subject's audit trail, oldest first.", "audit",
            "AuditPage", ["study_oid", "subject_key", *AUDIT_FILTERS, "form"],
            errors=("BadRequest", *read_errors), description="Needs `audit.view` at the "
            "subject's site. Filters as on the screen: action, user, form, from, to.")},
        STUDY + "/endpoints": {"get": _op(
            "getEndpoints", "The study's endpoints per group (dose level or arm) and over "
            "all subjects, computed now.", "endpoints", "EndpointSummary", ["study_oid"],
            description="Needs `aggregate.view`; covers the subjects of your sites. 404 when "
            "the study declares no recovery endpoints.")},
        STUDY + "/endpoints/subjects": {"get": _op(
            "listEndpointSubjects", "Every subject's endpoint values, a page of subjects at "
            "a time.", "endpoints", "SubjectEndpointsPage",
            ["study_oid", "page", "per_page", "endpoint"],
            errors=("BadRequest", *read_errors),
            description="Needs `subjects.view`; only subjects of the sites where you hold "
            "it. One entry per endpoint: status, value, day, rule and evaluability.")},
        SUBJECT + "/endpoints": {"get": _op(
            "getSubjectEndpoints", "One subject's endpoint values.", "endpoints",
            "SubjectEndpoints", ["study_oid", "subject_key"],
            description="Needs `subjects.view` at the subject's site.")},
        STUDY + "/survival": {"get": _op(
            "getSurvival", "Overall survival: Kaplan-Meier by arm and pooled, with numbers "
            "at risk, computed now.", "endpoints", "Survival", ["study_oid"],
            description="Needs `survival.view`; covers the subjects of your sites. 404 when "
            "the study declares no survival block.")},
        STUDY + "/survival/subjects": {"get": _op(
            "listSurvivalSubjects", "Every randomised subject's survival time: origin, "
            "event or censoring date, days, months, reason.", "endpoints",
            "SurvivalSubjectPage", ["study_oid", "page", "per_page"],
            errors=("BadRequest", *read_errors),
            description="Needs `subjects.view`; only subjects of the sites where you hold "
            "it.")},
        **_events_paths(),
        **_jobs_paths(),
        **_review_paths(),
        **_safety_paths(),
        STUDY + "/audit": {"get": _op(
            "getStudyAudit", "A study's audit trail, oldest first, limited to your sites.",
            "audit", "AuditPage", ["study_oid", "subject", "category", *AUDIT_FILTERS],
            errors=("BadRequest", *read_errors), description="Needs `audit.view`; rows of "
            "other sites (and study-wide rows, for a site-scoped user) are left out.")},
        **_signing_paths(),
        **_allocation_paths(),
        **_strata_paths(),
        **_labs_paths(),
    }


def _signing_schemas() -> dict:
    meanings = ["approval", "review", "responsibility"]
    study_status = {"type": "string", "enum": ["active", "frozen", "locked"]}
    reason = {"type": "string", "maxLength": 4000}
    oid = {"type": "string", "minLength": 1, "maxLength": 200}
    signature = _obj({
        "id": INT, "scope": {"type": "string", "enum": ["form", "event", "casebook"]},
        "subject_key": STR, "event_oid": _nullable(STR),
        "repeat": _nullable({**INT, "minimum": 1}), "form_oid": _nullable(STR),
        "signer_username": STR,
        "signer_name": {**STR, "description": "Printed name at signing time."},
        "signer_role": _nullable(STR),
        "meaning": {**STR, "description": "The meaning as shown to the signer."},
        "signed_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                        "description": "SHA-256 of the canonical JSON of the signed values."},
        "signed_at": DATETIME,
        "state": {"type": "string", "enum": ["valid", "broken"],
                  "description": "`broken`: the signed data changed since; sign again."},
        "broken_at": _nullable(DATETIME), "broken_reason": _nullable(STR),
    }, description="An electronic signature (21 CFR 11.50): who, when, what it means, and "
                   "what was signed (the event for an event, the event and form for a form, "
                   "neither for the casebook).")
    sign = {
        **_obj({
            "scope": {"type": "string", "enum": ["form", "event", "casebook"],
                      "description": "Sign one form, one event (every form of it) or the "
                                     "subject's whole casebook."},
            "event_oid": {**oid, "description": "The event (scopes form and event)."},
            "repeat": {"type": "integer", "minimum": 1, "maximum": 9999, "default": 1,
                       "description": "Occurrence of the event (scopes form and event)."},
            "form_oid": {**oid, "description": "The form (scope form)."},
            "meaning": {"type": "string", "enum": meanings,
                        "description": "approval: reviewed and confirmed accurate; review: "
                                       "reviewed; responsibility: responsibility as the "
                                       "investigator. The text shown on the signing screen "
                                       "is stored."},
            "username": {"type": "string", "minLength": 1, "maxLength": 200,
                         "description": "Your user id, asked at every signing through the "
                                        "API (each call is a first signing: there is no "
                                        "login session)."},
            "password": {"type": "string", "format": "password", "writeOnly": True,
                         "minLength": 1, "maxLength": 1024,
                         "description": "Your password. Never stored, logged or echoed. A "
                                        "wrong one counts toward account lockout, as on the "
                                        "signing screen."},
        }, ["scope", "meaning", "username", "password"]),
        "allOf": [
            {"if": {"properties": {"scope": {"const": "form"}}},
             "then": {"required": ["event_oid", "form_oid"]}},
            {"if": {"properties": {"scope": {"const": "event"}}},
             "then": {"required": ["event_oid"], "not": {"required": ["form_oid"]}}},
            {"if": {"properties": {"scope": {"const": "casebook"}}},
             "then": {"not": {"anyOf": [{"required": ["event_oid"]},
                                        {"required": ["repeat"]},
                                        {"required": ["form_oid"]}]}}},
        ],
    }
    lock = _obj({
        "id": INT, "scope": {"type": "string", "enum": ["form", "subject", "site"]},
        "site": STR, "subject_key": _nullable(STR), "event_oid": _nullable(STR),
        "repeat": _nullable({**INT, "minimum": 1}), "form_oid": _nullable(STR),
        "active": BOOL, "locked_by": STR, "locked_at": DATETIME, "reason": _nullable(STR),
        "unlocked_by": _nullable(STR), "unlocked_at": _nullable(DATETIME),
        "unlock_reason": _nullable(STR),
        "description": {**STR, "description": "The lock in words: what, by whom, when, why."},
    })
    return {
        "SigningProblem": {"allOf": [_ref("Error"), {"type": "object", "properties": {
            "errors": {"type": "object", "additionalProperties": STR_LIST,
                       "description": "Field of the body -> messages."},
            "problems": {**STR_LIST, "description": "Why the data cannot be signed yet."},
            "meanings": {"type": "object", "additionalProperties": STR,
                         "description": "The meanings to choose from (code -> text)."},
            "account_locked": {**BOOL, "description": "Too many wrong passwords locked the "
                                                      "account: nothing can be signed until "
                                                      "the lockout ends."}}}]},
        "SignatureRequest": sign,
        "Signature": signature,
        "SignatureList": _page(_ref("Signature"), {"subject_key": STR},
                               description="Newest first, valid and broken."),
        "SignaturesToRedo": _page(_ref("Signature"),
                                  description="Your broken signatures not signed again "
                                              "since, newest first."),
        "AwaitingSignature": _page(
            _obj({"subject_key": STR, "site": STR, "event_oid": STR,
                  "repeat": {**INT, "minimum": 1}, "form_oid": STR,
                  "status": {"type": "string", "enum": ["complete"]},
                  "updated_at": _nullable(DATETIME)}),
            description="Complete forms at your signing sites that no valid signature "
                        "covers (of the form, its event or the casebook), by site, subject "
                        "and form."),
        "Lock": lock,
        "LockList": _page(_ref("Lock"), {"study_oid": STR, "status": study_status},
                         description="The study's status and the locks in force at your "
                                     "sites, oldest first."),
        "LockRequest": _obj({"reason": {**reason, "description": "Why (optional)."}}, [],
                            description="Send `{}` when there is no reason to give."),
        "UnlockRequest": _obj({"reason": {**reason, "minLength": 1,
                                          "description": "Why the lock is released."}}),
        "StudyStatusChange": _obj({
            "transition": {"type": "string", "enum": ["freeze", "unfreeze", "lock", "unlock"],
                           "description": "freeze: active -> frozen (no data entry, queries "
                                          "go on); unfreeze: frozen -> active; lock: active "
                                          "or frozen -> locked (read-only); unlock: locked "
                                          "-> active."},
            "reason": {**reason, "minLength": 1}}),
        "StudyStatus": _obj({"study_oid": STR, "status": study_status,
                             "previous_status": study_status}),
    }


def _signing_paths() -> dict:
    def answer(text: str, schema: str = "SigningProblem") -> dict:
        return {"description": text, "content": {JSON: {"schema": _ref(schema)}}}

    def created(operation: dict, text: str) -> dict:
        operation["responses"]["201"] = {**operation["responses"].pop("200"),
                                         "description": text}
        return operation

    def path_param(name: str, text: str, schema: dict) -> dict:
        return {"name": name, "in": "path", "required": True, "description": text,
                "schema": schema}

    site = path_param("site_code", "Site code, e.g. S01.", STR)
    lock_id = path_param("lock_id", "Lock id (`id` of a lock listed by GET .../locks).",
                         {"type": "integer", "minimum": 1})
    body_errors = ("BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict",
                   "UnsupportedMediaType", "Unprocessable")
    read_errors = ("Unauthorized", "Forbidden", "NotFound")
    invalid = answer("Nothing was done: unknown fields, missing or empty fields, wrong types, "
                     "values out of bounds or not among the choices; each named in `errors`.")
    lock_conflict = answer("Already locked, not locked, or released already.")
    needs_lock = ("Needs `data.lock` (data manager) at the site concerned and an API token; "
                  "audited as on the locks screen.")

    def locking(operation_id: str, summary: str, params: list, *, release: bool,
                description: str) -> dict:
        operation = _op(operation_id, summary, "locks", "Lock", [], errors=body_errors,
                        body="UnlockRequest" if release else "LockRequest",
                        description=f"{description} {needs_lock}")
        operation["parameters"] = params
        operation["responses"]["409"] = lock_conflict
        operation["responses"]["422"] = invalid
        if not release:
            created(operation, "Locked: the lock now in force.")
        else:
            operation["responses"]["200"]["description"] = "Unlocked: the released lock."
        return operation

    status = _op("changeStudyStatus", "Freeze, unfreeze, lock or unlock the study.", "locks",
                 "StudyStatus", ["study_oid"], body="StudyStatusChange", errors=body_errors,
                 description="Needs `data.lock` and an API token; a reason is required; "
                 "audited (`study.frozen`, `study.unfrozen`, `study.locked`, "
                 "`study.unlocked`). A frozen study takes no data entry (queries go on); a "
                 "locked one is read-only. Saves then answer 423.")
    status["responses"]["409"] = answer("The study's status does not allow this transition.",
                                        "Error")
    status["responses"]["422"] = invalid
    subject_params = [_ref(p, "parameters") for p in ("study_oid", "subject_key")]
    form_params = [_ref(p, "parameters") for p in FORM_PARAMS]
    sign = _op("signSubjectData", "Sign a form, an event or a casebook electronically.",
               "signatures", "Signature", ["study_oid", "subject_key"], body="SignatureRequest",
               errors=body_errors,
               description="Needs `data.sign` (investigator) at the subject's site and an API "
               "token. Your user id and password are checked as on the signing screen; a "
               "wrong one answers 422 and counts toward lockout (audited as "
               "`signature.failed`), and the attempt that locks the account, or any attempt "
               "while it is locked, answers 403 with `account_locked`. The signature binds "
               "the SHA-256 of the values in scope (audited as `signature.signed`); a later "
               "change of those values breaks it.")
    created(sign, "Signed.")
    sign["responses"].update({
        "403": answer("Your roles do not allow signing, or the account is locked after "
                      "repeated wrong passwords (`account_locked`)."),
        "404": answer("No such subject at your sites, event or started form.", "Error"),
        "409": answer("It cannot be signed yet: a form in scope is not complete, a query is "
                      "open, or there is no data (`problems`)."),
        "422": answer("Nothing was signed: a wrong user id or password (`errors.password`, "
                      "counted toward lockout), or a malformed body (`errors`; `meanings` "
                      "when the meaning is missing or unknown)."),
        "423": answer("The study is locked: nothing can be signed.", "Error"),
    })
    return {
        SUBJECT + "/signatures": {
            "get": _op("listSignatures", "A subject's signatures, valid and broken.",
                       "signatures", "SignatureList", ["study_oid", "subject_key"],
                       errors=read_errors, description="Needs `subjects.view` at the "
                       "subject's site. A signature is `broken` when the data it signed "
                       "changed since."),
            "post": sign,
        },
        STUDY + "/signatures/awaiting": {"get": _op(
            "listAwaitingSignature", "Complete forms awaiting your signature.", "signatures",
            "AwaitingSignature", ["study_oid"], errors=read_errors,
            description="Needs `data.sign`; the forms of the sites where you hold it, as on "
            "the investigator's dashboard (at most 200).")},
        STUDY + "/signatures/to-redo": {"get": _op(
            "listSignaturesToRedo", "Your broken signatures to sign again.", "signatures",
            "SignaturesToRedo", ["study_oid"], errors=read_errors,
            description="Needs `data.sign`; as on the investigator's dashboard.")},
        STUDY + "/locks": {"get": _op(
            "listLocks", "The study's status and the locks in force.", "locks", "LockList",
            ["study_oid"], errors=read_errors,
            description="Needs `data.lock`; locks of the sites where you hold it.")},
        SUBJECT + "/lock": {"post": locking(
            "lockSubject", "Lock a subject: none of its data can change.", subject_params,
            release=False, description="Saves to the subject's forms then answer 423.")},
        SUBJECT + "/unlock": {"post": locking(
            "unlockSubject", "Release a subject's lock, with a reason.", subject_params,
            release=True, description="409 when the subject is not locked.")},
        FORM + "/lock": {"post": locking(
            "lockForm", "Lock a started form: its data can no longer change.", form_params,
            release=False, description="Saves to the form then answer 423.")},
        FORM + "/unlock": {"post": locking(
            "unlockForm", "Release a form's lock, with a reason.", form_params, release=True,
            description="409 when the form is not locked.")},
        STUDY + "/sites/{site_code}/lock": {"post": locking(
            "lockSite", "Lock a site: no data of its subjects can change.",
            [_ref("study_oid", "parameters"), site], release=False,
            description="404 for a site that does not take part in the study or is not "
                        "one of yours.")},
        STUDY + "/locks/{lock_id}/unlock": {"post": locking(
            "releaseLock", "Release any lock in force (form, subject or site), with a "
                           "reason.", [_ref("study_oid", "parameters"), lock_id],
            release=True, description="409 when it was released already.")},
        STUDY + "/status": {"post": status},
    }


def _review_schemas() -> dict:
    oid = {"type": "string", "maxLength": 64}
    number = {"type": "integer", "minimum": 1, "maximum": 2147483647}
    query_text = {"type": "string", "maxLength": 4000,
                  "description": "At most 4000 characters (after trimming), as on the "
                                 "screens; a longer text is refused (422), never cut."}
    status = {"type": "string", "enum": ["open", "answered", "closed"]}
    summary = {
        "id": INT, "subject_key": STR, "site_code": STR, "status": status,
        "origin": {"type": "string", "enum": ["manual", "automatic"]},
        "event_oid": _nullable(STR), "repeat": _nullable(INT), "form_oid": _nullable(STR),
        "group_oid": _nullable(STR), "row": _nullable(INT), "item_oid": _nullable(STR),
        "check_oid": _nullable({**STR, "description": "The warning check behind an "
                                                      "automatic query."}),
        "question": STR, "assignee_name": _nullable(STR), "created_by": STR,
        "created_at": DATETIME, "status_changed_at": DATETIME,
        "age_days": {**INT, "minimum": 0, "description": "Days open (until closed)."},
        "message_count": {**INT, "minimum": 1}, "url": URL}
    change = {"type": ["string", "null"], "enum": ["open", "answered", "closed", None]}
    message = _obj({"author": STR, "role": _nullable(STR), "text": STR, "at": DATETIME,
                    "status_from": change, "status_to": {
                        **change, "description": "The status this message moved the query "
                                                 "to (null: a note)."}})
    counts = {"total": {**INT, "minimum": 0}, "verified": {**INT, "minimum": 0},
              "percent": {**INT, "minimum": 0, "maximum": 100}}
    subject_progress = {"subject_key": STR, "site_code": STR, **counts,
                        "pending": {**INT, "minimum": 0},
                        "forms_pending": {**INT, "minimum": 0}, "url": URL}
    form_sdv = {
        "study_oid": STR, "subject_key": STR, "event_oid": STR, "repeat": INT,
        "form_oid": STR, "scope": {"type": "string", "enum": ["all", "critical"]},
        "total": {**INT, "minimum": 0}, "verified": {**INT, "minimum": 0},
        "pending": {**STR_LIST, "description": "GROUP.ROW.ITEM still to verify."},
        "complete": BOOL, "form_verified": BOOL, "form_verified_by": _nullable(STR),
        "form_verified_at": _nullable(DATETIME),
        "items": _array(_obj({
            "item": {**STR, "description": "GROUP.ROW.ITEM"},
            "needed": {**BOOL, "description": "Entered and in the study's SDV scope."},
            "value": _nullable(STR), "verified": BOOL, "verified_by": _nullable(STR),
            "verified_at": _nullable(DATETIME), "verified_value": _nullable(STR),
            "last_reset_at": _nullable(DATETIME),
            "last_reset_reason": _nullable({**STR, "description": "Why the latest "
                                            "verification was reset (a changed value, a "
                                            "withdrawal)."})}))}
    sdv_change = {
        "items": {"type": "array", "minItems": 1, "maxItems": 1000,
                  "items": {"type": "string", "pattern": r"^[A-Z][A-Z0-9_]*\.[0-9]{1,9}\."
                                                         r"[A-Z][A-Z0-9_]*$"},
                  "description": "GROUP.ROW.ITEM of the items (e.g. VS.1.WEIGHT)."},
        "whole_form": {**BOOL, "description": "The whole form instead of `items` (send "
                                              "exactly one of the two)."}}
    return {
        "QuerySummary": _obj(summary),
        "Query": _obj({**summary, "thread": _array(message),
                       "allowed": _obj({"answer": BOOL, "close": BOOL, "reopen": BOOL},
                                       description="What your roles allow on it.")}),
        "QueryPage": _page(_ref("QuerySummary"), description="Newest first."),
        "QueryRaise": _obj({
            "subject_key": {**oid, "minLength": 1}, "text": query_text,
            "event_oid": _nullable(oid), "repeat": _nullable({**number, "default": 1}),
            "form_oid": _nullable(oid), "group_oid": _nullable(oid),
            "row": _nullable({**number, "default": 1}), "item_oid": _nullable(oid),
            "assignee": _nullable({**oid, "description": "Username of a coordinator or "
                                                         "investigator of the subject's "
                                                         "site (default: the site)."}),
        }, ["subject_key", "text"], description="On the subject; or an event (`event_oid`, "
           "`repeat`); or a form of it (`form_oid`); or an item of a form with data "
           "(`item_oid`, with `group_oid` and `row` in repeating groups)."),
        "QueryMessage": _obj({"text": query_text}, ["text"]),
        "QueryClose": _obj({"text": _nullable({**query_text, "default": "Closed."})}, []),
        "QueryAssign": _obj({"assignee": {**_nullable(oid), "description": (
            "Username of a coordinator or investigator of the subject's site; null gives "
            "the query to the site as a whole.")}}, ["assignee"]),
        "FormSdv": _obj(form_sdv),
        "FormSdvChanged": _obj({**form_sdv, "changed": {
            **INT, "minimum": 0, "description": "Verifications made (or withdrawn)."}}),
        "SdvVerify": _obj(sdv_change, [], description="Verify items, or the whole form "
                                                      "(every entered item in scope)."),
        "SdvUnverify": _obj({**sdv_change, "reason": {
            "type": "string", "maxLength": 2000, "description": "Why (at most 2000 "
                                                                "characters)."}},
            ["reason"], description="Withdraw verifications of items, or of the whole "
                                    "form, with a reason."),
        "SdvProgress": _obj({"study_oid": STR, **counts, "sites": _array(_obj(
            {"site_code": STR, **counts})), "subjects": _page(
                _ref("SubjectSdvProgress"), description="By site, then subject key.")},
            description="Entered items needing SDV and those verified: over your sites, "
                        "per site, then a page of subjects."),
        "SubjectSdvProgress": _obj(subject_progress),
        "SubjectSdv": _obj({**subject_progress, "forms": _array(_obj({
            "event_oid": STR, "repeat": INT, "form_oid": STR, "total": INT,
            "verified": INT, "complete": BOOL, "form_verified": BOOL, "url": URL}))}),
    }


def _review_paths() -> dict:
    query_id = {"name": "query_id", "in": "path", "required": True,
                "description": "Query number.", "schema": {"type": "integer", "minimum": 1}}

    def arg(name: str, text: str, schema: dict) -> dict:
        return {"name": name, "in": "query", "required": False, "description": text,
                "schema": schema}

    def op(operation_id: str, summary: str, response: str, params: list[str], *,
           extra: tuple = (), errors: tuple = (), body: str | None = None,
           description: str, created: bool = False) -> dict:
        found = _op(operation_id, summary, "review", response, params, body=body,
                    errors=("Unauthorized", "Forbidden", "NotFound", *errors),
                    description=description)
        found["parameters"] += list(extra)
        if created:
            found["responses"]["201"] = found["responses"].pop("200")
            found["responses"]["201"]["description"] = "Created (Location: its address)."
        return found

    writes = ("BadRequest", "UnsupportedMediaType", "Unprocessable", "Locked")
    locked = ("423 when the study is locked (read-only); locked forms and subjects still "
              "take queries, as on the screens.")
    thread = ["study_oid"]
    query_path = STUDY + "/queries/{query_id}"
    sdv_note = ("423 when the form, its subject or site is locked, or the study is locked. "
                "A later change of a verified value resets its verification (audited as "
                "`sdv.reset`).")
    return {
        STUDY + "/queries": {
            "get": op("listQueries", "Queries at your sites, newest first, a page at a time.",
                      "QueryPage", ["study_oid", "page", "per_page"], errors=("BadRequest",),
                      extra=(
                          arg("status", "open, answered, closed, unclosed (default) or all.",
                              {"type": "string", "enum": ["open", "answered", "closed",
                                                          "unclosed", "all"],
                               "default": "unclosed"}),
                          arg("site", "Only queries of this site code.", STR),
                          arg("subject", "Only queries of this subject key (404 if not at "
                                         "your sites).", STR),
                          arg("form", "Only queries on this form OID.", STR),
                          arg("origin", "manual or automatic (failing warning checks).",
                              {"type": "string", "enum": ["manual", "automatic"]})),
                      description="Needs `subjects.view`; only queries of subjects at the "
                                  "sites where you hold it. Order: raised newest first, then "
                                  "by number (stable across pages)."),
            "post": op("raiseQuery", "Raise a query on a subject, event, form or item.",
                       "Query", ["study_oid"], body="QueryRaise", created=True, errors=writes,
                       description="Needs `queries.raise` at the subject's site (a monitor, "
                                   "a data manager). Audited as `query.raised`. 422 names "
                                   "a target that does not exist or a text too long. "
                                   + locked),
        },
        query_path: {"get": op("getQuery", "A query with its thread.", "Query",
                               ["study_oid"], extra=(query_id,),
                               description="Needs `subjects.view` at the subject's site.")},
        query_path + "/answer": {"post": op(
            "answerQuery", "Answer a query (open or answered -> answered).", "Query",
            [*thread], extra=(query_id,), body="QueryMessage", errors=writes,
            description="Needs `queries.answer` at the subject's site (a coordinator, an "
                        "investigator). Audited as `query.answered`; 422 for a closed "
                        "query. " + locked)},
        query_path + "/comment": {"post": op(
            "commentQuery", "Add a note to the thread (status unchanged).", "Query",
            [*thread], extra=(query_id,), body="QueryMessage", errors=writes,
            description="Needs a role that raises, answers or closes queries at the "
                        "subject's site. Audited as `query.commented`; 422 for a closed "
                        "query. " + locked)},
        query_path + "/close": {"post": op(
            "closeQuery", "Close a query.", "Query", [*thread], extra=(query_id,),
            body="QueryClose", errors=writes,
            description="Needs `queries.close` at the subject's site (a monitor, a data "
                        "manager). Audited as `query.closed`; 422 if already closed. "
                        "Send `{}` to close without a note. " + locked)},
        query_path + "/assign": {"post": op(
            "assignQuery", "Give a query to one person of the site, or to the site.", "Query",
            [*thread], extra=(query_id,), body="QueryAssign", errors=writes,
            description="Needs `queries.raise` at the subject's site (a monitor, a data "
                        "manager), as the query screen. The assignee must be able to answer "
                        "queries at the subject's site (422 otherwise, or for an unknown "
                        "username, or a closed query). Audited as `query.assigned`. "
                        + locked)},
        query_path + "/reopen": {"post": op(
            "reopenQuery", "Reopen an answered or closed query, saying why.", "Query",
            [*thread], extra=(query_id,), body="QueryMessage", errors=writes,
            description="Needs `queries.close` at the subject's site. Audited as "
                        "`query.reopened`; 422 if it is open. " + locked)},
        STUDY + "/sdv": {"get": op(
            "getSdvProgress", "SDV progress over your sites: totals, per site, per subject.",
            "SdvProgress", ["study_oid", "page", "per_page"], errors=("BadRequest",),
            extra=(arg("site", "Only subjects of this site code.", STR),
                   arg("pending", "true: only subjects with items still to verify.",
                       {"type": "string", "enum": ["true", "false"], "default": "false"})),
            description="Needs `subjects.view`; counts entered items in the study's SDV "
                        "scope at the sites where you hold it.")},
        SUBJECT + "/sdv": {"get": op(
            "getSubjectSdv", "A subject's SDV progress, form by form.", "SubjectSdv",
            ["study_oid", "subject_key"], description="Needs `subjects.view` at the "
                                                      "subject's site.")},
        FORM + "/sdv": {"get": op(
            "getFormSdv", "A form's SDV state, item by item.", "FormSdv", FORM_PARAMS,
            description="Needs `subjects.view` at the subject's site; 404 for a form "
                        "without data.")},
        FORM + "/sdv/verify": {"post": op(
            "verifySdv", "Verify items of a form against source, or the whole form.",
            "FormSdvChanged", FORM_PARAMS, body="SdvVerify", errors=writes,
            description="Needs `sdv.perform` at the subject's site (a monitor). Items "
                        "already verified stay as they are; an item without a value is "
                        "refused (422). Audited as `sdv.verified` per item and "
                        "`sdv.form_verified` for the whole form. " + sdv_note)},
        FORM + "/sdv/unverify": {"post": op(
            "unverifySdv", "Withdraw verifications of items or of the whole form.",
            "FormSdvChanged", FORM_PARAMS, body="SdvUnverify", errors=writes,
            description="Needs `sdv.perform` at the subject's site. Audited as "
                        "`sdv.reset` with the reason. " + sdv_note)},
    }


def _allocation_schemas() -> dict:
    key_text = {**STR, "minLength": 1, "maxLength": 64}
    check = _obj({"key": {**STR, "description": "eligibility, consent, stratum:<name>, "
                                                "status, arm or definition."},
                  "ok": BOOL, "message": STR})
    allocation = _obj({
        "arm": STR, "arm_name": _nullable(STR),
        "stratum": {**STR, "description": "The stratum the slot was taken from."},
        "strata": {"type": "object", "additionalProperties": STR,
                   "description": "Stratification factor -> level, frozen at randomization."},
        "randomized_on": DATE, "allocated_by": STR, "allocated_at": DATETIME,
        "state": {"type": "string", "enum": ["in_force", "undone"]},
        "undone_at": _nullable(DATETIME), "undone_by": _nullable(STR),
        "undo_reason": _nullable(STR),
    }, description="One allocation, as the screen lists it: never the list's sequence "
                   "number, which would tell a site about block sizes.")
    level_subject = _obj({
        "subject_key": {**_nullable(STR), "description": "Null for a subject of a site "
                                                         "where you may not see subjects."},
        "state": {"type": "string", "enum": ["not_treated", "in_window", "awaiting",
                                             "evaluable", "dlt", "not_evaluable"]},
        "treated_on": _nullable(DATE), "window_end": _nullable(DATE)})
    count = {**INT, "minimum": 0}
    level = _obj({
        "level": INT, "label": STR, "dose": _nullable(STR), "treated": count,
        "evaluable": count, "dlts": count,
        "to_replace": {**count, "description": "Subjects not evaluable: each frees a place."},
        "pending": {**count, "description": "Subjects not treated, in the DLT window or "
                                            "awaiting the full-dose record."},
        "places_taken": count, "capacity": count,
        "open": {**BOOL, "description": "The level enrolment goes to now."},
        "subjects": _array(_ref("EscalationSubject"))})
    decision = _obj({
        "decided_at": DATETIME, "decided_by": STR, "signer_name": STR,
        "role": _nullable(STR), "signature_meaning": STR, "level": INT,
        "action": {"type": "string", "enum": ["escalate", "stay", "de-escalate",
                                              "declare_mtd", "stop"]},
        "next_level": {**_nullable(INT), "description": "Null: the escalation closed."},
        "mtd_level": _nullable(INT), "proposed_action": STR, "proposal": STR,
        "reason": STR})
    decision_names = ["escalate", "stay", "de-escalate", "declare_mtd", "stop"]
    board = {
        "study": STR, "design": {"type": "string", "enum": ["3+3", "boin"]},
        "target_dlt_rate": _nullable(DECIMAL),
        "boundaries": _nullable(_obj({"escalate_at_or_below": {"type": "number"},
                                      "de_escalate_at_or_above": {"type": "number"}})),
        "current_level": {**_nullable(INT), "description": "Null once the escalation "
                                                          "closed."},
        "mtd_level": _nullable(INT),
        "proposal": _nullable(_obj({
            "action": {"type": "string", "enum": ["enrol", "escalate", "expand", "stay",
                                                  "de-escalate", "declare MTD",
                                                  "stop, no MTD"],
                       "description": "The rule's action; enrol: the cohort is not "
                                      "complete yet."},
            "level": _nullable(INT), "reason": STR, "mtd": _nullable(INT),
            "decision": {"type": ["string", "null"], "enum": [*decision_names, None],
                         "description": "The decision the rule proposes (null: the "
                                        "cohort is not complete)."}})),
        "allowed_decisions": {**_array({"type": "string", "enum": decision_names}),
                              "description": "Decisions that may be signed now: as "
                                             "cautious as wished, never bolder than the "
                                             "rule."},
        "levels": _array(_ref("EscalationLevel")),
        "decisions": _array(_ref("EscalationDecision")),
    }
    assessment = _obj({
        "id": INT, "group_oid": STR, "row": INT, "term": _nullable(STR),
        "status": {"type": "string", "enum": ["candidate", "withdrawn", "confirmed",
                                              "rejected"]},
        "candidate_reason": STR, "meets_criteria": BOOL, "reason": _nullable(STR),
        "created_at": DATETIME, "decided_at": _nullable(DATETIME)})
    return {
        "Enrolment": _obj({
            "site": {**STR, "maxLength": 32, "description": "Code of an active site of the "
                                                            "study where you may enrol."},
            "subject_key": {**key_text, "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                            "description": "The screening number, unique in the study "
                                           "(case-insensitive); 'new' is reserved."},
            "enrolled_on": {**DATE, "description": "Not after today at the site."},
        }, description="An enrolment, as on the enrol screen."),
        "Enrolled": _obj({"subject_key": STR, "site": STR, "status": STR,
                          "arm": _nullable(STR), "dose_level": _nullable(INT),
                          "enrolled_on": DATE, "study_version": STR, "url": URL}),
        "RandomizationCheck": check,
        "Allocation": allocation,
        "Randomization": _obj({
            "subject_key": STR, "site": STR,
            "list_kind": {"type": "string", "enum": ["production", "test"],
                          "description": "test on a training instance."},
            "arm": _nullable(STR), "arm_name": _nullable(STR),
            "ready": {**BOOL, "description": "Every check is met: randomizing is possible."},
            "checks": _array(_ref("RandomizationCheck")),
            "missing": {**STR_LIST, "description": "The message of every check not met."},
            "strata": {"type": "object", "additionalProperties": STR,
                       "description": "Stratification factor -> level recorded now (the "
                                      "factors whose item holds a valid level)."},
            "allocations": {**_array(_ref("Allocation")),
                            "description": "Every allocation, undone ones included, oldest "
                                           "first."}}),
        "RandomizationRefused": {"allOf": [_ref("Error"), {
            "type": "object", "required": ["reasons"],
            "properties": {"reasons": STR_LIST}}]},
        "RandomizationUndo": _obj({"reason": {**STR, "minLength": 1, "maxLength": 2000}},
                                  description="Why the randomization is undone."),
        "EscalationSubject": level_subject,
        "EscalationLevel": level,
        "EscalationDecision": decision,
        "EscalationBoard": _obj(board),
        "EscalationDecided": _obj({**board, "decision": _ref("EscalationDecision")}),
        "EscalationDecisionRequest": _obj({
            "action": {"type": "string", "enum": decision_names,
                       "description": "One of `allowed_decisions` of the board."},
            "reason": {**STR, "minLength": 1, "maxLength": 4000},
            "password": {**STR, "minLength": 1, "maxLength": 256, "format": "password",
                         "description": "Your password, re-entered as your electronic "
                                        "signature (meaning: approval)."}}),
        "EscalationRefused": {"allOf": [_ref("Error"), {
            "type": "object", "required": ["allowed_decisions"],
            "properties": {"allowed_decisions": _array(STR)}}]},
        "DoseLevelAssigned": _obj({"subject_key": STR, "dose_level": INT, "label": STR,
                                   "dose": _nullable(STR),
                                   "place": {**INT, "minimum": 1},
                                   "capacity": {**INT, "minimum": 1}}),
        "DltAssessment": assessment,
        "Dlt": _obj({
            "subject_key": STR, "dose_level": _nullable(INT),
            "state": {"type": "string", "enum": ["not_treated", "in_window", "awaiting",
                                                 "evaluable", "dlt", "not_evaluable"]},
            "evaluable": BOOL, "has_dlt": BOOL, "reason": STR,
            "window_start": _nullable(DATETIME), "window_end": _nullable(DATETIME),
            "full_dose": _nullable(BOOL), "pending_candidates": {**INT, "minimum": 0},
            "assessments": _array(_ref("DltAssessment"))}),
        "DltDecision": _obj({
            "decision": {"type": "string", "enum": ["confirmed", "rejected"]},
            "reason": {**STR, "minLength": 1, "maxLength": 4000}}),
    }


def _answer(text: str, schema: str = "Error") -> dict:
    return {"description": text, "content": {JSON: {"schema": _ref(schema)}}}


_WRITES = ("BadRequest", "Unauthorized", "Forbidden", "NotFound", "UnsupportedMediaType")
_INVALID = "Unprocessable: nothing was recorded; `errors` names each field at fault."
_NO_BODY = "No body, or an empty JSON object (any field is refused with 422)."


def _allocation_op(operation_id: str, summary: str, response: str, params: list[str], *,
                   description: str, body: str | None = None, created: bool = False,
                   errors: tuple[str, ...] = ("Unauthorized", "Forbidden", "NotFound"),
                   extra: dict | None = None, inline: list[dict] | None = None) -> dict:
    found = _op(operation_id, summary, "allocation", response, params, errors=errors,
                description=description, body=body)
    if created:
        found["responses"] = {"201": {**found["responses"].pop("200"),
                                      "description": "Created"}, **found["responses"]}
    found["responses"].update(extra or {})
    found["parameters"] += inline or []
    return found


def _enrol_operation() -> dict:
    """POST on the subjects collection, beside its GET in ``_paths``."""
    enrol = _allocation_op(
        "enrolSubject", "Enrol a subject, as the enrol screen does.", "Enrolled",
        ["study_oid"], body="Enrolment", created=True, errors=_WRITES,
        description="Needs `subjects.enrol` at the site and an API token. The subject "
                    "starts in screening on the study's latest version, with its schedule "
                    "stored; audited as `subject.enrolled`. `Location` gives the subject's "
                    "address.",
        extra={"409": _answer("The study is not active or has no definition loaded."),
               "422": _answer(_INVALID + " A screening number already used, a site that "
                              "does not take part or where you may not enrol, an "
                              "enrolment date in the future.", "ValidationError")})
    enrol["responses"]["201"]["headers"] = {"Location": {"schema": URL}}
    return enrol


def _allocation_paths() -> dict:
    op, answer = _allocation_op, _answer
    writes, invalid, no_body = _WRITES, _INVALID, _NO_BODY
    assessment_id = {"name": "assessment_id", "in": "path", "required": True,
                     "description": "Id of the DLT assessment (from GET .../dlt).",
                     "schema": {"type": "integer", "minimum": 1}}
    randomization = SUBJECT + "/randomization"
    return {
        randomization: {
            "get": op("getRandomization", "Whether a subject can be randomized: each check "
                      "(eligibility, consent, strata, status), the strata recorded, its "
                      "allocations.", "Randomization", ["study_oid", "subject_key"],
                      description="Needs `subjects.randomize` at the subject's site."),
            "post": op("randomizeSubject", "Randomize a subject, as the randomize screen "
                       "does.", "Randomization", ["study_oid", "subject_key"],
                       created=True, errors=writes,
                       description="Needs `subjects.randomize` at the subject's site and an "
                       "API token. " + no_body + " Takes the next slot of the subject's "
                       "stratum from the active list (the test list on a training "
                       "instance); audited as `subject.randomized`, with the randomization "
                       "date written to its item.",
                       extra={"409": answer("Not randomized: `reasons` names every check "
                                            "not met (or the list missing or exhausted).",
                                            "RandomizationRefused"),
                              "422": answer(invalid, "ValidationError")}),
        },
        randomization + "/undo": {"post": op(
            "undoRandomization", "Undo a subject's randomization (system administrators), "
            "with a reason.", "Randomization", ["study_oid", "subject_key"],
            body="RandomizationUndo", errors=writes,
            description="Needs `randomization.undo` and the system administrator role. The "
            "allocation stays on record as undone and its slot is never reused; the arm and "
            "randomization date are cleared. Audited as `subject.randomization_undone`.",
            extra={"409": answer("The subject has no randomization in force."),
                   "422": answer(invalid, "ValidationError")})},
        STUDY + "/escalation": {"get": op(
            "getEscalation", "The dose-escalation board: levels with treated, evaluable, "
            "DLTs and places, the rule's proposal and the signed decisions.",
            "EscalationBoard", ["study_oid"],
            description="Needs `study.view`. Subjects of sites where you may not see "
            "subjects are counted with a null key. 404 when the study declares no dose "
            "escalation.")},
        STUDY + "/escalation/decisions": {"post": op(
            "decideEscalation", "Record a signed escalation decision on the current "
            "proposal, as the board does.", "EscalationDecided", ["study_oid"],
            body="EscalationDecisionRequest", created=True,
            errors=("BadRequest", "Unauthorized", "NotFound", "UnsupportedMediaType"),
            description="Needs `escalation.decide` and an API token; signed with your "
            "password (21 CFR 11.200). A wrong password is recorded and counts toward "
            "lockout. Audited as `escalation.decided`; the response is the board after the "
            "decision with the `decision` recorded.",
            extra={"403": answer("Your roles do not allow it, or your account is locked "
                                 "after repeated wrong passwords."),
                   "409": answer("The rule does not allow this decision now, or the "
                                 "escalation is closed; `allowed_decisions` lists what may "
                                 "be signed.", "EscalationRefused"),
                   "422": answer(invalid + " A wrong password is named on `password`.",
                                 "ValidationError")})},
        SUBJECT + "/dose-level": {"post": op(
            "assignDoseLevel", "Assign a subject the open dose level, as the dose-level "
            "screen does.", "DoseLevelAssigned", ["study_oid", "subject_key"],
            created=True, errors=writes,
            description="Needs `subjects.enrol` at the subject's site and an API token. "
            + no_body + " Audited as `subject.dose_level_assigned`; the subject goes on "
            "study.",
            extra={"409": answer("Not assigned: the subject has a level already or has "
                                 "left, the open level is full, or the escalation is "
                                 "closed."),
                   "422": answer(invalid, "ValidationError")})},
        SUBJECT + "/dlt": {"get": op(
            "getDlt", "A subject's DLT evaluability, window and DLT candidates with the "
            "investigator's decisions.", "Dlt", ["study_oid", "subject_key"],
            description="Needs `subjects.view` at the subject's site.")},
        SUBJECT + "/dlt/{assessment_id}": {"post": op(
            "decideDlt", "Confirm or reject a DLT candidate (or revise a decision), as the "
            "subject's safety page does.", "Dlt", ["study_oid", "subject_key"],
            body="DltDecision", errors=writes, inline=[assessment_id],
            description="Needs `safety.assess` at the subject's site and an API token. "
            "Audited as `dlt.confirmed` or `dlt.rejected` with the reason.",
            extra={"409": answer("The candidate no longer meets the criteria, or already "
                                 "has this decision."),
                   "422": answer(invalid, "ValidationError")})},
    }


def _events_schemas() -> dict:
    state = {"type": "string", "enum": ["not_started", "in_progress", "done", "not_done"]}
    form = _obj({"form_oid": STR, "name": STR, "status": STR, "version": _nullable(INT),
                 "url": URL})
    reason = {"type": ["string", "null"], "maxLength": 2000}
    return {
        "Event": _obj({"study_oid": STR, "subject_key": STR, "event_oid": STR, "repeat": INT,
                       "state": state, "actual_date": _nullable(DATE),
                       "not_done_reason": _nullable(STR), "editable": BOOL,
                       "forms": _array(form), "url": URL},
                      description="An event occurrence of a subject and its forms."),
        "EventStart": _obj({"actual_date": {**_nullable(DATE), "description": (
            "The date it took place (YYYY-MM-DD, not in the future in the site's zone); "
            "null only for log events.")}, "reason": {**reason, "description": (
                "Required to change the date of a started event or to reopen an event "
                "declared not done.")}}, [],
            description="Start an event, correct its date, or reopen it."),
        "EventNotDone": _obj({"reason": {**reason, "description": "Why it did not take "
                                                                  "place."}}, ["reason"]),
    }


def _events_paths() -> dict:
    event = SUBJECT + "/events/{event_oid}/{repeat}"
    params = ["study_oid", "subject_key", "event_oid", "repeat"]
    writes = ("BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict",
              "UnsupportedMediaType", "Unprocessable", "Locked")
    start = _op("startEvent", "Start an event on its actual date (or correct the date, or "
                "reopen it).", "events", "Event", params, body="EventStart", errors=writes,
                description="Needs `data.enter` at the subject's site, as the event screen. "
                "201 (Location: the event) when the occurrence is created; 200 when its date "
                "is corrected or an event declared not done is reopened (both need a "
                "`reason`). Audited as `event.started`, `event.date_changed`, "
                "`event.reopened`. 422 for a date not YYYY-MM-DD or in the future; 423 "
                "when the subject, site or study is locked.")
    start["responses"]["201"] = {**start["responses"]["200"],
                                 "description": "Created (Location: its address)."}
    return {
        event: {"get": _op("getEvent", "An event occurrence: its state, date and forms.",
                           "events", "Event", params,
                           description="Needs `subjects.view` at the subject's site.")},
        event + "/start": {"post": start},
        event + "/not-done": {"post": _op(
            "declareEventNotDone", "Declare an event not done, with a reason.", "events",
            "Event", params, body="EventNotDone", errors=writes,
            description="Needs `data.enter` at the subject's site. Audited as "
                        "`event.not_done`. 409 when it is already not done or one of its "
                        "forms has data; its forms then refuse reads and saves (409). 423 "
                        "when locked.")},
    }


def _jobs_schemas() -> dict:
    site = {"type": ["string", "null"], "maxLength": 64,
            "description": "A site code: only its subjects (null or absent: every site)."}
    status = {"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]}
    job = _obj({
        "id": INT, "kind": {**STR, "description": "clinical_data, crf_pdf or casebooks."},
        "kind_label": STR, "params": {"type": "object", "description": "The options, as "
                                      "checked when the job was queued."},
        "status": status, "progress": {**INT, "minimum": 0, "maximum": 100},
        "message": _nullable(STR), "error": _nullable(STR), "finished": BOOL,
        "cancel_requested": BOOL, "created_at": DATETIME, "started_at": _nullable(DATETIME),
        "finished_at": _nullable(DATETIME), "url": URL,
        "download_url": {**_nullable(URL), "description": "Once done: where to download "
                                                          "its file."}})
    return {
        "Job": job,
        "JobList": _page(_ref("Job"), description="Your jobs of the study, newest first."),
        "DataExportStart": _obj({
            "format": {"type": "string", "enum": ["odm", "odm_transactional", "csv", "xpt",
                                                  "sav", "sdtm", "sdtm_package"],
                       "description": "sdtm: SDTM datasets as CSV and XPT; sdtm_package: "
                                      "XPT, Dataset-JSON, define.xml, annotated CRF and "
                                      "manifest."},
            "site": site}, ["format"], description="A clinical data export."),
        "CasebooksStart": _obj({
            "site": site,
            "language": {"type": ["string", "null"], "maxLength": 16,
                         "description": "The language the casebooks print in: en, fr or zh "
                         "(zh_Hans); the application's words, the study's texts and the "
                         "dates (null or absent: the requesting user's language)."}}, [],
            description="The subjects' casebooks (PDF/A, zip)."),
        "CrfStart": _obj({
            "version": {"type": ["integer", "null"], "minimum": 1,
                        "description": "Study version number (null or absent: the latest)."},
            "variant": {"type": "string", "enum": ["blank", "annotated"], "default": "blank"},
            "language": {"type": ["string", "null"], "description": "Language of the form "
                         "texts (one of the version's languages)."}}, [],
            description="A blank or annotated CRF (PDF)."),
    }


def _jobs_paths() -> dict:
    job_id = {"name": "job_id", "in": "path", "required": True, "description": "Job number.",
              "schema": {"type": "integer", "minimum": 1}}
    writes = ("BadRequest", "Unauthorized", "Forbidden", "NotFound", "UnsupportedMediaType",
              "Unprocessable")
    needs = "Needs `data.export` (a data manager), as the exports page. "

    def start(operation_id: str, summary: str, body: str, text: str) -> dict:
        found = _op(operation_id, summary, "jobs", "Job", ["study_oid"], body=body,
                    errors=writes, description=needs + text + " Audited as "
                    "`export.requested`. Answers at once (201, Location: the job): the job "
                    "runs in the background; poll it until `finished`.")
        found["responses"]["201"] = {**found["responses"].pop("200"),
                                     "description": "Queued (Location: the job)."}
        return found

    def one(operation_id: str, summary: str, text: str, *, errors=()) -> dict:
        found = _op(operation_id, summary, "jobs", "Job", ["study_oid"],
                    errors=("Unauthorized", "Forbidden", "NotFound", *errors),
                    description=needs + text)
        found["parameters"].append(job_id)
        return found

    download = one("downloadJobFile", "Download a done job's file.",
                   "Streams the file (zip, XML or PDF) as an attachment; audited as "
                   "`export.downloaded`. 409 while the job is not done; 404 for another "
                   "user's job or a file no longer there.", errors=("Conflict",))
    download["responses"]["200"] = {"description": "The file.", "content": {
        media: {"schema": {"type": "string", "contentMediaType": media}}
        for media in ("application/zip", "application/xml", "application/pdf")}}
    job = STUDY + "/jobs/{job_id}"
    return {
        STUDY + "/jobs": {"get": _op("listJobs", "Your jobs of the study, newest first.",
                                     "jobs", "JobList", ["study_oid"],
                                     description=needs + "Only jobs you started.")},
        STUDY + "/jobs/data": {"post": start(
            "startDataExport", "Start a clinical data export.", "DataExportStart",
            "The formats and site scope of the exports page.")},
        STUDY + "/jobs/crf": {"post": start(
            "startCrf", "Start a CRF PDF (blank or annotated).", "CrfStart",
            "422 for a version or language the study does not have.")},
        STUDY + "/jobs/casebooks": {"post": start(
            "startCasebooks", "Start the subjects' casebooks (PDF/A, zip), of a site or all.",
            "CasebooksStart", "422 for an unknown site.")},
        job: {"get": one("getJob", "A job's status and progress.",
                         "404 for another user's job.")},
        job + "/cancel": {"post": one(
            "cancelJob", "Cancel a job: at once when queued; a running one stops at its "
            "next step.", "Audited as `export.cancel_requested`. 409 when it has already "
            "finished.", errors=("Conflict",))},
        job + "/download": {"get": download},
    }


def _strata_schemas() -> dict:
    code = {"type": "string", "maxLength": 64}
    stratum = _obj({
        "name": STR, "form_oid": STR, "item_oid": STR, "label": STR,
        "used": {**_nullable(STR), "description": "The level the allocation was made in."},
        "used_label": _nullable(STR),
        "recorded": {**_nullable(STR), "description": "The level recorded now."},
        "recorded_label": _nullable(STR),
        "mismatch": {**BOOL, "description": "Mis-stratified: recorded differs from used."},
        "levels": _array(_obj({"code": STR, "label": STR}))})
    return {
        "Strata": _obj({"study_oid": STR, "subject_key": STR, "randomized": BOOL,
                        "strata": _array(stratum), "url": URL},
                       description="Each stratum of the study: used at randomization and "
                                   "recorded now (none before randomization)."),
        "StratumCorrection": _obj({
            "stratum": {**code, "description": "The stratum's name."},
            "value": {**code, "description": "The code of the level now known to be "
                                             "right."},
            "reason": {"type": "string", "maxLength": 2000,
                       "description": "Why (the reason for change of the item)."}}),
    }


def _strata_paths() -> dict:
    strata = SUBJECT + "/strata"
    params = ["study_oid", "subject_key"]
    needs = "Needs `strata.correct` at the subject's site (a data manager), as the " \
            "strata screen. "
    return {
        strata: {"get": _op("getStrata", "A randomized subject's stratification factors: "
                            "used at randomization and recorded now.", "strata", "Strata",
                            params, description=needs)},
        strata + "/correct": {"post": _op(
            "correctStratum", "Correct a stratification factor after randomization.",
            "strata", "Strata", params, body="StratumCorrection",
            errors=("BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict",
                    "UnsupportedMediaType", "Unprocessable", "Locked"),
            description=needs + "The item is changed where it is recorded, with the reason "
            "(audited as a change of the item and `allocation.stratum_corrected`); the "
            "allocation and the schedule keep the stratum used; a query documents the "
            "mis-stratification. 422 for an unknown stratum or level, a missing reason, "
            "an unchanged level or a subject not randomized; 423 when the data is locked "
            "or the study frozen.")},
    }


def _labs_schemas() -> dict:
    count = {"type": "integer", "minimum": 0}
    problem = _obj({"where": {**STR, "description": "Line, message or entry of the file."},
                    "reason": STR})
    plan = {
        "name": STR, "sha256": STR, "format": {"type": "string",
                                               "enum": ["csv", "hl7", "fhir"]},
        "results": count,
        "counts": _obj({"new": count, "unchanged": count, "conflict": count,
                        "skipped": count, "problems": count}),
        "lines": _array(_obj({
            "where": STR, "subject_key": STR, "event": STR, "repeat": {**INT, "minimum": 1},
            "row": {**INT, "minimum": 1}, "date": DATE, "item": STR,
            "value": {**STR, "description": "In the item's unit."},
            "source": {**STR, "description": "The value and unit as the file gives them."},
            "stored": _nullable(STR),
            "state": {"type": "string", "enum": ["new", "unchanged", "conflict"]},
            "new_row": BOOL})),
        "skipped": _array(problem), "problems": _array(problem),
        "dry_run": BOOL,
        "stored": _nullable(_obj({"values": count, "forms": count, "kept": {
            **count, "description": "Conflicting results not written: the entered value "
                                    "kept."}})),
    }
    return {
        "LabImport": _obj(plan, description="What the file does: each result compared with "
                                            "what is entered, and what was stored."),
        "LabImportRefused": {"allOf": [_ref("Error"), {"type": "object", "properties": {
            **plan, "problems": _array(problem)}}]},
    }


def _labs_paths() -> dict:
    def query(name: str, text: str, schema: dict) -> dict:
        return {"name": name, "in": "query", "required": False, "description": text,
                "schema": schema}

    text = {"type": "string", "maxLength": 20 * 1024 * 1024}
    refused = {"description": "Nothing was stored: results that cannot be imported (a unit "
                              "without conversion, a date outside every window, a value "
                              "data capture refuses...), each named where it is in the "
                              "file.",
               "content": {JSON: {"schema": _ref("LabImportRefused")}}}
    large = {"description": "The body is larger than 20 MB.",
             "content": {JSON: {"schema": _ref("Error")}}}
    operation = _op(
        "importLabResults", "Import a laboratory file: preview or store its results.",
        "labs", "LabImport", ["study_oid"],
        errors=("BadRequest", "Unauthorized", "Forbidden", "NotFound"),
        description="Needs `data.enter`; only subjects of the sites where you hold it. The "
        "body is the file as the laboratory system exports it: a CSV (`text/csv`), HL7 v2 "
        "ORU^R01 messages (`x-application/hl7-v2+er7` or `text/plain`) or a FHIR R4 Bundle of "
        "Observations (`application/fhir+json`). The study's `labs` block maps codes to "
        "items and units; results are stored through data capture (validation, grades, "
        "audit reason naming the file and its SHA-256), all or nothing, as on the "
        "laboratory import page.")
    operation["parameters"] += [
        query("format", "csv, hl7 or fhir (default: from the file's name and content).",
              {"type": "string", "enum": ["csv", "hl7", "fhir"]}),
        query("name", "The file's name, for the audit trail.", {"type": "string",
                                                                 "maxLength": 200}),
        query("dry_run", "true: answer the preview and store nothing.",
              {"type": "string", "enum": ["true", "false"], "default": "false"}),
        query("accept_conflicts", "true: a result that differs from an entered value "
              "replaces it (default: the entered value is kept).",
              {"type": "string", "enum": ["true", "false"], "default": "false"})]
    operation["requestBody"] = {"required": True, "content": {
        kind: {"schema": text} for kind in ("text/csv", "text/plain",
                                           "x-application/hl7-v2+er7",
                                           "application/fhir+json", "application/json",
                                           "application/octet-stream")}}
    operation["responses"]["413"] = large
    operation["responses"]["422"] = refused
    return {STUDY + "/labs": {"post": operation}}


def _safety_schemas() -> dict:
    number = {"type": "integer", "minimum": 1, "maximum": 2147483647}
    awareness = {"type": "string", "pattern": r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:"
                                              r"[0-9]{2}\s*$",
                 "description": "YYYY-MM-DD HH:MM (or YYYY-MM-DDTHH:MM): local time at the "
                                "subject's site (its `timezone`), as on the safety page; "
                                "not in the future."}
    clock = {"type": "string", "enum": ["due", "overdue", "submitted_in_time",
                                        "submitted_late"]}
    notification = {
        "id": INT, "sae_report_id": _nullable(INT),
        "channel": {"type": "string", "enum": ["email", "log"]},
        "subject": {**STR, "description": "The notification's subject line."},
        "logged_at": DATETIME, "sent_at": _nullable(DATETIME), "error": _nullable(STR),
        "state": {"type": "string", "enum": ["pending", "retrying", "failed", "sent",
                                             "logged"]},
        "attempts": {**INT, "minimum": 0}, "max_attempts": {**INT, "minimum": 1},
        "next_attempt": _nullable({**DATETIME, "description": "When a retrying "
                                                              "notification is tried next."})}
    report = {
        "id": INT, "subject_key": STR, "site_code": STR, "group_oid": STR, "row": INT,
        "version": {**INT, "minimum": 1, "description": "1: the initial report; then "
                                                        "follow-ups."},
        "initial_id": _nullable({**INT, "description": "The initial report of a "
                                                       "follow-up."}),
        "term": STR, "awareness_at": DATETIME,
        "awareness_source": {"type": "string", "enum": ["form", "entry", "manual"]},
        "due_at": {**DATETIME, "description": "24 hours after awareness."},
        "submitted_at": _nullable(DATETIME), "clock": clock,
        "overdue": {**BOOL, "description": "Overdue now, or submitted late."},
        "remaining_minutes": _nullable({**INT, "description": "Minutes left (negative once "
                                                              "overdue); null once "
                                                              "submitted."}),
        "susar": BOOL, "susar_fatal": BOOL, "susar_due": _nullable(DATE),
        "created_at": DATETIME, "url": URL}
    prompt = {
        "id": INT, "status": {"type": "string", "enum": ["open", "accepted", "declined",
                                                         "withdrawn"]},
        "test": STR, "term": STR, "grade": INT, "grade_version": STR,
        "value": _nullable(STR), "unit": _nullable(STR), "first_date": _nullable(DATE),
        "last_date": _nullable(DATE), "reason": _nullable(STR),
        "ae_group_oid": _nullable(STR), "ae_row": _nullable(INT), "created_at": DATETIME,
        "decided_at": _nullable(DATETIME), "url": URL}
    return {
        "SaeNotification": _obj(notification),
        "SaeClock": _obj(report, description="An SAE report version and its 24-hour "
                                             "clock."),
        "SaeReport": _obj({**report, "notifications": _array(_ref("SaeNotification")),
                           "followup_ids": _array(INT)},
                          description="An SAE report version, its clock and notifications; "
                                      "`followup_ids` lists the follow-ups of an initial "
                                      "report."),
        "NotificationProblem": _obj({**notification, "job_id": _nullable(INT),
                                     "subject_key": _nullable(STR),
                                     "site": _nullable(STR),
                                     "report_version": _nullable(INT)}),
        "NotificationList": _page(_ref("NotificationProblem"), {
            "failed": {**INT, "minimum": 0}, "retrying": {**INT, "minimum": 0},
            "pending": {**INT, "minimum": 0, "description": "Queued for their first "
                                                              "attempt."}},
            description="Notifications that failed or wait for another attempt, newest "
                        "first."),
        "SaeClockPage": _page(_ref("SaeClock"), {
            "counts": _obj({name: {**INT, "minimum": 0} for name in (
                "due", "overdue", "submitted_in_time", "submitted_late")})},
            description="By deadline, then report."),
        "AePrompt": _obj(prompt, description="A graded lab value suggesting an AE."),
        "SubjectSafety": _obj({
            "study_oid": STR, "subject_key": STR, "site_code": STR,
            "timezone": {**STR, "description": "The site's time zone (awareness times are "
                                               "entered in it)."},
            "has_ae_log": BOOL,
            "ae_rows": _array(_obj({
                "group_oid": STR, "row": INT, "term": _nullable(STR), "serious": BOOL,
                "sae_report_ids": _array(INT),
                "findings": _array(_obj({"code": STR, "severity": STR, "message": STR}))})),
            "sae_reports": _array(_ref("SaeReport")),
            "prompts": _array(_ref("AePrompt")),
            "dlt": _nullable(_obj({
                "state": STR, "evaluable": BOOL, "has_dlt": BOOL, "reason": STR,
                "window_start": _nullable(DATETIME), "window_end": _nullable(DATETIME),
                "full_dose": _nullable(BOOL), "pending_candidates": {**INT, "minimum": 0}},
                description="DLT evaluability (dose-escalation studies only).")),
            "dlt_assessments": _array(_obj({
                "id": INT, "group_oid": STR, "row": INT, "term": _nullable(STR),
                "status": {"type": "string", "enum": ["candidate", "confirmed", "rejected",
                                                      "withdrawn"]},
                "candidate_reason": STR, "meets_criteria": BOOL, "reason": _nullable(STR),
                "created_at": DATETIME, "decided_at": _nullable(DATETIME)})),
            "allowed": _obj({"enter": BOOL, "assess": BOOL},
                            description="What your roles allow at the subject's site: "
                                        "`enter` (open a report, accept a prompt), `assess` "
                                        "(submit, follow up, decline).")}),
        "SaeCreate": _obj({"row": {**number, "description": "The serious AE row."},
                           "awareness": awareness}),
        "SaeFollowup": _obj({"awareness": {**awareness, "description": "When the new "
                                           "information became known: " +
                                           awareness["description"]}}),
        "Empty": _obj({}, description="No fields: send `{}` or no body at all."),
        "PromptAccept": _obj({"link_row": _nullable({**number, "description": "Link this "
                              "existing AE row instead of recording a new one."})}, [],
                             description="`{}` (or no body) records the suggested AE as a "
                                         "new AE row."),
        "PromptDecline": _obj({"reason": {"type": "string", "minLength": 1,
                                          "maxLength": 2000,
                                          "description": "Why no AE is recorded."}}),
        "NotificationRetried": _obj({**notification, "job_id": INT}),
    }


def _safety_paths() -> dict:
    def path_id(name: str, text: str) -> dict:
        return {"name": name, "in": "path", "required": True, "description": text,
                "schema": {"type": "integer", "minimum": 1}}

    def op(operation_id: str, summary: str, response: str, params: list[str], *,
           extra: tuple = (), errors: tuple = (), body: str | None = None,
           description: str, created: bool = False, optional: bool = False) -> dict:
        found = _op(operation_id, summary, "safety", response, params, body=body,
                    errors=("Unauthorized", "Forbidden", "NotFound", *errors),
                    description=description)
        found["parameters"] += list(extra)
        if optional:
            found["requestBody"]["required"] = False
        if created:
            found["responses"]["201"] = found["responses"].pop("200")
            found["responses"]["201"]["description"] = "Created (Location: its address)."
        return found

    writes = ("BadRequest", "UnsupportedMediaType", "Unprocessable")
    subject = ["study_oid", "subject_key"]
    report_id = path_id("report_id", "SAE report version number (its id).")
    prompt_id = path_id("prompt_id", "AE prompt number (its id).")
    safety = SUBJECT + "/safety"
    report = safety + "/sae/{report_id}"
    prompt = safety + "/prompts/{prompt_id}"
    refusals = ("422 when the service refuses, with its reason (e.g. already submitted).")
    return {
        safety: {"get": op(
            "getSubjectSafety", "A subject's safety state: AE rows, SAE reports with their "
            "clocks, follow-ups and notifications, AE prompts, DLT.", "SubjectSafety",
            subject, errors=("BadRequest",),
            description="Needs `subjects.view` at the subject's site. Read-only "
                                 "for DLT (decided on the safety page).")},
        STUDY + "/safety/sae-clocks": {"get": op(
            "listSaeClocks", "The study's SAE clocks at your sites, newest awareness first.",
            "SaeClockPage", ["study_oid", "page", "per_page"], errors=("BadRequest",),
            extra=({"name": "running", "in": "query", "required": False,
                    "description": "true (default): reports whose 24-hour clock still runs "
                                   "(due or overdue); false: every report version.",
                    "schema": {"type": "string", "enum": ["true", "false"],
                               "default": "true"}},),
            description="Needs `subjects.view`; only subjects of the sites where you hold "
                        "it.")},
        safety + "/sae": {"post": op(
            "createSaeReport", "Open an SAE report on a serious AE row.", "SaeReport",
            subject, body="SaeCreate", errors=writes, created=True,
            description="Needs `data.enter` at the subject's site. Audited as "
                        "`sae.created`; the 24-hour clock runs from the awareness time. "
                        "422 for a row that does not exist, is not serious or already has "
                        "a report, or an awareness in the future.")},
        report: {"get": op(
            "getSaeReport", "An SAE report version with its clock and notifications.",
            "SaeReport", subject, extra=(report_id,), errors=("BadRequest",),
            description="Needs `subjects.view` at the subject's site.")},
        report + "/submit": {"post": op(
            "submitSaeReport", "Record the submission of a report version to the sponsor, "
            "now.", "SaeReport", subject, extra=(report_id,), body="Empty", optional=True,
            errors=writes, description="Needs `safety.assess` at the subject's site (an "
                                       "investigator). Audited as `sae.submitted`. "
                                       + refusals)},
        report + "/followup": {"post": op(
            "createSaeFollowup", "Open a follow-up report (the next version).", "SaeReport",
            subject, extra=(report_id,), body="SaeFollowup", errors=writes, created=True,
            description="Needs `safety.assess` at the subject's site. Audited as "
                        "`sae.followup_created`; the latest version must be submitted "
                        "first. " + refusals)},
        prompt + "/accept": {"post": op(
            "acceptAePrompt", "Record the suggested AE (a new AE row) or link an AE row.",
            "AePrompt", subject, extra=(prompt_id,), body="PromptAccept", optional=True,
            errors=(*writes, "Locked"),
            description="Needs `data.enter` at the subject's site. Audited as "
                        "`ae_prompt.accepted`. " + refusals + " 423 when the AE log form, "
                        "the subject or its site is locked, or the study frozen or "
                        "locked (a new AE row is data entry).")},
        prompt + "/decline": {"post": op(
            "declineAePrompt", "Record that no AE is recorded for this value, with why.",
            "AePrompt", subject, extra=(prompt_id,), body="PromptDecline", errors=writes,
            description="Needs `safety.assess` at the subject's site. Audited as "
                        "`ae_prompt.declined` with the reason. " + refusals)},
        STUDY + "/safety/notifications": {"get": _op(
            "listSaeNotificationProblems", "SAE notifications that failed or wait for "
            "another attempt.", "safety", "NotificationList", ["study_oid", "state"],
            errors=("BadRequest", "Unauthorized", "Forbidden", "NotFound"),
            description="Needs `safety.notifications` (a data manager); the same list as "
                        "the dashboard's panel. `state`: problems (default), failed or "
                        "retrying.")},
        STUDY + "/safety/notifications/{entry_id}/retry": {"post": op(
            "retrySaeNotification", "Send a failed or waiting SAE notification again now.",
            "NotificationRetried", ["study_oid"],
            extra=(path_id("entry_id", "Notification number (its id)."),), body="Empty",
            optional=True, errors=writes,
            description="Needs `safety.notifications` (a data manager). Audited as "
                        "`notification.retry`; 422 once it was delivered.")},
    }


def build_document() -> dict:
    parameters = _parameters()
    parameters["form"] = {"name": "form", "in": "query", "required": False,
                          "description": "Only rows of this form OID.", "schema": STR}
    parameters["subject"] = {"name": "subject", "in": "query", "required": False,
                             "description": "Only rows of this subject key.", "schema": STR}
    parameters["endpoint"] = {"name": "endpoint", "in": "query", "required": False,
                              "description": "Only this endpoint (e.g. "
                                             "time_to_neutrophil_recovery).", "schema": STR}
    parameters["state"] = {"name": "state", "in": "query", "required": False,
                           "description": "Which notifications.", "schema": {
                               "type": "string", "enum": ["problems", "failed", "retrying"],
                               "default": "problems"}}
    parameters["category"] = {"name": "category", "in": "query", "required": False,
                              "description": "Only rows of this category (clinical, data, "
                                             "metadata, security...).", "schema": STR}
    paths = _paths()
    _page_parameters(paths)
    _state_tags(paths)
    _input_bounds(paths, parameters)
    schemas = _schemas()
    for item in paths.values():
        for operation in item.values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            for content in (body or {}).get("content", {}).values():
                name = content["schema"].get("$ref", "").rsplit("/", 1)[-1]
                if name in schemas:
                    schemas[name] = _bounded_integers(schemas[name])
                else:
                    content["schema"] = _bounded_integers(content["schema"])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ecrf API", "version": f"1 ({VERSION})",
            "description": "JSON API of ecrf for integrations (lab feeds, ePRO, scripts). "
                           "Text anywhere (paths, query arguments, JSON keys and strings) "
                           "may not hold a NUL character or a lone surrogate (400 naming "
                           "where); JSON bodies nest at most "
                           f"{MAX_JSON_DEPTH} deep (400) and are at most {MAX_JSON_BYTES} "
                           "bytes (413). "
                           "Authenticate with a personal API token "
                           "(`Authorization: Bearer <token>`, created under My account > "
                           "API tokens or with `ecrf tokens create`). Every call is "
                           "audited. Permissions and site scoping are those of the "
                           "screens. Errors are JSON: `{\"error\": ..., \"message\": ...}`.",
            "license": {"name": "AGPL-3.0-or-later",
                        "identifier": "AGPL-3.0-or-later"},
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": name} for name in ("studies", "subjects", "forms", "endpoints",
                                             "events", "review", "safety", "signatures",
                                             "locks", "allocation", "strata", "labs", "jobs",
                                             "audit", "meta")],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "A personal API token; it acts with its owner's roles."}},
            "schemas": schemas,
            "parameters": parameters,
            "responses": _error_responses(),
        },
    }


PAGED = frozenset({"StudyList", "SubjectPage", "SubjectEndpointsPage", "SurvivalSubjectPage",
                   "SignatureList", "SignaturesToRedo", "AwaitingSignature", "LockList",
                   "QueryPage", "SdvProgress", "JobList", "SaeClockPage", "NotificationList"})


def _page_parameters(paths: dict) -> None:
    """Every list takes ``page``, ``per_page`` and ``cursor`` (and the audit trail
    ``cursor`` beside ``after``), and answers 400 for a bad one."""
    for item in paths.values():
        operation = item.get("get")
        if operation is None:
            continue
        schema = operation["responses"]["200"]["content"].get(JSON, {}).get("schema", {})
        name = schema.get("$ref", "").rsplit("/", 1)[-1]
        wanted = ["page", "per_page", "cursor"] if name in PAGED \
            else ["cursor"] if name == "AuditPage" else []
        if not wanted:
            continue
        have = {p["$ref"].rsplit("/", 1)[-1] if "$ref" in p else p["name"]
                for p in operation["parameters"]}
        operation["parameters"] += [_ref(p, "parameters") for p in wanted if p not in have]
        operation["responses"].setdefault("400", _ref("BadRequest", "responses"))


def _input_bounds(paths: dict, parameters: dict) -> None:
    """The input boundary, declared: numbers in paths and query arguments are database
    integers (a larger id or repeat names nothing, 404), every text argument has a
    maximum length, integers of request bodies a maximum, and every operation may answer
    400 for text no field may hold (a NUL character, a lone surrogate), and 413 for a body
    too large."""
    inline = [p for item in paths.values() for op in item.values() if isinstance(op, dict)
              for p in op.get("parameters", []) if "$ref" not in p]
    for param in [*parameters.values(), *inline]:
        schema = dict(param.get("schema", {}))
        if param.get("in") in ("path", "query") and schema.get("type") == "integer":
            schema.setdefault("maximum", MAX_ID)
        elif param.get("in") in ("path", "query") and schema.get("type") == "string" \
                and "enum" not in schema:
            schema.setdefault("maxLength", MAX_ARG_LENGTH)
        param["schema"] = schema
    for path, item in paths.items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation \
                    or path in ("/docs", "/openapi.json"):  # no input: nothing to refuse
                continue
            operation["responses"].setdefault("400", _ref("BadRequest", "responses"))
            if "requestBody" in operation:
                operation["responses"].setdefault("413", _ref("PayloadTooLarge", "responses"))


def _bounded_integers(schema) -> object:
    """``schema`` with a maximum on each integer that has none (a copy: the constants of
    this module are shared between schemas)."""
    if isinstance(schema, list):
        return [_bounded_integers(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    found = {k: _bounded_integers(v) for k, v in schema.items()}
    kinds = found.get("type")
    if kinds == "integer" or (isinstance(kinds, list) and "integer" in kinds):
        found.setdefault("maximum", MAX_ID)
    return found


def _state_tags(paths: dict) -> None:
    """Guarded writes take If-Match and may answer 412; the reads of their resources
    answer with an ETag (see ``preconditions``)."""
    by_endpoint = {}
    for rule in current_app.url_map.iter_rules():
        if rule.rule.startswith(PREFIX + "/"):
            path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule[len(PREFIX):])
            by_endpoint[rule.endpoint] = path
    header = {"ETag": {"description": "The resource's state as an entity tag: send it as "
                                      "If-Match with a write to act only on this state.",
                       "schema": {"type": "string"}}}
    for endpoint in preconditions.TAGGED:
        operation = paths[by_endpoint[endpoint]]["get"]
        operation["responses"]["200"]["headers"] = header
    for endpoint in (*preconditions.GUARDED, *preconditions.SELF_GUARDED):
        operation = paths[by_endpoint[endpoint]]["post"]
        operation["parameters"].append(_ref("If-Match-State", "parameters"))
        for code in ("200", "201"):
            if code in operation["responses"] and endpoint in preconditions.GUARDED:
                operation["responses"][code]["headers"] = header
        operation["responses"]["412"] = _ref("StateChanged", "responses")
        operation["responses"].setdefault("400", _ref("BadRequest", "responses"))


@bp.get("/openapi.json", endpoint="openapi")
def openapi_document():
    return build_document()
