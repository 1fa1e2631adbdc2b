"""Randomization through the service: lists, eligibility gates, strata, undo.

The helpers at the top (study loading, subjects and recorded values written directly as
data entry would) are shared with the escalation and web tests of allocation.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ecrf.allocation import randomization
from ecrf.allocation.models import Allocation, RandomizationList, RandomizationSlot
from ecrf.capture.models import EventInstance, FormInstance, ItemValue, Subject
from ecrf.capture.schedule_data import local_today
from ecrf.core.audit import reconcile
from ecrf.core.audit import trail as audit
from ecrf.core.audit.models import AuditEvent
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.domain import randomization as engine
from ecrf.studies import store as studies
from ecrf.studies.models import Site, Study

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ACTOR = Actor(user_id=None, username="tester", role="data_manager")


# --- shared helpers -----------------------------------------------------------------------


def load(name: str) -> Study:
    study = studies.load_folder(db.session, ACTOR, FIXTURES / name).study
    db.session.commit()
    return study


def add_subject(study: Study, key: str, *, site: str = "S01",
                status: str = "screening") -> Subject:
    audit.bind_actor(db.session, ACTOR)
    site_row = db.session.scalar(select(Site).where(Site.code == site))
    subject = Subject(study=study, site=site_row, subject_key=key, status=status,
                      enrolled_on=local_today(site_row.timezone) - dt.timedelta(days=3),
                      study_version=studies.latest_version(db.session, study))
    db.session.add(subject)
    db.session.flush()
    return subject


def record(subject: Subject, event_oid: str, form_oid: str, values: dict, *,
           complete: bool = True, repeat: int = 1) -> FormInstance:
    """Write item values directly, as a save by data entry would leave them."""
    audit.bind_actor(db.session, ACTOR)
    defn = studies.definition_for(subject.study_version)
    event = db.session.scalar(select(EventInstance).where(
        EventInstance.subject_id == subject.id, EventInstance.event_oid == event_oid,
        EventInstance.repeat == repeat))
    if event is None:
        event = EventInstance(subject_id=subject.id, event_oid=event_oid, repeat=repeat)
        db.session.add(event)
        db.session.flush()
    form = db.session.scalar(select(FormInstance).where(
        FormInstance.event_instance_id == event.id, FormInstance.form_oid == form_oid))
    if form is None:
        form = FormInstance(event_instance_id=event.id, subject_id=subject.id,
                            form_oid=form_oid, study_version_id=subject.study_version_id)
        db.session.add(form)
        db.session.flush()
    form.status = "complete" if complete else "in_progress"
    for item_oid, value in values.items():
        row = db.session.scalar(select(ItemValue).where(
            ItemValue.form_instance_id == form.id, ItemValue.item_oid == item_oid))
        if row is None:
            row = ItemValue(form_instance_id=form.id, subject_id=subject.id, form_oid=form_oid,
                            group_oid=defn.item(form_oid, item_oid).group, row=1,
                            item_oid=item_oid)
            db.session.add(row)
        row.value = value.isoformat() if isinstance(value, dt.date) else value
        row.value_date = value if isinstance(value, dt.date) else None
        row.updated_at = dt.datetime.now(dt.UTC)
    db.session.flush()
    return form


def site_today(site: str = "S01") -> dt.date:
    return local_today(db.session.scalar(select(Site.timezone).where(Site.code == site)))


def make_eligible(subject: Subject, *, age: str | None = "LT60", status: str | None = "REL",
                  eligible: str | None = "Y", complete: bool = True,
                  consent: dt.date | None | str = "yesterday") -> Subject:
    if consent == "yesterday":
        consent = site_today(subject.site.code) - dt.timedelta(days=1)
    if consent is not None:
        record(subject, "SCREEN", "CONSENT", {"CONSDT": consent})
    values = {k: v for k, v in (("AGEGRP", age), ("DISSTAT", status), ("ELIGIBLE", eligible))
              if v is not None}
    record(subject, "SCREEN", "ELIG", values, complete=complete)
    return subject


@pytest.fixture
def rand_study(app, make_site):
    make_site("S01")
    make_site("S02", timezone="Asia/Shanghai")
    return load("allocation_randomized")


def generate(study: Study, seed="1234", per_stratum=20, kind="production", **kwargs):
    rlist = randomization.generate(db.session, ACTOR, study, seed=seed,
                                   per_stratum=per_stratum, kind=kind, **kwargs)
    db.session.commit()
    return rlist


def slots_of(rlist: RandomizationList) -> list[tuple]:
    return [(s.stratum, s.sequence, s.arm, s.block, s.block_size)
            for s in randomization.list_slots(db.session, rlist)]


# --- lists ----------------------------------------------------------------------------------


def test_generated_list_is_reproducible_from_its_seed_and_balanced_per_block(rand_study):
    first = generate(rand_study, seed="20260101", per_stratum=40)
    again = generate(rand_study, seed="20260101", per_stratum=40, kind="test")
    other = randomization.generate(db.session, ACTOR, rand_study, seed="99", per_stratum=40,
                                   kind="test", replace=True)
    assert first.seed == "20260101" and first.block_sizes == "2,4" and first.active
    assert slots_of(first) == slots_of(again)
    assert slots_of(first) != slots_of(other)
    expected = engine.generate_list(
        [engine.Arm("A", 1), engine.Arm("B", 1)],
        {"age": ["LT60", "GE60"], "status": ["REL", "REF"]},
        block_sizes=(2, 4), slots_per_stratum=40, seed="20260101")
    assert sorted(slots_of(first)) == sorted(
        (s.stratum, s.sequence, s.arm, s.block, s.block_size) for s in expected)
    strata = {s[0] for s in slots_of(first)}
    assert strata == {"age=GE60|status=REF", "age=GE60|status=REL", "age=LT60|status=REF",
                      "age=LT60|status=REL"}
    blocks: dict[tuple, Counter] = {}
    for stratum, _, arm, block, size in slots_of(first):
        blocks.setdefault((stratum, block, size), Counter())[arm] += 1
    for (_, _, size), counts in blocks.items():
        assert counts["A"] == counts["B"] == size // 2
    for row in randomization.balance(db.session, first, ["A", "B"]):
        assert row.slots >= 40 and row.used == 0 and row.allocated == {"A": 0, "B": 0}


def test_the_seed_and_block_sizes_stay_out_of_the_audit_trail(rand_study):
    generate(rand_study, seed="secret-seed-777", block_sizes=(4,))
    row = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "randomization.list_generated"))
    assert row is not None and row.category == "allocation"
    text = " ".join(filter(None, (row.details, row.new_value, row.old_value)))
    assert "secret-seed-777" not in text and "block" not in text


def test_a_second_active_list_needs_replace_and_a_used_list_cannot_be_replaced(rand_study):
    first = generate(rand_study)
    with pytest.raises(randomization.RandomizationServiceError, match="already has an active"):
        generate(rand_study)
    db.session.rollback()
    second = generate(rand_study, seed="2", replace=True)
    db.session.refresh(first)
    assert not first.active and first.retired_at is not None and second.active
    subject = make_eligible(add_subject(rand_study, "S-1"))
    randomization.randomize(db.session, ACTOR, subject)
    db.session.commit()
    with pytest.raises(randomization.RandomizationServiceError, match="cannot be replaced"):
        generate(rand_study, seed="3", replace=True)


def test_import_reports_every_problem_with_its_row_and_stores_nothing(rand_study):
    text = ("stratum,sequence,arm,block\n"
            "age=LT60|status=REL,1,A,1\n"
            "age=LT60|status=REL,1,C,1\n"
            "age=OLD|status=REL,2,B,1\n"
            "age=LT60|status=REL,x,B,2\n")
    with pytest.raises(randomization.ListValidationError) as caught:
        randomization.import_csv(db.session, ACTOR, rand_study, text)
    problems = caught.value.problems
    assert any(p.startswith("row 3:") and "unknown arm 'C'" in p for p in problems)
    assert any(p.startswith("row 4:") and "unknown level 'OLD'" in p for p in problems)
    assert any(p.startswith("row 5:") and "not a whole number" in p for p in problems)
    assert any("rows 2 and 3" in p and "duplicate sequence 1" in p for p in problems)
    assert any("'age=GE60|status=REF' has no rows" in p for p in problems)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(RandomizationList)) == 0


def test_a_valid_imported_list_is_stored_with_its_file_hash(rand_study):
    lines = ["age,status,sequence,arm,block,block_size"]
    for age in ("LT60", "GE60"):
        for status in ("REL", "REF"):
            lines += [f"{age},{status},1,B,1,2", f"{age},{status},2,A,1,2"]
    rlist = randomization.import_csv(db.session, ACTOR, rand_study, "\n".join(lines) + "\n",
                                     kind="test", name="external.csv")
    db.session.commit()
    assert rlist.source == "imported" and rlist.kind == "test" and rlist.seed is None
    assert len(rlist.file_sha256) == 64 and rlist.block_sizes == "2"
    assert ("age=GE60|status=REF", 1, "B", 1, 2) in slots_of(rlist)


# --- randomizing --------------------------------------------------------------------------


def test_each_stratum_takes_its_own_next_slot_in_order(rand_study):
    rlist = generate(rand_study)
    slots = {(s[0], s[1]): s[2] for s in slots_of(rlist)}
    results = []
    for i, (age, status) in enumerate([("LT60", "REL"), ("GE60", "REF"), ("LT60", "REL"),
                                       ("LT60", "REL"), ("GE60", "REF"), ("GE60", "REL")]):
        subject = make_eligible(add_subject(rand_study, f"S-{i}"), age=age, status=status)
        allocation = randomization.randomize(db.session, ACTOR, subject)
        db.session.commit()
        results.append((allocation.stratum, allocation.sequence, allocation.arm, subject.arm))
    assert [(r[0], r[1]) for r in results] == [
        ("age=LT60|status=REL", 1), ("age=GE60|status=REF", 1), ("age=LT60|status=REL", 2),
        ("age=LT60|status=REL", 3), ("age=GE60|status=REF", 2), ("age=GE60|status=REL", 1)]
    for stratum, sequence, arm, subject_arm in results:
        assert arm == subject_arm == slots[stratum, sequence]
    balance = {b.stratum: b for b in randomization.balance(db.session, rlist, ["A", "B"])}
    assert balance["age=LT60|status=REL"].used == 3
    assert balance["age=LT60|status=REF"].used == 0


def test_randomizing_writes_the_arm_the_date_and_audits_every_fact(rand_study):
    generate(rand_study)
    subject = make_eligible(add_subject(rand_study, "S-7"))
    allocation = randomization.randomize(db.session, ACTOR, subject)
    db.session.commit()
    today = site_today()
    assert subject.arm == allocation.arm and allocation.randomized_on == today
    assert json.loads(allocation.strata) == {"age": "LT60", "status": "REL"}
    date = db.session.scalar(select(ItemValue).where(ItemValue.subject_id == subject.id,
                                                     ItemValue.item_oid == "RANDDT"))
    assert date.value == today.isoformat() and date.value_date == today
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "subject.randomized"))
    details = json.loads(event.details)
    assert event.category == "clinical" and event.subject_key == "S-7"
    assert event.new_value == allocation.arm and event.username == "tester"
    assert details["sequence"] == 1 and details["stratum"] == "age=LT60|status=REL"
    assert details["strata"] == {"age": "LT60", "status": "REL"}
    assert details["list_id"] == allocation.list_id and details["arm"] == allocation.arm
    entered = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "item.entered",
                                                         AuditEvent.path.like("%/RANDDT")))
    assert entered.new_value == today.isoformat()
    assert entered.path == "ALLOCR/S-7/SCREEN[1]/RAND/RAND_MAIN[1]/RANDDT"
    assert subject.status == "on_study"
    status = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "subject.status_changed"))
    assert (status.old_value, status.new_value) == ("screening", "on_study")
    assert audit.verify_chain(db.session).ok
    # The arm, the randomization date and the status equal their last audit rows (the
    # forms this test filled directly, without audit rows, are the only ones that differ).
    found = reconcile(db.session)
    assert found.checked["arms"] == 1
    assert found.mismatches["arms"] == found.mismatches["subject statuses"] == 0
    assert {m.where.split("/")[3] for m in found.shown} == {"ELIG", "CONSENT"}, found.lines()


REFUSALS = [
    ({"eligible": "N"}, "eligibility", "not eligible (ELIG.ELIGIBLE = N)"),
    ({"complete": False}, "eligibility", "eligibility is incomplete"),
    ({"eligible": None}, "eligibility", "eligibility is not recorded (ELIG.ELIGIBLE)"),
    ({"consent": None}, "consent", "consent date is not recorded (CONSENT.CONSDT)"),
    ({"consent": "tomorrow"}, "consent", "is after today"),
    ({"status": None}, "stratum:status", "ELIG.DISSTAT (status) is not recorded"),
]


@pytest.mark.parametrize("change, key, message", REFUSALS,
                         ids=[r[1] + ":" + r[2][:20] for r in REFUSALS])
def test_each_refusal_names_its_reason(rand_study, change, key, message):
    rlist = generate(rand_study)
    if change.get("consent") == "tomorrow":
        change = {**change, "consent": site_today() + dt.timedelta(days=1)}
    subject = make_eligible(add_subject(rand_study, "S-9"), **change)
    readiness = randomization.check_readiness(db.session, subject)
    failed = [c for c in readiness.checks if not c.ok]
    assert [c.key for c in failed] == [key]
    assert message in failed[0].message
    with pytest.raises(randomization.NotRandomizable) as caught:
        randomization.randomize(db.session, ACTOR, subject)
    assert caught.value.reasons == [failed[0].message]
    db.session.rollback()
    assert subject.arm is None
    assert db.session.scalar(select(func.count()).select_from(RandomizationSlot).where(
        RandomizationSlot.list_id == rlist.id, RandomizationSlot.subject_id.is_not(None))) == 0


def test_refusals_add_up_and_a_closed_subject_is_refused(rand_study):
    generate(rand_study)
    subject = make_eligible(add_subject(rand_study, "S-10", status="withdrawn"),
                            eligible="N", consent=None)
    with pytest.raises(randomization.NotRandomizable) as caught:
        randomization.randomize(db.session, ACTOR, subject)
    reasons = " | ".join(caught.value.reasons)
    assert "status is withdrawn" in reasons and "not eligible" in reasons
    assert "consent date is not recorded" in reasons


def test_a_randomized_subject_is_not_randomized_twice(rand_study):
    generate(rand_study)
    subject = make_eligible(add_subject(rand_study, "S-11"))
    first = randomization.randomize(db.session, ACTOR, subject)
    db.session.commit()
    with pytest.raises(randomization.NotRandomizable, match="already randomized"):
        randomization.randomize(db.session, ACTOR, subject)
    db.session.rollback()
    assert [a.id for a in randomization.allocations_of(db.session, subject)] == [first.id]


def test_without_an_active_list_of_the_mode_randomization_is_refused(rand_study):
    generate(rand_study, kind="test")
    subject = make_eligible(add_subject(rand_study, "S-12"))
    db.session.commit()
    with pytest.raises(randomization.NotRandomizable, match="no active production"):
        randomization.randomize(db.session, ACTOR, subject)
    db.session.rollback()
    allocation = randomization.randomize(db.session, ACTOR, subject, kind="test")
    assert allocation.randomization_list.kind == "test"


def test_an_exhausted_stratum_is_refused_by_name(rand_study):
    generate(rand_study, per_stratum=2, block_sizes=(2,))
    for i in range(2):
        randomization.randomize(db.session, ACTOR, make_eligible(add_subject(rand_study,
                                                                             f"E-{i}")))
    db.session.commit()
    late = make_eligible(add_subject(rand_study, "E-late"))
    with pytest.raises(randomization.NotRandomizable, match="exhausted for stratum "
                                                            "'age=LT60|status=REL'"):
        randomization.randomize(db.session, ACTOR, late)


def test_strata_are_frozen_at_randomization(rand_study):
    generate(rand_study)
    subject = make_eligible(add_subject(rand_study, "S-13"))
    allocation = randomization.randomize(db.session, ACTOR, subject)
    db.session.commit()
    arm = subject.arm
    record(subject, "SCREEN", "ELIG", {"DISSTAT": "REF"})
    db.session.commit()
    db.session.refresh(allocation)
    assert json.loads(allocation.strata) == {"age": "LT60", "status": "REL"}
    assert allocation.stratum == "age=LT60|status=REL" and subject.arm == arm
    assert randomization.check_readiness(db.session, subject).strata["status"] == "REF"


# --- undo -----------------------------------------------------------------------------------


def test_undo_needs_an_admin_and_a_reason_and_never_frees_the_slot(rand_study, make_user):
    rlist = generate(rand_study)
    admin = make_user("root", role="admin")
    manager = make_user("dm", role="data_manager", study="ALLOCR")
    subject = make_eligible(add_subject(rand_study, "S-14"))
    original = randomization.randomize(db.session, ACTOR, subject)
    db.session.commit()
    dm_actor = Actor(manager.id, manager.username, role="data_manager")
    with pytest.raises(randomization.RandomizationServiceError, match="system administrator"):
        randomization.undo_randomization(db.session, dm_actor, subject, "wrong subject")
    admin_actor = Actor(admin.id, admin.username, role="admin")
    with pytest.raises(randomization.RandomizationServiceError, match="reason is required"):
        randomization.undo_randomization(db.session, admin_actor, subject, "  ")
    undone = randomization.undo_randomization(db.session, admin_actor, subject,
                                              "randomized the wrong screening number")
    db.session.commit()
    assert undone.id == original.id and undone.undone_by == "root"
    assert undone.undo_reason == "randomized the wrong screening number"
    assert subject.arm is None
    slot = db.session.get(RandomizationSlot, original.slot_id)
    assert slot.subject_id == subject.id  # consumed for good
    date = db.session.scalar(select(ItemValue).where(ItemValue.subject_id == subject.id,
                                                     ItemValue.item_oid == "RANDDT"))
    assert date.value is None
    row = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "subject.randomization_undone"))
    assert row.reason == "randomized the wrong screening number"
    assert row.old_value == original.arm and json.loads(row.details)["sequence"] == 1

    again = randomization.randomize(db.session, ACTOR, subject)
    db.session.commit()
    assert again.sequence == 2 and again.stratum == original.stratum
    history = randomization.allocations_of(db.session, subject)
    assert [(a.sequence, a.in_force) for a in history] == [(1, False), (2, True)]
    other = make_eligible(add_subject(rand_study, "S-15"))
    assert randomization.randomize(db.session, ACTOR, other).sequence == 3
    balance = {b.stratum: b for b in randomization.balance(db.session, rlist, ["A", "B"])}
    assert balance[original.stratum].used == 3 and balance[original.stratum].voided == 1
    assert db.session.scalar(select(func.count()).select_from(Allocation)) == 3
