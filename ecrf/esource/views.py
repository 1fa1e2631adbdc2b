"""The coordinator's page for laboratory files: upload, preview (new, unchanged,
conflicting with what is entered, skipped, refused), then confirm. The preview carries
the file itself (base64, with its SHA-256), so the confirmation stores exactly the file
that was previewed, compared again with what is stored at that moment; an entered value
that differs is replaced only when the coordinator ticks it."""

from __future__ import annotations

import base64
import binascii
import hashlib

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField, SelectField
from wtforms.fields.choices import SelectChoice

from ecrf import accounts
from ecrf.accounts import Allow, request_actor
from ecrf.accounts import register_route as register
from ecrf.capture import IMPORTED_TABLES
from ecrf.core import analyze_after_import, db
from ecrf.core.web import transaction

from .parse import FORMATS, LabFileError
from .store import CONFLICT, NEW, UNCHANGED, LabImport, LabImportRefused, apply_import, plan_import

bp = Blueprint("labs", __name__)

register("labs.upload", Allow("data.enter"))
register("labs.preview", Allow("data.enter"))
register("labs.confirm", Allow("data.enter"))

MAX_BYTES = 5 * 1024 * 1024  # larger files: `ecrf import labs`
FORMAT_LABELS = {"csv": _l("CSV from the laboratory system"),
                 "hl7": _l("HL7 v2 ORU^R01 messages"),
                 "fhir": _l("FHIR R4 Observations (JSON)")}
STATE_LABELS = {NEW: _l("new"), UNCHANGED: _l("unchanged"), CONFLICT: _l("differs from entry")}


class UploadForm(FlaskForm):
    file = FileField(_l("Laboratory file"), validators=[FileRequired(_l("Choose a file."))])
    format = SelectField(_l("Format"), default="", validate_choice=True, choices=[
        SelectChoice("", _l("From the file's name and content")),
        *(SelectChoice(code, FORMAT_LABELS[code]) for code in FORMATS)])


class ConfirmForm(FlaskForm):
    name = HiddenField()
    format = HiddenField()
    content = HiddenField()  # the file, base64
    sha256 = HiddenField()


def _sites() -> set[int] | None:
    return accounts.site_ids_for(current_user, "data.enter", g.study)


def _render(form: UploadForm, plan: LabImport | None = None, confirm: ConfirmForm | None = None,
            refused=None, status: int = 200):
    return render_template("labs/import.html", form=form, plan=plan, confirm=confirm,
                           refused=refused or [], states=STATE_LABELS,
                           formats=FORMAT_LABELS), status


@bp.route("/studies/<study_oid>/labs")
def upload(study_oid: str):
    return _render(UploadForm())


@bp.route("/studies/<study_oid>/labs/preview", methods=["POST"])
def preview(study_oid: str):
    form = UploadForm()
    if not form.validate_on_submit():
        return _render(form, status=400)
    # The upload itself, as Flask received it (Flask-WTF versions differ in what they put
    # in the field's data).
    upload = request.files.get(form.file.name)
    if upload is None:
        form.file.errors = [_("Choose a file.")]
        return _render(form, status=400)
    data = upload.read(MAX_BYTES + 1)
    name = upload.filename or "upload"
    if len(data) > MAX_BYTES:
        form.file.errors = [_("The file is larger than 5 MB: import it with the ecrf import "
                              "labs command.")]
        return _render(form, status=400)
    return _preview(form, name, data, form.format.data or None)


def _preview(form: UploadForm, name: str, data: bytes, fmt: str | None, refused=None,
             status: int = 200):
    try:
        with transaction() as unit:
            plan = plan_import(db.session, g.study, name, data, fmt, site_ids=_sites())
            unit.discard()  # a preview stores nothing
    except LabFileError as exc:
        form.file.errors = [_("This file cannot be read: %(reason)s", reason=str(exc))]
        return _render(form, status=400)
    confirm = ConfirmForm(formdata=None, name=name, format=plan.format,
                          content=base64.b64encode(data).decode(), sha256=plan.sha256)
    return _render(form, plan, confirm, refused,
                   status=status if status != 200 else (422 if plan.problems else 200))


@bp.route("/studies/<study_oid>/labs/import", methods=["POST"])
def confirm(study_oid: str):
    confirm = ConfirmForm()
    form = UploadForm(formdata=None)
    try:
        data = base64.b64decode(confirm.content.data or "", validate=True)
    except (binascii.Error, ValueError):
        data = None
    if not confirm.validate_on_submit() or data is None or \
            hashlib.sha256(data).hexdigest() != confirm.sha256.data or \
            confirm.format.data not in FORMATS:
        form.file.errors = [_("The previewed file did not come back intact; upload it again.")]
        return _render(form, status=400)
    accept = set(request.form.getlist("accept"))
    name = confirm.name.data or "upload"
    try:
        with transaction():
            plan = plan_import(db.session, g.study, name, data, confirm.format.data,
                               site_ids=_sites())
            stored = apply_import(db.session, request_actor("data.enter", g.study), g.study,
                                  plan, accept=accept)
    except LabImportRefused as exc:
        return _preview(form, name, data, confirm.format.data, exc.problems, 422)
    except LabFileError:
        return _preview(form, name, data, confirm.format.data, None, 422)
    analyze_after_import(db.session, IMPORTED_TABLES, stored.values)
    flash(_("%(values)s value(s) from %(name)s stored in %(forms)s form(s); %(kept)s "
            "entered value(s) kept.", values=stored.values, name=name, forms=stored.forms,
            kept=stored.kept), "success")
    return redirect(url_for("labs.upload", study_oid=g.study.oid))
