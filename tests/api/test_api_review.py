"""Review through the API: queries and SDV with the services, permissions, site scoping,
locks and audit rows of the screens; every response as the OpenAPI document says."""

from __future__ import annotations

import pytest

from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.review import locks
from ecrf.review.models import Query
from tests.api import (
    API,
    STUDY,
    VITALS_VALUES,
    audit_rows,
    bearer,
    form_url,
    setup_study,
    start_event,
    subject,
    token_for,
)
from tests.api.test_openapi import check

QUERIES = "/studies/{study_oid}/queries"
ONE = "/studies/{study_oid}/queries/{query_id}"
FORM = "/studies/{study_oid}/subjects/{subject_key}/events/{event_oid}/{repeat}/forms/{form_oid}"
SUBJECT_SDV = "/studies/{study_oid}/subjects/{subject_key}/sdv"
PROGRESS = "/studies/{study_oid}/sdv"


@pytest.fixture
def doc(client) -> dict:
    return client.get(f"{API}/openapi.json").get_json()


@pytest.fixture
def people(app, client, make_study, make_user):
    """The study with VITALS saved for S01-001 and S02-001; tokens of each role."""
    setup_study(make_study)
    found = {
        "crc": bearer(token_for(make_user("crc1", role="coordinator", study="CAPTURE",
                                          site="S01"))),
        "crc2": bearer(token_for(make_user("crc2", role="coordinator", study="CAPTURE",
                                           site="S02"))),
        "mon": bearer(token_for(make_user("mon1", role="monitor", study="CAPTURE"))),
        "mon1": bearer(token_for(make_user("mon-s01", role="monitor", study="CAPTURE",
                                           site="S01"))),
    }
    dm = make_user("dm1", role="data_manager", study="CAPTURE")
    found["dm_actor"] = Actor(user_id=dm.id, username=dm.username, role="data_manager")
    for key, headers in (("S01-001", found["crc"]), ("S02-001", found["crc2"])):
        start_event(key)
        saved = client.put(form_url(key), headers=headers,
                           json={"version": None, "values": VITALS_VALUES})
        assert saved.status_code == 200, saved.get_json()
    return found


def raise_on_weight(client, doc, headers, key="S01-001", text="Weight seems high?"):
    response = client.post(f"{STUDY}/queries", headers=headers, json={
        "subject_key": key, "text": text, "event_oid": "SCREEN", "repeat": 1,
        "form_oid": "VITALS", "group_oid": "VS", "row": 1, "item_oid": "WEIGHT"})
    return check(doc, QUERIES, "post", response), response


# --- queries ------------------------------------------------------------------------------


def test_the_life_of_a_query_through_the_api(client, doc, people):
    mon, crc = people["mon"], people["crc"]
    body, response = raise_on_weight(client, doc, mon)
    assert response.status_code == 201 and response.headers["Location"] == body["url"]
    assert (body["status"], body["origin"], body["item_oid"], body["row"]) == \
        ("open", "manual", "WEIGHT", 1)
    assert body["thread"][0]["text"] == "Weight seems high?"
    url = f"{API}{body['url'][len(API):]}"
    query_id = body["id"]

    # the coordinator answers; a monitor cannot answer (403), a coordinator cannot close
    refused = client.post(f"{url}/answer", headers=mon, json={"text": "x"})
    assert check(doc, ONE + "/answer", "post", refused) and refused.status_code == 403
    answered = client.post(f"{url}/answer", headers=crc, json={"text": "Checked: 72.5 kg."})
    assert check(doc, ONE + "/answer", "post", answered)["status"] == "answered"
    refused = client.post(f"{url}/close", headers=crc, json={})
    assert check(doc, ONE + "/close", "post", refused) and refused.status_code == 403

    noted = client.post(f"{url}/comment", headers=crc, json={"text": "Source attached."})
    assert check(doc, ONE + "/comment", "post", noted)["status"] == "answered"
    closed = client.post(f"{url}/close", headers=mon, json={})
    body = check(doc, ONE + "/close", "post", closed)
    assert body["status"] == "closed" and body["thread"][-1]["text"] == "Closed."
    again = client.post(f"{url}/close", headers=mon, json={"text": "again"})
    assert check(doc, ONE + "/close", "post", again) and again.status_code == 422
    late = client.post(f"{url}/answer", headers=crc, json={"text": "late"})
    assert check(doc, ONE + "/answer", "post", late) and late.status_code == 422
    reopened = client.post(f"{url}/reopen", headers=mon, json={"text": "Unit missing."})
    body = check(doc, ONE + "/reopen", "post", reopened)
    assert body["status"] == "open"
    assert [m["status_to"] for m in body["thread"]] == \
        ["open", "answered", None, "closed", "open"]

    read = check(doc, ONE, "get", client.get(url, headers=crc))
    assert read["id"] == query_id and read["message_count"] == 5
    assert read["allowed"] == {"answer": True, "close": False, "reopen": False}
    actions = [r.action for r in audit_rows(category="review")]
    assert actions == ["query.raised", "query.answered", "query.commented", "query.closed",
                       "query.reopened"]
    assert all(r.path.endswith("WEIGHT") and r.subject_key == "S01-001"
               for r in audit_rows(category="review"))


