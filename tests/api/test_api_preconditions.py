# ruff: noqa: F811  (the fixtures imported from the review and signing tests)
"""ETag and If-Match beyond forms: the reads of resources that others change answer with
an ETag; a write sent with a stale one does nothing and answers 412 with the current tag;
the current tag (or none, or ``*``) lets it through; the clock and the reader do not change
a tag."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from ecrf.api import preconditions
from ecrf.core.extensions import db
from ecrf.review.models import Query
from tests.api import STUDY, audit_rows, bearer, form_url, start_event, token_for
from tests.api.test_api_review import doc, people, raise_on_weight  # noqa: F401 (fixtures)
from tests.api.test_api_signing import SIGN_FORM, completed, signatures_url, users  # noqa: F401
from tests.api.test_openapi import check, operations

ONE = "/studies/{study_oid}/queries/{query_id}"
EVENT = "/studies/{study_oid}/subjects/{subject_key}/events/{event_oid}/{repeat}"
SIGNATURES = "/studies/{study_oid}/subjects/{subject_key}/signatures"
STATUS = "/studies/{study_oid}/status"


def test_a_query_answered_on_a_stale_read_is_412_and_nothing_is_done(client, doc, people):
    body, _ = raise_on_weight(client, doc, people["mon"])
    url = f"{STUDY}/queries/{body['id']}"
    read = client.get(url, headers=people["crc"])
    seen = read.headers["ETag"]
    assert seen.startswith('"s') and check(doc, ONE, "get", read)
    # the monitor adds to the thread meanwhile
    noted = client.post(f"{url}/comment", headers=people["mon"], json={"text": "Urgent."})
    assert noted.status_code == 200 and noted.headers["ETag"] != seen
    before = len(audit_rows())
    stale = client.post(f"{url}/answer", headers={**people["crc"], "If-Match": seen},
                        json={"text": "Checked."})
    problem = check(doc, ONE + "/answer", "post", stale)
    assert stale.status_code == 412, problem
    assert problem["current_etag"] == noted.headers["ETag"]
    assert [r.action for r in audit_rows()[before:]] == ["api.request"], \
        [(r.action, r.path) for r in audit_rows()[before:]]
    assert db.session.get(Query, body["id"]).status == "open"
    # with the current tag it goes through and answers with the new one
    done = client.post(f"{url}/answer", headers={**people["crc"],
                                                 "If-Match": problem["current_etag"]},
                       json={"text": "Checked."})
    assert check(doc, ONE + "/answer", "post", done)["status"] == "answered"
    assert done.headers["ETag"] == client.get(url, headers=people["crc"]).headers["ETag"]
    # "*" and a list holding the current tag match too
    star = client.post(f"{url}/comment", headers={**people["crc"], "If-Match": "*"},
                       json={"text": "Source attached."})
    assert star.status_code == 200
    listed = client.post(f"{url}/comment", headers={
        **people["crc"], "If-Match": f'"sold", {star.headers["ETag"]}'}, json={"text": "ok"})
    assert listed.status_code == 200


def test_the_clock_and_the_reader_do_not_change_a_tag(client, doc, people):
    body, _ = raise_on_weight(client, doc, people["mon"])
    url = f"{STUDY}/queries/{body['id']}"
    by_crc = client.get(url, headers=people["crc"]).headers["ETag"]
    by_mon = client.get(url, headers=people["mon"]).headers["ETag"]
    assert by_crc == by_mon  # "allowed" differs by role, the query does not
    tags = preconditions.document_tag
    document = client.get(url, headers=people["crc"]).get_json()
    assert tags({**document, "age_days": 40}) == tags(document)
    assert tags({**document, "status": "closed"}) != tags(document)


def test_an_event_started_on_a_stale_read_is_412(client, doc, people):
    url = f"{STUDY}/subjects/S01-002/events/SCREEN/1"
    seen = client.get(url, headers=people["crc"]).headers["ETag"]
    start_event("S01-002")  # another coordinator opened it meanwhile
    stale = client.post(f"{url}/not-done", headers={**people["crc"], "If-Match": seen},
                        json={"reason": "Patient did not come"})
    assert check(doc, EVENT + "/not-done", "post", stale) and stale.status_code == 412


def test_a_form_is_signed_only_as_read(client, users, completed):  # noqa: F811
    doc = client.get("/api/v1/openapi.json").get_json()
    seen = client.get(form_url("S01-001"), headers=users["crc"]).headers["ETag"]
    assert seen == '"1"'
    changed = client.put(form_url("S01-001"), headers=users["crc"], json={
        "version": 1, "partial": True, "values": {"VS.1.WEIGHT": "73.0"},
        "reasons": {"VS.1.WEIGHT": "Scale re-checked"}, "complete": True})
    assert changed.status_code == 200, changed.get_json()
    stale = client.post(signatures_url(), headers={**users["inv"], "If-Match": seen},
                        json=SIGN_FORM)
    problem = check(doc, SIGNATURES, "post", stale)
    assert stale.status_code == 412 and problem["current_etag"] == '"2"'
    assert not audit_rows(action="signature.signed")
    signed = client.post(signatures_url(), headers={**users["inv"], "If-Match": '"2"'},
                         json=SIGN_FORM)
    assert signed.status_code == 201, signed.get_json()


def test_a_study_status_change_on_a_stale_read_is_412(client, doc, make_user, people):
    dm = bearer(token_for(make_user("dm.status", role="data_manager", study="CAPTURE")))
    seen = client.get(STUDY, headers=dm).headers["ETag"]
    frozen = client.post(f"{STUDY}/status", headers={**dm, "If-Match": seen},
                         json={"transition": "freeze", "reason": "interim analysis"})
    assert check(doc, STATUS, "post", frozen)["status"] == "frozen"
    again = client.post(f"{STUDY}/status", headers={**dm, "If-Match": seen},
                        json={"transition": "lock", "reason": "database lock"})
    assert check(doc, STATUS, "post", again) and again.status_code == 412
    assert client.get(STUDY, headers=dm).get_json()["status"] == "frozen"


@pytest.mark.parametrize("header", ["", " , ", "x" * 1200])
def test_a_malformed_if_match_is_400(client, doc, people, header):
    body, _ = raise_on_weight(client, doc, people["mon"])
    response = client.post(f"{STUDY}/queries/{body['id']}/answer",
                           headers={**people["crc"], "If-Match": header},
                           json={"text": "Checked."})
    assert response.status_code == 400, response.get_json()


def test_a_tag_only_holds_for_what_it_describes(client, doc, people):
    # an ETag of one query is stale for another
    first, _ = raise_on_weight(client, doc, people["mon"])
    second, _ = raise_on_weight(client, doc, people["mon"], text="Height?")
    tag = client.get(f"{STUDY}/queries/{first['id']}", headers=people["crc"]).headers["ETag"]
    db.session.execute(update(Query).where(Query.id == second["id"])
                       .values(created_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)))
    db.session.commit()
    response = client.post(f"{STUDY}/queries/{second['id']}/answer",
                           headers={**people["crc"], "If-Match": tag}, json={"text": "x"})
    assert response.status_code == 412


def test_every_guarded_write_documents_if_match_and_412_and_its_read_an_etag(doc):
    guarded = tagged = 0
    for path, method, op in operations(doc):
        names = {p["$ref"].rsplit("/", 1)[-1] for p in op.get("parameters", []) if "$ref" in p}
        if "If-Match-State" in names:
            assert method == "post" and "412" in op["responses"], path
            guarded += 1
        if method == "get" and "headers" in op["responses"].get("200", {}):
            tagged += 1
    assert guarded == len(preconditions.GUARDED) + len(preconditions.SELF_GUARDED)
    assert tagged >= len(preconditions.TAGGED)
