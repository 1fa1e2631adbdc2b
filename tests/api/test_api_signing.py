"""Electronic signatures and locks through the API: the services, permissions, site
scoping, failed-attempt handling and audit of the screens, every response as the OpenAPI
document says."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ecrf.accounts.models import User
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.review.models import Lock, Signature
from ecrf.studies.models import Study
from tests.api import (
    API,
    STUDY,
    VITALS_VALUES,
    audit_rows,
    bearer,
    form_url,
    setup_study,
    start_event,
    token_for,
)
from tests.api.test_openapi import check
from tests.conftest import PASSWORD

SIGNATURES = "/studies/{study_oid}/subjects/{subject_key}/signatures"
AWAITING = "/studies/{study_oid}/signatures/awaiting"
TO_REDO = "/studies/{study_oid}/signatures/to-redo"
LOCKS = "/studies/{study_oid}/locks"
SUBJECT_LOCK = "/studies/{study_oid}/subjects/{subject_key}/lock"
SUBJECT_UNLOCK = "/studies/{study_oid}/subjects/{subject_key}/unlock"
FORM = "/studies/{study_oid}/subjects/{subject_key}/events/{event_oid}/{repeat}/forms/{form_oid}"
FORM_LOCK = FORM + "/lock"
FORM_UNLOCK = FORM + "/unlock"
SITE_LOCK = "/studies/{study_oid}/sites/{site_code}/lock"
RELEASE = "/studies/{study_oid}/locks/{lock_id}/unlock"
STATUS = "/studies/{study_oid}/status"

SIGN_FORM = {"scope": "form", "event_oid": "SCREEN", "repeat": 1, "form_oid": "VITALS",
             "meaning": "approval", "username": "inv1", "password": PASSWORD}


@pytest.fixture
def doc(client) -> dict:
    return client.get(f"{API}/openapi.json").get_json()


@pytest.fixture
def users(app, make_study, make_user) -> dict[str, dict]:
    setup_study(make_study)
    made = {
        "inv": make_user("inv1", role="investigator", study="CAPTURE", site="S01",
                         full_name="Dr Ines Martin"),
        "inv2": make_user("inv2", role="investigator", study="CAPTURE", site="S02"),
        "crc": make_user("crc1", role="coordinator", study="CAPTURE", site="S01"),
        "dm": make_user("dm1", role="data_manager", study="CAPTURE"),
    }
    return {name: bearer(token_for(user)) for name, user in made.items()}


@pytest.fixture
def completed(client, users):
    """VITALS of S01-001 saved complete by the coordinator."""
    start_event("S01-001")
    response = client.put(form_url("S01-001"), headers=users["crc"],
                          json={"version": None, "values": VITALS_VALUES, "complete": True})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "complete"


def signatures_url(key: str = "S01-001") -> str:
    return f"{STUDY}/subjects/{key}/signatures"


def inv1() -> User:
    return db.session.scalar(select(User).where(User.username == "inv1"))


# --- signing ------------------------------------------------------------------------------


def test_an_investigator_signs_a_completed_form(client, doc, users, completed):
    response = client.post(signatures_url(), headers=users["inv"], json=SIGN_FORM)
    body = check(doc, SIGNATURES, "post", response)
    assert response.status_code == 201
    assert (body["scope"], body["event_oid"], body["repeat"], body["form_oid"]) == (
        "form", "SCREEN", 1, "VITALS")
    assert body["signer_username"] == "inv1" and body["signer_name"] == "Dr Ines Martin"
    assert body["meaning"].startswith("Approved") and body["state"] == "valid"
    assert PASSWORD not in response.get_data(as_text=True)
    signed = audit_rows(action="signature.signed")
    assert len(signed) == 1
    row = signed[0]
    assert (row.username, row.subject_key, row.new_value) == ("inv1", "S01-001",
                                                             body["signed_hash"])
    assert row.path.endswith("VITALS")
    details = json.loads(row.details) if isinstance(row.details, str) else row.details
    assert details["signature_id"] == body["id"] and details["scope"] == "form"
    # The password is in no audit row (the API request is audited by method and path).
    texts = [str((r.details, r.old_value, r.new_value, r.reason)) for r in audit_rows()]
    assert not any(PASSWORD in text for text in texts)

    listed = check(doc, SIGNATURES, "get", client.get(signatures_url(), headers=users["crc"]))
    assert [s["id"] for s in listed["items"]] == [body["id"]]
    awaiting = check(doc, AWAITING, "get",
                     client.get(f"{STUDY}/signatures/awaiting", headers=users["inv"]))
    assert awaiting["items"] == [] and awaiting["total"] == 0
    assert awaiting["next_cursor"] is None


def test_event_and_casebook_signatures_and_what_cannot_be_signed(client, doc, users,
                                                                  completed):
    event = {**SIGN_FORM, "scope": "event", "meaning": "review"}
    del event["form_oid"]
    response = client.post(signatures_url(), headers=users["inv"], json=event)
    body = check(doc, SIGNATURES, "post", response)
    # The event's consent form is not started: the event cannot be signed yet.
    assert response.status_code == 409, body
    assert "not complete" in body["problems"][0]
    consent = client.put(form_url("S01-001", form="CONSENT"), headers=users["crc"], json={
        "version": None, "values": {"CONSENT_MAIN.1.CONSDT": "2025-05-01",
                                    "CONSENT_MAIN.1.SIGNED": "Y"}, "complete": True})
    assert consent.status_code == 200, consent.get_json()
    response = client.post(signatures_url(), headers=users["inv"], json=event)
    body = check(doc, SIGNATURES, "post", response)
    assert response.status_code == 201, body
    assert (body["scope"], body["event_oid"], body["repeat"], body["form_oid"]) == (
        "event", "SCREEN", 1, None)
    casebook = {"scope": "casebook", "meaning": "responsibility", "username": "inv1",
                "password": PASSWORD}
    response = client.post(signatures_url(), headers=users["inv"], json=casebook)
    body = check(doc, SIGNATURES, "post", response)
    assert response.status_code == 201 and body["event_oid"] is None
    assert body["meaning"].startswith("Responsibility")
    # A form in progress cannot be signed: refused with the reasons, nothing recorded.
    start_event("S01-002")
    saved = client.put(form_url("S01-002"), headers=users["crc"],
                       json={"version": None, "values": {"VS.1.WEIGHT": "70"}})
    assert saved.status_code == 200, saved.get_json()
    response = client.post(signatures_url("S01-002"), headers=users["inv"], json=SIGN_FORM)
    body = check(doc, SIGNATURES, "post", response)
    assert response.status_code == 409 and "not complete" in body["problems"][0], body
    assert db.session.query(Signature).count() == 2
    assert len(audit_rows(action="signature.signed")) == 2


def test_awaiting_lists_complete_unsigned_forms_at_the_signers_sites(client, doc, users,
                                                                     completed):
    body = check(doc, AWAITING, "get",
                 client.get(f"{STUDY}/signatures/awaiting", headers=users["inv"]))
    assert [(a["subject_key"], a["site"], a["form_oid"]) for a in body["items"]] == [
        ("S01-001", "S01", "VITALS")]
    other = check(doc, AWAITING, "get",
                  client.get(f"{STUDY}/signatures/awaiting", headers=users["inv2"]))
    assert other["items"] == []
    check(doc, AWAITING, "get", client.get(f"{STUDY}/signatures/awaiting",
                                           headers=users["crc"]))  # 403


def test_a_wrong_password_is_refused_and_counted_like_on_the_screen(client, doc, users,
                                                                    completed, app):
    wrong = {**SIGN_FORM, "password": "not-my-password"}
    response = client.post(signatures_url(), headers=users["inv"], json=wrong)
    body = check(doc, SIGNATURES, "post", response)
    assert response.status_code == 422 and "password" in body["errors"]
    assert "not-my-password" not in response.get_data(as_text=True)
    failed = audit_rows(action="signature.failed")
    assert len(failed) == 1 and failed[0].username == "inv1"  # committed, though refused
    assert "not-my-password" not in str(failed[0].details)
    db.session.refresh(inv1())
    assert inv1().failed_logins == 1
    # Someone else's user id with the right password: the same refusal, counted too.
    response = client.post(signatures_url(), headers=users["inv"],
                           json={**SIGN_FORM, "username": "crc1"})
    assert response.status_code == 422
    threshold = app.config["LOCKOUT_THRESHOLD"]
    for _attempt in range(threshold - 3):
        assert client.post(signatures_url(), headers=users["inv"],
                           json=wrong).status_code == 422
    response = client.post(signatures_url(), headers=users["inv"], json=wrong)
    body = check(doc, SIGNATURES, "post", response)
    assert response.status_code == 403 and body["account_locked"] is True
    assert audit_rows(action="account.locked")
    # Locked: even the right password signs nothing until the lockout ends.
    response = client.post(signatures_url(), headers=users["inv"], json=SIGN_FORM)
    check(doc, SIGNATURES, "post", response)
    assert response.status_code == 403
    assert db.session.query(Signature).count() == 0


def test_a_coordinator_cannot_sign_and_sites_are_scoped(client, doc, users, completed):
    response = client.post(signatures_url(), headers=users["crc"], json=SIGN_FORM)
    check(doc, SIGNATURES, "post", response)
    assert response.status_code == 403
    # An investigator of S02 does not see S01's subject; one of S01 does not see S02's.
    response = client.post(signatures_url(), headers=users["inv2"],
                           json={**SIGN_FORM, "username": "inv2"})
    check(doc, SIGNATURES, "post", response)
    assert response.status_code == 404
    response = client.get(signatures_url("S02-001"), headers=users["inv"])
    check(doc, SIGNATURES, "get", response)
    assert response.status_code == 404
    # A browser session cannot sign through the API: writes need a token.
    assert client.post(signatures_url(), json=SIGN_FORM).status_code == 401
    assert db.session.query(Signature).count() == 0


def test_a_change_after_signing_breaks_the_signature(client, doc, users, completed):
    signed = client.post(signatures_url(), headers=users["inv"], json=SIGN_FORM).get_json()
    response = client.put(form_url("S01-001"), headers=users["crc"], json={
        "version": 1, "values": {**VITALS_VALUES, "VS.1.WEIGHT": "73.0"}, "complete": True,
        "reasons": {"VS.1.WEIGHT": "transcription error"}})
    assert response.status_code == 200, response.get_json()
    listed = check(doc, SIGNATURES, "get", client.get(signatures_url(), headers=users["inv"]))
    (broken,) = listed["items"]
    assert broken["id"] == signed["id"] and broken["state"] == "broken"
    assert broken["broken_at"] and broken["broken_reason"]
    redo = check(doc, TO_REDO, "get", client.get(f"{STUDY}/signatures/to-redo",
                                                 headers=users["inv"]))
    assert [s["id"] for s in redo["items"]] == [signed["id"]]
    # Signing again clears the list.
    again = client.post(signatures_url(), headers=users["inv"], json=SIGN_FORM)
    assert again.status_code == 201
    redo = check(doc, TO_REDO, "get", client.get(f"{STUDY}/signatures/to-redo",
                                                 headers=users["inv"]))
    assert redo["items"] == []
    check(doc, TO_REDO, "get", client.get(f"{STUDY}/signatures/to-redo",
                                          headers=users["dm"]))  # 403


@pytest.mark.parametrize(("body", "field"), [
    ({**SIGN_FORM, "password": None}, "password"),
    ({**SIGN_FORM, "password": 1234}, "password"),
    ({k: v for k, v in SIGN_FORM.items() if k != "username"}, "username"),
    ({**SIGN_FORM, "meaning": "because"}, "meaning"),
    ({**SIGN_FORM, "scope": "study"}, "scope"),
    ({**SIGN_FORM, "repeat": 0}, "repeat"),
    ({**SIGN_FORM, "repeat": "1"}, "repeat"),
    ({**SIGN_FORM, "repeat": True}, "repeat"),
    ({**SIGN_FORM, "form_oid": ""}, "form_oid"),
    ({**SIGN_FORM, "form_oid": None}, "form_oid"),
    ({**SIGN_FORM, "scope": "casebook"}, "form_oid"),
    ({**SIGN_FORM, "sign_as": "inv2"}, "sign_as"),
    ({**SIGN_FORM, "event_oid": "X" * 201}, "event_oid"),
])
def test_malformed_signing_bodies_are_named_and_not_counted(client, doc, users, completed,
                                                            body, field):
    response = client.post(signatures_url(), headers=users["inv"], json=body)
    answer = check(doc, SIGNATURES, "post", response)
    assert response.status_code == 422, answer
    assert field in answer["errors"], answer
    if field == "meaning":
        assert set(answer["meanings"]) == {"approval", "review", "responsibility"}
    assert PASSWORD not in response.get_data(as_text=True)
    assert audit_rows(action="signature.failed") == []


def test_unparseable_bodies_and_unknown_targets(client, doc, users, completed):
    url = signatures_url()
    for response, status in (
            (client.post(url, headers=users["inv"], data="{", content_type="application/json"),
             400),
            (client.post(url, headers=users["inv"], json=[1]), 400),
            (client.post(url, headers=users["inv"], data="x", content_type="text/plain"), 415),
            (client.post(url, headers=users["inv"], json={**SIGN_FORM, "event_oid": "NOPE"}),
             404),
            (client.post(url, headers=users["inv"], json={**SIGN_FORM, "form_oid": "NOPE"}),
             404),
            (client.post(signatures_url("NOPE"), headers=users["inv"], json=SIGN_FORM), 404)):
        check(doc, SIGNATURES, "post", response)
        assert response.status_code == status, response.get_json()


# --- locks --------------------------------------------------------------------------------


def test_lock_a_subject_then_saves_answer_423_until_unlocked(client, doc, users, completed):
    url = f"{STUDY}/subjects/S01-001/lock"
    response = client.post(url, headers=users["dm"], json={"reason": "ready for analysis"})
    lock = check(doc, SUBJECT_LOCK, "post", response)
    assert response.status_code == 201
    assert (lock["scope"], lock["subject_key"], lock["site"], lock["active"]) == (
        "subject", "S01-001", "S01", True)
    assert audit_rows(action="lock.applied")[0].reason == "ready for analysis"
    again = client.post(url, headers=users["dm"], json={})
    check(doc, SUBJECT_LOCK, "post", again)
    assert again.status_code == 409

    save = client.put(form_url("S01-001"), headers=users["crc"], json={
        "version": 1, "values": VITALS_VALUES, "partial": True})
    assert save.status_code == 423, save.get_json()
    check(doc, FORM, "put", save)
    listed = check(doc, LOCKS, "get", client.get(f"{STUDY}/locks", headers=users["dm"]))
    assert [item["id"] for item in listed["items"]] == [lock["id"]]

    unlock = f"{STUDY}/subjects/S01-001/unlock"
    response = client.post(unlock, headers=users["dm"], json={})
    check(doc, SUBJECT_UNLOCK, "post", response)
    assert response.status_code == 422  # a reason is required
    response = client.post(unlock, headers=users["dm"], json={"reason": "   "})
    assert response.status_code == 422
    response = client.post(unlock, headers=users["dm"], json={"reason": "late lab values"})
    released = check(doc, SUBJECT_UNLOCK, "post", response)
    assert response.status_code == 200 and released["active"] is False
    assert released["unlock_reason"] == "late lab values" and released["unlocked_by"] == "dm1"
    assert audit_rows(action="lock.released")[0].reason == "late lab values"
    response = client.post(unlock, headers=users["dm"], json={"reason": "again"})
    check(doc, SUBJECT_UNLOCK, "post", response)
    assert response.status_code == 409
    save = client.put(form_url("S01-001"), headers=users["crc"], json={
        "version": 1, "values": VITALS_VALUES, "partial": True})
    assert save.status_code == 200, save.get_json()


def test_form_and_site_locks_and_release_by_id(client, doc, users, completed):
    form_lock = form_url("S01-001") + "/lock"
    response = client.post(form_lock, headers=users["dm"], json={})
    lock = check(doc, FORM_LOCK, "post", response)
    assert response.status_code == 201 and lock["form_oid"] == "VITALS"
    assert lock["reason"] is None
    assert client.put(form_url("S01-001"), headers=users["crc"], json={
        "version": 1, "values": VITALS_VALUES}).status_code == 423
    not_started = client.post(form_url("S01-001", form="DEMOG") + "/lock",
                              headers=users["dm"], json={})
    check(doc, FORM_LOCK, "post", not_started)
    assert not_started.status_code == 404
    response = client.post(form_url("S01-001") + "/unlock", headers=users["dm"],
                           json={"reason": "query answered"})
    check(doc, FORM_UNLOCK, "post", response)
    assert response.status_code == 200
    response = client.post(form_url("S01-001") + "/unlock", headers=users["dm"],
                           json={"reason": "query answered"})
    check(doc, FORM_UNLOCK, "post", response)
    assert response.status_code == 409

    response = client.post(f"{STUDY}/sites/s01/lock", headers=users["dm"],
                           json={"reason": "site closed"})
    site = check(doc, SITE_LOCK, "post", response)
    assert response.status_code == 201 and (site["scope"], site["site"]) == ("site", "S01")
    assert client.put(form_url("S01-001"), headers=users["crc"], json={
        "version": 1, "values": VITALS_VALUES}).status_code == 423
    missing = client.post(f"{STUDY}/sites/S99/lock", headers=users["dm"], json={})
    check(doc, SITE_LOCK, "post", missing)
    assert missing.status_code == 404

    release = f"{STUDY}/locks/{site['id']}/unlock"
    response = client.post(release, headers=users["dm"], json={"reason": "reopened"})
    check(doc, RELEASE, "post", response)
    assert response.status_code == 200 and response.get_json()["active"] is False
    response = client.post(release, headers=users["dm"], json={"reason": "reopened"})
    check(doc, RELEASE, "post", response)
    assert response.status_code == 409
    for lock_id in ("99999", "9" * 30):
        response = client.post(f"{STUDY}/locks/{lock_id}/unlock", headers=users["dm"],
                               json={"reason": "x"})
        check(doc, RELEASE, "post", response)
        assert response.status_code == 404
    response = client.post(form_url("S01-001", repeat=10**20) + "/lock", headers=users["dm"],
                           json={})
    check(doc, FORM_LOCK, "post", response)
    assert response.status_code == 404
    assert check(doc, LOCKS, "get", client.get(f"{STUDY}/locks",
                                               headers=users["dm"]))["items"] == []


def test_only_data_managers_lock(client, doc, users, completed):
    for name in ("crc", "inv"):
        response = client.post(f"{STUDY}/subjects/S01-001/lock", headers=users[name], json={})
        check(doc, SUBJECT_LOCK, "post", response)
        assert response.status_code == 403
        check(doc, LOCKS, "get", client.get(f"{STUDY}/locks", headers=users[name]))
        response = client.post(f"{STUDY}/status", headers=users[name],
                               json={"transition": "freeze", "reason": "x"})
        check(doc, STATUS, "post", response)
        assert response.status_code == 403
    assert db.session.query(Lock).count() == 0


def test_a_site_data_manager_locks_only_at_their_site(client, doc, users, completed,
                                                     make_user):
    site_dm = bearer(token_for(make_user("dm2", role="data_manager", study="CAPTURE",
                                         site="S02")))
    assert client.post(f"{STUDY}/subjects/S01-001/lock", headers=users["dm"],
                       json={"reason": "done"}).status_code == 201
    lock_id = check(doc, LOCKS, "get", client.get(f"{STUDY}/locks",
                                                  headers=users["dm"]))["items"][0]["id"]
    for response, path in (
            (client.post(f"{STUDY}/subjects/S01-001/unlock", headers=site_dm,
                         json={"reason": "x"}), SUBJECT_UNLOCK),
            (client.post(f"{STUDY}/subjects/S01-002/lock", headers=site_dm, json={}),
             SUBJECT_LOCK),
            (client.post(f"{STUDY}/sites/S01/lock", headers=site_dm, json={}), SITE_LOCK),
            (client.post(f"{STUDY}/locks/{lock_id}/unlock", headers=site_dm,
                         json={"reason": "x"}), RELEASE)):
        check(doc, path, "post", response)
        assert response.status_code == 404, (path, response.get_json())
    assert check(doc, LOCKS, "get", client.get(f"{STUDY}/locks", headers=site_dm))["items"] == []
    response = client.post(f"{STUDY}/subjects/S02-001/lock", headers=site_dm, json={})
    assert check(doc, SUBJECT_LOCK, "post", response)["site"] == "S02"
    listed = check(doc, LOCKS, "get", client.get(f"{STUDY}/locks", headers=site_dm))
    assert [item["subject_key"] for item in listed["items"]] == ["S02-001"]


def test_lock_bodies_are_checked(client, doc, users, completed):
    url = f"{STUDY}/subjects/S01-001/lock"
    for body, field in (({"reason": 12}, "reason"), ({"why": "x"}, "why"),
                        ({"reason": "x" * 4001}, "reason")):
        response = client.post(url, headers=users["dm"], json=body)
        answer = check(doc, SUBJECT_LOCK, "post", response)
        assert response.status_code == 422 and field in answer["errors"], answer
    for response, status in (
            (client.post(url, headers=users["dm"]), 415),
            (client.post(url, headers=users["dm"], data="", content_type="application/json"),
             400),
            (client.post(url, headers=users["dm"], json="reason"), 400)):
        check(doc, SUBJECT_LOCK, "post", response)
        assert response.status_code == status
    assert db.session.query(Lock).count() == 0


def test_study_freeze_unfreeze_and_lock(client, doc, users, completed):
    url = f"{STUDY}/status"
    for body, field in (({"transition": "thaw", "reason": "x"}, "transition"),
                        ({"transition": "freeze"}, "reason"),
                        ({"transition": "freeze", "reason": ""}, "reason")):
        response = client.post(url, headers=users["dm"], json=body)
        answer = check(doc, STATUS, "post", response)
        assert response.status_code == 422 and field in answer["errors"], answer
    response = client.post(url, headers=users["dm"],
                           json={"transition": "freeze", "reason": "interim analysis"})
    body = check(doc, STATUS, "post", response)
    assert body == {"study_oid": "CAPTURE", "status": "frozen", "previous_status": "active"}
    assert audit_rows(action="study.frozen")[0].reason == "interim analysis"
    save = client.put(form_url("S01-001"), headers=users["crc"], json={
        "version": 1, "values": VITALS_VALUES})
    assert save.status_code == 423 and "frozen" in save.get_json()["message"]
    response = client.post(url, headers=users["dm"],
                           json={"transition": "freeze", "reason": "twice"})
    check(doc, STATUS, "post", response)
    assert response.status_code == 409
    response = client.post(url, headers=users["dm"],
                           json={"transition": "lock", "reason": "database lock"})
    assert check(doc, STATUS, "post", response)["status"] == "locked"
    # A locked study is read-only: nothing can be signed either.
    response = client.post(signatures_url(), headers=users["inv"], json=SIGN_FORM)
    check(doc, SIGNATURES, "post", response)
    assert response.status_code == 423
    response = client.post(url, headers=users["dm"],
                           json={"transition": "unlock", "reason": "late correction"})
    assert check(doc, STATUS, "post", response)["status"] == "active"
    assert db.session.scalar(select(Study.status).where(Study.oid == "CAPTURE")) == "active"
    actions = [r.action for r in db.session.scalars(
        select(AuditEvent).where(AuditEvent.action.in_(
            ["study.frozen", "study.unfrozen", "study.locked", "study.unlocked"]))
        .order_by(AuditEvent.seq))]
    assert actions == ["study.frozen", "study.locked", "study.unlocked"]
