"""Item-level SDV: verifying items and forms, the study's scope, resets on change, progress."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.review import locks, sdv
from ecrf.review.models import SdvMark
from ecrf.review.support import ReviewPermissionError
from tests.capture.capture_setup import actor_for
from tests.conftest import count_statements, is_postgres
from tests.review.review_setup import (
    demog,
    form_of,
    load_review_study,
    save,
    start,
    subject_at,
    vitals,
)

WEIGHT = ("VS", 1, "WEIGHT")
SYSBP = ("VS", 1, "SYSBP")


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
def monitor(make_user, study):
    return actor_for(make_user("mon1", role="monitor", study="REVIEW", site="S01"), "monitor")


@pytest.fixture
def form(crc, subject):
    start(crc, subject)
    assert save(crc, subject).saved
    return form_of(subject)


def test_state_machine_unverified_verified_reset_verified(crc, monitor, subject, form):
    state = sdv.form_status(db.session, form)
    assert state.scope == "all"
    assert set(state.needed) == {("VS", 1, "VSDT"), WEIGHT, SYSBP}  # blank NOTES: nothing
    assert state.verified == 0 and not state.complete

    sdv.verify_items(db.session, monitor, form, [WEIGHT])
    db.session.commit()
    state = sdv.form_status(db.session, form)
    assert set(state.marks) == {WEIGHT} and state.verified == 1
    assert state.marks[WEIGHT].verified_value == "72.5"

    save(crc, subject, values=vitals(WEIGHT="74.0"), reasons={WEIGHT: "scale recalibrated"})
    state = sdv.form_status(db.session, form)
    assert WEIGHT not in state.marks, "a change must reset the verification"
    reset = state.resets[WEIGHT]
    assert reset.reset_reason == "value changed from 72.5 to 74.0"
    trail = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "sdv.reset"))
    row = next(iter(trail))
    assert row.path == "REVIEW/S01-001/SCREEN[1]/VITALS/VS[1]/WEIGHT"
    assert row.old_value == "verified" and row.new_value == "unverified"
    assert row.reason == "value changed from 72.5 to 74.0"

    sdv.verify_items(db.session, monitor, form, [WEIGHT])
    db.session.commit()
    state = sdv.form_status(db.session, form)
    assert state.marks[WEIGHT].verified_value == "74.0"
    assert db.session.query(SdvMark).count() == 2  # history kept


def test_unchanged_items_stay_verified_when_another_item_changes(crc, monitor, subject, form):
    sdv.verify_form(db.session, monitor, form)
    db.session.commit()
    assert sdv.form_status(db.session, form).complete
    save(crc, subject, values=vitals(SYSBP="130"), reasons={SYSBP: "transcription"})
    state = sdv.form_status(db.session, form)
    assert WEIGHT in state.marks and SYSBP not in state.marks
    assert state.form_mark is None, "the form as a whole was verified before the change"
    assert state.last_form_reset.reset_reason.startswith("form changed after SDV")


def test_a_verification_takes_the_events_save_lock_before_reading_values(monitor, form):
    """A save of the event holds its row lock until it commits: a verification takes the
    same lock first, so it reads the values as saved and the save's reset of changed
    values sees its marks."""
    db.session.expire_all()
    with count_statements() as counted:
        sdv.verify_items(db.session, monitor, form, [WEIGHT])
    texts = [" ".join(t.split()) for t in counted.texts]
    locked = [i for i, t in enumerate(texts) if t.startswith("SELECT")
              and "FROM event_instance" in t and (not is_postgres() or "FOR UPDATE" in t)]
    read = [i for i, t in enumerate(texts) if "FROM item_value" in t]
    assert locked and read and locked[0] < read[0], "\n".join(texts)


def test_verifying_a_form_marks_every_entered_item_in_scope_once(monitor, form):
    made = sdv.verify_form(db.session, monitor, form)
    db.session.commit()
    assert len(made) == 3
    assert sdv.verify_form(db.session, monitor, form) == []  # nothing left: no duplicates
    db.session.commit()
    assert db.session.query(SdvMark).filter(SdvMark.item_oid.is_(None)).count() == 1
    with pytest.raises(sdv.SdvError, match="no value to verify"):
        sdv.verify_items(db.session, monitor, form, [("VS", 1, "NOTES")])


def test_critical_scope_needs_only_critical_items(app, make_study, make_user, tmp_path):
    study = load_review_study(make_study, sdv_scope="critical", tmp_path=tmp_path)
    crc = actor_for(make_user("crc1", role="coordinator", study="REVIEW", site="S01"))
    subject = subject_at(study, "S01-009")
    start(crc, subject)
    save(crc, subject)
    save(crc, subject, "DEMOG", demog())
    vs = sdv.form_status(db.session, form_of(subject))
    dm = sdv.form_status(db.session, form_of(subject, "DEMOG"))
    assert vs.scope == "critical"
    assert set(vs.needed) == {WEIGHT}
    assert set(dm.needed) == {("DM", 1, "BRTHDT"), ("DM", 1, "SEX")}


def test_only_monitors_verify_and_only_at_their_sites(crc, study, form, make_user):
    with pytest.raises(ReviewPermissionError, match="verify source data"):
        sdv.verify_form(db.session, crc, form)
    other = actor_for(make_user("mon2", role="monitor", study="REVIEW", site="S02"),
                      "monitor", "S02")
    with pytest.raises(ReviewPermissionError, match="only at your own sites"):
        sdv.verify_form(db.session, other, form)


def test_locked_forms_cannot_be_verified(monitor, form, make_user, subject):
    dm = actor_for(make_user("dm1", role="data_manager", study="REVIEW"), "data_manager")
    locks.lock_form(db.session, dm, form, "frozen for analysis")
    db.session.commit()
    with pytest.raises(locks.LockError, match="SDV refused"):
        sdv.verify_form(db.session, monitor, form)


def test_withdrawing_a_verification_needs_a_reason(monitor, form):
    sdv.verify_items(db.session, monitor, form, [WEIGHT])
    with pytest.raises(sdv.SdvError, match="reason"):
        sdv.unverify(db.session, monitor, form, [WEIGHT], "")
    sdv.unverify(db.session, monitor, form, [WEIGHT], "verified the wrong visit")
    db.session.commit()
    state = sdv.form_status(db.session, form)
    assert state.resets[WEIGHT].reset_reason == "verified the wrong visit"


def test_progress_per_site_and_subject_in_constant_statements(crc, monitor, study, subject,
                                                              form, make_user):
    others = []
    for n in range(2, 6):
        other = subject_at(study, f"S01-00{n}")
        start(crc, other)
        save(crc, other)
        others.append(other)
    s2 = subject_at(study, "S02-001", "S02")
    crc2 = actor_for(None, site="S02")
    start(crc2, s2)
    save(crc2, s2)
    sdv.verify_form(db.session, monitor, form)
    db.session.commit()
    lead = make_user("lead", role="monitor", study="REVIEW")
    assert lead.grants and study.id  # loaded before counting
    with count_statements() as counted:
        result = sdv.progress(db.session, lead, study)
    # the definitions, the kept counts' upsert in its savepoint (3, and no JIT on
    # PostgreSQL), the page
    assert counted.n <= (6 if is_postgres() else 5)
    assert result.by_site == {"S01": (3, 15), "S02": (0, 3)}
    first = next(s for s in result.subjects if s.subject_key == "S01-001")
    assert (first.verified, first.total, first.percent) == (3, 3, 100)
    site_monitor = db.session.get(type(lead), monitor.user_id)
    scoped = sdv.progress(db.session, site_monitor, study)
    assert set(scoped.by_site) == {"S01"}