def test_queries_on_a_form_an_event_and_a_subject(client, doc, people):
    mon = people["mon"]
    for target in ({"event_oid": "SCREEN", "form_oid": "VITALS"}, {"event_oid": "SCREEN"},
                   {}):
        response = client.post(f"{STUDY}/queries", headers=mon,
                               json={"subject_key": "S01-001", "text": "Why?", **target})
        body = check(doc, QUERIES, "post", response)
        assert response.status_code == 201
        assert (body["event_oid"], body["form_oid"], body["item_oid"]) == \
            (target.get("event_oid"), target.get("form_oid"), None)
    # a target that is not there is named (422), nothing raised
    response = client.post(f"{STUDY}/queries", headers=mon, json={
        "subject_key": "S01-001", "text": "Why?", "event_oid": "SCREEN",
        "form_oid": "NOPE"})
    assert check(doc, QUERIES, "post", response) and response.status_code == 422
    assert "NOPE" in response.get_json()["message"]
    assert db.session.query(Query).count() == 3


def test_the_list_filters_pages_in_a_stable_order_and_is_scoped(client, doc, people):
    mon, crc = people["mon"], people["crc"]
    for number in range(3):
        raise_on_weight(client, doc, mon, text=f"Q{number}")
    raise_on_weight(client, doc, mon, key="S02-001", text="other site")
    response = client.post(f"{STUDY}/queries", headers=mon,
                           json={"subject_key": "S01-002", "text": "consent?"})
    assert response.status_code == 201

    everything = check(doc, QUERIES, "get", client.get(f"{STUDY}/queries", headers=mon))
    assert everything["total"] == 5
    ids = [q["id"] for q in everything["items"]]
    paged = []
    for page in (1, 2, 3):
        body = check(doc, QUERIES, "get", client.get(
            f"{STUDY}/queries?per_page=2&page={page}", headers=mon))
        assert body["pages"] == 3 and body["total"] == 5
        paged += [q["id"] for q in body["items"]]
    assert paged == ids and len(set(ids)) == 5

    def listed(args: str, headers=mon) -> list[str]:
        body = check(doc, QUERIES, "get", client.get(f"{STUDY}/queries?{args}",
                                                     headers=headers))
        return sorted(q["question"] for q in body["items"])

    assert listed("site=S02") == ["other site"]
    assert listed("subject=S01-002") == ["consent?"]
    assert listed("form=VITALS") == ["Q0", "Q1", "Q2", "other site"]
    assert listed("origin=automatic") == []
    assert listed("status=answered") == []
    assert listed("status=all&origin=manual&site=s01") == ["Q0", "Q1", "Q2", "consent?"]
    # a coordinator of S01 sees S01 only; a subject of S02 is not there for them
    assert listed("", crc) == ["Q0", "Q1", "Q2", "consent?"]
    response = client.get(f"{STUDY}/queries?subject=S02-001", headers=crc)
    assert check(doc, QUERIES, "get", response) and response.status_code == 404
    other = [q for q in everything["items"] if q["site_code"] == "S02"][0]
    response = client.get(f"{STUDY}/queries/{other['id']}", headers=crc)
    assert check(doc, ONE, "get", response) and response.status_code == 404
    response = client.post(f"{STUDY}/queries/{other['id']}/answer", headers=crc,
                           json={"text": "mine?"})
    assert check(doc, ONE + "/answer", "post", response) and response.status_code == 404
    # a monitor of S01 cannot raise on a subject of S02
    response = client.post(f"{STUDY}/queries", headers=people["mon1"],
                           json={"subject_key": "S02-001", "text": "?"})
    assert check(doc, QUERIES, "post", response) and response.status_code == 404


@pytest.mark.parametrize("args", ["status=bogus", "origin=robot", "page=0", "per_page=501",
                                  "page=x", "site=ZZ", "form=%00"])
