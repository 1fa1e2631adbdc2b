"""Randomizing a subject: eligibility gates, allocation under concurrency, undo.

A subject takes the lowest unused slot of its stratum. Requests for one list queue on a row
lock of the list (a no-op UPDATE: a row lock on PostgreSQL, the write lock on SQLite), so
no slot is ever skipped or given twice; SKIP LOCKED would skip slots, and a FOR UPDATE on
the lowest free slot can come back empty under READ COMMITTED once the waiter re-checks it.
Lists themselves live in ``lists`` (re-exported here).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ecrf import accounts, capture, studies
from ecrf.accounts import User
from ecrf.allocation.lists import (
    KINDS,
    ListValidationError,
    RandomizationServiceError,
    StratumBalance,
    active_list,
    balance,
    check_kind,
    factor_levels,
    generate,
    import_csv,
    latest_definition,
    list_allocations,
    list_slots,
    lists_of,
)
from ecrf.allocation.models import Allocation, RandomizationList, RandomizationSlot
from ecrf.capture import (
    EventInstance,
    FormInstance,
    ItemValue,
    Subject,
    SubjectStatus,
    item_path,
    local_today,
)
from ecrf.core import audit, utcnow
from ecrf.core.audit import Actor
from ecrf.crf import StudyDefinition
from ecrf.domain import randomization as engine

__all__ = [
    "CLOSED_STATUSES", "KINDS", "Check", "ListValidationError", "NotRandomizable",
    "RandomizationServiceError", "Readiness", "Recorded", "StratumBalance", "active_list",
    "allocations_of", "balance", "check_readiness", "definition_of", "factor_levels",
    "generate", "import_csv", "latest_definition", "list_allocations", "list_slots",
    "lists_of", "randomize", "recorded_values", "site_today", "undo_randomization",
]

# A subject who has left the study (or never entered it) is not randomized. Off
# treatment in follow-up is still in the study (a DLT window runs on after the infusion).
CLOSED_STATUSES = tuple(s for s in SubjectStatus
                        if s not in (SubjectStatus.SCREENING, SubjectStatus.ON_STUDY,
                                     SubjectStatus.IN_FOLLOW_UP,
                                     SubjectStatus.WITHDRAWN_FROM_TREATMENT))


class NotRandomizable(RandomizationServiceError):
    """The subject may not be randomized now; ``reasons`` names every failed check."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("cannot randomize: " + "; ".join(self.reasons))


# --- recorded data ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    value: str | None
    value_date: dt.date | None
    complete: bool  # the form holding it is complete


def recorded_values(session: Session, subject_ids: Iterable[int],
                    keys: Iterable[tuple[str, str]]) -> dict[tuple[int, str, str], Recorded]:
    """The most recent non-blank value of each (form, item) per subject, in one query.

    "Most recent" follows the schedule's rule for ``FORM.ITEM``: the latest value recorded
    in any event.
    """
    ids, wanted = list(subject_ids), set(keys)
    if not ids or not wanted:
        return {}
    rows = session.execute(
        select(ItemValue.subject_id, ItemValue.form_oid, ItemValue.item_oid, ItemValue.value,
               ItemValue.value_date, FormInstance.status)
        .join(FormInstance, FormInstance.id == ItemValue.form_instance_id)
        .where(ItemValue.subject_id.in_(ids),
               ItemValue.item_oid.in_({item for _, item in wanted}),
               ItemValue.value.is_not(None))
        .order_by(ItemValue.updated_at, ItemValue.id)
    )
    found: dict[tuple[int, str, str], Recorded] = {}
    for row in rows:
        if (row.form_oid, row.item_oid) in wanted and row.value.strip():
            found[row.subject_id, row.form_oid, row.item_oid] = Recorded(
                row.value, row.value_date, row.status == "complete")
    return found


def definition_of(session: Session, subject: Subject) -> StudyDefinition:
    return studies.definition_for(subject.study_version)


def site_today(subject: Subject) -> dt.date:
    """The calendar day at the subject's site: consent and randomization dates are local."""
    return local_today(subject.site.timezone)


# --- readiness ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    key: str  # eligibility | consent | stratum:<name> | status | arm
    ok: bool
    message: str


@dataclass
class Readiness:
    checks: list[Check] = field(default_factory=list)
    strata: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [c.message for c in self.checks if not c.ok]


def _key_text(key: tuple[str, str]) -> str:
    return f"{key[0]}.{key[1]}"


