"""Safety pages through the test client: the subject's safety page and its decisions (AE
prompts, SAE reports, DLT), the study dashboard, charts, the endpoints page and CSV, the
includes for other pages, permissions and site scoping."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
from flask import render_template_string
from sqlalchemy import select

from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.safety.models import AeGradePrompt, DltAssessment, SaeReport
from tests.safety.safety_setup import (
    actor_for,
    ae_row,
    counts_row,
    enrol,
    load_safety_study,
    save,
    stored,
)

D1 = dt.date(2025, 6, 1)
BASE = "/studies/SAFETY/subjects/S01-001/safety"


@pytest.fixture
def study(app, make_study):
    return load_safety_study(make_study)


@pytest.fixture
def subject(study):
    return enrol(study, "S01-001", level=1)


@pytest.fixture
def data(subject, make_user):
    """Day 1, two days of counts (a grade-4 ANC) and a serious AE, entered by a CRC."""
    crc = actor_for(make_user("crc.s01", role="coordinator", study="SAFETY", site="S01"),
                    role="coordinator")
    save(crc, subject, "CHEMO", {("CHEMO_MAIN", 1, "CHEMOD1"): D1.isoformat()}, day=D1)
    save(crc, subject, "COUNTS", {**counts_row(1, D1, ANC="2.10", PLT="150", HGB="100"),
                                  **counts_row(2, D1 + dt.timedelta(days=9), ANC="0.20",
                                               PLT="60", HGB="85", PLTTX="Y")}, day=D1)
    save(crc, subject, "AE", ae_row(1, AETERM="Pneumonia", AESTDTC="2025-06-10",
                                    AETOXGR="3", AESER="Y", AESHOSP="Y",
                                    AESAWDTC="2025-06-10 08:00", AERELEXO="possible"))
    return subject


def page(response) -> str:
    return response.get_data(as_text=True)


def prompt_of(subject) -> AeGradePrompt:
    return db.session.scalar(select(AeGradePrompt).where(AeGradePrompt.subject_id == subject.id))


def test_subject_page_shows_grades_prompts_reports_and_findings(client, login_as, data):
    login_as("investigator", "S01", study="SAFETY")
    html = page(client.get(BASE))
    assert "Neutrophil count decreased" in html and "grade 4" in html
    assert "Grade 4" in html and "absolute: 0.2 x10^9/L &lt; 0.5" in html  # the grade include
    assert "Pneumonia" in html and "v1" in html and "Overdue" in html
    assert 'action="/studies/SAFETY/subjects/S01-001/safety/prompts/' in html
    assert "consistent" in html
    assert '<img class="safety-chart" src="' + BASE + '/counts.svg"' in html


def test_investigator_declines_a_prompt_with_a_reason(client, login_as, data):
    login_as("investigator", "S01", study="SAFETY")
    prompt = prompt_of(data)
    url = f"{BASE}/prompts/{prompt.id}/decline"
    response = client.post(url, data={"reason": "  "})
    assert response.status_code == 422
    assert "give the reason for not recording this AE" in page(response)
    db.session.refresh(prompt)
    assert prompt.status == "open"
    response = client.post(url, data={"reason": "Expected nadir"})
    assert response.status_code == 302 and response.headers["Location"].endswith(BASE)
    db.session.refresh(prompt)
    assert (prompt.status, prompt.reason) == ("declined", "Expected nadir")
    row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "ae_prompt.declined"))
    assert row.role == "investigator" and row.site_code == "S01"


def test_coordinator_records_the_ae_but_cannot_decline(client, login_as, data):
    login_as("coordinator", "S01", study="SAFETY")
    prompt = prompt_of(data)
    assert client.post(f"{BASE}/prompts/{prompt.id}/decline",
                       data={"reason": "x"}).status_code == 403
    response = client.post(f"{BASE}/prompts/{prompt.id}/accept", data={"link_row": ""})
    assert response.status_code == 302
    db.session.refresh(prompt)
    assert prompt.status == "accepted" and prompt.ae_row == 2
    assert stored(data, "AE", "AETERM", row=2).value == "Neutrophil count decreased"
    html = page(client.get(BASE))
    assert "Record the AE" not in html  # nothing open any more
    assert "Decline" not in html


def test_submit_an_sae_report_and_open_a_follow_up(client, login_as, data):
    login_as("investigator", "S01", study="SAFETY")
    report = db.session.scalar(select(SaeReport).where(SaeReport.subject_id == data.id))
    assert client.post(f"{BASE}/sae/{report.id}/submit").status_code == 302
    db.session.refresh(report)
    assert report.submitted_at is not None
    again = client.post(f"{BASE}/sae/{report.id}/submit")
    assert again.status_code == 422 and "already submitted" in page(again)
    bad = client.post(f"{BASE}/sae/{report.id}/followup", data={"awareness": "tomorrow"})
    assert bad.status_code == 422 and "YYYY-MM-DD HH:MM" in page(bad)
    good = client.post(f"{BASE}/sae/{report.id}/followup",
                       data={"awareness": "2025-06-12T10:00"})
    assert good.status_code == 302
    followup = db.session.scalar(select(SaeReport).where(SaeReport.version == 2))
    assert followup.awareness_at == dt.datetime(2025, 6, 12, 8, 0, tzinfo=dt.UTC)


def test_coordinator_cannot_submit_but_can_open_a_report(client, login_as, data):
    login_as("coordinator", "S01", study="SAFETY")
    report = db.session.scalar(select(SaeReport))
    assert client.post(f"{BASE}/sae/{report.id}/submit").status_code == 403
    response = client.post(f"{BASE}/sae", data={"row": "1", "awareness": "2025-06-10 08:00"})
    assert response.status_code == 422 and "already has an SAE report" in page(response)


def test_dlt_decision(client, login_as, data, make_user):
    crc = actor_for(make_user("crc2", role="coordinator", study="SAFETY", site="S01"))
    save(crc, data, "INF", {("INF_MAIN", 1, "INFDT"): "2025-06-07",
                            ("INF_MAIN", 1, "INFSTTM"): "09:30",
                            ("INF_MAIN", 1, "FULLDOSE"): "Y"}, day=dt.date(2025, 6, 7))
    assessment = db.session.scalar(select(DltAssessment))
    assert assessment.status == "candidate"
    login_as("investigator", "S01", study="SAFETY")
    html = page(client.get(BASE))
    assert "Confirm DLT" in html and "DLT evaluability" in html
    missing = client.post(f"{BASE}/dlt/{assessment.id}", data={"decision": "confirmed"})
    assert missing.status_code == 422 and "give the reason for the decision" in page(missing)
    done = client.post(f"{BASE}/dlt/{assessment.id}",
                       data={"decision": "confirmed", "reason": "Grade 3, possibly related"})
    assert done.status_code == 302
    db.session.refresh(assessment)
    assert assessment.status == "confirmed"
    assert "DLT confirmed: Pneumonia (row 1)" in page(client.get(BASE))


def test_dashboard_lists_reports_and_pending_decisions(client, login_as, data):
    login_as("monitor", "S01", study="SAFETY")
    html = page(client.get("/studies/SAFETY/safety"))
    assert "S01-001" in html and "Pneumonia" in html and "Overdue: 1" in html
    assert "Neutrophil count decreased" in html  # the open prompt
    assert "Graded lab values awaiting an AE decision" in html


def test_other_sites_are_not_visible(client, login_as, data):
    login_as("investigator", "S02", study="SAFETY")
    html = page(client.get("/studies/SAFETY/safety"))
    assert "S01-001" not in html and "No SAE has been reported." in html
    assert client.get(BASE).status_code == 404
    assert client.get(BASE + "/counts.svg").status_code == 404
    prompt = prompt_of(data)
    assert client.post(f"{BASE}/prompts/{prompt.id}/decline",
                       data={"reason": "x"}).status_code == 404


def test_counts_chart_is_svg_with_its_own_policy(client, login_as, data):
    login_as("monitor", "S01", study="SAFETY")
    response = client.get(BASE + "/counts.svg")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert "script-src" not in response.headers["Content-Security-Policy"]
    root = ET.fromstring(response.get_data())
    found = {e.get("id") for e in root.iter() if e.get("id")}
    assert {"threshold-anc-0.5", "threshold-plt-20", "transfusions-platelets"} <= found


def test_endpoints_page_csv_and_chart_for_the_sponsor(client, login_as, data):
    login_as("sponsor_viewer", study="SAFETY")
    html = page(client.get("/studies/SAFETY/endpoints"))
    assert "Dose level 1" in html and "time to neutrophil recovery" in html
    assert "S01-001" not in html  # no per-subject rows without subjects.view
    csv = client.get("/studies/SAFETY/endpoints.csv")
    assert csv.mimetype == "text/csv"
    assert 'filename="SAFETY-endpoints.csv"' in csv.headers["Content-Disposition"]
    assert csv.get_data(as_text=True).startswith("group,endpoint,kind,n,not_evaluable,events")
    assert "ANC &gt;= 0.5 on 3 consecutive measurements, after the nadir" in html
    assert "subjects-csv" not in html  # per-subject rows need subjects.view
    assert client.get("/studies/SAFETY/endpoints/subjects.csv").status_code == 403
    chart = client.get("/studies/SAFETY/endpoints/anc-0.svg")
    assert chart.mimetype == "image/svg+xml" and b"median-anc" in chart.get_data()
    assert client.get("/studies/SAFETY/endpoints/anc-5.svg").status_code == 404
    assert client.get(BASE).status_code == 403


def test_endpoints_page_lists_subjects_for_site_staff(client, login_as, data):
    login_as("investigator", "S01", study="SAFETY")
    html = page(client.get("/studies/SAFETY/endpoints"))
    assert "S01-001" in html and "Per subject" in html
    assert 'id="subjects-csv"' in html
    response = client.get("/studies/SAFETY/endpoints/subjects.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="SAFETY-endpoints-subjects.csv"' in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    assert text.startswith("subject_key,site_code,group,endpoint,status,value,day,rule,"
                           "evaluable,reason\r\n")
    assert "\r\nS01-001,S01," in text


def test_subjects_csv_is_scoped_to_the_users_sites(client, login_as, data):
    login_as("investigator", "S02", study="SAFETY")
    response = client.get("/studies/SAFETY/endpoints/subjects.csv")
    assert response.status_code == 200
    assert "S01-001" not in response.get_data(as_text=True)


def test_a_study_without_counts_says_so(client, login_as, make_study):
    make_study("TRIAL1")
    login_as("data_manager", study="TRIAL1")
    response = client.get("/studies/TRIAL1/endpoints")
    assert response.status_code == 200 and "no loaded study definition" in page(response)
    assert client.get("/studies/TRIAL1/endpoints.csv").status_code == 404
    assert client.get("/studies/TRIAL1/endpoints/subjects.csv").status_code == 404


def test_includes_for_other_pages(app, data):
    iv = stored(data, "COUNTS", "ANC", row=2)
    with app.test_request_context():
        grade = render_template_string(
            '{% with iv=value %}{% include "safety/_grade.html" %}{% endwith %}', value=iv)
        assert "Grade 4" in grade and "CTCAE v5.0: absolute" in grade
        assert render_template_string(
            '{% with iv=value %}{% include "safety/_grade.html" %}{% endwith %}',
            value=None).strip() == ""
        clocks = render_template_string('{% include "safety/_sae_clock.html" %}',
                                        subject=data, can=lambda *a: False)
        assert "Pneumonia" in clocks and "Overdue" in clocks and "due 2025-06-11 08:00" in clocks
