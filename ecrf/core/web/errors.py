"""Error pages (JSON under /api/): a refused or expired form, an HTTP error, and any
unexpected error, after which nothing of the request is kept."""

from __future__ import annotations

from flask import Flask, current_app, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ecrf.core.extensions import db


def install(app: Flask) -> None:
    app.register_error_handler(CSRFError, csrf_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)


def csrf_error(error: CSRFError):
    return render_template("errors/error.html", code=400,
                           title=_("The form expired"),
                           message=_("The page was open too long or was submitted from "
                                     "elsewhere. Go back, reload the page and submit "
                                     "again.")), 400


def http_error(error: HTTPException):
    if request.path.startswith("/api/"):
        return {"error": error.name, "message": error.description}, error.code
    titles = {
        403: _("You do not have access to this page"),
        404: _("Page not found"),
        405: _("This action is not allowed here"),
        413: _("The upload is too large"),
    }
    return render_template("errors/error.html", code=error.code,
                           title=titles.get(error.code, error.name),
                           message=error.description if error.code not in (403, 404)
                           else None), error.code


def unexpected_error(error: Exception):
    db.session.rollback()
    current_app.logger.exception("unexpected error on %s %s", request.method, request.path)
    if request.path.startswith("/api/"):
        return {"error": "Internal Server Error",
                "message": "The request failed and nothing was saved."}, 500
    return render_template("errors/error.html", code=500,
                           title=_("Something went wrong"),
                           message=_("Nothing was saved. The error has been logged; "
                                     "please try again or contact your data manager.")), 500
