"""Randomization lists: generated from the study definition with a recorded seed, or
imported from CSV and validated by the pure engine (``ecrf.domain.randomization``).

Concealment: the seed and the block sizes live on the list row only, never in audit rows,
which investigators may read. A list that allocated anyone is never replaced.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from ecrf import studies
from ecrf.allocation.models import Allocation, ListKind, RandomizationList, RandomizationSlot
from ecrf.core import audit, utcnow
from ecrf.core.audit import Actor
from ecrf.crf import StudyDefinition
from ecrf.domain import randomization as engine
from ecrf.studies import Study

KINDS = (ListKind.PRODUCTION, ListKind.TEST)
ListValidationError = engine.ListValidationError


class RandomizationServiceError(ValueError):
    """A randomization request that cannot be carried out; the message says why."""


def latest_definition(session: Session, study: Study) -> StudyDefinition:
    version = studies.latest_version(session, study)
    if version is None:
        raise RandomizationServiceError(f"study {study.oid} has no loaded definition "
                                        f"(load it with `ecrf study load PATH`)")
    return studies.definition_for(version)


def _arms(defn: StudyDefinition) -> list[engine.Arm]:
    return [engine.Arm(a.code, a.ratio) for a in defn.arms]


def factor_levels(defn: StudyDefinition) -> dict[str, tuple[str, ...]]:
    if defn.randomization is None:
        raise RandomizationServiceError(f"study {defn.oid} declares no randomization")
    levels = {}
    for stratum in defn.randomization.strata:
        choices = defn.choices_of(stratum.form, stratum.item)
        levels[stratum.name] = choices.codes if choices else ()
    return levels


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise RandomizationServiceError(f"unknown list kind {kind!r}: use production or test")
    return kind


def active_list(session: Session, study: Study, kind: str = "production"
                ) -> RandomizationList | None:
    return session.scalar(select(RandomizationList).where(
        RandomizationList.study_id == study.id, RandomizationList.kind == check_kind(kind),
        RandomizationList.active.is_(True)))


def lists_of(session: Session, study: Study, kind: str | None = None) -> list[RandomizationList]:
    stmt = select(RandomizationList).where(RandomizationList.study_id == study.id)
    if kind:
        stmt = stmt.where(RandomizationList.kind == check_kind(kind))
    return list(session.scalars(stmt.order_by(RandomizationList.id)))


def _retire_active(session: Session, study: Study, kind: str, replace: bool) -> int | None:
    current = active_list(session, study, kind)
    if current is None:
        return None
    if not replace:
        raise RandomizationServiceError(
            f"study {study.oid} already has an active {kind} list (#{current.id} "
            f"{current.name!r}); replace it explicitly to retire it")
    used = session.scalar(select(func.count()).select_from(RandomizationSlot).where(
        RandomizationSlot.list_id == current.id, RandomizationSlot.subject_id.is_not(None)))
    if used:
        raise RandomizationServiceError(
            f"the active {kind} list #{current.id} already allocated {used} subject(s) and "
            f"cannot be replaced")
    current.active = False
    current.retired_at = utcnow()
    session.flush()  # before any audit row: the list lock comes before the chain lock
    return current.id


def _store(session: Session, actor: Actor, study: Study, slots: list[engine.Slot], *,
           kind: str, source: str, name: str | None, replace: bool, seed: str | None = None,
           block_sizes: Sequence[int] = (), per_stratum: int | None = None,
           file_sha256: str | None = None) -> RandomizationList:
    audit.bind_actor(session, actor)
    retired = _retire_active(session, study, kind, replace)
    version = studies.latest_version(session, study)
    rlist = RandomizationList(
        study_id=study.id, kind=kind, source=source, seed=seed,
        name=(name or "").strip() or f"{study.oid} {kind} list ({source})",
        block_sizes=",".join(str(s) for s in sorted(set(block_sizes))) or None,
        slots_per_stratum=per_stratum, file_sha256=file_sha256,
        study_version_id=version.id if version else None,
        created_by=actor.username, created_by_id=actor.user_id, active=True,
    )
    session.add(rlist)
    session.flush()
    session.execute(insert(RandomizationSlot), [
        {"list_id": rlist.id, "stratum": s.stratum, "sequence": s.sequence, "arm": s.arm,
         "block": s.block, "block_size": s.block_size} for s in slots])
    # No seed and no block sizes here: site roles may read the audit trail.
    audit.record(session, actor, f"randomization.list_{source}", category="allocation",
                 study_oid=study.oid, new_value=f"#{rlist.id} {rlist.name}",
                 study_version=version.label if version else None,
                 details={"list_id": rlist.id, "kind": kind, "slots": len(slots),
                          "strata": len({s.stratum for s in slots}),
                          "replaces_list": retired, "file_sha256": file_sha256})
    return rlist


def generate(session: Session, actor: Actor, study: Study, *, seed: str | int,
             per_stratum: int, kind: str = "production", name: str | None = None,
             block_sizes: Sequence[int] | None = None, replace: bool = False
             ) -> RandomizationList:
    """Generate and store a list from the study's definition and a recorded seed.

    ``block_sizes`` overrides the definition's, so a statistician can keep the real sizes
    out of the (readable) study definition.
    """
    check_kind(kind)
    defn = latest_definition(session, study)
    levels = factor_levels(defn)
    sizes = tuple(block_sizes or defn.randomization.block_sizes)
    seed_text = str(seed).strip()
    if not seed_text:
        raise RandomizationServiceError("a seed is required: it makes the list reproducible")
    try:
        slots = engine.generate_list(_arms(defn), levels, block_sizes=sizes,
                                     slots_per_stratum=per_stratum, seed=seed_text)
    except engine.RandomizationError as exc:
        raise RandomizationServiceError(str(exc)) from None
    return _store(session, actor, study, slots, kind=kind, source="generated", name=name,
                  replace=replace, seed=seed_text, block_sizes=sizes, per_stratum=per_stratum)


def import_csv(session: Session, actor: Actor, study: Study, text: str, *,
               kind: str = "production", name: str | None = None, replace: bool = False
               ) -> RandomizationList:
    """Validate an externally generated list and store it.

    Raises ``ListValidationError`` whose ``problems`` name every bad row. Block sizes are
    not compared with the definition's: the list's statistician owns (and conceals) them;
    completeness and ratios within each block are still checked.
    """
    check_kind(kind)
    defn = latest_definition(session, study)
    slots = engine.validate_list(engine.parse_csv(text), _arms(defn), factor_levels(defn))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    sizes = {s.block_size for s in slots if s.block_size}
    return _store(session, actor, study, slots, kind=kind, source="imported", name=name,
                  replace=replace, block_sizes=sorted(sizes), file_sha256=digest)


@dataclass(frozen=True)
class StratumBalance:
    stratum: str
    slots: int
    used: int  # consumed, including by undone allocations
    voided: int
    allocated: dict[str, int]  # in force, per arm

    @property
    def remaining(self) -> int:
        return self.slots - self.used


def balance(session: Session, rlist: RandomizationList,
            arms: Sequence[str] = ()) -> list[StratumBalance]:
    """Per stratum: slots, used, voided and allocations in force per arm (two queries)."""
    totals = session.execute(
        select(RandomizationSlot.stratum, func.count(),
               func.count(RandomizationSlot.subject_id))
        .where(RandomizationSlot.list_id == rlist.id).group_by(RandomizationSlot.stratum)
        .order_by(RandomizationSlot.stratum)).all()
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    voided: dict[str, int] = defaultdict(int)
    rows = session.execute(
        select(Allocation.stratum, Allocation.arm, Allocation.undone_at.is_(None), func.count())
        .where(Allocation.list_id == rlist.id)
        .group_by(Allocation.stratum, Allocation.arm, Allocation.undone_at.is_(None)))
    for stratum, arm, in_force, n in rows:
        if in_force:
            counts[stratum][arm] = counts[stratum].get(arm, 0) + n
        else:
            voided[stratum] += n
    return [StratumBalance(stratum, total, used, voided[stratum],
                           {**dict.fromkeys(arms, 0), **counts[stratum]})
            for stratum, total, used in totals]


def list_allocations(session: Session, rlist: RandomizationList) -> list[Allocation]:
    return list(session.scalars(select(Allocation).where(Allocation.list_id == rlist.id)
                                .order_by(Allocation.stratum, Allocation.sequence)))


def list_slots(session: Session, rlist: RandomizationList) -> list[RandomizationSlot]:
    return list(session.scalars(select(RandomizationSlot)
                                .where(RandomizationSlot.list_id == rlist.id)
                                .order_by(RandomizationSlot.stratum, RandomizationSlot.sequence)))
