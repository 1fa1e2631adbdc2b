"""Stratification factors of a randomized subject through the API: the level used at
randomization beside the one recorded now, and the data manager's correction.

As the strata screen: the permission ``strata.correct`` (data managers), the subject
looked up at the user's sites (404 elsewhere), the correction saved through data capture
with its reason (the allocation and the schedule keep the stratum used; a query documents
the mis-stratification), a lock or a frozen study refused (423).
"""

from __future__ import annotations

from flask import g, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from ecrf import allocation, capture
from ecrf.accounts import Allow, request_actor
from ecrf.accounts import register_route as register
from ecrf.api.blueprint import bp
from ecrf.api.bodies import body_of, invalid, text_field
from ecrf.api.common import subject_or_404
from ecrf.api.errors import ApiProblem
from ecrf.capture import Subject
from ecrf.core import db
from ecrf.core.web import say, transaction
from ecrf.review import DataLockedError

register("api.strata", Allow("strata.correct"))
register("api.stratum_correct", Allow("strata.correct"))

STRATA = "/studies/<study_oid>/subjects/<subject_key>/strata"
MAX_CODE = 64


def strata_document(subject: Subject) -> dict:
    language = str(get_locale() or "en").split("_")[0]
    rows = allocation.strata_rows(db.session, subject, language) if subject.arm else []
    return {
        "study_oid": g.study.oid, "subject_key": subject.subject_key,
        "randomized": bool(subject.arm),
        "strata": [{"name": row.name, "form_oid": row.form, "item_oid": row.item,
                    "label": row.label, "used": row.used, "used_label": row.label_of(row.used),
                    "recorded": row.recorded, "recorded_label": row.label_of(row.recorded),
                    "mismatch": row.mismatch,
                    "levels": [{"code": code, "label": label} for code, label in row.choices]}
                   for row in rows],
        "url": url_for("api.strata", study_oid=g.study.oid, subject_key=subject.subject_key),
    }


def _field(template: str) -> str:
    if "reason" in template:
        return "reason"
    if "stratum %(name)s" in template or "not randomized" in template:
        return "stratum"
    return "value"


@bp.get(STRATA, endpoint="strata")
def strata_read(study_oid: str, subject_key: str):
    return strata_document(subject_or_404(subject_key, "strata.correct"))


@bp.post(STRATA + "/correct", endpoint="stratum_correct")
def stratum_correct(study_oid: str, subject_key: str):
    subject = subject_or_404(subject_key, "strata.correct")
    data = body_of({"stratum", "value", "reason"})
    fields = {}
    for name, limit in (("stratum", MAX_CODE), ("value", MAX_CODE),
                        ("reason", capture.MAX_REASON)):
        fields[name] = text_field(data, name, limit)
        if fields[name] is None or not fields[name].strip():
            raise invalid(name, _("'%(field)s' is required.", field=name))
    try:
        with transaction():
            allocation.correct_stratum(db.session, request_actor("strata.correct", g.study),
                                       subject, fields["stratum"].strip(),
                                       fields["value"].strip(), fields["reason"])
    except allocation.StratumCorrectionError as exc:
        errors: dict[str, list[str]] = {}
        for message in exc.messages:
            errors.setdefault(_field(message.template), []).append(say(message))
        raise ApiProblem(422, _("Nothing was saved: %(why)s",
                                why=" ".join(m for ms in errors.values() for m in ms)),
                         errors=errors) from None
    except DataLockedError as exc:
        raise ApiProblem(423, say(exc.message)) from None
    except capture.StaleFormError as exc:
        raise ApiProblem(409, say(exc.message)) from None
    except capture.CaptureError as exc:
        raise invalid("value", say(exc.message)) from None
    return strata_document(subject)