def test_bad_list_arguments_are_400(client, doc, people, args):
    response = client.get(f"{STUDY}/queries?{args}", headers=people["mon"])
    assert check(doc, QUERIES, "get", response) and response.status_code == 400
    assert response.get_json()["message"]


@pytest.mark.parametrize(("body", "status", "named"), [
    ({"text": "?"}, 422, "subject_key"),
    ({"subject_key": "S01-001", "text": 5}, 422, "text"),
    ({"subject_key": "S01-001", "text": "?", "row": "1", "event_oid": "SCREEN"}, 422, "row"),
    ({"subject_key": "S01-001", "text": "?", "repeat": True, "event_oid": "SCREEN"}, 422,
     "repeat"),
    ({"subject_key": "S01-001", "text": "?", "repeat": 10**12, "event_oid": "SCREEN"}, 422,
     "repeat"),
    ({"subject_key": "S01-001", "text": "?", "colour": "red"}, 422, "colour"),
    ({"subject_key": "S01-001", "text": "a" * 4001}, 422, "4000"),
    ({"subject_key": "S01-001", "text": "   "}, 422, "question"),
    ({"subject_key": "S01-001", "text": "a\x00b"}, 400, "NUL"),
    ({"subject_key": "S01-001", "text": "?", "assignee": "nobody"}, 422, "nobody"),
    ({"subject_key": "S01-001", "text": "?", "assignee": "mon1"}, 422, "cannot answer"),
    ({"subject_key": "NOPE-1", "text": "?"}, 404, "NOPE-1"),
])
def test_bad_raise_bodies_are_named(client, doc, people, body, status, named):
    response = client.post(f"{STUDY}/queries", headers=people["mon"], json=body)
    assert check(doc, QUERIES, "post", response) and response.status_code == status
    assert named in str(response.get_json())
    assert db.session.query(Query).count() == 0 and not audit_rows(category="review")


def test_malformed_bodies_and_ids(client, doc, people):
    mon = people["mon"]
    body, _response = raise_on_weight(client, doc, mon)
    url = f"{STUDY}/queries/{body['id']}"
    for data, kwargs, status in (
            (None, {"data": "{", "content_type": "application/json"}, 400),
            (None, {"data": "[]", "content_type": "application/json"}, 400),
            (None, {"data": "text=x", "content_type": "text/plain"}, 415),
            ({"text": ["a"]}, {}, 422), ({"text": "a" * 4001}, {}, 422), ({}, {}, 422)):
        response = client.post(f"{url}/reopen", headers=mon,
                               **({"json": data} if data is not None else kwargs))
        assert check(doc, ONE + "/reopen", "post", response)
        assert response.status_code == status, response.get_json()
    assert "4000" in client.post(f"{url}/comment", headers=mon,
                                 json={"text": "b" * 4001}).get_json()["message"]
    for missing in (999999, 10**30):
        response = client.get(f"{STUDY}/queries/{missing}", headers=mon)
        assert check(doc, ONE, "get", response) and response.status_code == 404
        response = client.post(f"{STUDY}/queries/{missing}/close", headers=mon, json={})
        assert check(doc, ONE + "/close", "post", response) and response.status_code == 404
    response = client.get(f"{API}/studies/NOPE/queries", headers=mon)
    assert check(doc, QUERIES, "get", response) and response.status_code == 404
    response = client.get(f"{STUDY}/queries")
    assert check(doc, QUERIES, "get", response) and response.status_code == 401
    response = client.post(f"{url}/close", json={})
    assert check(doc, ONE + "/close", "post", response) and response.status_code == 401


def test_a_locked_study_keeps_its_queries_read_only_423(client, doc, people):
    mon, crc = people["mon"], people["crc"]
    body, _response = raise_on_weight(client, doc, mon)
    # a locked subject still takes queries, as on the screens
    locks.lock_subject(db.session, people["dm_actor"], subject("S01-001"), "clean")
    db.session.commit()
    answered = client.post(f"{STUDY}/queries/{body['id']}/answer", headers=crc,
                           json={"text": "ok"})
    assert check(doc, ONE + "/answer", "post", answered)["status"] == "answered"
    locks.change_study_status(db.session, people["dm_actor"], subject("S01-001").study,
                              "lock", "database lock")
    db.session.commit()
    for path, data in (("/close", {}), ("/reopen", {"text": "again"}),
                       ("/comment", {"text": "note"})):
        response = client.post(f"{STUDY}/queries/{body['id']}{path}", headers=mon, json=data)
        assert check(doc, ONE + path, "post", response) and response.status_code == 423
    response = client.post(f"{STUDY}/queries", headers=mon,
                           json={"subject_key": "S01-001", "text": "late"})
    assert check(doc, QUERIES, "post", response) and response.status_code == 423
    read = client.get(f"{STUDY}/queries/{body['id']}", headers=crc)
    assert check(doc, ONE, "get", read)["status"] == "answered"


