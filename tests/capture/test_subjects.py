"""Study page, subject matrix, enrolment form and subject page through the test client."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, select, update

from ecrf.capture import schedule, subjects
from ecrf.capture.models import Subject
from ecrf.capture.schedule import local_today
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.studies import store as studies
from tests.capture.sample import ACTOR, record, write_study


@pytest.fixture
def study(app, tmp_path, make_study):
    make_study("SAMPLE", sites=("S01", "S02"))
    loaded = studies.load_folder(db.session, ACTOR, write_study(tmp_path / "sample")).study
    db.session.commit()
    return loaded


@pytest.fixture
def enrol(study, make_site):
    def make(key: str, site: str = "S01", on: dt.date = dt.date(2025, 1, 6),
             arm: str | None = None) -> Subject:
        subject = subjects.enrol_subject(db.session, ACTOR, study, make_site(site), key, on)
        subject.arm = arm
        db.session.commit()
        return subject

    return make


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


# --- study page -----------------------------------------------------------------------------


def test_study_page_shows_identity_versions_sites_and_counts(client, login_as, enrol):
    enrol("S01-001")
    enrol("S02-001", site="S02")
    login_as("sponsor_viewer", study="SAMPLE")
    html = page(client, "/studies/SAMPLE")
    assert "A DEXAML-like schedule for tests" in html and "NCT00000001" in html
    assert "v1 (protocol 1.0)" in html and "tester" in html
    version = studies.latest_version(db.session, studies.get_study(db.session, "SAMPLE"))
    assert version.content_hash[:16] in html
    assert "S01" in html and "S02" in html and "Screening" in html
    # Aggregate only: a sponsor viewer sees counts, never subject keys.
    assert "S01-001" not in html
    assert client.get("/studies/SAMPLE/subjects").status_code == 403


def test_study_links_follow_permissions(client, login_as, study):
    login_as("coordinator", site="S01", study="SAMPLE")
    home = page(client, "/")
    assert "/studies/SAMPLE/subjects/new" in home and "/studies/SAMPLE/subjects" in home
    nav = page(client, "/studies/SAMPLE")
    assert 'href="/studies/SAMPLE/subjects/new"' in nav


def test_monitor_sees_no_enrol_link(client, login_as, study):
    login_as("monitor", study="SAMPLE")
    html = page(client, "/studies/SAMPLE/subjects")
    assert "/studies/SAMPLE/subjects/new" not in html


# --- matrix ----------------------------------------------------------------------------------


def test_matrix_is_scoped_to_the_coordinators_site(client, login_as, enrol):
    enrol("S01-001")
    enrol("S02-001", site="S02")
    login_as("coordinator", site="S01", study="SAMPLE")
    html = page(client, "/studies/SAMPLE/subjects")
    assert "S01-001" in html and "S02-001" not in html
    assert "1 subject" in html
    # Asking for the other site by filter shows nothing either.
    assert "S02-001" not in page(client, "/studies/SAMPLE/subjects?site=S02")


def test_matrix_cells_show_status_with_colour_and_text(client, login_as, enrol):
    subject = enrol("S01-001", on=local_today("Europe/Paris") - dt.timedelta(days=60),
                    arm="DEX")
    start = local_today("Europe/Paris") - dt.timedelta(days=30)
    record(db.session, subject, "DEXCYC", "TREAT", {"CYCDT": start}, actual_date=start)
    schedule.refresh_subject(db.session, subject)  # as data entry does after a save
    db.session.commit()
    login_as("data_manager", study="SAMPLE")
    html = page(client, "/studies/SAMPLE/subjects")
    assert '<td class="status-overdue"' in html and ">Overdue<" in html  # screening
    # The repeating cycle: 1 of 3 done, the worst pending one shown.
    assert "1/3 · Overdue" in html or "1/3 · Due" in html
    assert 'href="/studies/SAMPLE/subjects/S01-001"' in html


def test_matrix_filters_and_pages(client, login_as, enrol):
    for n in range(1, 31):
        enrol(f"S01-{n:03d}")
    db.session.execute(update(Subject).where(Subject.subject_key == "S01-002")
                       .values(status="on_study"))
    db.session.commit()
    login_as("data_manager", study="SAMPLE")
    first = page(client, "/studies/SAMPLE/subjects?per_page=25")
    assert "30 subjects" in first and "page 1 of 2" in first
    assert "S01-025" in first and "S01-026" not in first
    second = page(client, "/studies/SAMPLE/subjects?per_page=25&page=2")
    assert "S01-026" in second and "S01-001" not in second
    everyone = page(client, "/studies/SAMPLE/subjects?per_page=all")
    assert "S01-030" in everyone and "page 1 of" not in everyone
    on_study = page(client, "/studies/SAMPLE/subjects?status=on_study")
    assert "S01-002" in on_study and "S01-003" not in on_study and "1 subject" in on_study
    overdue = page(client, "/studies/SAMPLE/subjects?visit=overdue")
    assert "30 subjects" in overdue  # everyone's screening window closed long ago
    none = page(client, "/studies/SAMPLE/subjects?visit=done")
    assert "0 subjects" in none
    odd = page(client, "/studies/SAMPLE/subjects?status=bogus&per_page=7&page=x")
    assert "30 subjects" in odd


def _matrix_statements(client) -> int:
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    client.get("/studies/SAMPLE/subjects?per_page=all")  # warm caches
    db.session.execute(update(Subject).values(schedule_computed_on=None))
    db.session.commit()
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        cold = client.get("/studies/SAMPLE/subjects?per_page=all")
        cold_count = len(statements)
        warm = client.get("/studies/SAMPLE/subjects?per_page=all")
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert cold.status_code == warm.status_code == 200
    return cold_count, len(statements) - cold_count


def test_matrix_statement_count_does_not_grow_with_subjects(client, login_as, enrol):
    login_as("data_manager", study="SAMPLE")

    def populate(keys):
        for key in keys:
            subject = enrol(key, arm="DEX")
            record(db.session, subject, "SCREEN", "CONSENT", {"CONSDT": dt.date(2025, 1, 7)})
            record(db.session, subject, "DEXCYC", "TREAT", {"CYCDT": dt.date(2025, 2, 1)},
                   actual_date=dt.date(2025, 2, 1))
        db.session.commit()

    populate([f"S01-{n:03d}" for n in range(1, 6)])
    five = _matrix_statements(client)
    populate([f"S01-{n:03d}" for n in range(6, 51)])
    fifty = _matrix_statements(client)
    assert five == fifty, (five, fifty)
    html = page(client, "/studies/SAMPLE/subjects?per_page=all")
    assert "50 subjects" in html


# --- enrolment -------------------------------------------------------------------------------


def test_enrol_form_offers_only_my_sites_and_defaults_to_today(client, login_as, study):
    login_as("coordinator", site="S01", study="SAMPLE")
    html = page(client, "/studies/SAMPLE/subjects/new")
    assert 'value="S01"' in html and 'value="S02"' not in html
    assert local_today("Europe/Paris").isoformat() in html


def test_enrolment_through_the_form(client, login_as, study):
    user = login_as("investigator", site="S01", study="SAMPLE")
    response = client.post("/studies/SAMPLE/subjects/new", data={
        "site": "S01", "subject_key": "S01-042", "enrolled_on": "2025-02-03"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/studies/SAMPLE/subjects/S01-042")
    subject = db.session.scalar(select(Subject).where(Subject.subject_key == "S01-042"))
    assert subject.enrolled_on == dt.date(2025, 2, 3) and subject.created_by_id == user.id
    row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "subject.enrolled"))
    assert row.username == user.username and row.role == "investigator"
    assert row.site_code == "S01"
    html = page(client, response.headers["Location"])
    assert "Subject S01-042 enrolled at S01." in html


def test_enrolment_errors_keep_the_entries(client, login_as, enrol):
    enrol("S01-001")
    login_as("coordinator", site="S01", study="SAMPLE")
    response = client.post("/studies/SAMPLE/subjects/new", data={
        "site": "S01", "subject_key": "S01-001", "enrolled_on": "2025-02-03"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "&#39;S01-001&#39; is already used in Sample trial" in html
    assert 'value="S01-001"' in html and 'value="2025-02-03"' in html
    assert 'aria-invalid="true"' in html
    future = client.post("/studies/SAMPLE/subjects/new", data={
        "site": "S01", "subject_key": "S01-002", "enrolled_on": "2999-01-01"})
    assert future.status_code == 422 and "is in the future" in future.get_data(as_text=True)
    garbled = client.post("/studies/SAMPLE/subjects/new", data={
        "site": "S01", "subject_key": "S01-002", "enrolled_on": "03/02/2025"})
    assert garbled.status_code == 422 and 'value="03/02/2025"' in garbled.get_data(as_text=True)
    other_site = client.post("/studies/SAMPLE/subjects/new", data={
        "site": "S02", "subject_key": "S02-001", "enrolled_on": "2025-02-03"})
    assert other_site.status_code == 422
    assert db.session.scalar(select(Subject).where(Subject.subject_key == "S02-001")) is None


def test_monitors_cannot_enrol(client, login_as, study):
    login_as("monitor", study="SAMPLE")
    assert client.get("/studies/SAMPLE/subjects/new").status_code == 403
    response = client.post("/studies/SAMPLE/subjects/new", data={
        "site": "S01", "subject_key": "S01-009", "enrolled_on": "2025-02-03"})
    assert response.status_code == 403


# --- subject page ----------------------------------------------------------------------------


def test_subject_page_shows_header_schedule_and_logs(client, login_as, enrol):
    subject = enrol("S01-001", arm="DEX")
    record(db.session, subject, "SCREEN", "CONSENT", {"CONSDT": dt.date(2025, 1, 8)})
    record(db.session, subject, "AE_LOG", "AE", {"AETERM": "Nausea"}, group="AE_LINE",
           state="in_progress")
    schedule.refresh_subject(db.session, subject)
    db.session.commit()
    login_as("investigator", site="S01", study="SAMPLE")
    html = page(client, "/studies/SAMPLE/subjects/S01-001")
    assert "S01-001" in html and "Site S01" in html and "DEX" in html
    assert "v1 (protocol 1.0)" in html and "Screening" in html
    assert "Randomisation" in html and "2025-01-15" in html  # consent + 7 days
    assert "2025-01-08 – 2025-01-22" in html
    assert "Adverse events" in html and "entries recorded" in html
    assert "End of treatment" in html and "nothing recorded" in html


def test_subject_at_another_site_is_not_found(client, login_as, enrol):
    enrol("S02-001", site="S02")
    login_as("coordinator", site="S01", study="SAMPLE")
    assert client.get("/studies/SAMPLE/subjects/S02-001").status_code == 404
    assert client.get("/studies/SAMPLE/subjects/NOPE").status_code == 404


def test_subject_page_links_to_data_entry_only_when_it_exists(app, client, login_as, enrol):
    enrol("S01-001")
    login_as("coordinator", site="S01", study="SAMPLE")
    html = page(client, "/studies/SAMPLE/subjects/S01-001")
    if "entry.event" in app.view_functions:
        assert "/SCREEN" in html
    else:
        assert "/entry" not in html


# --- one subject lookup for every subject page -----------------------------------------------


@pytest.mark.parametrize("path", [
    "", "/events/SCREEN/1", "/review", "/safety", "/randomize", "/audit",
])
def test_a_subject_of_another_site_is_not_found_on_any_subject_page(client, login_as, enrol,
                                                                    path):
    enrol("S01-001")
    enrol("S02-001", site="S02")
    login_as("investigator", site="S02", study="SAMPLE")
    assert client.get(f"/studies/SAMPLE/subjects/S02-001{path}").status_code == 200
    assert client.get(f"/studies/SAMPLE/subjects/S01-001{path}").status_code == 404
    assert client.get(f"/studies/SAMPLE/subjects/NOPE{path}").status_code == 404