def check_readiness(session: Session, subject: Subject, *,
                    today: dt.date | None = None) -> Readiness:
    """Every precondition of randomization, each with its own message."""
    defn = definition_of(session, subject)
    rdef = defn.randomization
    result = Readiness()
    if rdef is None:
        result.checks.append(Check("definition", False,
                                   f"study {defn.oid} declares no randomization"))
        return result
    today = today or site_today(subject)
    consent_key = defn.anchors.get("consent")
    keys = [(s.form, s.item) for s in rdef.strata]
    keys += [k for k in (rdef.eligibility, consent_key) if k is not None]
    values = recorded_values(session, [subject.id], keys)

    def get(key: tuple[str, str]) -> Recorded | None:
        return values.get((subject.id, *key))

    if subject.arm:
        result.checks.append(Check("arm", False, f"subject {subject.subject_key} is already "
                                                 f"randomized (arm {subject.arm})"))
    if subject.status in CLOSED_STATUSES:
        result.checks.append(Check("status", False, f"subject status is "
                                                    f"{subject.status.replace('_', ' ')}"))
    if rdef.eligibility is None:
        result.checks.append(Check("eligibility", True, "no eligibility item is declared"))
    else:
        name, rec = _key_text(rdef.eligibility), get(rdef.eligibility)
        if rec is None:
            check = Check("eligibility", False, f"eligibility is not recorded ({name})")
        elif not rec.complete:
            check = Check("eligibility", False, f"eligibility is incomplete: the "
                                                f"{rdef.eligibility[0]} form is not complete")
        elif rec.value != "Y":
            check = Check("eligibility", False,
                          f"the subject is not eligible ({name} = {rec.value})")
        else:
            check = Check("eligibility", True, f"eligible ({name} = Y, form complete)")
        result.checks.append(check)
    if consent_key is None:
        result.checks.append(Check("consent", True, "the study declares no consent anchor"))
    else:
        name, rec = _key_text(consent_key), get(consent_key)
        if rec is None or rec.value_date is None:
            check = Check("consent", False, f"the consent date is not recorded ({name})")
        elif rec.value_date > today:
            check = Check("consent", False, f"the consent date {rec.value_date.isoformat()} "
                                            f"is after today ({today.isoformat()})")
        else:
            check = Check("consent", True, f"consent given on {rec.value_date.isoformat()}")
        result.checks.append(check)
    for stratum in rdef.strata:
        key = (stratum.form, stratum.item)
        name, rec = _key_text(key), get(key)
        choices = defn.choices_of(*key)
        levels = choices.codes if choices else ()
        if rec is None:
            check = Check(f"stratum:{stratum.name}", False,
                          f"stratification item {name} ({stratum.name}) is not recorded")
        elif rec.value not in levels:
            check = Check(f"stratum:{stratum.name}", False,
                          f"{name} = {rec.value!r} is not a level of stratum {stratum.name}")
        else:
            result.strata[stratum.name] = rec.value
            check = Check(f"stratum:{stratum.name}", True, f"{stratum.name} = {rec.value}")
        result.checks.append(check)
    return result


# --- allocation ---------------------------------------------------------------------------


def allocations_of(session: Session, subject: Subject) -> list[Allocation]:
    """Every allocation of the subject, undone ones included, oldest first."""
    return list(session.scalars(select(Allocation).where(Allocation.subject_id == subject.id)
                                .order_by(Allocation.id)))


def _lock_list(session: Session, rlist: RandomizationList) -> None:
    session.execute(update(RandomizationList).where(RandomizationList.id == rlist.id)
                    .values(active=RandomizationList.active)
                    .execution_options(synchronize_session=False))


def _path(subject: Subject) -> str:
    return f"{subject.study.oid}/{subject.subject_key}"