# --- SDV ----------------------------------------------------------------------------------


def sdv_url(key: str = "S01-001") -> str:
    return form_url(key) + "/sdv"


def test_verify_items_then_the_form_then_withdraw(client, doc, people):
    mon = people["mon"]
    state = check(doc, FORM + "/sdv", "get", client.get(sdv_url(), headers=people["crc"]))
    assert state["verified"] == 0 and state["total"] > 1 and not state["form_verified"]
    assert "VS.1.WEIGHT" in state["pending"]

    response = client.post(sdv_url() + "/verify", headers=mon,
                           json={"items": ["VS.1.WEIGHT", "VS.1.HEIGHT"]})
    body = check(doc, FORM + "/sdv/verify", "post", response)
    assert body["changed"] == 2 and body["verified"] == 2
    weight = next(i for i in body["items"] if i["item"] == "VS.1.WEIGHT")
    assert weight["verified"] and weight["verified_value"] == "72.5"
    assert weight["verified_by"] == "mon1"

    whole = check(doc, FORM + "/sdv/verify", "post", client.post(
        sdv_url() + "/verify", headers=mon, json={"whole_form": True}))
    assert whole["complete"] and whole["form_verified"]
    assert whole["changed"] == state["total"] - 2

    progress = check(doc, SUBJECT_SDV, "get", client.get(
        f"{STUDY}/subjects/S01-001/sdv", headers=mon))
    assert progress["percent"] == 100 and progress["forms"][0]["form_verified"]

    withdrawn = check(doc, FORM + "/sdv/unverify", "post", client.post(
        sdv_url() + "/unverify", headers=mon,
        json={"items": ["VS.1.WEIGHT"], "reason": "Wrong source document."}))
    assert withdrawn["changed"] == 2  # the item and the form's mark
    weight = next(i for i in withdrawn["items"] if i["item"] == "VS.1.WEIGHT")
    assert not weight["verified"] and weight["last_reset_reason"] == "Wrong source document."
    assert not withdrawn["form_verified"]

    everything = check(doc, FORM + "/sdv/unverify", "post", client.post(
        sdv_url() + "/unverify", headers=mon, json={"whole_form": True, "reason": "Redo."}))
    assert everything["verified"] == 0 and everything["changed"] == state["total"] - 1

    actions = [r.action for r in audit_rows(category="review")]
    assert actions.count("sdv.verified") == state["total"]
    assert actions.count("sdv.form_verified") == 1
    assert actions.count("sdv.reset") == state["total"] + 1


def test_a_changed_value_resets_its_verification(client, doc, people):
    check(doc, FORM + "/sdv/verify", "post", client.post(
        sdv_url() + "/verify", headers=people["mon"], json={"whole_form": True}))
    form = client.get(form_url("S01-001"), headers=people["crc"]).get_json()
    saved = client.put(form_url("S01-001"), headers=people["crc"], json={
        "version": form["version"], "values": {**VITALS_VALUES, "VS.1.WEIGHT": "73"},
        "reasons": {"VS.1.WEIGHT": "transcription error"}})
    assert saved.status_code == 200, saved.get_json()
    state = check(doc, FORM + "/sdv", "get", client.get(sdv_url(), headers=people["mon"]))
    assert state["pending"] == ["VS.1.WEIGHT"] and not state["form_verified"]
    weight = next(i for i in state["items"] if i["item"] == "VS.1.WEIGHT")
    assert "value changed" in weight["last_reset_reason"]


