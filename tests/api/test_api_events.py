"""Events through the API: start one then save its form, declare one not done, with the
permissions, site scoping, locks and audit rows of the event screen."""

from __future__ import annotations

import pytest

from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.review import locks
from tests.api import (
    API,
    STUDY,
    VITALS_VALUES,
    audit_rows,
    bearer,
    form_url,
    setup_study,
    subject,
    token_for,
)
from tests.api.test_openapi import check

EVENT = "/studies/{study_oid}/subjects/{subject_key}/events/{event_oid}/{repeat}"
FORM = EVENT + "/forms/{form_oid}"


def event_url(key: str, event_oid: str = "SCREEN", repeat: int = 1) -> str:
    return f"{STUDY}/subjects/{key}/events/{event_oid}/{repeat}"


@pytest.fixture
def doc(client) -> dict:
    return client.get(f"{API}/openapi.json").get_json()


@pytest.fixture
def people(app, make_study, make_user):
    setup_study(make_study)
    dm = make_user("dm1", role="data_manager", study="CAPTURE")
    return {
        "crc": bearer(token_for(make_user("crc1", role="coordinator", study="CAPTURE",
                                          site="S01"))),
        "crc2": bearer(token_for(make_user("crc2", role="coordinator", study="CAPTURE",
                                           site="S02"))),
        "mon": bearer(token_for(make_user("mon1", role="monitor", study="CAPTURE"))),
        "dm_actor": Actor(user_id=dm.id, username=dm.username, role="data_manager"),
    }


def test_start_an_event_then_save_its_form(client, doc, people):
    crc = people["crc"]
    refused = client.get(form_url("S01-001"), headers=crc)
    assert check(doc, FORM, "get", refused) and refused.status_code == 409

    before = client.get(event_url("S01-001"), headers=crc)
    assert check(doc, EVENT, "get", before)["state"] == "not_started"
    started = client.post(f"{event_url('S01-001')}/start", headers=crc,
                          json={"actual_date": "2025-05-02"})
    body = check(doc, EVENT + "/start", "post", started)
    assert started.status_code == 201 and started.headers["Location"] == body["url"]
    assert (body["state"], body["actual_date"]) == ("in_progress", "2025-05-02")
    assert "VITALS" in [f["form_oid"] for f in body["forms"]]
    [row] = audit_rows(action="event.started")
    assert row.username == "crc1" and row.new_value == "2025-05-02"

    saved = client.put(form_url("S01-001"), headers=crc,
                       json={"version": None, "values": VITALS_VALUES})
    assert check(doc, FORM, "put", saved) and saved.status_code == 200, saved.get_json()

    # correcting the date needs a reason (422 naming it), then is audited
    again = client.post(f"{event_url('S01-001')}/start", headers=crc,
                        json={"actual_date": "2025-05-01"})
    assert check(doc, EVENT + "/start", "post", again) and again.status_code == 422
    assert "reason" in again.get_json()["errors"]
    again = client.post(f"{event_url('S01-001')}/start", headers=crc,
                        json={"actual_date": "2025-05-01", "reason": "Typo in the date"})
    assert check(doc, EVENT + "/start", "post", again)["actual_date"] == "2025-05-01"
    assert again.status_code == 200
    assert audit_rows(action="event.date_changed")[0].reason == "Typo in the date"


def test_not_done_then_the_form_refuses(client, doc, people):
    crc = people["crc"]
    missing = client.post(f"{event_url('S01-001')}/not-done", headers=crc, json={})
    assert check(doc, EVENT + "/not-done", "post", missing) and missing.status_code == 422
    assert "reason" in missing.get_json()["errors"]
    done = client.post(f"{event_url('S01-001')}/not-done", headers=crc,
                       json={"reason": "Subject did not come"})
    body = check(doc, EVENT + "/not-done", "post", done)
    assert (done.status_code, body["state"], body["not_done_reason"]) == \
        (200, "not_done", "Subject did not come")
    assert audit_rows(action="event.not_done")[0].reason == "Subject did not come"
    again = client.post(f"{event_url('S01-001')}/not-done", headers=crc,
                        json={"reason": "twice"})
    assert check(doc, EVENT + "/not-done", "post", again) and again.status_code == 409

    for response in (client.get(form_url("S01-001"), headers=crc),
                     client.put(form_url("S01-001"), headers=crc,
                                json={"version": None, "values": VITALS_VALUES})):
        assert response.status_code == 409
    assert check(doc, FORM, "put", client.put(form_url("S01-001"), headers=crc, json={
        "version": None, "values": VITALS_VALUES}))

    # reopening needs a reason
    reopened = client.post(f"{event_url('S01-001')}/start", headers=crc,
                           json={"actual_date": "2025-05-02", "reason": "Came after all"})
    assert check(doc, EVENT + "/start", "post", reopened)["state"] == "in_progress"


def test_permission_and_site_scoping(client, doc, people):
    refused = client.post(f"{event_url('S01-001')}/start", headers=people["mon"],
                          json={"actual_date": "2025-05-02"})
    assert check(doc, EVENT + "/start", "post", refused) and refused.status_code == 403
    elsewhere = client.post(f"{event_url('S01-001')}/start", headers=people["crc2"],
                            json={"actual_date": "2025-05-02"})
    assert check(doc, EVENT + "/start", "post", elsewhere) and elsewhere.status_code == 404
    elsewhere = client.post(f"{event_url('S01-001')}/not-done", headers=people["crc2"],
                            json={"reason": "x"})
    assert check(doc, EVENT + "/not-done", "post", elsewhere) and elsewhere.status_code == 404
    unknown = client.post(f"{event_url('S01-001', 'NOPE')}/start", headers=people["crc"],
                          json={"actual_date": "2025-05-02"})
    assert check(doc, EVENT + "/start", "post", unknown) and unknown.status_code == 404
    huge = client.get(event_url("S01-001", "SCREEN", 10**12), headers=people["crc"])
    assert check(doc, EVENT, "get", huge) and huge.status_code == 404
    assert not audit_rows(action="event.started")


def test_locks_answer_423(client, doc, people):
    locks.lock_subject(db.session, people["dm_actor"], subject("S01-001"), "ready")
    db.session.commit()
    for path, body in (("/start", {"actual_date": "2025-05-02"}),
                       ("/not-done", {"reason": "Subject did not come"})):
        response = client.post(event_url("S01-001") + path, headers=people["crc"], json=body)
        assert check(doc, EVENT + path, "post", response) and response.status_code == 423
    assert not audit_rows(action="event.started")


@pytest.mark.parametrize("body", [
    {"actual_date": "02/05/2025"}, {"actual_date": "2025-13-01"}, {"actual_date": 20250502},
    {"actual_date": "2999-01-01"}, {}, {"actual_date": None}, {"date": "2025-05-02"},
    {"actual_date": "2025-05-02", "reason": "x" * 2001}, {"actual_date": "2025-5-2"}])
def test_bad_dates_answer_422(client, doc, people, body):
    response = client.post(f"{event_url('S01-001')}/start", headers=people["crc"], json=body)
    assert check(doc, EVENT + "/start", "post", response) and response.status_code == 422
    assert response.get_json()["errors"]
    assert not audit_rows(action="event.started")


def test_malformed_bodies_are_not_500(client, doc, people):
    url = f"{event_url('S01-001')}/start"
    for response in (client.post(url, headers=people["crc"], data="x",
                                 content_type="application/json"),
                     client.post(url, headers=people["crc"], json=[1]),
                     client.post(url, headers=people["crc"], data="a=b")):
        assert check(doc, EVENT + "/start", "post", response)
        assert response.status_code in (400, 415)
