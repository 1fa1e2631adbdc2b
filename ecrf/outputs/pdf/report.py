"""The study report PDF: overall survival (the survival table per arm, the Kaplan-Meier
plot with the numbers at risk and, for a reader allowed to see subjects, the per-subject
listing), and the recovery endpoints' summary when the study declares them.

Small and computed on demand (a fraction of a second to lay out for a trial's subjects):
downloaded directly, not through a job. Everything comes from ``ecrf.safety`` at the
moment of the request; the title page says when ("data as of"). Printed in the reader's
interface language (English, French or Chinese), dates in that locale's form.
"""

from __future__ import annotations

import datetime as dt
import re

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy.orm import Session

from ecrf import safety
from ecrf.core import format_day, interface_language
from ecrf.outputs.pdf.render import write_pdf
from ecrf.studies import Study

_SVG_PROLOGUE = re.compile(r"^\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?", re.S)


def study_report_html(session: Session, study: Study, site_ids: set[int] | None, *,
                      with_subjects: bool, generated_by: str,
                      generated_at: dt.datetime | None = None,
                      language: str | None = None) -> str:
    """The report's HTML in ``language`` (an interface language, "zh" for Chinese; English
    when none or unknown); raises ``safety.SurvivalError`` for a study without survival."""
    result = safety.study_survival(session, study, site_ids, now=generated_at)
    recovery = None
    if safety.has_counts(result.definition):
        try:
            recovery = safety.study_endpoints(session, study, site_ids)
        except safety.EndpointsError:
            recovery = None
    origin = result.spec.origin.replace("_", " ")
    locale = interface_language(language) or "en"
    with force_locale(locale):
        svg = result.plot_svg(x_label=_("Months from %(origin)s", origin=origin))
        at = result.computed_at.astimezone(dt.UTC)
        return current_app.jinja_env.get_template("pdf/study_report.html").render(
            study=study, definition=result.definition, result=result,
            plot=Markup(_SVG_PROLOGUE.sub("", svg, count=1)), recovery=recovery,
            with_subjects=with_subjects, generated_by=generated_by,
            generated_at=f"{format_day(at.date())} {at:%H:%M} UTC",
            language=locale.replace("_", "-"),
            at_risk_times=result.at_risk_times())


def study_report_pdf(session: Session, study: Study, site_ids: set[int] | None, *,
                     with_subjects: bool, generated_by: str,
                     language: str | None = None) -> bytes:
    html = study_report_html(session, study, site_ids, with_subjects=with_subjects,
                             generated_by=generated_by, language=language)
    found = write_pdf(html)
    assert found is not None
    return found
