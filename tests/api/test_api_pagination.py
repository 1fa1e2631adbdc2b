"""Every list of the API pages by cursor in a stable order: walking a list with
``next_cursor`` gives each row once, in order, even when rows are added or removed between
pages; a cursor of another list, or one altered, answers 400; numbered pages still work."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from sqlalchemy import update

from ecrf.core.extensions import db
from ecrf.review.models import Query
from tests.api import API, STUDY, bearer, setup_study, token_for
from tests.api.test_openapi import check, operations
from tests.capture.capture_setup import enrol

SUBJECTS = "/studies/{study_oid}/subjects"
QUERIES = "/studies/{study_oid}/queries"
PROGRESS = "/studies/{study_oid}/sdv"


@pytest.fixture
def doc(client) -> dict:
    return client.get(f"{API}/openapi.json").get_json()


@pytest.fixture
def dm(make_study, make_user):
    """CAPTURE with 3 subjects at S01 and S02 plus 5 more; a data manager's token."""
    setup_study(make_study)
    from ecrf.studies.models import Study
    study = db.session.query(Study).filter_by(oid="CAPTURE").one()
    for key, site in (("S02-002", "S02"), ("S01-003", "S01"), ("S02-003", "S02"),
                      ("S01-004", "S01"), ("S02-004", "S02")):
        enrol(study, key, site)
    return bearer(token_for(make_user("dm1", role="data_manager", study="CAPTURE")))


def walk(client, doc, path, url, headers, per_page, pick=lambda body: body):
    """Every page of a list by cursor: the rows, and the pages' bodies."""
    rows, bodies, cursor = [], [], None
    for _ in range(100):
        query = f"per_page={per_page}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(f"{url}?{query}", headers=headers)
        body = pick(check(doc, path, "get", response))
        assert response.status_code == 200, body
        bodies.append(body)
        rows += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return rows, bodies
    raise AssertionError("the cursor never ended")


def test_subjects_by_cursor_in_site_then_key_order(client, doc, dm):
    expected = ["S01-001", "S01-002", "S01-003", "S01-004",
                "S02-001", "S02-002", "S02-003", "S02-004"]
    rows, bodies = walk(client, doc, SUBJECTS, f"{STUDY}/subjects", dm, 3)
    assert [r["subject_key"] for r in rows] == expected
    assert [len(b["items"]) for b in bodies] == [3, 3, 2]
    assert all(b["page"] is None and b["pages"] is None and b["total"] == 8
               for b in bodies[1:])
    # numbered pages give the same order, with a cursor to go on from any page
    first = client.get(f"{STUDY}/subjects?per_page=3&page=2", headers=dm).get_json()
    assert [r["subject_key"] for r in first["items"]] == expected[3:6]
    assert (first["page"], first["pages"], first["total"]) == (2, 3, 8)
    after = client.get(f"{STUDY}/subjects?per_page=3&cursor={first['next_cursor']}",
                       headers=dm).get_json()
    assert [r["subject_key"] for r in after["items"]] == expected[6:]
    assert after["next_cursor"] is None


def test_a_subject_enrolled_between_pages_is_neither_skipped_nor_given_twice(client, doc, dm):
    page = client.get(f"{STUDY}/subjects?per_page=4", headers=dm).get_json()
    assert [r["subject_key"] for r in page["items"]][-1] == "S01-004"
    from ecrf.studies.models import Study
    study = db.session.query(Study).filter_by(oid="CAPTURE").one()
    enrol(study, "S01-000", "S01")  # sorts before the cursor: not on a later page
    enrol(study, "S02-000", "S02")  # sorts after it: on the next page
    rest = client.get(f"{STUDY}/subjects?per_page=50&cursor={page['next_cursor']}",
                      headers=dm).get_json()
    assert [r["subject_key"] for r in rest["items"]] == [
        "S02-000", "S02-001", "S02-002", "S02-003", "S02-004"]
    # with numbered pages the row enrolled before page 2 would shift S01-004 onto it
    shifted = client.get(f"{STUDY}/subjects?per_page=4&page=2", headers=dm).get_json()
    assert shifted["items"][0]["subject_key"] == "S01-004"