def randomize(session: Session, actor: Actor, subject: Subject, *, kind: str = "production",
              today: dt.date | None = None) -> Allocation:
    """Allocate the next slot of the subject's stratum; raises NotRandomizable with every
    reason when a precondition fails. Flushes; the caller commits."""
    check_kind(kind)
    today = today or site_today(subject)
    readiness = check_readiness(session, subject, today=today)
    if not readiness.ok:
        raise NotRandomizable(readiness.reasons)
    rlist = active_list(session, subject.study, kind)
    if rlist is None:
        raise NotRandomizable([f"no active {kind} randomization list: the data manager must "
                               f"generate or import one"])
    defn = definition_of(session, subject)
    stratum = engine.stratum_key(readiness.strata, list(factor_levels(defn)))

    audit.bind_actor(session, actor)
    _lock_list(session, rlist)  # first write of the transaction: requests queue here
    session.refresh(subject)  # re-read under the lock: a parallel request may have won
    taken = session.scalar(select(Allocation).where(Allocation.list_id == rlist.id,
                                                    Allocation.live_subject_id == subject.id))
    if taken is not None or subject.arm:
        raise NotRandomizable([f"subject {subject.subject_key} is already randomized "
                               f"(arm {subject.arm or taken.arm})"])
    slot = session.scalar(
        select(RandomizationSlot)
        .where(RandomizationSlot.list_id == rlist.id, RandomizationSlot.stratum == stratum,
               RandomizationSlot.subject_id.is_(None))
        .order_by(RandomizationSlot.sequence).limit(1))
    if slot is None:
        raise NotRandomizable([f"the {kind} list is exhausted for stratum {stratum!r}: "
                               f"the data manager must extend or replace it"])
    rdef = defn.randomization
    # Lock order list -> event -> audit chain -> other rows, as data entry does (event ->
    # chain), so a randomization and a save on the same subject never deadlock.
    target = _date_target(session, subject, defn, rdef.date_item) if rdef.date_item else None
    now = utcnow()
    audit.record(session, actor, "subject.randomized", category="clinical",
                 study_oid=subject.study.oid, site_code=subject.site.code,
                 subject_key=subject.subject_key, path=f"{_path(subject)}/arm",
                 old_value=subject.arm, new_value=slot.arm,
                 study_version=subject.study_version.label,
                 details={"list_id": rlist.id, "list_kind": kind, "stratum": stratum,
                          "strata": readiness.strata, "sequence": slot.sequence,
                          "arm": slot.arm, "randomized_on": today, "allocated_at": now})
    slot.subject_id = subject.id
    slot.allocated_at = now
    slot.allocated_by_id = actor.user_id
    allocation = Allocation(
        list_id=rlist.id, slot_id=slot.id, subject_id=subject.id, live_subject_id=subject.id,
        stratum=stratum, strata=json.dumps(readiness.strata, sort_keys=True),
        sequence=slot.sequence, arm=slot.arm, randomized_on=today, allocated_at=now,
        allocated_by_id=actor.user_id, allocated_by=actor.username, allocated_role=actor.role)
    session.add(allocation)
    subject.arm = slot.arm
    capture.mark_on_study(session, actor, subject, f"randomized to {slot.arm}")
    if target is not None:
        _write_date(session, actor, subject, defn, rdef.date_item, today,
                    reason="written by randomization", target=target)
    session.flush()
    if rdef.number_item:
        # The allocation's own id: unique in the instance and, unlike the sequence number
        # within a stratum, it tells a site nothing about block sizes.
        _write_date(session, actor, subject, defn, rdef.number_item, f"R{allocation.id:06d}",
                    reason="written by randomization")
    capture.refresh_subject(session, subject)
    return allocation


def undo_randomization(session: Session, actor: Actor, subject: Subject, reason: str
                       ) -> Allocation:
    """Mark the subject's allocation in force as undone (system administrators only).

    The allocation row, its slot and the frozen strata stay; the slot is never reused. The
    subject's arm and randomization date are cleared so it may be randomized again.
    """
    user = session.get(User, actor.user_id) if actor.user_id is not None else None
    if user is None or not accounts.is_admin(user):
        raise RandomizationServiceError("only a system administrator can undo a randomization")
    reason = (reason or "").strip()
    if not reason:
        raise RandomizationServiceError("a reason is required to undo a randomization")
    allocation = session.scalar(select(Allocation).where(
        Allocation.subject_id == subject.id, Allocation.undone_at.is_(None)))
    if allocation is None:
        raise RandomizationServiceError(f"subject {subject.subject_key} has no randomization "
                                        f"in force to undo")
    audit.bind_actor(session, actor)
    _lock_list(session, allocation.randomization_list)
    defn = definition_of(session, subject)
    date_item = defn.randomization.date_item if defn.randomization else None
    target = _date_target(session, subject, defn, date_item) if date_item else None
    now = utcnow()
    audit.record(session, actor, "subject.randomization_undone", category="clinical",
                 study_oid=subject.study.oid, site_code=subject.site.code,
                 subject_key=subject.subject_key, path=f"{_path(subject)}/arm",
                 old_value=subject.arm, new_value=None, reason=reason,
                 study_version=subject.study_version.label,
                 details={"list_id": allocation.list_id, "stratum": allocation.stratum,
                          "sequence": allocation.sequence, "arm": allocation.arm,
                          "allocated_at": allocation.allocated_at,
                          "allocated_by": allocation.allocated_by})
    allocation.undone_at = now
    allocation.undone_by_id = actor.user_id
    allocation.undone_by = actor.username
    allocation.undo_reason = reason
    allocation.live_subject_id = None
    subject.arm = None
    if target is not None:
        _write_date(session, actor, subject, defn, date_item, None,
                    reason=f"randomization undone: {reason}", target=target)
    number_item = defn.randomization.number_item if defn.randomization else None
    if number_item:
        _write_date(session, actor, subject, defn, number_item, None,
                    reason=f"randomization undone: {reason}")
    session.flush()
    capture.refresh_subject(session, subject)
    capture.recompute_status(session, actor, subject, changed={("subject", "arm")},
                             why=f"randomization undone: {reason}")
    return allocation


