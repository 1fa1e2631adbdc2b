"""Entity tags on forms: a GET gives the form's version as its ETag, a PUT may send it back
as If-Match instead of the body's version, and a stale If-Match is 412 with nothing saved
(the body's stale version stays 409)."""

from __future__ import annotations

import pytest

from tests.api import (
    API,
    VITALS_VALUES,
    audit_rows,
    bearer,
    form_url,
    setup_study,
    start_event,
    token_for,
)
from tests.api.test_openapi import check

FORM = "/studies/{study_oid}/subjects/{subject_key}/events/{event_oid}/{repeat}/forms/{form_oid}"


@pytest.fixture
def doc(client) -> dict:
    return client.get(f"{API}/openapi.json").get_json()


@pytest.fixture
def crc(make_study, make_user):
    setup_study(make_study)
    start_event("S01-001")
    return bearer(token_for(make_user("crc1", role="coordinator", study="CAPTURE",
                                      site="S01")))


def test_get_and_put_carry_the_version_as_etag(client, doc, crc):
    url = form_url("S01-001")
    read = client.get(url, headers=crc)
    check(doc, FORM, "get", read)
    assert read.headers["ETag"] == '"0"'  # never saved
    saved = client.put(url, headers={**crc, "If-Match": '"0"'},
                       json={"values": VITALS_VALUES})
    body = check(doc, FORM, "put", saved)
    assert saved.status_code == 200 and body["version"] == 1
    assert saved.headers["ETag"] == '"1"'
    assert client.get(url, headers=crc).headers["ETag"] == '"1"'


def test_a_stale_if_match_is_412_and_saves_nothing(client, doc, crc):
    url = form_url("S01-001")
    client.put(url, headers=crc, json={"version": None, "values": VITALS_VALUES})
    client.put(url, headers=crc, json={"version": 1, "partial": True,
                                       "values": {"VS.1.WEIGHT": "73.0"},
                                       "reasons": {"VS.1.WEIGHT": "Scale re-checked"}})
    before = len(audit_rows(subject_key="S01-001"))
    stale = client.put(url, headers={**crc, "If-Match": '"1"'}, json={
        "partial": True, "values": {"VS.1.WEIGHT": "74.0"},
        "reasons": {"VS.1.WEIGHT": "Another reading"}})
    body = check(doc, FORM, "put", stale)
    assert stale.status_code == 412 and body["current_version"] == 2
    assert "WEIGHT" in [c["item"] for c in body["changes"]]  # BMI follows it
    assert len(audit_rows(subject_key="S01-001")) == before
    # The same stale version in the body stays the 409 it always was.
    conflict = client.put(url, headers=crc, json={"version": 1, "partial": True,
                                                   "values": {"VS.1.WEIGHT": "74.0"},
                                                   "reasons": {"VS.1.WEIGHT": "x"}})
    assert check(doc, FORM, "put", conflict) and conflict.status_code == 409


@pytest.mark.parametrize("header", ["3", "*", '"abc"', '"1234567890"', '"1", "2"', "\"1"])
def test_an_if_match_that_is_not_a_form_etag_is_400(client, doc, crc, header):
    response = client.put(form_url("S01-001"), headers={**crc, "If-Match": header},
                          json={"values": VITALS_VALUES})
    body = check(doc, FORM, "put", response)
    assert response.status_code == 400 and "If-Match" in body["message"]


def test_if_match_and_body_version_must_agree(client, doc, crc):
    response = client.put(form_url("S01-001"), headers={**crc, "If-Match": '"2"'},
                          json={"version": None, "values": VITALS_VALUES})
    assert check(doc, FORM, "put", response) and response.status_code == 400
