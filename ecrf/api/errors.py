"""Errors of the API: always JSON, ``{"error": ..., "message": ...}`` plus details.

``ApiProblem`` is raised anywhere in a request; the handlers below turn it, and every HTTP
error raised on an API route (by the permission gate too), into that shape with a message
saying what to do.
"""

from __future__ import annotations

from flask import g, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from ecrf.accounts import ROUTES, Allow
from ecrf.api.blueprint import bp


class ApiProblem(Exception):
    """An API request that cannot be served; ``details`` are added to the JSON body."""

    def __init__(self, status: int, message: str, **details) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def body(status: int, message: str, **details) -> dict:
    return {"error": HTTP_STATUS_CODES.get(status, "Error"), "message": message, **details}


@bp.errorhandler(ApiProblem)
def _problem(problem: ApiProblem):
    response = body(problem.status, problem.message, **problem.details), problem.status
    if problem.status == 401:
        return response[0], 401, {"WWW-Authenticate": 'Bearer realm="ecrf"'}
    if problem.status == 429 and "retry_after" in problem.details:
        return response[0], 429, {"Retry-After": str(problem.details["retry_after"])}
    return response


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    code = error.code or 500
    message = error.description or ""
    headers = {}
    if code == 401:
        problem, message = unauthorized_message()
        challenge = 'Bearer realm="ecrf"' + (f', error="{problem}"' if problem else "")
        headers["WWW-Authenticate"] = challenge
    elif code == 403 and message == type(error).description:
        message = _forbidden_message()
    elif code == 404 and message == type(error).description:
        message = _not_found_message()
    return body(code, message), code, headers


def _forbidden_message() -> str:
    decision = ROUTES.get(request.endpoint or "")
    oid = (request.view_args or {}).get("study_oid")
    if isinstance(decision, Allow) and oid:
        return _("Your roles in %(study)s do not allow this (it needs the permission "
                 "'%(action)s').", study=oid, action=decision.action)
    return _("You do not have permission to do this.")


def _not_found_message() -> str:
    oid = (request.view_args or {}).get("study_oid")
    if oid and "study" not in g:
        return _("There is no study %(study)s.", study=oid)
    return _("Not found: check the address (%(path)s).", path=request.path)


def unauthorized_message() -> tuple[str, str]:
    """(WWW-Authenticate error code, message) for a refused request."""
    problem = g.get("api_auth_problem")
    if problem is not None:
        return problem
    return "", _("Authentication required: send an API token as "
                 "'Authorization: Bearer <token>' (create one under My account > API "
                 "tokens).")
