"""Locks: form, subject and site locks, study freeze and lock, and their enforcement on
every save through data capture's signals."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ecrf.capture.models import ItemValue
from ecrf.capture.operations import CaptureError, EventStateError
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.review import locks
from ecrf.review.locks import DataLockedError, LockError
from ecrf.review.models import Lock
from ecrf.review.support import ReviewPermissionError
from ecrf.studies.models import Site
from tests.capture.capture_setup import actor_for
from tests.review.review_setup import form_of, load_review_study, save, start, subject_at, vitals


@pytest.fixture
def study(app, make_study):
    return load_review_study(make_study)


@pytest.fixture
def subject(study):
    return subject_at(study, "S01-001")


@pytest.fixture
def crc(make_user, study):
    return actor_for(make_user("crc1", role="coordinator", study="REVIEW", site="S01"))


@pytest.fixture
def dm(make_user, study):
    return actor_for(make_user("dm1", role="data_manager", study="REVIEW"), "data_manager",
                     None)


@pytest.fixture
def entered(crc, subject):
    start(crc, subject)
    assert save(crc, subject).saved
    return form_of(subject)


def weight(subject) -> str:
    return db.session.scalar(select(ItemValue.value).where(
        ItemValue.subject_id == subject.id, ItemValue.item_oid == "WEIGHT"))


def test_a_locked_form_refuses_every_change_and_names_the_lock(crc, dm, subject, entered):
    lock = locks.lock_form(db.session, dm, entered, "cleaned for interim analysis")
    db.session.commit()
    with pytest.raises(DataLockedError) as caught:
        save(crc, subject, values=vitals(WEIGHT="80.0"), reasons={("VS", 1, "WEIGHT"): "typo"},
             commit=False)
    db.session.rollback()
    message = str(caught.value)
    assert "Form VITALS of S01-001 at SCREEN[1] is locked" in message
    assert "dm1" in message and "cleaned for interim analysis" in message
    assert caught.value.lock.id == lock.id
    # A capture error, so every entry point reporting capture refusals shows it.
    assert isinstance(caught.value, EventStateError) and isinstance(caught.value, CaptureError)
    assert weight(subject) == "72.5"

    locks.unlock(db.session, dm, lock, "query on weight needs a correction")
    db.session.commit()
    assert save(crc, subject, values=vitals(WEIGHT="80.0"),
                reasons={("VS", 1, "WEIGHT"): "typo"}).saved
    assert weight(subject) == "80.0"
    actions = list(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.action.like("lock.%")).order_by(AuditEvent.seq)))
    assert actions == ["lock.applied", "lock.released"]


def test_subject_and_site_locks_cover_every_form_even_new_ones(crc, dm, study, subject,
                                                                entered):
    lock = locks.lock_subject(db.session, dm, subject, "ready")
    db.session.commit()
    with pytest.raises(DataLockedError, match="Subject S01-001 is locked"):
        save(crc, subject, "DEMOG", {("DM", 1, "SEX"): "F"}, commit=False)
    db.session.rollback()
    locks.unlock(db.session, dm, lock, "reopened for DEMOG")
    site = db.session.scalar(select(Site).where(Site.code == "S01"))
    locks.lock_site(db.session, dm, study, site, "site closed out")
    db.session.commit()
    with pytest.raises(DataLockedError, match="Site S01 is locked"):
        save(crc, subject, "DEMOG", {("DM", 1, "SEX"): "F"}, commit=False)
    db.session.rollback()
    other = subject_at(study, "S02-001", "S02")
    crc2 = actor_for(None, site="S02")
    start(crc2, other)
    assert save(crc2, other).saved  # another site is not locked


def test_frozen_study_refuses_data_but_not_queries_and_locked_is_read_only(
        crc, dm, study, subject, entered, make_user):
    from ecrf.review import queries

    monitor = actor_for(make_user("mon1", role="monitor", study="REVIEW", site="S01"),
                        "monitor")
    locks.change_study_status(db.session, dm, study, "freeze", "database freeze for DSMB")
    db.session.commit()
    assert study.status == "frozen"
    with pytest.raises(DataLockedError, match="Study REVIEW is frozen"):
        save(crc, subject, values=vitals(NOTES="late"), commit=False)
    db.session.rollback()
    query = queries.raise_query(db.session, monitor, subject, "Check notes",
                                target=queries.QueryTarget("SCREEN", 1, "VITALS"))
    queries.answer(db.session, crc, query, "Nothing to add")
    db.session.commit()

    locks.change_study_status(db.session, dm, study, "lock", "final lock")
    db.session.commit()
    with pytest.raises(DataLockedError, match="read-only"):
        save(crc, subject, values=vitals(NOTES="late"), commit=False)
    db.session.rollback()
    with pytest.raises(queries.QueryError, match="locked"):
        queries.close(db.session, monitor, query, "fine")
    db.session.rollback()
    with pytest.raises(LockError, match="cannot be unfrozen"):
        locks.change_study_status(db.session, dm, study, "unfreeze", "why not")
    locks.change_study_status(db.session, dm, study, "unlock", "post-lock correction")
    db.session.commit()
    assert study.status == "active"
    trail = list(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.action.like("study.%"), AuditEvent.category == "review")
        .order_by(AuditEvent.seq)))
    assert trail == ["study.frozen", "study.locked", "study.unlocked"]


def test_unlocking_needs_a_data_manager_and_a_reason(crc, dm, subject, entered, make_user):
    monitor = actor_for(make_user("mon1", role="monitor", study="REVIEW", site="S01"),
                        "monitor")
    with pytest.raises(ReviewPermissionError, match="do not allow you to lock"):
        locks.lock_form(db.session, monitor, entered)
    lock = locks.lock_form(db.session, dm, entered)
    db.session.commit()
    for actor in (crc, monitor):
        with pytest.raises(ReviewPermissionError):
            locks.unlock(db.session, actor, lock, "please")
    with pytest.raises(LockError, match="reason"):
        locks.unlock(db.session, dm, lock, "  ")
    with pytest.raises(LockError, match="already locked"):
        locks.lock_form(db.session, dm, entered)
    locks.unlock(db.session, dm, lock, "correction needed")
    with pytest.raises(LockError, match="already released"):
        locks.unlock(db.session, dm, lock, "again")
    db.session.commit()
    stored = db.session.get(Lock, lock.id)
    assert stored.unlocked_by == "dm1" and stored.unlock_reason == "correction needed"
    assert not stored.active


def test_study_transitions_need_a_reason_and_a_known_name(dm, study):
    with pytest.raises(LockError, match="reason"):
        locks.change_study_status(db.session, dm, study, "freeze", "")
    with pytest.raises(LockError, match="Unknown study transition"):
        locks.change_study_status(db.session, dm, study, "archive", "x")
    assert study.status == "active"


def test_lock_state_describes_what_blocks_a_form(dm, subject, entered):
    state = locks.lock_state(db.session, subject, entered.id)
    assert state.writable and state.message is None
    locks.lock_form(db.session, dm, entered, "done")
    db.session.commit()
    state = locks.lock_state(db.session, subject, entered.id)
    assert not state.writable and "is locked" in str(state.message)


def test_cli_freezes_locks_and_unlocks_a_study(runner, study):
    result = runner.invoke(args=["study", "freeze", "REVIEW", "--reason", "interim analysis"])
    assert result.exit_code == 0, result.output
    assert "REVIEW: active -> frozen" in result.output
    result = runner.invoke(args=["study", "unfreeze", "REVIEW"])
    assert result.exit_code != 0 and "--reason" in result.output
    result = runner.invoke(args=["study", "unlock", "REVIEW", "--reason", "x"])
    assert result.exit_code == 1
    assert "Study REVIEW is frozen: it cannot be unlocked now." in result.output
    for command, status in (("lock", "locked"), ("unlock", "active")):
        result = runner.invoke(args=["study", command, "review", "--reason", "final"])
        assert result.exit_code == 0, result.output
        assert result.output.strip().endswith(status)
    result = runner.invoke(args=["study", "freeze", "NOPE", "--reason", "x"])
    assert result.exit_code == 1 and "no study with OID 'NOPE'" in result.output
    row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "study.frozen"))
    assert row.username.startswith("cli:") and row.reason == "interim analysis"
