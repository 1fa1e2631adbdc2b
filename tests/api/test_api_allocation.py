"""Enrolment, randomisation, dose escalation and DLT decisions through the API: the services,
permissions, site scoping and audit rows of the screens, every refusal a JSON 4xx naming
the problem, every response as the OpenAPI document says; and a UCMSC-Exo subject walked
from enrolment to an escalation decision without a screen."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from ecrf import studies
from ecrf.accounts.models import User
from ecrf.allocation.models import Allocation, EscalationDecision
from ecrf.capture.models import Subject
from ecrf.capture.schedule import local_today
from ecrf.core import PROJECT_ROOT
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from tests.allocation.test_escalation import cohort
from tests.allocation.test_randomization import add_subject, generate, load, make_eligible
from tests.api import API, audit_rows, bearer, token_for
from tests.api.test_openapi import check
from tests.conftest import PASSWORD
from tests.safety.safety_setup import actor_for, ae_row, enrol, load_safety_study, save
from tests.safety.test_operations import D1, infuse

ALLOCR = f"{API}/studies/ALLOCR"
ALLOC33 = f"{API}/studies/ALLOC33"
SUBJECTS = "/studies/{study_oid}/subjects"
RANDOMIZATION = "/studies/{study_oid}/subjects/{subject_key}/randomization"
UNDO = RANDOMIZATION + "/undo"
BOARD = "/studies/{study_oid}/escalation"
DECISIONS = BOARD + "/decisions"
DOSE_LEVEL = "/studies/{study_oid}/subjects/{subject_key}/dose-level"
DLT = "/studies/{study_oid}/subjects/{subject_key}/dlt"
DLT_DECIDE = DLT + "/{assessment_id}"
FORM = "/studies/{study_oid}/subjects/{subject_key}/events/{event_oid}/{repeat}/forms/{form_oid}"


@pytest.fixture
def doc(client) -> dict:
    return client.get(f"{API}/openapi.json").get_json()


@pytest.fixture
def web_study(app, make_site, make_study):
    """ALLOCR: randomised and stratified, sites S01 and S02."""
    make_site("S01")
    make_site("S02", timezone="Asia/Shanghai")
    found = load("allocation_randomized")
    make_study("ALLOCR", sites=("S01", "S02"))
    return found


@pytest.fixture
def study33(app, make_site, make_study):
    """ALLOC33: 3+3 dose escalation at S01."""
    make_site("S01")
    found = load("allocation_3p3")
    make_study("ALLOC33", sites=("S01",))
    return found


def headers(make_user, name, role, oid, site=None):
    return bearer(token_for(make_user(name, role=role, study=oid, site=site)))


def today(site: str = "S01") -> dt.date:
    return local_today("Europe/Paris" if site == "S01" else "Asia/Shanghai")


# --- enrolment ------------------------------------------------------------------------------


def test_enrolment_as_the_enrol_screen_with_its_audit_row(client, doc, make_user, web_study):
    crc = headers(make_user, "crc1", "coordinator", "ALLOCR", "S01")
    day = today() - dt.timedelta(days=2)
    response = client.post(f"{ALLOCR}/subjects", headers=crc, json={
        "site": "S01", "subject_key": "P-101", "enrolled_on": day.isoformat()})
    body = check(doc, SUBJECTS, "post", response)
    assert response.status_code == 201
    assert body["subject_key"] == "P-101" and body["status"] == "screening"
    assert body["enrolled_on"] == day.isoformat() and body["site"] == "S01"
    assert response.headers["Location"] == body["url"] == f"{ALLOCR}/subjects/P-101"
    row = audit_rows(action="subject.enrolled", subject_key="P-101")[0]
    assert (row.username, row.role, row.site_code) == ("crc1", "coordinator", "S01")
    assert client.get(body["url"], headers=crc).status_code == 200


@pytest.mark.parametrize("body, field, message", [
    ({"site": "S01", "enrolled_on": "2025-01-01"}, "subject_key", "Required"),
    ({"site": "S01", "subject_key": " ", "enrolled_on": "2025-01-01"}, "subject_key",
     "blank"),
    ({"site": "S01", "subject_key": "a b", "enrolled_on": "2025-01-01"}, "subject_key",
     "not valid"),
    ({"site": "S01", "subject_key": "new", "enrolled_on": "2025-01-01"}, "subject_key",
     "reserved"),
    ({"site": "S01", "subject_key": "X" * 65, "enrolled_on": "2025-01-01"}, "subject_key",
     "At most 64"),
    ({"site": "S01", "subject_key": "P-1", "enrolled_on": "01/02/2025"}, "enrolled_on",
     "YYYY-MM-DD"),
    ({"site": "S01", "subject_key": "P-1", "enrolled_on": "20250101"}, "enrolled_on",
     "YYYY-MM-DD"),
    ({"site": "S01", "subject_key": "P-1", "enrolled_on": "2025-02-30"}, "enrolled_on",
     "YYYY-MM-DD"),
    ({"site": "S01", "subject_key": "P-1", "enrolled_on": 20250101}, "enrolled_on",
     "a number"),
    ({"site": "S01", "subject_key": "P-1", "enrolled_on": "2999-01-01"}, "enrolled_on",
     "in the future"),
    ({"site": "S99", "subject_key": "P-1", "enrolled_on": "2025-01-01"}, "site",
     "no site 'S99'"),
    ({"site": "S02", "subject_key": "P-1", "enrolled_on": "2025-01-01"}, "site",
     "may not enrol subjects at site S02"),
    ({"site": "S01", "subject_key": "P-1", "enrolled_on": "2025-01-01", "arm": "A"}, "arm",
     "Unknown field"),
    ({"site": "S01", "subject_key": "p-001", "enrolled_on": "2025-01-01"}, "subject_key",
     "already used"),
])
def test_enrolment_refusals_name_the_field(client, doc, make_user, web_study, body, field,
                                           message):
    add_subject(web_study, "P-001")
    db.session.commit()
    crc = headers(make_user, "crc1", "coordinator", "ALLOCR", "S01")
    response = client.post(f"{ALLOCR}/subjects", headers=crc, json=body)
    found = check(doc, SUBJECTS, "post", response)
    assert response.status_code == 422
    assert message in " ".join(found["errors"][field]), found
    assert db.session.scalar(select(Subject).where(Subject.subject_key == "P-1")) is None


def test_enrolment_malformed_bodies_permissions_and_a_locked_study(client, doc, make_user,
                                                                  web_study):
    crc = headers(make_user, "crc1", "coordinator", "ALLOCR", "S01")
    url = f"{ALLOCR}/subjects"
    for response, status in (
            (client.post(url, headers=crc, data="site=S01"), 415),
            (client.post(url, headers=crc, data="{", content_type="application/json"), 400),
            (client.post(url, headers=crc, json=["S01"]), 400)):
        check(doc, SUBJECTS, "post", response)
        assert response.status_code == status
    monitor = headers(make_user, "mon1", "monitor", "ALLOCR", "S01")
    response = client.post(url, headers=monitor, json={"site": "S01", "subject_key": "P-9",
                                                        "enrolled_on": "2025-01-01"})
    assert check(doc, SUBJECTS, "post", response) and response.status_code == 403
    response = client.post(url, json={"site": "S01", "subject_key": "P-9",
                                      "enrolled_on": "2025-01-01"})
    assert check(doc, SUBJECTS, "post", response) and response.status_code == 401
    web_study.status = "locked"
    db.session.commit()
    response = client.post(url, headers=crc, json={"site": "S01", "subject_key": "P-9",
                                                    "enrolled_on": "2025-01-01"})
    body = check(doc, SUBJECTS, "post", response)
    assert response.status_code == 409 and "locked" in body["message"]


# --- randomisation --------------------------------------------------------------------------


def test_readiness_names_what_is_missing(client, doc, make_user, web_study):
    generate(web_study)
    make_eligible(add_subject(web_study, "P-001"), eligible="N", status=None)
    db.session.commit()
    crc = headers(make_user, "crc1", "coordinator", "ALLOCR", "S01")
    body = check(doc, RANDOMIZATION, "get",
                 client.get(f"{ALLOCR}/subjects/P-001/randomization", headers=crc))
    assert body["ready"] is False and body["arm"] is None and body["allocations"] == []
    checks = {c["key"]: c for c in body["checks"]}
    assert checks["eligibility"]["ok"] is False and checks["consent"]["ok"] is True
    assert "the subject is not eligible (ELIG.ELIGIBLE = N)" in body["missing"]
    assert (checks["stratum:age"]["ok"], checks["stratum:status"]["ok"]) == (True, False)
    assert "stratification item ELIG.DISSTAT (status) is not recorded" in body["missing"]
    assert body["strata"] == {"age": "LT60"}
    response = client.post(f"{ALLOCR}/subjects/P-001/randomization", headers=crc)
    refused = check(doc, RANDOMIZATION, "post", response)
    assert response.status_code == 409
    assert "the subject is not eligible (ELIG.ELIGIBLE = N)" in refused["reasons"]
    assert db.session.scalar(select(Allocation)) is None
    assert not audit_rows(action="subject.randomized")


def test_randomize_as_the_screen_then_undo_by_an_admin(client, doc, make_user, web_study):
    generate(web_study, seed="77")
    subject = make_eligible(add_subject(web_study, "P-001"))
    db.session.commit()
    crc = headers(make_user, "crc1", "coordinator", "ALLOCR", "S01")
    response = client.post(f"{ALLOCR}/subjects/P-001/randomization", headers=crc)
    body = check(doc, RANDOMIZATION, "post", response)
    assert response.status_code == 201
    db.session.refresh(subject)
    assert body["arm"] == subject.arm and body["arm_name"]
    (allocation,) = body["allocations"]
    assert allocation["state"] == "in_force" and allocation["allocated_by"] == "crc1"
    assert allocation["strata"] and allocation["stratum"]
    assert allocation["randomized_on"] == today().isoformat()
    assert "sequence" not in str(body)  # concealed, as on the screen
    row = audit_rows(action="subject.randomized")[0]
    assert (row.username, row.role, row.new_value) == ("crc1", "coordinator", subject.arm)
    again = client.post(f"{ALLOCR}/subjects/P-001/randomization", headers=crc, json={})
    assert check(doc, RANDOMIZATION, "post", again)["reasons"] == [
        f"subject P-001 is already randomized (arm {subject.arm})"]
    assert again.status_code == 409

    # Undo: a system administrator with a reason; the allocation stays on record.
    url = f"{ALLOCR}/subjects/P-001/randomization/undo"
    response = client.post(url, headers=crc, json={"reason": "wrong subject"})
    assert check(doc, UNDO, "post", response) and response.status_code == 403
    admin = bearer(token_for(make_user("admin1", role="admin")))
    for bad, field in (({}, "reason"), ({"reason": "  "}, "reason"),
                       ({"reason": "x" * 2001}, "reason"), ({"reason": 3}, "reason"),
                       ({"reason": "ok", "why": "x"}, "why")):
        response = client.post(url, headers=admin, json=bad)
        assert check(doc, UNDO, "post", response)["errors"][field], bad
        assert response.status_code == 422
    response = client.post(url, headers=admin, json={"reason": "randomized the wrong subject"})
    body = check(doc, UNDO, "post", response)
    assert response.status_code == 200 and body["arm"] is None
    assert body["allocations"][0]["state"] == "undone"
    assert body["allocations"][0]["undo_reason"] == "randomized the wrong subject"
    row = audit_rows(action="subject.randomization_undone")[0]
    assert (row.username, row.reason) == ("admin1", "randomized the wrong subject")
    response = client.post(url, headers=admin, json={"reason": "again"})
    assert check(doc, UNDO, "post", response)["message"].endswith("no randomization in "
                                                                  "force to undo")
    assert response.status_code == 409


def test_randomization_site_scoping_permissions_and_bodies(client, doc, make_user, web_study):
    generate(web_study)
    make_eligible(add_subject(web_study, "P-001"))
    db.session.commit()
    url = f"{ALLOCR}/subjects/P-001/randomization"
    other = headers(make_user, "inv2", "investigator", "ALLOCR", "S02")
    for response in (client.get(url, headers=other), client.post(url, headers=other)):
        assert check(doc, RANDOMIZATION, response.request.method.lower(), response)
        assert response.status_code == 404
    monitor = headers(make_user, "mon1", "monitor", "ALLOCR", "S01")
    response = client.post(url, headers=monitor)
    assert check(doc, RANDOMIZATION, "post", response) and response.status_code == 403
    crc = headers(make_user, "crc1", "coordinator", "ALLOCR", "S01")
    for response, status in (
            (client.post(url, headers=crc, json={"arm": "A"}), 422),
            (client.post(url, headers=crc, data="[", content_type="application/json"), 400),
            (client.post(url, headers=crc, data="x", content_type="text/plain"), 415)):
        check(doc, RANDOMIZATION, "post", response)
        assert response.status_code == status
    assert db.session.scalar(select(Allocation)) is None


# --- dose escalation ------------------------------------------------------------------------


def test_dose_level_assignment_and_the_board(client, doc, make_user, study33):
    add_subject(study33, "E-001")
    db.session.commit()
    crc = headers(make_user, "crc1", "coordinator", "ALLOC33", "S01")
    response = client.post(f"{ALLOC33}/subjects/E-001/dose-level", headers=crc)
    body = check(doc, DOSE_LEVEL, "post", response)
    assert response.status_code == 201
    assert (body["dose_level"], body["place"], body["capacity"]) == (1, 1, 3)
    row = audit_rows(action="subject.dose_level_assigned")[0]
    assert (row.username, row.new_value, row.subject_key) == ("crc1", "1", "E-001")
    again = client.post(f"{ALLOC33}/subjects/E-001/dose-level", headers=crc, json={})
    assert "already has dose level 1" in check(doc, DOSE_LEVEL, "post", again)["message"]
    assert again.status_code == 409
    response = client.post(f"{ALLOC33}/subjects/E-001/dose-level", headers=crc,
                           json={"level": 3})
    assert check(doc, DOSE_LEVEL, "post", response)["errors"]["level"]
    assert response.status_code == 422

    board = check(doc, BOARD, "get", client.get(f"{ALLOC33}/escalation", headers=crc))
    assert board["design"] == "3+3" and board["current_level"] == 1
    level1 = board["levels"][0]
    assert (level1["places_taken"], level1["capacity"], level1["open"]) == (1, 3, True)
    assert level1["subjects"] == [{"subject_key": "E-001", "state": "not_treated",
                                   "treated_on": None, "window_end": None}]
    assert board["proposal"]["decision"] is None and board["allowed_decisions"] == ["stop"]
    # A sponsor viewer sees the counts, never a subject's key.
    viewer = headers(make_user, "sv1", "sponsor_viewer", "ALLOC33")
    board = check(doc, BOARD, "get", client.get(f"{ALLOC33}/escalation", headers=viewer))
    assert board["levels"][0]["subjects"][0]["subject_key"] is None
    response = client.post(f"{ALLOC33}/subjects/E-001/dose-level", headers=viewer)
    assert check(doc, DOSE_LEVEL, "post", response) and response.status_code == 403


def test_a_boin_board_gives_its_target_and_boundaries(client, doc, make_user, make_site,
                                                     make_study):
    make_site("S01")
    load("allocation_boin")
    make_study("ALLOCBN", sites=("S01",))
    viewer = headers(make_user, "sv1", "sponsor_viewer", "ALLOCBN")
    board = check(doc, BOARD, "get", client.get(f"{API}/studies/ALLOCBN/escalation",
                                                headers=viewer))
    assert board["design"] == "boin" and board["target_dlt_rate"]
    bounds = board["boundaries"]
    assert 0 < bounds["escalate_at_or_below"] < bounds["de_escalate_at_or_above"] < 1


def test_a_study_without_escalation_has_no_board(client, doc, make_user, web_study):
    add_subject(web_study, "P-001")
    db.session.commit()
    crc = headers(make_user, "crc1", "coordinator", "ALLOCR", "S01")
    response = client.get(f"{ALLOCR}/escalation", headers=crc)
    assert "declares no dose escalation" in check(doc, BOARD, "get", response)["message"]
    assert response.status_code == 404
    response = client.post(f"{ALLOCR}/subjects/P-001/dose-level", headers=crc)
    assert check(doc, DOSE_LEVEL, "post", response) and response.status_code == 404


def test_a_signed_decision_as_the_board_records_it(client, doc, make_user, study33):
    cohort(study33, "A")  # 0 DLT in 3 evaluable subjects: the rule proposes escalation
    dm_user = make_user("dm1", role="data_manager", study="ALLOC33")
    dm = bearer(token_for(dm_user))
    url = f"{ALLOC33}/escalation/decisions"
    board = check(doc, BOARD, "get", client.get(f"{ALLOC33}/escalation", headers=dm))
    assert board["proposal"]["decision"] == "escalate"
    assert board["allowed_decisions"] == ["escalate", "stay", "stop"]
    for bad, field in (({"reason": "r", "password": PASSWORD}, "action"),
                       ({"action": "jump", "reason": "r", "password": PASSWORD}, "action"),
                       ({"action": "stay", "password": PASSWORD}, "reason"),
                       ({"action": "stay", "reason": "r" * 4001, "password": PASSWORD},
                        "reason"),
                       ({"action": "stay", "reason": "r"}, "password"),
                       ({"action": "stay", "reason": "r", "password": None}, "password"),
                       ({"action": "stay", "reason": "r", "password": "p", "x": 1}, "x")):
        response = client.post(url, headers=dm, json=bad)
        assert check(doc, DECISIONS, "post", response)["errors"][field], bad
        assert response.status_code == 422
    # A wrong password is refused, and counted toward lockout as on the screen.
    response = client.post(url, headers=dm, json={"action": "escalate", "reason": "review",
                                                  "password": "wrong"})
    assert check(doc, DECISIONS, "post", response)["errors"]["password"]
    assert response.status_code == 422
    db.session.expire_all()
    assert db.session.get(User, dm_user.id).failed_logins == 1
    # Bolder than the rule: refused with what may be signed.
    response = client.post(url, headers=dm, json={"action": "declare_mtd", "reason": "r",
                                                  "password": PASSWORD})
    body = check(doc, DECISIONS, "post", response)
    assert response.status_code == 409 and "does not allow declaring the MTD" in body["message"]
    assert body["allowed_decisions"] == ["escalate", "stay", "stop"]
    assert db.session.scalar(select(EscalationDecision)) is None
    response = client.post(url, headers=dm, json={"action": "escalate",
                                                  "reason": "0/3 DLT at level 1",
                                                  "password": PASSWORD})
    body = check(doc, DECISIONS, "post", response)
    assert response.status_code == 201
    assert body["current_level"] == 2 and body["decision"]["next_level"] == 2
    assert body["decision"]["signer_name"] == dm_user.full_name
    assert body["decision"]["signature_meaning"] == "approval"
    assert body["decisions"] == [body["decision"]]
    row = audit_rows(action="escalation.decided")[0]
    assert (row.username, row.role, row.reason) == ("dm1", "data_manager", "0/3 DLT at level 1")
    crc = headers(make_user, "crc1", "coordinator", "ALLOC33", "S01")
    response = client.post(url, headers=crc, json={"action": "stop", "reason": "r",
                                                   "password": PASSWORD})
    assert check(doc, DECISIONS, "post", response) and response.status_code == 403


def test_repeated_wrong_passwords_lock_the_account(client, doc, make_user, study33, app):
    app.config["LOCKOUT_THRESHOLD"] = 2
    cohort(study33, "A")
    dm = bearer(token_for(make_user("dm1", role="data_manager", study="ALLOC33")))
    url = f"{ALLOC33}/escalation/decisions"
    wrong = {"action": "stay", "reason": "r", "password": "wrong"}
    assert client.post(url, headers=dm, json=wrong).status_code == 422
    response = client.post(url, headers=dm, json=wrong)
    body = check(doc, DECISIONS, "post", response)
    assert response.status_code == 403 and "locked" in body["message"]
    assert db.session.scalar(select(EscalationDecision)) is None


# --- DLT decisions --------------------------------------------------------------------------


def test_a_dlt_candidate_is_decided_as_on_the_safety_page(client, doc, make_user,
                                                          make_study):
    found = load_safety_study(make_study)
    safety_inv = actor_for(make_user("inv1", role="investigator", study="SAFETY", site="S01"))
    safety_subject = enrol(found, "S01-001")
    save(safety_inv, safety_subject, "CONSENT", {("CONSENT_MAIN", 1, "CONSDT"): "2025-05-20"})
    save(safety_inv, safety_subject, "CHEMO", {("CHEMO_MAIN", 1, "CHEMOD1"): D1.isoformat()},
         day=D1)
    infuse(safety_inv, safety_subject)
    save(safety_inv, safety_subject, "AE", ae_row(1, AETERM="Hypoxia", AESTDTC="2025-06-10",
                                                  AETOXGR="3", AESER="N", AERELEXO="possible"))
    base = f"{API}/studies/SAFETY/subjects/S01-001/dlt"
    inv = bearer(token_for(db.session.get(User, safety_inv.user_id)))
    body = check(doc, DLT, "get", client.get(base, headers=inv))
    (candidate,) = body["assessments"]
    assert candidate["status"] == "candidate" and body["pending_candidates"] == 1
    url = f"{base}/{candidate['id']}"
    for bad, field in (({"reason": "r"}, "decision"),
                       ({"decision": "maybe", "reason": "r"}, "decision"),
                       ({"decision": "confirmed"}, "reason"),
                       ({"decision": "confirmed", "reason": ""}, "reason"),
                       ({"decision": "confirmed", "reason": "r", "grade": 3}, "grade")):
        response = client.post(url, headers=inv, json=bad)
        assert check(doc, DLT_DECIDE, "post", response)["errors"][field], bad
        assert response.status_code == 422
    crc = headers(make_user, "crc1", "coordinator", "SAFETY", "S01")
    response = client.post(url, headers=crc, json={"decision": "confirmed", "reason": "r"})
    assert check(doc, DLT_DECIDE, "post", response) and response.status_code == 403
    other = headers(make_user, "inv2", "investigator", "SAFETY", "S02")
    response = client.post(url, headers=other, json={"decision": "confirmed", "reason": "r"})
    assert check(doc, DLT_DECIDE, "post", response) and response.status_code == 404
    for unknown in (candidate["id"] + 99, 0, 10**30):
        response = client.post(f"{base}/{unknown}", headers=inv,
                               json={"decision": "confirmed", "reason": "r"})
        assert check(doc, DLT_DECIDE, "post", response) and response.status_code == 404
    response = client.post(url, headers=inv, json={"decision": "confirmed",
                                                   "reason": "Grade 3 hypoxia, related"})
    body = check(doc, DLT_DECIDE, "post", response)
    assert response.status_code == 200
    assert body["assessments"][0]["status"] == "confirmed" and body["has_dlt"] is True
    row = audit_rows(action="dlt.confirmed")[0]
    assert (row.username, row.reason, row.old_value) == ("inv1", "Grade 3 hypoxia, related",
                                                         "candidate")
    response = client.post(url, headers=inv, json={"decision": "confirmed", "reason": "r"})
    assert "already confirmed" in check(doc, DLT_DECIDE, "post", response)["message"]
    assert response.status_code == 409


# --- end to end: a UCMSC-Exo cohort without a screen ---------------------------------------


@pytest.fixture
def ucmscexo(app, make_site, make_study):
    make_site("WUH", timezone="Asia/Shanghai")
    loader = Actor(user_id=None, username="loader", role="data_manager")
    found = studies.load_folder(db.session, loader, PROJECT_ROOT / "forms" / "ucmscexo").study
    db.session.commit()
    make_study("UCMSCEXO", sites=("WUH",))
    return found


EVENT_START = "/studies/{study_oid}/subjects/{subject_key}/events/{event_oid}/{repeat}/start"
SIGNATURES = "/studies/{study_oid}/subjects/{subject_key}/signatures"


def test_a_ucmscexo_cohort_from_enrolment_to_a_signed_decision(client, doc, make_user,
                                                               ucmscexo):
    base = f"{API}/studies/UCMSCEXO"
    inv = headers(make_user, "inv.wuh", "investigator", "UCMSCEXO", "WUH")
    day0 = local_today("Asia/Shanghai") - dt.timedelta(days=40)
    infusion = day0 + dt.timedelta(days=10)  # the DLT window ended 16 days ago

    def put(key, event_oid, form_oid, values, day=None, complete=False):
        event = f"{base}/subjects/{key}/events/{event_oid}/1"
        if client.get(event, headers=inv).get_json()["state"] == "not_started":
            started = client.post(f"{event}/start", headers=inv, json={
                "actual_date": day.isoformat()} if day else {})
            assert check(doc, EVENT_START, "post", started)["state"] == "in_progress"
        url = f"{event}/forms/{form_oid}"
        version = client.get(url, headers=inv).get_json()["version"]
        response = client.put(url, headers=inv, json={"version": version, "values": values,
                                                      "partial": True, "complete": complete})
        body = check(doc, FORM, "put", response)
        assert response.status_code == 200, body
        return body

    for i, key in enumerate(("WUH-001", "WUH-002", "WUH-003")):
        response = client.post(f"{base}/subjects", headers=inv, json={
            "site": "WUH", "subject_key": key, "enrolled_on": day0.isoformat()})
        assert check(doc, SUBJECTS, "post", response)["status"] == "screening"
        response = client.post(f"{base}/subjects/{key}/dose-level", headers=inv)
        body = check(doc, DOSE_LEVEL, "post", response)
        assert (body["dose_level"], body["place"], body["label"]) == (1, i + 1,
                                                                      "Dose level 1")
        put(key, "INFUSION", "INF", {"INF_ADMIN.1.INFDT": infusion.isoformat(),
                                     "INF_ADMIN.1.INFSTTM": "09:30",
                                     "INF_ADMIN.1.FULLDOSE": "Y"}, infusion)
        # Daily blood counts after the infusion.
        counts = {}
        for row in (1, 2, 3):
            counts.update({f"CNT_DAY.{row}.LBDT": (infusion + dt.timedelta(days=row))
                           .isoformat(), f"CNT_DAY.{row}.WBC": "1.2",
                           f"CNT_DAY.{row}.ANC": "0.4", f"CNT_DAY.{row}.HGB": 85,
                           f"CNT_DAY.{row}.PLT": 30})
        put(key, "HEMOBS", "COUNTS", counts, infusion + dt.timedelta(days=1))

    # WUH-001 has a grade 3 AE possibly related to the infusion: a DLT candidate.
    onset = (infusion + dt.timedelta(days=4)).isoformat()
    put("WUH-001", "AE_LOG", "AE", {"AE_LINE.1.AETERM": "Hypoxia", "AE_LINE.1.AESTDTC": onset,
                                "AE_LINE.1.AETOXGR": "3", "AE_LINE.1.AESER": "N",
                                "AE_LINE.1.AERELEXO": "possible"})
    dlt = check(doc, DLT, "get", client.get(f"{base}/subjects/WUH-001/dlt", headers=inv))
    (candidate,) = dlt["assessments"]
    assert candidate["status"] == "candidate" and "DLT window" in candidate["candidate_reason"]
    response = client.post(f"{base}/subjects/WUH-001/dlt/{candidate['id']}", headers=inv,
                           json={"decision": "confirmed", "reason": "Grade 3 hypoxia"})
    dlt = check(doc, DLT_DECIDE, "post", response)
    assert (dlt["state"], dlt["has_dlt"]) == ("dlt", True)
    # The investigator's DLT assessment form, which the escalation counts from.
    assessed = (infusion + dt.timedelta(days=15)).isoformat()
    for key, dlt_yn in (("WUH-001", "Y"), ("WUH-002", "N"), ("WUH-003", "N")):
        put(key, "DLT_EVAL", "DLT", {"DLT_MAIN.1.DLTASDT": assessed, "DLT_MAIN.1.DLTYN": dlt_yn,
                                     "DLT_EVALUABLE.1.DLTFULL": "Y",
                                     "DLT_EVALUABLE.1.DLTWIN": "Y",
                                     "DLT_EVALUABLE.1.DLTEVAL": "Y"},
            infusion + dt.timedelta(days=15), complete=True)

    board = check(doc, BOARD, "get", client.get(f"{base}/escalation", headers=inv))
    level1 = board["levels"][0]
    assert (level1["treated"], level1["evaluable"], level1["dlts"]) == (3, 3, 1)
    assert {s["subject_key"]: s["state"] for s in level1["subjects"]} == {
        "WUH-001": "dlt", "WUH-002": "evaluable", "WUH-003": "evaluable"}
    assert board["proposal"]["decision"] == "stay"  # 1 of 3: expand the cohort
    # The level is full until a decision opens the next cohort.
    response = client.post(f"{base}/subjects", headers=inv, json={
        "site": "WUH", "subject_key": "WUH-004", "enrolled_on": day0.isoformat()})
    assert response.status_code == 201
    response = client.post(f"{base}/subjects/WUH-004/dose-level", headers=inv)
    assert "level 1 is full" in check(doc, DOSE_LEVEL, "post", response)["message"]
    response = client.post(f"{base}/escalation/decisions", headers=inv, json={
        "action": "stay", "reason": "1 DLT in 3: expand to 6", "password": PASSWORD})
    body = check(doc, DECISIONS, "post", response)
    assert response.status_code == 201 and body["decision"]["action"] == "stay"
    assert body["levels"][0]["capacity"] == 6
    response = client.post(f"{base}/subjects/WUH-004/dose-level", headers=inv)
    assert check(doc, DOSE_LEVEL, "post", response)["place"] == 4
    actions = [r.action for r in audit_rows(subject_key="WUH-001")]
    for action in ("subject.enrolled", "subject.dose_level_assigned", "dlt.candidate",
                   "dlt.confirmed"):
        assert action in actions
    assert audit_rows(action="escalation.decided")[0].username == "inv.wuh"
    # The investigator signs WUH-001's DLT assessment (Part 11: user id and password).
    response = client.post(f"{base}/subjects/WUH-001/signatures", headers=inv, json={
        "scope": "form", "event_oid": "DLT_EVAL", "form_oid": "DLT",
        "meaning": "responsibility", "username": "inv.wuh", "password": PASSWORD})
    signed = check(doc, SIGNATURES, "post", response)
    assert response.status_code == 201, signed
    listed = check(doc, SIGNATURES, "get", client.get(f"{base}/subjects/WUH-001/signatures",
                                                      headers=inv))
    assert [(s["scope"], s["form_oid"], s["state"]) for s in listed["items"]] == [
        ("form", "DLT", "valid")]
