"""What a clinical export writes of each subject's allocation (``extension``): the arm,
the dose level and the randomization in force with its list slot, strata and number, read
for every subject in scope in one statement."""

from __future__ import annotations

import json

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ecrf.allocation import Allocation, RandomizationList
from ecrf.capture import ItemValue, Subject
from ecrf.outputs.odm.extension import AllocationInfo
from ecrf.outputs.rows import Scope
from ecrf.studies import definition_for, latest_version


def allocations_in_scope(session: Session, scope: Scope) -> dict[int, AllocationInfo]:
    """subject id -> its allocation, for subjects with an arm or a dose level."""
    version = latest_version(session, scope.study)
    rand = definition_for(version).randomization if version is not None else None
    number_item = rand.number_item if rand is not None else None
    stmt = (
        select(Subject.id, Subject.arm, Subject.dose_level, Allocation, RandomizationList.name,
               RandomizationList.kind)
        .select_from(Subject)
        .outerjoin(Allocation, and_(Allocation.live_subject_id == Subject.id,
                                    Allocation.undone_at.is_(None)))
        .outerjoin(RandomizationList, RandomizationList.id == Allocation.list_id)
        .where((Subject.arm.is_not(None)) | (Subject.dose_level.is_not(None))))
    stmt = scope.apply(stmt)
    numbers: dict[int, str] = {}
    if number_item is not None:
        numbers = dict(session.execute(scope.apply(
            select(ItemValue.subject_id, ItemValue.value).select_from(ItemValue)
            .join(Subject, Subject.id == ItemValue.subject_id)
            .where(ItemValue.form_oid == number_item[0], ItemValue.item_oid == number_item[1],
                   ItemValue.value.is_not(None)))).all())
    found: dict[int, AllocationInfo] = {}
    for subject_id, arm, level, allocation, list_name, list_kind in session.execute(stmt):
        if allocation is None:
            found[subject_id] = AllocationInfo(arm=arm, dose_level=level)
            continue
        strata = json.loads(allocation.strata or "{}")
        found[subject_id] = AllocationInfo(
            arm=arm or allocation.arm, dose_level=level, number=numbers.get(subject_id),
            randomized_on=allocation.randomized_on, allocated_at=allocation.allocated_at,
            allocated_by=allocation.allocated_by, list_name=list_name,
            list_kind=list_kind or "production", stratum=allocation.stratum,
            sequence=allocation.sequence, strata={str(k): str(v) for k, v in strata.items()})
    return found
