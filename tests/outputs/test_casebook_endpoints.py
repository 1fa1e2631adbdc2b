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


def test_the_casebook_gives_the_subjects_survival(app, make_study, make_user):
    from sqlalchemy import select

    from ecrf.capture.models import Subject
    from tests.safety import test_survival

    surv = test_survival.load(make_study)
    actor = test_survival.actor_for(make_user("inv-s", role="investigator", study="SURV",
                                              site="S01"))
    test_survival.cohort.__wrapped__(actor, surv)
    by_key = {s.subject_key: s for s in db.session.scalars(select(Subject))}
    # Randomised 2025-01-01, died 2025-03-02: 60 days, 60 / 30.4375 = 1.97 months.
    (row,) = subject_endpoints(db.session, by_key["S01-A1"])
    assert (row["endpoint"], row["status"]) == ("Overall survival", "event")
    assert row["value"] == "1.97 months (60 days) to 2025-03-02"
    assert row["rule"].startswith("Overall survival: time from randomization to death")
    # Lost to follow-up on 2025-03-02 after a contact on 2025-01-20.
    (lost,) = subject_endpoints(db.session, by_key["S01-A3"])
    assert lost["status"] == "censored" and "lost to follow" in lost["reason"]
    assert subject_endpoints(db.session, by_key["S01-C1"]) == []  # never randomised
    html = casebook_html(db.session, by_key["S01-A1"], generated_by="t")
    assert "1.97 months (60 days)" in html.split('id="endpoints"')[1]
