"""Assigning a query through the API, as the query screen does: permission, site
scoping, who may be given it, locks and audit rows; every response as documented."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ecrf.accounts import User
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.review import locks
from tests.api import (
    API,
    STUDY,
    audit_rows,
    bearer,
    setup_study,
    subject,
    token_for,
)
from tests.api.test_openapi import check

QUERIES = "/studies/{study_oid}/queries"
ASSIGN = "/studies/{study_oid}/queries/{query_id}/assign"


@pytest.fixture
def doc(client) -> dict:
    return client.get(f"{API}/openapi.json").get_json()


@pytest.fixture
def people(app, make_study, make_user):
    setup_study(make_study)
    make_user("crc1", role="coordinator", study="CAPTURE", site="S01")
    make_user("crc2", role="coordinator", study="CAPTURE", site="S02")
    dm = make_user("dm1", role="data_manager", study="CAPTURE")
    return {
        "crc": bearer(token_for(db.session.scalar(_user("crc1")))),
        "mon": bearer(token_for(make_user("mon1", role="monitor", study="CAPTURE"))),
        "mon2": bearer(token_for(make_user("mon-s02", role="monitor", study="CAPTURE",
                                           site="S02"))),
        "dm_actor": Actor(user_id=dm.id, username=dm.username, role="data_manager"),
    }


def _user(name):
    return select(User).where(User.username == name)


def raised(client, doc, people) -> str:
    response = client.post(f"{STUDY}/queries", headers=people["mon"], json={
        "subject_key": "S01-001", "text": "Please check the consent date."})
    body = check(doc, QUERIES, "post", response)
    assert response.status_code == 201
    return f"{API}{body['url'][len(API):]}/assign"


def test_assign_to_a_person_then_to_the_site(client, doc, people):
    url = raised(client, doc, people)
    given = client.post(url, headers=people["mon"], json={"assignee": "crc1"})
    body = check(doc, ASSIGN, "post", given)
    assert given.status_code == 200 and body["assignee_name"]
    assert body["thread"][-1]["text"].startswith("Assigned to")
    [row] = audit_rows(action="query.assigned")
    assert (row.username, row.new_value) == ("mon1", "crc1")

    back = client.post(url, headers=people["mon"], json={"assignee": None})
    assert check(doc, ASSIGN, "post", back)["assignee_name"] is None
    assert audit_rows(action="query.assigned")[-1].old_value == "crc1"


@pytest.mark.parametrize("body, field", [
    ({"assignee": "crc2"}, "assignee"),  # cannot answer at S01
    ({"assignee": "nobody"}, "assignee"), ({"assignee": 3}, "assignee"),
    ({}, "assignee"), ({"assignee": "crc1", "to": "x"}, "to")])
def test_refusals_name_the_field(client, doc, people, body, field):
    url = raised(client, doc, people)
    refused = client.post(url, headers=people["mon"], json=body)
    assert check(doc, ASSIGN, "post", refused) and refused.status_code == 422
    assert field in refused.get_json()["errors"]
    assert not audit_rows(action="query.assigned")


def test_permission_scoping_and_locks(client, doc, people):
    url = raised(client, doc, people)
    refused = client.post(url, headers=people["crc"], json={"assignee": "crc1"})
    assert check(doc, ASSIGN, "post", refused) and refused.status_code == 403
    elsewhere = client.post(url, headers=people["mon2"], json={"assignee": "crc1"})
    assert check(doc, ASSIGN, "post", elsewhere) and elsewhere.status_code == 404
    missing = client.post(f"{STUDY}/queries/{2**40}/assign", headers=people["mon"],
                          json={"assignee": "crc1"})
    assert check(doc, ASSIGN, "post", missing) and missing.status_code == 404
    malformed = client.post(url, headers=people["mon"], data="[",
                            content_type="application/json")
    assert check(doc, ASSIGN, "post", malformed) and malformed.status_code == 400

    locks.change_study_status(db.session, people["dm_actor"], subject("S01-001").study,
                              "lock", "final")
    db.session.commit()
    locked = client.post(url, headers=people["mon"], json={"assignee": "crc1"})
    assert check(doc, ASSIGN, "post", locked) and locked.status_code == 423
    assert not audit_rows(action="query.assigned")