def _date_target(session: Session, subject: Subject, defn: StudyDefinition,
                 key: tuple[str, str]) -> tuple[EventInstance, ItemValue | None]:
    """The event holding the randomization date item, row-locked as data entry locks it
    (event first, then the audit chain), with the item's current value if any."""
    form_oid, item_oid = key
    current = session.scalar(select(ItemValue).where(
        ItemValue.subject_id == subject.id, ItemValue.form_oid == form_oid,
        ItemValue.item_oid == item_oid).order_by(ItemValue.updated_at.desc()).limit(1))
    if current is not None:
        event_id = current.form_instance.event_instance_id
    else:
        event_id = _event_for_form(session, subject, defn, form_oid).id
    event = session.scalar(select(EventInstance).where(EventInstance.id == event_id)
                           .with_for_update())
    return event, current


def _write_date(session: Session, actor: Actor, subject: Subject, defn: StudyDefinition,
                key: tuple[str, str], value: dt.date | str | None, *, reason: str,
                target: tuple[EventInstance, ItemValue | None] | None = None) -> None:
    """Set (or clear) an item written by randomization (its date, or the allocation
    number as text), creating its form if needed."""
    form_oid, item_oid = key
    item = defn.item(form_oid, item_oid)
    event, current = target or _date_target(session, subject, defn, key)
    if current is None and value is None:
        return
    if current is None:
        form = session.scalar(select(FormInstance).where(
            FormInstance.event_instance_id == event.id, FormInstance.form_oid == form_oid))
        if form is None:
            form = FormInstance(event_instance_id=event.id, subject_id=subject.id,
                                form_oid=form_oid, study_version_id=subject.study_version_id,
                                status="in_progress", updated_by_id=actor.user_id)
            session.add(form)
            session.flush()
        current = ItemValue(form_instance_id=form.id, subject_id=subject.id, form_oid=form_oid,
                            group_oid=item.group, row=1, item_oid=item_oid)
        session.add(current)
    if isinstance(value, str):
        old, new = current.value, value
    else:
        old, new = current.value, value.isoformat() if value else None
    if old == new:
        return
    action = "item.entered" if old is None else "item.cleared" if new is None else "item.changed"
    audit.record(session, actor, action, category="clinical", study_oid=subject.study.oid,
                 site_code=subject.site.code, subject_key=subject.subject_key,
                 path=item_path(subject, event.event_oid, event.repeat, form_oid,
                                (current.group_oid, current.row, item_oid)),
                 old_value=old, new_value=new, reason=reason,
                 study_version=subject.study_version.label)
    current.value = new
    current.value_date = value if isinstance(value, dt.date) else None
    current.updated_at, current.updated_by_id = utcnow(), actor.user_id


def _event_for_form(session: Session, subject: Subject, defn: StudyDefinition,
                    form_oid: str) -> EventInstance:
    rules = defn.events_with_form(form_oid)
    if not rules:
        raise RandomizationServiceError(f"no event of {defn.oid} holds form {form_oid}")
    oids = [r.oid for r in rules]
    existing = session.scalars(select(EventInstance).where(
        EventInstance.subject_id == subject.id, EventInstance.event_oid.in_(oids))
        .order_by(EventInstance.repeat, EventInstance.id)).all()
    if existing:
        return min(existing, key=lambda e: (oids.index(e.event_oid), e.repeat))
    event = EventInstance(subject_id=subject.id, event_oid=oids[0], repeat=1,
                          state="in_progress")
    session.add(event)
    session.flush()
    return event
