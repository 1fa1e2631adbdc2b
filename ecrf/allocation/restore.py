"""Restoring an allocation made elsewhere (an ecrf export imported into another instance):
the arm, the strata and the randomization slot, the randomization number, the dose level.

Nothing is invented here. A randomization takes the very slot the file names (list kind,
stratum and sequence) from this study's active list of that kind, and only if that slot
gives the same arm and is free or already the subject's; a dose level must be one of the
study's levels. Anything else is refused with a message saying what the study lacks, and
nothing is written. Every write is audited as the randomization and dose-level services
audit theirs, with the file named as the source.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf import capture
from ecrf.accounts import User
from ecrf.allocation.lists import active_list
from ecrf.allocation.models import Allocation, RandomizationList, RandomizationSlot
from ecrf.allocation.randomization import _lock_list, _path, _write_date, definition_of
from ecrf.capture import Subject
from ecrf.core import audit, utcnow
from ecrf.core.audit import Actor


class RestoreError(ValueError):
    """The study cannot hold the allocation a file gives; the message says why."""


@dataclass(frozen=True)
class RecordedAllocation:
    """A subject's allocation as another instance recorded it."""

    arm: str | None = None
    dose_level: int | None = None
    number: str | None = None
    randomized_on: dt.date | None = None
    allocated_at: dt.datetime | None = None
    allocated_by: str | None = None
    list_name: str | None = None
    list_kind: str = "production"
    stratum: str | None = None
    sequence: int | None = None
    strata: dict[str, str] = field(default_factory=dict)

    @property
    def randomized(self) -> bool:
        return self.arm is not None


@dataclass
class Restored:
    """What a restore wrote: nothing of what the subject already had."""

    randomized: bool = False
    dose_level: bool = False
    notes: list[str] = field(default_factory=list)


def restore_allocation(session: Session, actor: Actor, subject: Subject,
                       recorded: RecordedAllocation, *, source: str) -> Restored:
    """Give the subject the recorded arm (with its slot, strata and date) and dose level;
    what was already so is left alone. Raises RestoreError, writing nothing, when the
    study cannot hold it. Flushes."""
    audit.bind_actor(session, actor)
    done = Restored()
    notes = done.notes
    slot = _slot_for(session, subject, recorded) if recorded.randomized else None
    _check_level(session, subject, recorded)
    if slot is not None:
        _randomize_into(session, actor, subject, recorded, slot, source)
        done.randomized = True
        notes.append(f"randomized to {recorded.arm} (slot {slot.stratum}#{slot.sequence})")
    if recorded.dose_level is not None and subject.dose_level is None:
        audit.record(session, actor, "subject.dose_level_assigned", category="clinical",
                     study_oid=subject.study.oid, site_code=subject.site.code,
                     subject_key=subject.subject_key, path=f"{_path(subject)}/dose_level",
                     old_value=None, new_value=recorded.dose_level,
                     study_version=subject.study_version.label, reason=source,
                     details={"restored_from": source})
        subject.dose_level = recorded.dose_level
        capture.mark_on_study(session, actor, subject,
                              f"assigned dose level {recorded.dose_level} ({source})")
        notes.append(f"dose level {recorded.dose_level}")
        done.dose_level = True
    session.flush()
    return done


def restore_written_items(session: Session, actor: Actor, subject: Subject,
                          recorded: RecordedAllocation, *, source: str) -> None:
    """Write the recorded randomization date and number where the study keeps them
    (system items no form save may write), for an allocation ``restore_allocation`` has
    just restored: the items of an allocation made here are never rewritten."""
    defn = definition_of(session, subject)
    rand = defn.randomization
    if rand is None or not recorded.randomized or subject.arm != recorded.arm:
        return
    audit.bind_actor(session, actor)
    reason = f"written by randomization ({source})"
    if rand.date_item is not None and recorded.randomized_on is not None:
        _write_date(session, actor, subject, defn, rand.date_item, recorded.randomized_on,
                    reason=reason)
    if rand.number_item is not None and recorded.number:
        _write_date(session, actor, subject, defn, rand.number_item, recorded.number,
                    reason=reason)
    session.flush()


