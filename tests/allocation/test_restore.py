"""Restoring an allocation made elsewhere (an ODM import): the very slot the file names,
audited with the file as the source, or a refusal that says what the study lacks and
writes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from ecrf.allocation import (
    Allocation,
    RandomizationSlot,
    RecordedAllocation,
    RestoreError,
    restore_allocation,
    restore_written_items,
)
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from tests.allocation.test_randomization import ACTOR
from tests.allocation.test_randomization_anchor import dexaml, stored  # noqa: F401

SOURCE = "imported from ODM old.xml"
DAY = dt.date(2025, 3, 2)


def _taken(subjects) -> Allocation:
    return db.session.scalar(select(Allocation).where(
        Allocation.subject_id == subjects["TLS-001"].id))


def _free(subjects, *, same_arm: bool) -> RandomizationSlot:
    """A free slot of TLS-002's stratum whose arm is (or is not) TLS-001's."""
    taken = _taken(subjects)
    slots = db.session.scalars(select(RandomizationSlot).where(
        RandomizationSlot.list_id == taken.list_id, RandomizationSlot.stratum == taken.stratum,
        RandomizationSlot.subject_id.is_(None)).order_by(RandomizationSlot.sequence))
    return next(s for s in slots if (s.arm == taken.arm) == same_arm)


def _recorded(slot: RandomizationSlot | Allocation, **changes) -> RecordedAllocation:
    values = {"arm": slot.arm, "number": "R000042", "randomized_on": DAY,
              "allocated_by": "crc.toulouse", "list_kind": "production",
              "stratum": slot.stratum, "sequence": slot.sequence,
              "strata": {"salvage": "INTENSIVE", "disease_status": "RELAPSE"}}
    return RecordedAllocation(**{**values, **changes})


def _audit_rows() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent))


@pytest.mark.parametrize(("change", "message"), [
    ({"arm": "NOPE"}, "randomized to arm 'NOPE', which is not an arm of DEXAML03"),
    ({"stratum": None}, "the file does not name the list slot it came from"),
    ({"list_kind": "test"}, "DEXAML03 has no active test randomization list: generate or "
                            "import the list the subjects were randomized from first"),
    ({"sequence": 999}, "which that list does not have"),
    ({"dose_level": 2}, "the file gives dose level 2 but DEXAML03 has no dose escalation"),
])
def test_what_the_study_cannot_hold_is_refused_and_nothing_written(dexaml, change,  # noqa: F811
                                                                    message):
    subject = dexaml["TLS-002"]
    before = _audit_rows()
    with pytest.raises(RestoreError, match=message.replace("(", r"\(").replace(")", r"\)")):
        restore_allocation(db.session, ACTOR, subject,
                           _recorded(_free(dexaml, same_arm=True), **change), source=SOURCE)
    assert subject.arm is None and _audit_rows() == before


def test_a_slot_of_another_arm_or_taken_is_refused(dexaml):  # noqa: F811
    subject = dexaml["TLS-002"]
    other = _free(dexaml, same_arm=False)
    wrong = "CTRL" if other.arm == "DEX" else "DEX"
    with pytest.raises(RestoreError, match=f"which gives {other.arm} here: this is not the "
                                           "list the subject came from"):
        restore_allocation(db.session, ACTOR, subject, _recorded(other, arm=wrong),
                           source=SOURCE)
    with pytest.raises(RestoreError, match="is already taken by another subject"):
        restore_allocation(db.session, ACTOR, subject, _recorded(_taken(dexaml)),
                           source=SOURCE)
    assert subject.arm is None


def test_the_named_slot_is_taken_with_its_strata_date_and_number(dexaml):  # noqa: F811
    subject = dexaml["TLS-002"]
    slot = _free(dexaml, same_arm=True)
    recorded = _recorded(slot)
    done = restore_allocation(db.session, ACTOR, subject, recorded, source=SOURCE)
    restore_written_items(db.session, ACTOR, subject, recorded, source=SOURCE)
    db.session.commit()
    assert done.randomized and not done.dose_level
    assert subject.arm == slot.arm and slot.subject_id == subject.id
    found = db.session.scalar(select(Allocation).where(Allocation.subject_id == subject.id))
    assert (found.sequence, found.randomized_on, found.allocated_by) == \
        (slot.sequence, DAY, "crc.toulouse")
    assert subject.strata == '{"disease_status": "RELAPSE", "salvage": "INTENSIVE"}'
    assert stored(subject, "RAND", "RANDDT") == DAY.isoformat()
    assert stored(subject, "RAND", "RANDNO") == "R000042"
    row = db.session.scalars(select(AuditEvent).where(
        AuditEvent.subject_key == "TLS-002", AuditEvent.action == "subject.randomized")).one()
    assert row.reason == SOURCE and '"restored_from"' in row.details
    # Restoring it again changes nothing.
    before = _audit_rows()
    again = restore_allocation(db.session, ACTOR, subject, recorded, source=SOURCE)
    assert not again.randomized and _audit_rows() == before


def test_a_subject_randomized_here_keeps_its_own_allocation(dexaml):  # noqa: F811
    subject = dexaml["TLS-001"]
    mine = _taken(dexaml)
    number = stored(subject, "RAND", "RANDNO")
    done = restore_allocation(db.session, ACTOR, subject, _recorded(mine), source=SOURCE)
    assert not done.randomized
    other = "CTRL" if mine.arm == "DEX" else "DEX"
    with pytest.raises(RestoreError, match=f"is randomized to {mine.arm} here; the file "
                                           f"gives {other}"):
        restore_allocation(db.session, ACTOR, subject, _recorded(mine, arm=other),
                           source=SOURCE)
    assert stored(subject, "RAND", "RANDNO") == number