def test_sdv_permissions_scoping_and_locks(client, doc, people):
    # a coordinator may read but not verify
    response = client.post(sdv_url() + "/verify", headers=people["crc"],
                           json={"whole_form": True})
    assert check(doc, FORM + "/sdv/verify", "post", response) and response.status_code == 403
    # a monitor of S01 does not find a subject of S02
    response = client.post(sdv_url("S02-001") + "/verify", headers=people["mon1"],
                           json={"whole_form": True})
    assert check(doc, FORM + "/sdv/verify", "post", response) and response.status_code == 404
    response = client.get(sdv_url("S02-001"), headers=people["crc"])
    assert check(doc, FORM + "/sdv", "get", response) and response.status_code == 404
    response = client.get(f"{STUDY}/subjects/S02-001/sdv", headers=people["crc"])
    assert check(doc, SUBJECT_SDV, "get", response) and response.status_code == 404
    # a form without data, an unknown form or a huge repeat: 404
    for url in (form_url("S01-002") + "/sdv", form_url("S01-001", form="NOPE") + "/sdv",
                form_url("S01-001", repeat=10**20) + "/sdv"):
        response = client.get(url, headers=people["mon"])
        assert check(doc, FORM + "/sdv", "get", response) and response.status_code == 404
    # a locked form (and a locked subject) refuse SDV with 423, nothing recorded
    locks.lock_subject(db.session, people["dm_actor"], subject("S01-001"), "clean")
    db.session.commit()
    for path, data in (("/verify", {"whole_form": True}),
                       ("/unverify", {"whole_form": True, "reason": "x"})):
        response = client.post(sdv_url() + path, headers=people["mon"], json=data)
        assert check(doc, FORM + "/sdv" + path, "post", response)
        assert response.status_code == 423 and "locked" in response.get_json()["message"]
    assert not [r for r in audit_rows(category="review") if r.action.startswith("sdv.")]


@pytest.mark.parametrize(("body", "status", "named"), [
    ({}, 422, "whole_form"),
    ({"items": ["VS.1.WEIGHT"], "whole_form": True}, 422, "whole_form"),
    ({"whole_form": "yes"}, 422, "whole_form"),
    ({"items": "VS.1.WEIGHT"}, 422, "items"),
    ({"items": []}, 422, "items"),
    ({"items": [7]}, 422, "items.0"),
    ({"items": ["VS.WEIGHT"]}, 422, "GROUP.ROW.ITEM"),
    ({"items": ["VS.99999999999.WEIGHT"]}, 422, "items.0"),
    ({"items": ["VS.1.NOPE"]}, 422, "NOPE"),
    ({"items": ["VS.1.WE\x00IGHT"]}, 400, "NUL"),
    ({"whole_form": True, "extra": 1}, 422, "extra"),
])
def test_bad_sdv_bodies_are_named(client, doc, people, body, status, named):
    response = client.post(sdv_url() + "/verify", headers=people["mon"], json=body)
    assert check(doc, FORM + "/sdv/verify", "post", response) and response.status_code == status
    assert named in str(response.get_json())


@pytest.mark.parametrize(("body", "named"), [
    ({"whole_form": True}, "reason"),
    ({"whole_form": True, "reason": 3}, "reason"),
    ({"whole_form": True, "reason": "r" * 2001}, "2000"),
    ({"whole_form": True, "reason": "  "}, "reason"),
])
def test_withdrawing_needs_a_reason_within_bounds(client, doc, people, body, named):
    response = client.post(sdv_url() + "/unverify", headers=people["mon"], json=body)
    assert check(doc, FORM + "/sdv/unverify", "post", response)
    assert response.status_code == 422 and named in str(response.get_json())


def test_progress_over_the_sites_of_the_user(client, doc, people):
    client.post(sdv_url() + "/verify", headers=people["mon"], json={"whole_form": True})
    body = check(doc, PROGRESS, "get", client.get(f"{STUDY}/sdv", headers=people["mon"]))
    sites = {s["site_code"]: s for s in body["sites"]}
    assert sites["S01"]["percent"] == 100 and sites["S02"]["percent"] == 0
    assert body["verified"] == sites["S01"]["verified"] and 0 < body["percent"] < 100
    assert body["subjects"]["total"] == 3
    pending = check(doc, PROGRESS, "get", client.get(f"{STUDY}/sdv?pending=true&site=S02",
                                                     headers=people["mon"]))
    assert [s["subject_key"] for s in pending["subjects"]["items"]] == ["S02-001"]
    mine = check(doc, PROGRESS, "get", client.get(f"{STUDY}/sdv", headers=people["crc"]))
    assert [s["site_code"] for s in mine["sites"]] == ["S01"]
    assert {s["subject_key"] for s in mine["subjects"]["items"]} == {"S01-001", "S01-002"}
    for args in ("pending=1", "site=ZZ", "per_page=0"):
        response = client.get(f"{STUDY}/sdv?{args}", headers=people["mon"])
        assert check(doc, PROGRESS, "get", response) and response.status_code == 400