def _check_level(session: Session, subject: Subject, recorded: RecordedAllocation) -> None:
    level = recorded.dose_level
    if level is None:
        return
    if subject.dose_level is not None:
        if subject.dose_level != level:
            raise RestoreError(f"subject {subject.subject_key} has dose level "
                               f"{subject.dose_level} here; the file gives level {level}")
        return
    esc = definition_of(session, subject).dose_escalation
    if esc is None:
        raise RestoreError(f"the file gives dose level {level} but {subject.study.oid} has "
                           f"no dose escalation")
    if level not in {lv.level for lv in esc.levels}:
        raise RestoreError(f"the file gives dose level {level}, which is not a level of "
                           f"{subject.study.oid} "
                           f"({', '.join(str(lv.level) for lv in esc.levels)})")


def _slot_for(session: Session, subject: Subject, recorded: RecordedAllocation
              ) -> RandomizationSlot | None:
    """The free slot the file names; None when the subject already holds that allocation."""
    arm, key = recorded.arm, subject.subject_key
    defn = definition_of(session, subject)
    if arm not in {a.code for a in defn.arms}:
        raise RestoreError(f"subject {key} was randomized to arm {arm!r}, which is not an arm "
                           f"of {subject.study.oid}")
    if subject.arm is not None:
        if subject.arm != arm:
            raise RestoreError(f"subject {key} is randomized to {subject.arm} here; the file "
                               f"gives {arm}")
        return None
    if recorded.stratum is None or recorded.sequence is None:
        raise RestoreError(f"subject {key} was randomized to {arm}, but the file does not "
                           f"name the list slot it came from")
    rlist = active_list(session, subject.study, recorded.list_kind)
    if rlist is None:
        raise RestoreError(
            f"subject {key} was randomized to {arm} from a {recorded.list_kind} list, and "
            f"{subject.study.oid} has no active {recorded.list_kind} randomization list: "
            f"generate or import the list the subjects were randomized from first")
    slot = session.scalar(select(RandomizationSlot).where(
        RandomizationSlot.list_id == rlist.id, RandomizationSlot.stratum == recorded.stratum,
        RandomizationSlot.sequence == recorded.sequence))
    where = f"slot {recorded.stratum}#{recorded.sequence} of list {rlist.name!r}"
    if slot is None:
        raise RestoreError(f"subject {key} was randomized to {arm} in {where}, which that "
                           f"list does not have")
    if slot.arm != arm:
        raise RestoreError(f"subject {key} was randomized to {arm} in {where}, which gives "
                           f"{slot.arm} here: this is not the list the subject came from")
    if slot.subject_id is not None and slot.subject_id != subject.id:
        raise RestoreError(f"{where} is already taken by another subject")
    return slot


def _randomize_into(session: Session, actor: Actor, subject: Subject,
                    recorded: RecordedAllocation, slot: RandomizationSlot, source: str) -> None:
    rlist = session.get(RandomizationList, slot.list_id)
    _lock_list(session, rlist)
    allocated_at = recorded.allocated_at or utcnow()
    allocated_by = recorded.allocated_by or actor.username
    by_id = session.scalar(select(User.id).where(User.username == allocated_by))
    randomized_on = recorded.randomized_on or allocated_at.date()
    strata = json.dumps(recorded.strata, sort_keys=True)
    audit.record(session, actor, "subject.randomized", category="clinical",
                 study_oid=subject.study.oid, site_code=subject.site.code,
                 subject_key=subject.subject_key, path=f"{_path(subject)}/arm",
                 old_value=None, new_value=slot.arm, reason=source,
                 study_version=subject.study_version.label,
                 details={"list_id": rlist.id, "list_kind": rlist.kind,
                          "stratum": slot.stratum, "strata": recorded.strata,
                          "sequence": slot.sequence, "arm": slot.arm,
                          "randomized_on": randomized_on, "allocated_at": allocated_at,
                          "allocated_by": allocated_by, "restored_from": source})
    slot.subject_id = subject.id
    slot.allocated_at = allocated_at
    slot.allocated_by_id = by_id
    session.add(Allocation(
        list_id=rlist.id, slot_id=slot.id, subject_id=subject.id, live_subject_id=subject.id,
        stratum=slot.stratum, strata=strata, sequence=slot.sequence, arm=slot.arm,
        randomized_on=randomized_on, allocated_at=allocated_at, allocated_by_id=by_id,
        allocated_by=allocated_by, allocated_role=None))
    subject.arm = slot.arm
    subject.strata = strata
    capture.mark_on_study(session, actor, subject, f"randomized to {slot.arm} ({source})")
