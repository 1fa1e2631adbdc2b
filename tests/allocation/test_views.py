"""Allocation through the app: randomizing (also 50 requests at once), concealment of the
lists, undo by an admin, the escalation board with signed decisions, and the CLI."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from ecrf.accounts.models import User as UserModel
from ecrf.allocation.models import Allocation, EscalationDecision, RandomizationSlot
from ecrf.capture.models import Subject
from ecrf.core.audit import reconcile
from ecrf.core.audit import trail as audit
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from tests.allocation.test_escalation import cohort
from tests.allocation.test_randomization import ACTOR, add_subject, generate, load, make_eligible
from tests.conftest import PASSWORD, sign_in

RAND_URL = "/studies/ALLOCR/subjects/{key}/randomize"


@pytest.fixture
def web_study(app, make_site, make_study):
    make_site("S01")
    make_site("S02", timezone="Asia/Shanghai")
    study = load("allocation_randomized")
    make_study("ALLOCR", sites=("S01", "S02"))
    return study


@pytest.fixture
def study33(app, make_site, make_study):
    make_site("S01")
    study = load("allocation_3p3")
    make_study("ALLOC33", sites=("S01",))
    return study


def login(client, make_user, role, *, study="ALLOCR", site=None, username=None):
    user = make_user(username, role=role, study=study, site=site)
    assert sign_in(client, user.username).status_code == 302
    return user


# --- randomizing ----------------------------------------------------------------------------


def test_a_coordinator_sees_the_checks_and_randomizes(client, make_user, web_study):
    generate(web_study, seed="77")
    subject = make_eligible(add_subject(web_study, "P-001"))
    db.session.commit()
    login(client, make_user, "coordinator", site="S01")
    page = client.get(RAND_URL.format(key="P-001")).get_data(as_text=True)
    assert "Checks before randomization" in page and "eligible (ELIG.ELIGIBLE = Y" in page
    assert "consent given on" in page and '<button class="btn btn-primary" type="submit" >' \
        in page
    response = client.post(RAND_URL.format(key="P-001"))
    assert response.status_code == 302
    db.session.refresh(subject)
    page = client.get(RAND_URL.format(key="P-001")).get_data(as_text=True)
    assert "Allocated arm:" in page and f"<strong>{subject.arm}</strong>" in page
    assert "Sequence" not in page and "block" not in page.lower()
    allocation = db.session.scalar(select(Allocation).where(Allocation.subject_id == subject.id))
    assert allocation.allocated_role == "coordinator" and allocation.sequence == 1


def test_a_refusal_is_shown_with_its_reason_and_nothing_is_allocated(client, make_user,
                                                                     web_study):
    generate(web_study)
    make_eligible(add_subject(web_study, "P-002"), eligible="N")
    db.session.commit()
    login(client, make_user, "investigator", site="S01")
    page = client.get(RAND_URL.format(key="P-002")).get_data(as_text=True)
    assert "not met" in page and "disabled" in page
    response = client.post(RAND_URL.format(key="P-002"))
    assert response.status_code == 409
    assert "the subject is not eligible (ELIG.ELIGIBLE = N)" in response.get_data(as_text=True)
    assert db.session.scalar(select(Allocation)) is None


def test_an_investigator_at_another_site_cannot_randomize(client, make_user, web_study):
    generate(web_study)
    subject = make_eligible(add_subject(web_study, "P-003", site="S01"))
    db.session.commit()
    login(client, make_user, "investigator", site="S02")
    # A subject of another site is not there for this user, like one that does not exist.
    assert client.get(RAND_URL.format(key="P-003")).status_code == 404
    assert client.post(RAND_URL.format(key="P-003")).status_code == 404
    assert client.get(RAND_URL.format(key="NOPE")).status_code == 404
    db.session.refresh(subject)
    assert subject.arm is None


@pytest.mark.parametrize("role, site", [("monitor", "S01"), ("sponsor_viewer", None),
                                        ("data_manager", None)])
def test_roles_without_randomize_cannot_post(client, make_user, web_study, role, site):
    generate(web_study)
    make_eligible(add_subject(web_study, "P-004"))
    db.session.commit()
    login(client, make_user, role, site=site)
    assert client.post(RAND_URL.format(key="P-004")).status_code == 403


@pytest.mark.parametrize("role, site", [("coordinator", "S01"), ("investigator", "S01"),
                                        ("monitor", "S01"), ("monitor", None),
                                        ("sponsor_viewer", None), ("admin", None)])
def test_no_one_but_the_data_manager_sees_the_lists(client, make_user, web_study, role, site):
    rlist = generate(web_study, seed="hidden-seed")
    login(client, make_user, role, site=site)
    assert client.get("/studies/ALLOCR/randomization").status_code == 403
    assert client.get(f"/studies/ALLOCR/randomization/lists/{rlist.id}").status_code == 403


def test_the_data_manager_sees_lists_balance_and_every_slot(client, make_user, web_study):
    rlist = generate(web_study, seed="dm-seed-5")
    subject = make_eligible(add_subject(web_study, "P-005"))
    from ecrf.allocation import randomization

    randomization.randomize(db.session, ACTOR, subject)
    db.session.commit()
    login(client, make_user, "data_manager")
    page = client.get("/studies/ALLOCR/randomization").get_data(as_text=True)
    assert "dm-seed-5" in page and "age=LT60|status=REL" in page and "2,4" in page
    detail = client.get(f"/studies/ALLOCR/randomization/lists/{rlist.id}")
    assert detail.status_code == 200 and "P-005" in detail.get_data(as_text=True)
    assert client.get("/studies/ALLOCR/randomization/lists/999").status_code == 404


def test_undo_by_an_admin_keeps_the_original_visible(client, make_user, web_study):
    generate(web_study)
    subject = make_eligible(add_subject(web_study, "P-006"))
    db.session.commit()
    coordinator = make_user("crc.undo", role="coordinator", study="ALLOCR", site="S01")
    assert sign_in(client, coordinator.username).status_code == 302
    assert client.post(RAND_URL.format(key="P-006")).status_code == 302
    undo_url = "/studies/ALLOCR/subjects/P-006/randomization/undo"
    assert client.post(undo_url, data={"reason": "mine"}).status_code == 403
    client.post("/logout")
    login(client, make_user, "admin", username="root")
    missing = client.post(undo_url, data={"reason": ""})
    assert missing.status_code == 200 and "This field is required" in missing.get_data(
        as_text=True)
    response = client.post(undo_url, data={"reason": "wrong screening number"})
    assert response.status_code == 302
    page = client.get(undo_url).get_data(as_text=True)
    assert "undone" in page and "wrong screening number" in page
    db.session.refresh(subject)
    assert subject.arm is None
    allocation = db.session.scalar(select(Allocation))
    assert allocation.undone_by == "root"
    assert db.session.get(RandomizationSlot, allocation.slot_id).subject_id == subject.id


def test_a_training_instance_allocates_from_the_test_list(app_factory, make_site, make_user):
    test_app = app_factory(RANDOMIZATION_KIND="test")
    with test_app.app_context():
        make_site("S01")
        study = load("allocation_randomized")
        generate(study, kind="test")
        make_eligible(add_subject(study, "T-1"))
        db.session.commit()
        user = make_user("crc.train", role="coordinator", study="ALLOCR", site="S01")
        client = test_app.test_client()
        assert sign_in(client, user.username).status_code == 302
        page = client.get(RAND_URL.format(key="T-1")).get_data(as_text=True)
        assert "Training mode" in page
        assert client.post(RAND_URL.format(key="T-1")).status_code == 302
        allocation = db.session.scalar(select(Allocation))
        assert allocation.randomization_list.kind == "test"


# --- concurrency ----------------------------------------------------------------------------

N_CONCURRENT = 50


def test_fifty_simultaneous_randomizations_take_slots_one_to_fifty(app, make_user, web_study):
    """Each thread has its own client (its own app context, session and connection); a
    barrier releases them together. Runs on PostgreSQL when ECRF_TEST_DATABASE_URL is set,
    on a SQLite file otherwise."""
    rlist = generate(web_study, per_stratum=N_CONCURRENT)
    keys = [f"C-{i:03d}" for i in range(N_CONCURRENT)]
    for key in keys:
        make_eligible(add_subject(web_study, key))
    db.session.commit()
    user = make_user("crc.rush", role="coordinator", study="ALLOCR", site="S01")
    clients = []
    for _ in keys:
        client = app.test_client()
        assert sign_in(client, user.username).status_code == 302
        clients.append(client)
    db.session.commit()
    barrier = threading.Barrier(N_CONCURRENT)
    results: dict[str, object] = {}

    def run(client, key):
        barrier.wait()
        try:
            results[key] = client.post(RAND_URL.format(key=key)).status_code
        except Exception as exc:  # reported below with the subject key
            results[key] = repr(exc)

    threads = [threading.Thread(target=run, args=pair) for pair in zip(clients, keys,
                                                                        strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == dict.fromkeys(keys, 302)
    db.session.expire_all()
    allocations = db.session.scalars(select(Allocation).where(
        Allocation.list_id == rlist.id)).all()
    assert sorted(a.sequence for a in allocations) == list(range(1, N_CONCURRENT + 1))
    assert len({a.subject_id for a in allocations}) == N_CONCURRENT
    slots = {s.id: s for s in db.session.scalars(select(RandomizationSlot).where(
        RandomizationSlot.list_id == rlist.id))}
    for allocation in allocations:
        slot = slots[allocation.slot_id]
        assert slot.subject_id == allocation.subject_id and slot.arm == allocation.arm
        assert slot.sequence == allocation.sequence
    used = sorted(s.sequence for s in slots.values() if s.subject_id is not None)
    assert used == list(range(1, N_CONCURRENT + 1))
    arms = dict(db.session.execute(select(Subject.id, Subject.arm)).all())
    assert all(arms[a.subject_id] == a.arm for a in allocations)
    assert audit.verify_chain(db.session).ok
    found = reconcile(db.session)  # concurrent allocations, each audited
    assert found.checked["arms"] == N_CONCURRENT and found.mismatches["arms"] == 0


# --- escalation -----------------------------------------------------------------------------

BOARD = "/studies/ALLOC33/escalation"


def test_the_board_shows_levels_subjects_and_the_proposal(client, make_user, study33):
    cohort(study33, "E1")
    login(client, make_user, "monitor", study="ALLOC33", site="S01")
    page = client.get(BOARD).get_data(as_text=True)
    assert "Dose level 1" in page and "E1-0" in page and "evaluable" in page
    assert "escalate" in page and "escalate to level 2" in page
    assert "Record a decision" not in page  # monitors see, they do not decide


def test_a_sponsor_sees_counts_but_no_subject_keys(client, make_user, study33):
    cohort(study33, "E1")
    login(client, make_user, "sponsor_viewer", study="ALLOC33")
    page = client.get(BOARD).get_data(as_text=True)
    assert "E1-0" not in page and "(other site)" in page


def test_a_decision_is_signed_with_the_password_and_a_wrong_one_counts(client, make_user,
                                                                       study33):
    cohort(study33, "E1")
    user = login(client, make_user, "data_manager", study="ALLOC33")
    page = client.get(BOARD).get_data(as_text=True)
    assert '<option selected value="escalate">' in page and "Sign and record" in page
    wrong = client.post(f"{BOARD}/decide", data={"action": "escalate", "reason": "0/3",
                                                 "password": "wrong-password"})
    assert wrong.status_code == 400
    text = wrong.get_data(as_text=True)
    assert "The password is not correct" in text and "0/3" in text  # the entry is kept
    assert db.session.get(UserModel, user.id).failed_logins == 1
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "signature.failed",
                                                      AuditEvent.user_id == user.id))
    assert db.session.scalar(select(EscalationDecision)) is None
    mtd = client.post(f"{BOARD}/decide", data={"action": "declare_mtd", "reason": "x",
                                               "password": PASSWORD})
    assert mtd.status_code == 400 and "Not a valid choice" in mtd.get_data(as_text=True)
    ok = client.post(f"{BOARD}/decide", data={"action": "escalate", "reason": "SRC: 0/3",
                                              "password": PASSWORD})
    assert ok.status_code == 302
    decision = db.session.scalar(select(EscalationDecision))
    assert decision.next_level == 2 and decision.signer_name == user.full_name
    assert db.session.get(UserModel, user.id).failed_logins == 0
    page = client.get(BOARD).get_data(as_text=True)
    assert "SRC: 0/3" in page and "meaning: approval" in page


def test_repeated_wrong_signatures_lock_the_account_and_sign_out(client, make_user, study33):
    cohort(study33, "E1")
    user = login(client, make_user, "investigator", study="ALLOC33", site="S01")
    for _ in range(4):
        response = client.post(f"{BOARD}/decide", data={"action": "escalate", "reason": "r",
                                                         "password": "nope-nope"})
        assert response.status_code == 400
    locked = client.post(f"{BOARD}/decide", data={"action": "escalate", "reason": "r",
                                                  "password": "nope-nope"})
    assert locked.status_code == 302 and "/login" in locked.headers["Location"]
    assert db.session.get(UserModel, user.id).locked_until is not None
    assert client.get(BOARD).status_code == 302  # signed out


def test_site_staff_cannot_decide(client, make_user, study33):
    cohort(study33, "E1")
    login(client, make_user, "coordinator", study="ALLOC33", site="S01")
    response = client.post(f"{BOARD}/decide", data={"action": "escalate", "reason": "r",
                                                    "password": PASSWORD})
    assert response.status_code == 403


def test_the_dose_level_page_assigns_the_open_level(client, make_user, study33):
    subject = add_subject(study33, "D-1")
    db.session.commit()
    login(client, make_user, "coordinator", study="ALLOC33", site="S01")
    url = "/studies/ALLOC33/subjects/D-1/dose-level"
    assert "Open level: 1" in client.get(url).get_data(as_text=True)
    assert client.post(url).status_code == 302
    db.session.refresh(subject)
    assert subject.dose_level == 1
    again = client.post(url)
    assert again.status_code == 409 and "already has dose level 1" in again.get_data(
        as_text=True)


def test_the_board_of_a_study_without_escalation_is_not_found(client, make_user, web_study):
    login(client, make_user, "data_manager")
    assert client.get("/studies/ALLOCR/escalation").status_code == 404


# --- command line ---------------------------------------------------------------------------


def run(runner, *args):
    return runner.invoke(args=list(args))


def test_cli_generate_show_and_refuse_a_duplicate(runner, web_study):
    made = run(runner, "randomization", "generate", "ALLOCR", "--seed", "31", "--per-stratum",
               "6")
    assert made.exit_code == 0, made.output
    assert "generated production list #" in made.output and "age=LT60|status=REL" in made.output
    again = run(runner, "randomization", "generate", "allocr", "--seed", "32",
                "--per-stratum", "6")
    assert again.exit_code != 0 and "already has an active production list" in again.output
    test = run(runner, "randomization", "generate", "ALLOCR", "--seed", "31", "--per-stratum",
               "6", "--kind", "test", "--block-sizes", "2")
    assert test.exit_code == 0, test.output
    shown = run(runner, "randomization", "show", "ALLOCR", "--kind", "test", "--slots")
    assert "seed 31; block sizes 2" in shown.output and "production" not in shown.output
    assert "#1 block 1 (2)" in shown.output
    bad = run(runner, "randomization", "generate", "ALLOCR", "--seed", "1", "--per-stratum",
              "6", "--kind", "test", "--replace", "--block-sizes", "3")
    assert bad.exit_code != 0 and "block size 3" in bad.output


def test_cli_import_reports_each_problem_with_its_row(runner, web_study, tmp_path: Path):
    path = tmp_path / "list.csv"
    path.write_text("age,status,sequence,arm\nLT60,REL,1,A\nLT60,REL,2,Z\n")
    result = runner.invoke(args=["randomization", "import", "ALLOCR", str(path)])
    assert result.exit_code != 0
    assert "row 3: unknown arm 'Z'" in result.output and "nothing was imported" in result.output
    assert "stratum 'age=GE60|status=REF' has no rows" in result.output


def test_cli_escalation_status_prints_the_board_and_the_proposal(runner, study33):
    cohort(study33, "E1", dlts=1)
    result = run(runner, "escalation", "status", "ALLOC33")
    assert result.exit_code == 0, result.output
    assert "ALLOC33 dose escalation (3+3)" in result.output
    assert "E1-0 dlt" in result.output and "proposal: expand (level 1)" in result.output
    assert "open level: 1" in result.output
