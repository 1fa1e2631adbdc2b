"""Safety through the API: the subject's safety state, the study's SAE clocks, SAE reports
(open, submit, follow up), AE prompts (accept, decline) and notification retries, with the
services, permissions, site scoping and audit rows of the safety page; every response as
the OpenAPI document says."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from ecrf.capture import operations as capture
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.core.signals import form_saved
from ecrf.jobs.models import Job
from ecrf.review import locks
from ecrf.safety.models import AeGradePrompt, NotificationLog, SaeReport
from tests.api import API, audit_rows, bearer, token_for
from tests.api.test_openapi import check
from tests.safety.safety_setup import (
    TODAY,
    actor_for,
    ae_row,
    counts_row,
    enrol,
    load_safety_study,
    save,
)

D1 = dt.date(2025, 6, 1)
STUDY = f"{API}/studies/SAFETY"
BASE = f"{STUDY}/subjects/S01-001/safety"
SAFETY = "/studies/{study_oid}/subjects/{subject_key}/safety"
REPORT = SAFETY + "/sae/{report_id}"
PROMPT = SAFETY + "/prompts/{prompt_id}"
CLOCKS = "/studies/{study_oid}/safety/sae-clocks"
RETRY = "/studies/{study_oid}/safety/notifications/{entry_id}/retry"
HUGE = 2**63


@pytest.fixture
def doc(client) -> dict:
    return client.get(f"{API}/openapi.json").get_json()


@pytest.fixture
def people(app, make_study, make_user):
    """S01-001 with a grade-4 ANC (an open AE prompt) and a serious AE row 1 (its SAE
    report, overdue); S02-001 at the other site; tokens of each role."""
    study = load_safety_study(make_study)
    subject = enrol(study, "S01-001", level=1)
    enrol(study, "S02-001", site="S02", level=1)
    crc_user = make_user("crc.s01", role="coordinator", study="SAFETY", site="S01")
    crc = actor_for(crc_user, role="coordinator")
    save(crc, subject, "CHEMO", {("CHEMO_MAIN", 1, "CHEMOD1"): D1.isoformat()}, day=D1)
    save(crc, subject, "COUNTS", {**counts_row(1, D1, ANC="2.10", PLT="150", HGB="100"),
                                  **counts_row(2, D1 + dt.timedelta(days=9), ANC="0.20",
                                               PLT="60", HGB="85")}, day=D1)
    save(crc, subject, "AE", ae_row(1, AETERM="Pneumonia", AESTDTC="2025-06-10",
                                    AETOXGR="3", AESER="Y", AESHOSP="Y",
                                    AESAWDTC="2025-06-10 08:00", AERELEXO="possible"))
    return {
        "subject": subject, "crc_actor": crc,
        "crc": bearer(token_for(crc_user)),
        "inv": bearer(token_for(make_user("inv.s01", role="investigator", study="SAFETY",
                                          site="S01"))),
        "inv2": bearer(token_for(make_user("inv.s02", role="investigator", study="SAFETY",
                                           site="S02"))),
        "mon": bearer(token_for(make_user("mon", role="monitor", study="SAFETY"))),
        "dm": bearer(token_for(make_user("dm.safety", role="data_manager",
                                         study="SAFETY"))),
    }


def report_of(subject, version: int = 1) -> SaeReport:
    return db.session.scalar(select(SaeReport).where(SaeReport.subject_id == subject.id,
                                                     SaeReport.version == version))


def prompt_of(subject) -> AeGradePrompt:
    return db.session.scalar(select(AeGradePrompt).where(
        AeGradePrompt.subject_id == subject.id))


def actions(prefix: str) -> list[str]:
    return [r.action for r in audit_rows(subject_key="S01-001") if r.action.startswith(prefix)]


# --- reading ------------------------------------------------------------------------------


def test_the_subject_safety_state(client, doc, people):
    body = check(doc, SAFETY, "get", client.get(BASE, headers=people["crc"]))
    assert (body["subject_key"], body["site_code"], body["has_ae_log"]) == \
        ("S01-001", "S01", True)
    [report] = body["sae_reports"]
    assert (report["version"], report["term"], report["clock"], report["overdue"]) == \
        (1, "Pneumonia", "overdue", True)
    assert report["awareness_at"] == "2025-06-10T06:00:00Z"  # 08:00 in Paris
    assert report["due_at"] == "2025-06-11T06:00:00Z" and report["submitted_at"] is None
    assert report["remaining_minutes"] < 0 and report["followup_ids"] == []
    assert [n["state"] for n in report["notifications"]] == ["pending"]
    [prompt] = body["prompts"]
    assert (prompt["status"], prompt["grade"], prompt["term"]) == \
        ("open", 4, "Neutrophil count decreased")
    [row] = body["ae_rows"]
    assert (row["row"], row["serious"], row["sae_report_ids"]) == (1, True, [report["id"]])
    assert body["allowed"] == {"enter": True, "assess": False}
    assert body["dlt"] is not None and body["dlt_assessments"] == []
    one = check(doc, REPORT, "get", client.get(report["url"], headers=people["inv"]))
    assert one == report


def test_the_study_sae_clocks_are_site_scoped(client, doc, people):
    url = f"{STUDY}/safety/sae-clocks"
    body = check(doc, CLOCKS, "get", client.get(url, headers=people["mon"]))
    assert [i["subject_key"] for i in body["items"]] == ["S01-001"]
    assert body["counts"]["overdue"] == 1 and body["total"] == 1
    other = check(doc, CLOCKS, "get", client.get(url, headers=people["inv2"]))
    assert other["items"] == [] and other["total"] == 0
    for bad in ("?running=maybe", "?page=0", "?per_page=100000"):
        response = client.get(url + bad, headers=people["mon"])
        assert check(doc, CLOCKS, "get", response) and response.status_code == 400
    # submitted: no longer running, still listed with running=false
    report = report_of(people["subject"])
    client.post(f"{BASE}/sae/{report.id}/submit", headers=people["inv"])
    assert check(doc, CLOCKS, "get", client.get(url, headers=people["mon"]))["items"] == []
    body = check(doc, CLOCKS, "get", client.get(url + "?running=false", headers=people["mon"]))
    assert [i["clock"] for i in body["items"]] == ["submitted_late"]


def test_other_sites_and_unknown_things_are_not_found(client, doc, people):
    inv2, inv = people["inv2"], people["inv"]
    report, prompt = report_of(people["subject"]), prompt_of(people["subject"])
    assert check(doc, SAFETY, "get", client.get(BASE, headers=inv2)) and \
        client.get(BASE, headers=inv2).status_code == 404
    response = client.post(f"{BASE}/sae/{report.id}/submit", headers=inv2, json={})
    assert check(doc, REPORT + "/submit", "post", response) and response.status_code == 404
    response = client.post(f"{BASE}/prompts/{prompt.id}/decline", headers=inv2,
                           json={"reason": "x"})
    assert check(doc, PROMPT + "/decline", "post", response) and response.status_code == 404
    # the report of S01-001 seen through S02-001's address is not there either
    other = f"{STUDY}/subjects/S02-001/safety/sae/{report.id}"
    assert check(doc, REPORT, "get", client.get(other, headers=inv2)) and \
        client.get(other, headers=inv2).status_code == 404
    for report_id in (999999, HUGE):
        response = client.get(f"{BASE}/sae/{report_id}", headers=inv)
        assert check(doc, REPORT, "get", response) and response.status_code == 404
        response = client.post(f"{BASE}/sae/{report_id}/followup", headers=inv,
                               json={"awareness": "2025-06-12 10:00"})
        assert check(doc, REPORT + "/followup", "post", response)
        assert response.status_code == 404
        response = client.post(f"{BASE}/prompts/{report_id}/accept", headers=inv, json={})
        assert check(doc, PROMPT + "/accept", "post", response) and response.status_code == 404
    missing = client.get(f"{STUDY}/subjects/NOPE/safety", headers=inv)
    assert check(doc, SAFETY, "get", missing) and missing.status_code == 404
    long = client.get(f"{STUDY}/subjects/{'S01-001' * 20}/safety", headers=inv)
    assert check(doc, SAFETY, "get", long) and long.status_code == 404
    nul = client.get(f"{STUDY}/subjects/S01%00/safety", headers=inv)
    assert check(doc, SAFETY, "get", nul) and nul.status_code == 400
    assert check(doc, SAFETY, "get", client.get(BASE)).get("error")  # 401 without a token


# --- SAE reports --------------------------------------------------------------------------


def test_submit_and_follow_up_as_the_screen_does(client, doc, people):
    inv, crc = people["inv"], people["crc"]
    report = report_of(people["subject"])
    url = f"{BASE}/sae/{report.id}"
    refused = client.post(f"{url}/submit", headers=crc)
    assert check(doc, REPORT + "/submit", "post", refused) and refused.status_code == 403
    early = client.post(f"{url}/followup", headers=inv, json={"awareness": "2025-06-12 10:00"})
    body = check(doc, REPORT + "/followup", "post", early)
    assert early.status_code == 422 and "not submitted yet" in body["message"]
    done = client.post(f"{url}/submit", headers=inv)  # no body, as the screen's button
    body = check(doc, REPORT + "/submit", "post", done)
    assert done.status_code == 200 and body["clock"] == "submitted_late"
    assert body["submitted_at"] is not None and body["remaining_minutes"] is None
    again = client.post(f"{url}/submit", headers=inv, json={})
    body = check(doc, REPORT + "/submit", "post", again)
    assert again.status_code == 422 and "already submitted" in body["message"]

    for sent, field in (({}, "awareness"), ({"awareness": "tomorrow"}, "awareness"),
                        ({"awareness": 20250612}, "awareness"),
                        ({"awareness": "2025-06-12 10:00+02:00"}, "awareness"),
                        ({"awareness": "2025-06-12 10:00", "why": 1}, "why")):
        bad = client.post(f"{url}/followup", headers=inv, json=sent)
        body = check(doc, REPORT + "/followup", "post", bad)
        assert bad.status_code == 422 and field in body["errors"], sent
    future = client.post(f"{url}/followup", headers=inv, json={"awareness": "2099-01-01 10:00"})
    assert check(doc, REPORT + "/followup", "post", future) and future.status_code == 422
    good = client.post(f"{url}/followup", headers=inv, json={"awareness": "2025-06-12T10:00"})
    body = check(doc, REPORT + "/followup", "post", good)
    assert good.status_code == 201 and good.headers["Location"] == body["url"]
    assert (body["version"], body["initial_id"]) == (2, report.id)
    assert body["awareness_at"] == "2025-06-12T08:00:00Z"  # the site's zone, as on the screen
    state = check(doc, SAFETY, "get", client.get(BASE, headers=inv))
    initial = next(r for r in state["sae_reports"] if r["version"] == 1)
    assert initial["followup_ids"] == [body["id"]]
    rows = [r for r in audit_rows(subject_key="S01-001") if r.action.startswith("sae.")]
    assert [r.action for r in rows][-2:] == ["sae.submitted", "sae.followup_created"]
    assert all(r.username == "inv.s01" and r.site_code == "S01" for r in rows[-2:])


def test_open_a_report_on_a_serious_row(client, doc, people):
    crc, subject = people["crc"], people["subject"]
    # a serious row saved without the safety reactions (as by an import): no report yet
    opened = capture.load_form(db.session, subject, "AE_LOG", 1, "AE", today=TODAY)
    with form_saved.muted():
        saved = capture.save_form(
            db.session, people["crc_actor"], subject, "AE_LOG", 1, "AE", capture.Submission(
                values=ae_row(2, AETERM="Sepsis", AESTDTC="2025-06-11", AETOXGR="4",
                              AESER="Y", AESHOSP="Y"), partial=True),
            base_version=opened.version, complete=False, today=TODAY)
    assert saved.saved
    db.session.commit()
    known = {r.id for r in db.session.scalars(select(SaeReport))}
    url = f"{BASE}/sae"
    for sent, field in (({"awareness": "2025-06-11 09:00"}, "row"),
                        ({"row": "2", "awareness": "2025-06-11 09:00"}, "row"),
                        ({"row": True, "awareness": "2025-06-11 09:00"}, "row"),
                        ({"row": HUGE, "awareness": "2025-06-11 09:00"}, "row"),
                        ({"row": 2}, "awareness"), ({"row": 2, "awareness": ""}, "awareness"),
                        ({"row": 2, "awareness": "11/06/2025 09:00"}, "awareness")):
        bad = client.post(url, headers=crc, json=sent)
        body = check(doc, SAFETY + "/sae", "post", bad)
        assert bad.status_code == 422 and field in body["errors"], sent
    for row, why in ((9, "there is no AE row 9"), (1, "already has an SAE report")):
        refused = client.post(url, headers=crc, json={"row": row, "awareness": "2025-06-11 09:00"})
        body = check(doc, SAFETY + "/sae", "post", refused)
        assert refused.status_code == 422 and why in body["message"]
    nul = client.post(url, headers=crc, json={"row": 2, "awareness": "2025-06-11\x0009:00"})
    assert check(doc, SAFETY + "/sae", "post", nul) and nul.status_code == 400
    wrong = client.post(url, headers=crc, data="row=2", content_type="text/plain")
    assert check(doc, SAFETY + "/sae", "post", wrong) and wrong.status_code == 415
    broken = client.post(url, headers=crc, data="{", content_type="application/json")
    assert check(doc, SAFETY + "/sae", "post", broken) and broken.status_code == 400
    assert {r.id for r in db.session.scalars(select(SaeReport))} == known

    created = client.post(url, headers=crc, json={"row": 2, "awareness": "2025-06-11 09:00"})
    body = check(doc, SAFETY + "/sae", "post", created)
    assert created.status_code == 201, body
    assert created.headers["Location"] == body["url"]
    assert (body["row"], body["version"], body["term"], body["awareness_source"]) == \
        (2, 1, "Sepsis", "manual")
    assert body["awareness_at"] == "2025-06-11T07:00:00Z"
    assert len(body["notifications"]) == 1
    row = audit_rows(action="sae.created")[-1]
    assert (row.username, row.role, row.reason) == \
        ("crc.s01", "coordinator", "opened from the safety page")


# --- AE prompts ---------------------------------------------------------------------------


def test_decline_needs_a_reason_and_an_assessor(client, doc, people):
    prompt = prompt_of(people["subject"])
    url = f"{BASE}/prompts/{prompt.id}/decline"
    refused = client.post(url, headers=people["crc"], json={"reason": "Expected nadir"})
    assert check(doc, PROMPT + "/decline", "post", refused) and refused.status_code == 403
    inv = people["inv"]
    for sent in ({}, {"reason": "   "}, {"reason": None}, {"reason": 5},
                 {"reason": "x" * 5000}):
        bad = client.post(url, headers=inv, json=sent)
        body = check(doc, PROMPT + "/decline", "post", bad)
        assert bad.status_code == 422 and "reason" in body["errors"], sent
    nul = client.post(url, headers=inv, json={"reason": "a\x00b"})
    assert check(doc, PROMPT + "/decline", "post", nul) and nul.status_code == 400
    db.session.refresh(prompt)
    assert prompt.status == "open" and actions("ae_prompt.declined") == []
    done = client.post(url, headers=inv, json={"reason": "Expected nadir"})
    body = check(doc, PROMPT + "/decline", "post", done)
    assert (body["status"], body["reason"]) == ("declined", "Expected nadir")
    again = client.post(url, headers=inv, json={"reason": "again"})
    body = check(doc, PROMPT + "/decline", "post", again)
    assert again.status_code == 422 and "already declined" in body["message"]
    [row] = audit_rows(action="ae_prompt.declined")
    assert (row.username, row.role, row.site_code, row.reason) == \
        ("inv.s01", "investigator", "S01", "Expected nadir")


def test_a_coordinator_records_the_suggested_ae(client, doc, people):
    prompt = prompt_of(people["subject"])
    url = f"{BASE}/prompts/{prompt.id}/accept"
    for sent in ({"link_row": "1"}, {"link_row": 0}, {"row": 1}):
        bad = client.post(url, headers=people["crc"], json=sent)
        assert check(doc, PROMPT + "/accept", "post", bad) and bad.status_code == 422
    missing = client.post(url, headers=people["crc"], json={"link_row": 9})
    body = check(doc, PROMPT + "/accept", "post", missing)
    assert missing.status_code == 422 and "no AE row 9" in body["message"]
    refused = client.post(url, headers=people["mon"], json={})
    assert check(doc, PROMPT + "/accept", "post", refused) and refused.status_code == 403
    done = client.post(url, headers=people["crc"])
    body = check(doc, PROMPT + "/accept", "post", done)
    assert (body["status"], body["ae_row"]) == ("accepted", 2)
    assert actions("ae_prompt.accepted") == ["ae_prompt.accepted"]
    state = check(doc, SAFETY, "get", client.get(BASE, headers=people["crc"]))
    assert [r["term"] for r in state["ae_rows"]] == ["Pneumonia", "Neutrophil count decreased"]


def test_link_an_existing_ae_row(client, doc, people):
    prompt = prompt_of(people["subject"])
    done = client.post(f"{BASE}/prompts/{prompt.id}/accept", headers=people["inv"],
                       json={"link_row": 1})
    body = check(doc, PROMPT + "/accept", "post", done)
    assert (body["status"], body["ae_row"], body["reason"]) == \
        ("accepted", 1, "linked to AE row 1")


# --- notifications ------------------------------------------------------------------------


def test_only_a_data_manager_retries_a_notification(client, doc, people):
    entry = db.session.scalar(select(NotificationLog))
    job = db.session.get(Job, entry.job_id)
    job.status, job.attempts, entry.error = "failed", 1, "Connection refused"
    db.session.commit()
    url = f"{STUDY}/safety/notifications/{entry.id}/retry"
    for who in ("inv", "crc", "mon"):
        refused = client.post(url, headers=people[who])
        assert check(doc, RETRY, "post", refused) and refused.status_code == 403, who
    for entry_id in (999999, HUGE):
        response = client.post(f"{STUDY}/safety/notifications/{entry_id}/retry",
                               headers=people["dm"])
        assert check(doc, RETRY, "post", response) and response.status_code == 404
    extra = client.post(url, headers=people["dm"], json={"now": True})
    assert check(doc, RETRY, "post", extra) and extra.status_code == 422
    done = client.post(url, headers=people["dm"])
    body = check(doc, RETRY, "post", done)
    assert (body["id"], body["job_id"], body["state"]) == (entry.id, job.id, "retrying")
    assert body["next_attempt"] is not None and body["attempts"] == 1
    assert db.session.get(Job, job.id).status == "queued"
    [row] = audit_rows(action="notification.retry")
    assert (row.username, row.study_oid, row.old_value) == \
        ("dm.safety", "SAFETY", "Connection refused")
    entry = db.session.get(NotificationLog, entry.id)
    entry.sent_at = dt.datetime(2025, 6, 11, tzinfo=dt.UTC)
    db.session.commit()
    late = client.post(url, headers=people["dm"], json={})
    body = check(doc, RETRY, "post", late)
    assert late.status_code == 422 and "already delivered" in body["message"]


def test_the_data_manager_lists_failed_and_retrying_notifications(client, doc, people):
    listing = "/studies/{study_oid}/safety/notifications"
    url = f"{STUDY}/safety/notifications"
    empty = check(doc, listing, "get", client.get(url, headers=people["dm"]))
    assert (empty["items"], empty["failed"], empty["retrying"], empty["pending"]) == \
        ([], 0, 0, 1)
    entry = db.session.scalar(select(NotificationLog))
    job = db.session.get(Job, entry.job_id)
    job.status, job.attempts, entry.error = "failed", 3, "Connection refused"
    db.session.commit()
    failed = check(doc, listing, "get", client.get(url, headers=people["dm"]))
    [row] = failed["items"]
    assert (row["id"], row["state"], row["attempts"], row["error"], row["job_id"]) == \
        (entry.id, "failed", 3, "Connection refused", job.id)
    assert row["subject_key"] == people["subject"].subject_key
    assert (failed["failed"], failed["retrying"], failed["total"]) == (1, 0, 1)
    only = check(doc, listing, "get",
                 client.get(f"{url}?state=retrying", headers=people["dm"]))
    assert only["items"] == [] and only["total"] == 0
    client.post(f"{url}/{entry.id}/retry", headers=people["dm"])
    retrying = check(doc, listing, "get",
                     client.get(f"{url}?state=retrying", headers=people["dm"]))
    assert [r["state"] for r in retrying["items"]] == ["retrying"]
    bad = client.get(f"{url}?state=sent", headers=people["dm"])
    assert check(doc, listing, "get", bad) and bad.status_code == 400
    for who in ("inv", "crc", "mon"):
        refused = client.get(url, headers=people[who])
        assert check(doc, listing, "get", refused) and refused.status_code == 403, who


# --- locks --------------------------------------------------------------------------------


def test_a_locked_subject_refuses_the_decisions_that_write_data(client, doc, people):
    dm = Actor(user_id=None, username="dm.setup", role="data_manager")
    locks.lock_subject(db.session, dm, people["subject"], "ready for analysis")
    db.session.commit()
    prompt = prompt_of(people["subject"])
    response = client.post(f"{BASE}/prompts/{prompt.id}/accept", headers=people["crc"])
    body = check(doc, PROMPT + "/accept", "post", response)
    assert response.status_code == 423, body
    db.session.refresh(prompt)
    assert prompt.status == "open"
    # SAE reporting is not data entry: it goes on for a locked subject, as on the screen
    report = report_of(people["subject"])
    done = client.post(f"{BASE}/sae/{report.id}/submit", headers=people["inv"])
    assert check(doc, REPORT + "/submit", "post", done)["clock"] == "submitted_late"
    declined = client.post(f"{BASE}/prompts/{prompt.id}/decline", headers=people["inv"],
                           json={"reason": "Expected nadir"})
    assert check(doc, PROMPT + "/decline", "post", declined)["status"] == "declined"


def test_the_screen_also_refuses_a_locked_subject_without_an_error_page(client, people,
                                                                         login_as):
    dm = Actor(user_id=None, username="dm.setup", role="data_manager")
    locks.lock_subject(db.session, dm, people["subject"], "ready for analysis")
    db.session.commit()
    prompt = prompt_of(people["subject"])
    login_as("coordinator", "S01", study="SAFETY")
    response = client.post(f"/studies/SAFETY/subjects/S01-001/safety/prompts/{prompt.id}"
                           f"/accept", data={})
    assert response.status_code == 423
    assert "locked" in response.get_data(as_text=True).lower()
    db.session.refresh(prompt)
    assert prompt.status == "open"