def test_queries_newest_first_by_cursor_with_equal_times_in_id_order(client, doc, dm,
                                                                      make_user):
    mon = bearer(token_for(make_user("mon1", role="monitor", study="CAPTURE")))
    ids = []
    for n, key in enumerate(["S01-001", "S01-002", "S02-001", "S01-003", "S02-002"]):
        response = client.post(f"{STUDY}/queries", headers=mon,
                               json={"subject_key": key, "text": f"Query {n}"})
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["id"])
    # three raised at the very same instant: the id decides, newest (highest) first
    same = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
    db.session.execute(update(Query).where(Query.id.in_(ids[1:4])).values(created_at=same))
    db.session.execute(update(Query).where(Query.id == ids[0])
                       .values(created_at=same - dt.timedelta(days=1)))
    db.session.commit()
    rows, bodies = walk(client, doc, QUERIES, f"{STUDY}/queries", mon, 2)
    assert [r["id"] for r in rows] == [ids[4], ids[3], ids[2], ids[1], ids[0]]
    assert len(bodies) == 3 and all(b["total"] == 5 for b in bodies)


def test_a_list_computed_in_memory_pages_the_same_way(client, doc, dm):
    rows, bodies = walk(client, doc, PROGRESS, f"{STUDY}/sdv", dm, 3,
                        pick=lambda body: body["subjects"])
    assert [r["subject_key"] for r in rows] == [
        "S01-001", "S01-002", "S01-003", "S01-004",
        "S02-001", "S02-002", "S02-003", "S02-004"]
    assert [len(b["items"]) for b in bodies] == [3, 3, 2]


def _cursor(listing: str, key: list) -> str:
    raw = json.dumps({"l": listing, "k": key}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "not-a-cursor!",
    "%00",
    _cursor("queries", ["2025-01-01T00:00:00.000000", 1]),  # another list's
    _cursor("subjects", ["S01"]),  # too short
    _cursor("subjects", ["S01", 7]),  # wrong type
    _cursor("subjects", [True, "x"]),
    _cursor("subjects", ["S01\x00", "x"]),
    base64.urlsafe_b64encode(b"[1, 2]").decode(),
    "A" * 3000,
])
def test_a_cursor_not_given_out_by_the_list_answers_400(client, doc, dm, cursor):
    response = client.get(f"{STUDY}/subjects", headers=dm, query_string={"cursor": cursor})
    body = check(doc, SUBJECTS, "get", response)
    assert response.status_code == 400, body
    assert "cursor" in body["message"]


@pytest.mark.parametrize(("path", "key"), [
    ("queries", [_cursor("queries", ["2025-01-01", 1])]),  # not a cursor time
    ("queries", [_cursor("queries", ["2025-01-01T00:00:00.000000", 2**70])]),
    ("audit", [_cursor("audit", [2**70])]),
])
def test_a_cursor_with_values_out_of_range_answers_400(client, dm, path, key):
    response = client.get(f"{STUDY}/{path}", headers=dm, query_string={"cursor": key[0]})
    assert response.status_code == 400, response.get_json()


def test_page_and_cursor_together_answer_400(client, dm):
    first = client.get(f"{STUDY}/subjects?per_page=2", headers=dm).get_json()
    response = client.get(f"{STUDY}/subjects?page=2&cursor={first['next_cursor']}",
                          headers=dm)
    assert response.status_code == 400
    assert "either" in response.get_json()["message"]


def test_the_audit_trail_pages_by_cursor_as_by_after(client, dm):
    first = client.get(f"{STUDY}/audit?limit=5", headers=dm).get_json()
    assert first["next_cursor"] and first["next_after"]
    by_cursor = client.get(f"{STUDY}/audit?limit=5&cursor={first['next_cursor']}",
                           headers=dm).get_json()
    by_after = client.get(f"{STUDY}/audit?limit=5&after={first['next_after']}",
                          headers=dm).get_json()
    assert [r["seq"] for r in by_cursor["items"]] == [r["seq"] for r in by_after["items"]]
    assert by_cursor["items"][0]["seq"] > first["items"][-1]["seq"]
    both = client.get(f"{STUDY}/audit?after=1&cursor={first['next_cursor']}", headers=dm)
    assert both.status_code == 400


def test_every_list_operation_documents_page_per_page_and_cursor(doc):
    lists = []
    for path, method, op in operations(doc):
        schema = op["responses"].get("200", {}).get("content", {}).get(
            "application/json", {}).get("schema")
        if method != "get" or not schema or "$ref" not in schema:
            continue
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name == "FormSdv":  # the items of one form, not a list of the study
            continue
        props = doc["components"]["schemas"][name].get("properties", {})
        nested = props.get("subjects", {}).get("properties", {})
        if "next_cursor" not in props and "next_cursor" not in nested:
            assert "items" not in props, f"{path} lists items without a cursor"
            continue
        names = {p["$ref"].rsplit("/", 1)[-1] for p in op["parameters"] if "$ref" in p}
        assert "cursor" in names, path
        if "next_after" not in props:
            assert {"page", "per_page"} <= names, path
        assert "400" in op["responses"], path
        lists.append(path)
    assert len(lists) >= 14, lists
