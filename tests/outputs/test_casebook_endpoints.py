"""A subject's casebook carries its endpoint values, with the rule behind each one."""

from __future__ import annotations

import re

from ecrf.core.extensions import db
from ecrf.outputs.pdf.casebook import casebook_html, subject_endpoints
from tests.safety.test_endpoints import inv, study, subject_a  # noqa: F401


def test_the_casebook_lists_the_subjects_endpoints(app, inv, study):  # noqa: F811
    subject = subject_a(inv, study)
    rows = {r["endpoint"]: r for r in subject_endpoints(db.session, subject)}
    # Measurements on days 15, 17 and 18 are >= 0.5 (no count on day 16): recovery day 15.
    neutrophils = rows["Time to neutrophil recovery"]
    assert (neutrophils["status"], neutrophils["day"]) == ("event", 15)
    assert "3 consecutive measurements" in neutrophils["rule"]
    html = casebook_html(db.session, subject, generated_by="test")
    section = html.split('id="endpoints"')[1].split("</section>")[0]
    assert "Time to neutrophil recovery" in section and "consecutive measurements" in section
    assert re.search(r"<td>15</td>", section)


def test_a_study_without_endpoints_has_no_section(app, make_study, make_user):
    from tests.outputs.clinical_setup import populate

    cast = populate(make_study, make_user)
    assert subject_endpoints(db.session, cast.subject) == []
    assert 'id="endpoints"' not in casebook_html(db.session, cast.subject, generated_by="t")
