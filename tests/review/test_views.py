"""Review screens: queries, SDV, signatures and locks through the web, and who may do what."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ecrf.accounts.models import User
from ecrf.capture.models import ItemValue
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.review import queries
from ecrf.review.models import Lock, Query, Signature
from tests.capture.capture_setup import actor_for
from tests.conftest import sign_in
from tests.review.review_setup import (
    demog,
    load_review_study,
    save,
    start,
    subject_at,
    vitals,
)

BASE = "/studies/REVIEW"
S1 = BASE + "/subjects/S01-001"
VITALS = S1 + "/events/SCREEN/1/forms/VITALS"
WEIGHT = ("VS", 1, "WEIGHT")
ON_WEIGHT = {"subject": "S01-001", "event": "SCREEN", "repeat": "1", "form": "VITALS",
             "group": "VS", "row": "1", "item": "WEIGHT"}


@pytest.fixture
def world(app, make_study, make_user):
    """REVIEW with a complete screening visit at S01 and a subject at S02; one user per role."""
    study = load_review_study(make_study)
    users = {
        "crc1": make_user("crc1", role="coordinator", study="REVIEW", site="S01",
                          full_name="Clara Coord"),
        "inv1": make_user("inv1", role="investigator", study="REVIEW", site="S01",
                          full_name="Dr Ines Martin"),
        "inv2": make_user("inv2", role="investigator", study="REVIEW", site="S02"),
        "mon1": make_user("mon1", role="monitor", study="REVIEW", site="S01"),
        "dm1": make_user("dm1", role="data_manager", study="REVIEW"),
        "sv1": make_user("sv1", role="sponsor_viewer", study="REVIEW"),
    }
    crc = actor_for(users["crc1"])
    subject = subject_at(study, "S01-001")
    start(crc, subject)
    assert save(crc, subject, complete=True).status == "complete"
    assert save(crc, subject, "DEMOG", demog(), complete=True).status == "complete"
    other = subject_at(study, "S02-001", "S02")
    crc2 = actor_for(None, site="S02")
    start(crc2, other)
    save(crc2, other)
    return {"study": study, "subject": subject, "other": other, "users": users, "crc": crc}


def as_user(app, username: str):
    client = app.test_client()
    response = sign_in(client, username)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client


def stored_weight(subject) -> str:
    return db.session.scalar(select(ItemValue.value).where(
        ItemValue.subject_id == subject.id, ItemValue.item_oid == "WEIGHT"))


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


# --- queries --------------------------------------------------------------------------------


@pytest.mark.usefixtures("wired_capture")
def test_raise_answer_with_correction_and_close(app, world):
    monitor, crc = as_user(app, "mon1"), as_user(app, "crc1")
    review = page(monitor.get(VITALS + "/review"))
    assert "Raise a query" in review and "72.5 kg" in review

    response = monitor.post(BASE + "/queries/new",
                            data={**ON_WEIGHT, "text": "Source says 75.2 kg"})
    assert response.status_code == 302
    query = db.session.scalar(select(Query))
    assert response.headers["Location"].endswith(f"/queries/{query.id}")
    assert f"#{query.id}" in page(crc.get(BASE + "/queries"))

    response = crc.post(BASE + f"/queries/{query.id}/answer",
                        data={"text": "Transcription error", "value": "75.2",
                              "reason": "transcription error"})
    assert response.status_code == 302
    assert stored_weight(world["subject"]) == "75.2"
    thread = page(crc.get(BASE + f"/queries/{query.id}"))
    assert "Transcription error" in thread and "Correction, audit row" in thread
    link = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "query.correction_linked"))
    assert json.loads(link.details)["query_id"] == query.id

    response = monitor.post(BASE + f"/queries/{query.id}/close", data={"text": "Thanks"})
    assert response.status_code == 302
    db.session.refresh(query)
    assert query.status == "closed"
    response = monitor.post(BASE + f"/queries/{query.id}/reopen", data={"text": ""})
    assert response.status_code == 422
    assert "Say why the query is reopened." in response.get_data(as_text=True)


@pytest.mark.usefixtures("wired_capture")
def test_refused_answers_rerender_with_what_was_typed(app, world):
    monitor, crc = as_user(app, "mon1"), as_user(app, "crc1")
    monitor.post(BASE + "/queries/new", data={**ON_WEIGHT, "text": "Check"})
    query = db.session.scalar(select(Query))
    response = crc.post(BASE + f"/queries/{query.id}/answer",
                        data={"text": "Fixed", "value": "9999", "reason": "typo"})
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert 'value="9999"' in text and "Fixed</textarea>" in text
    assert "300" in text  # the range in capture's message
    assert stored_weight(world["subject"]) == "72.5"
    db.session.refresh(query)
    assert query.status == "open" and len(query.messages) == 1

    response = monitor.post(BASE + "/queries/new", data={**ON_WEIGHT, "text": "  "})
    assert response.status_code == 422
    assert "Write the question of the query." in response.get_data(as_text=True)


def test_query_list_filters(app, world):
    monitor_user = world["users"]["mon1"]
    lead = actor_for(monitor_user, "monitor")
    first = queries.raise_query(db.session, lead, world["subject"], "First",
                                target=queries.QueryTarget("SCREEN", 1, "VITALS"),
                                assignee=world["users"]["crc1"])
    queries.raise_query(db.session, lead, world["subject"], "Second")
    db.session.commit()
    client = as_user(app, "crc1")
    mine = page(client.get(BASE + "/queries?assignee=me"))
    assert "First" in mine and "Second" not in mine
    assert "Second" in page(client.get(BASE + "/queries?assignee=none"))
    assert "No query matches" in page(client.get(BASE + "/queries?status=closed"))
    assert "First" in page(client.get(BASE + "/queries?site=S01&age=&status=all"))
    assert first.id


# --- permissions -------------------------------------------------------------------------------


def test_permission_matrix_of_review_routes(app, world):
    monitor, crc, inv2, sponsor = (as_user(app, u) for u in ("mon1", "crc1", "inv2", "sv1"))
    form_data = {"base_version": "1", "action": "save"}
    assert monitor.post(VITALS, data=form_data).status_code == 403, "monitors cannot edit"
    assert crc.get(S1 + "/sign?scope=casebook").status_code == 403, "coordinators cannot sign"
    assert crc.post(BASE + "/queries/new", data={**ON_WEIGHT, "text": "x"}).status_code == 403
    assert crc.post(VITALS + "/review/sdv", data={"action": "verify_form"}).status_code == 403
    assert crc.post(VITALS + "/review/lock", data={}).status_code == 403
    assert monitor.post(BASE + "/locks/study", data={}).status_code == 403
    # Investigators sign only at their own sites: another site's subject is not found.
    assert inv2.get(S1 + "/sign?scope=casebook").status_code == 404
    assert inv2.get(VITALS + "/review").status_code == 404
    # Sponsor viewers see no subject-level page at all.
    for url in (BASE + "/queries", S1 + "/review", VITALS + "/review", BASE + "/sdv"):
        assert sponsor.get(url).status_code == 403, url
    board = page(sponsor.get(BASE + "/dashboard"))
    assert "S01-001" not in board and "S02-001" not in board
    query = queries.raise_query(db.session, actor_for(world["users"]["dm1"], "data_manager"),
                                world["other"], "At S02")
    db.session.commit()
    assert monitor.get(BASE + f"/queries/{query.id}").status_code == 404, "other site"
    assert monitor.post(BASE + f"/queries/{query.id}/answer",
                        data={"text": "x"}).status_code == 403


# --- SDV -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("wired_capture")
def test_sdv_through_the_review_page_and_reset_on_change(app, world):
    monitor = as_user(app, "mon1")
    response = monitor.post(VITALS + "/review/sdv", data={"action": "verify",
                                                          "item": "VS:1:WEIGHT"})
    assert response.status_code == 302
    text = page(monitor.get(VITALS + "/review"))
    assert "1 of 3 item(s) verified" in text and "sdv-verified" in text
    save(world["crc"], world["subject"], values=vitals(WEIGHT="74.0"),
         reasons={WEIGHT: "rescaled"}, complete=True)
    text = page(monitor.get(VITALS + "/review"))
    assert "0 of 3 item(s) verified" in text
    assert "Verification reset" in text and "value changed from 72.5 to 74.0" in text
    response = monitor.post(VITALS + "/review/sdv", data={"action": "verify"})
    assert response.status_code == 422
    assert "Select the items to verify" in response.get_data(as_text=True)
    assert monitor.post(VITALS + "/review/sdv",
                        data={"action": "verify_form"}).status_code == 302
    assert "3 of 3 item(s) verified" in page(monitor.get(VITALS + "/review"))
    progress = page(monitor.get(BASE + "/sdv"))
    assert "S01-001" in progress and "S02-001" not in progress


# --- signatures ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("wired_capture")
def test_signing_needs_user_id_first_then_password_and_breaks_on_change(app, world):
    inv = as_user(app, "inv1")
    url = S1 + "/sign?scope=form&event=SCREEN&repeat=1&form=VITALS"
    assert 'name="username"' in page(inv.get(url))
    target = {"scope": "form", "event": "SCREEN", "repeat": "1", "form": "VITALS",
              "meaning": "approval"}
    response = inv.post(S1 + "/sign", data={**target, "username": "inv1", "password": "nope"})
    assert response.status_code == 422
    assert "nothing was signed" in response.get_data(as_text=True)
    failed = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "signature.failed"))
    assert failed is not None and failed.username == "inv1"
    response = inv.post(S1 + "/sign", data={**target, "username": "inv1",
                                            "password": "Correct-Horse-42"})
    assert response.status_code == 302
    text = page(inv.get(VITALS + "/review"))
    assert "Dr Ines Martin" in text and " UTC" in text
    assert "Approved: I have reviewed this data and confirm it is accurate" in text
    # Same session: the password alone signs.
    assert 'name="username"' not in page(inv.get(S1 + "/sign?scope=casebook"))
    response = inv.post(S1 + "/sign", data={"scope": "casebook", "meaning": "review",
                                            "password": "Correct-Horse-42"})
    assert response.status_code == 302
    assert db.session.query(Signature).count() == 2

    save(world["crc"], world["subject"], values=vitals(WEIGHT="80.0"),
         reasons={WEIGHT: "re-weighed"}, complete=True)
    text = page(inv.get(VITALS + "/review"))
    assert "signature-broken" in text and "it must be signed again" in text
    board = page(inv.get(BASE + "/dashboard"))
    assert "Signatures to redo" in board


def test_a_new_login_session_asks_for_the_user_id_again(app, world):
    first = as_user(app, "inv1")
    first.post(S1 + "/sign", data={"scope": "casebook", "meaning": "approval",
                                   "username": "inv1", "password": "Correct-Horse-42"})
    assert db.session.query(Signature).count() == 1
    again = as_user(app, "inv1")
    assert 'name="username"' in page(again.get(S1 + "/sign?scope=casebook"))


def test_repeated_wrong_passwords_lock_the_account_and_sign_out(app, world):
    inv = as_user(app, "inv1")
    data = {"scope": "casebook", "meaning": "approval", "username": "inv1"}
    for attempt in range(4):
        assert inv.post(S1 + "/sign", data={**data, "password": f"x{attempt}"}).status_code == 422
    response = inv.post(S1 + "/sign", data={**data, "password": "x5"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    user = db.session.scalar(select(User).where(User.username == "inv1"))
    assert user.locked_until is not None
    assert inv.get(BASE + "/dashboard").status_code == 302  # signed out


def test_incomplete_data_shows_why_it_cannot_be_signed(app, world):
    inv2 = as_user(app, "inv2")
    text = page(inv2.get(BASE + "/subjects/S02-001/sign?scope=form&event=SCREEN&repeat=1"
                         "&form=VITALS"))
    assert "This cannot be signed yet" in text and "not complete" in text
    assert 'name="password"' not in text


# --- locks ----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("wired_capture")
def test_locked_form_refuses_changes_on_the_entry_screen(app, world):
    dm, crc = as_user(app, "dm1"), as_user(app, "crc1")
    response = dm.post(VITALS + "/review/lock", data={"action": "lock",
                                                      "reason": "cleaned"})
    assert response.status_code == 302
    assert "is locked" in page(crc.get(VITALS + "/review"))
    form_page = page(crc.get(VITALS))
    # The entry screen is read-only, says who locked it and when, and offers no Save.
    assert 'id="lock-banner"' in form_page and "This form is locked" in form_page
    assert "Form VITALS of S01-001 at SCREEN[1] is locked (by dm1" in form_page
    assert 'value="save"' not in form_page and 'name="base_version"' not in form_page
    # A save posted from a page opened before the lock keeps what was typed, disabled.
    response = crc.post(VITALS, data={
        "base_version": "1", "action": "save", "VS-1-VSDT": "2025-05-02",
        "VS-1-WEIGHT": "90.0", "VS-1-SYSBP": "120", "reason-VS-1-WEIGHT": "typo"})
    assert response.status_code == 423
    text = response.get_data(as_text=True)
    assert "Form VITALS of S01-001 at SCREEN[1] is locked" in text, text[:3000]
    assert 'value="90.0"' in text and 'value="typo"' in text
    assert "<fieldset disabled>" in text and 'value="save"' not in text.split(
        "<fieldset disabled>")[1]
    assert stored_weight(world["subject"]) == "72.5"

    response = dm.post(VITALS + "/review/lock", data={"action": "unlock", "reason": ""})
    assert response.status_code == 422
    assert "Give the reason for unlocking." in response.get_data(as_text=True)
    assert dm.post(VITALS + "/review/lock", data={"action": "unlock",
                                                  "reason": "query"}).status_code == 302
    assert db.session.scalar(select(Lock)).unlocked_by == "dm1"


@pytest.mark.usefixtures("wired_capture")
def test_study_freeze_subject_and_site_locks_from_the_locks_page(app, world):
    dm = as_user(app, "dm1")
    text = page(dm.get(BASE + "/locks"))
    assert "Freeze (no data entry" in text
    response = dm.post(BASE + "/locks/study", data={"transition": "freeze", "reason": ""})
    assert response.status_code == 422
    assert dm.post(BASE + "/locks/study", data={"transition": "freeze",
                                                "reason": "DSMB"}).status_code == 302
    db.session.refresh(world["study"])
    assert world["study"].status == "frozen"
    with pytest.raises(Exception, match="frozen"):
        save(world["crc"], world["subject"], values=vitals(NOTES="x"), commit=False)
    db.session.rollback()
    dm.post(BASE + "/locks/study", data={"transition": "unfreeze", "reason": "done"})
    assert dm.post(BASE + "/locks/site", data={"site": "S02", "reason": "closed"}
                   ).status_code == 302
    assert dm.post(S1 + "/lock", data={"action": "lock"}).status_code == 302
    text = page(dm.get(BASE + "/locks"))
    assert "Site S02 is locked" in text and "Subject S01-001 is locked" in text
    lock = db.session.scalar(select(Lock).where(Lock.scope == "site"))
    response = dm.post(BASE + f"/locks/{lock.id}/unlock", data={"reason": ""})
    assert response.status_code == 422
    assert dm.post(BASE + f"/locks/{lock.id}/unlock", data={"reason": "reopened"}
                   ).status_code == 302
    assert "Site S02 is locked" not in page(dm.get(BASE + "/locks"))


def test_subject_review_summarises_forms(app, world):
    text = page(as_user(app, "mon1").get(S1 + "/review"))
    assert "Vital signs" in text and "Demography" in text and "0/3" in text
