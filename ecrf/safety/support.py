"""Reading safety data out of the stored item values: the AE log and its fields, study
parameters with their defaults, and audit paths.

The AE log is what the study's ``adverse_events`` block names (forms/README.md): a
repeating group and the role of each of its items (term, onset, grade, seriousness and its
criteria, outcome, expectedness, awareness and sponsor-report date-times, one investigator
causality item per study drug, the sponsor's causality, the date of death). A study
without the block has no AE log: no SAE reports, SUSARs, DLT candidates or AE rows for the
AE prompts. The sponsor's causality is never read as the investigator's.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ecrf.capture import EventInstance, FormInstance, GroupRow, ItemValue, Subject, row_path
from ecrf.core import audit, whole_number
from ecrf.crf import FormDef, ItemType, StudyDefinition
from ecrf.crf.definition import AdverseEventsDef
from ecrf.crf.values import from_canonical
from ecrf.domain.adverse_events import (
    DEFAULT_RELATED,
    AdverseEvent,
    Causality,
    Outcome,
    SeriousnessCriterion,
)
from ecrf.domain.dates import PartialDate, PartialDateError
from ecrf.domain.schedule import EventKind
from ecrf.studies import StudyVersion, definition_for

# adverse_events.criteria names -> the domain's seriousness criteria.
CRITERIA = {
    "death": SeriousnessCriterion.DEATH,
    "life_threatening": SeriousnessCriterion.LIFE_THREATENING,
    "hospitalisation": SeriousnessCriterion.HOSPITALISATION,
    "disability": SeriousnessCriterion.DISABILITY,
    "congenital_anomaly": SeriousnessCriterion.CONGENITAL_ANOMALY,
    "important_medical_event": SeriousnessCriterion.IMPORTANT_MEDICAL_EVENT,
}
DEFAULTS: dict[str, object] = {
    "ae_prompt_grade": 3,
    "dlt_min_grade": 3,
}


def param(definition: StudyDefinition, name: str, default: object = None) -> object:
    """A study parameter's value, or the documented default when the study has none."""
    parameter = definition.parameters.get(name)
    if parameter is not None and parameter.default is not None:
        return parameter.default
    return DEFAULTS.get(name, default) if default is None else default


def int_param(definition: StudyDefinition, name: str, default: int) -> int:
    value = param(definition, name, default)
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


# --- the AE log ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AeLog:
    form: FormDef
    spec: AdverseEventsDef
    event_oid: str | None  # the log event holding the form (where new rows are added)

    @property
    def form_oid(self) -> str:
        return self.form.oid

    @property
    def group(self) -> str:
        return self.spec.group

    @property
    def causality(self) -> dict[str, str]:
        """Study drug -> its investigator causality item, in the declared order."""
        return dict(self.spec.causality)


def ae_log(definition: StudyDefinition) -> AeLog | None:
    """The study's AE log (form, repeating group, event), or None if it declares none."""
    spec = definition.adverse_events
    if spec is None:
        return None
    events = definition.events_with_form(spec.form)
    logs = [e for e in events if e.kind is EventKind.LOG] or list(events)
    return AeLog(definition.form(spec.form), spec, logs[0].oid if logs else None)


def dlt_causality_item(definition: StudyDefinition, log: AeLog) -> str | None:
    """The causality item of ``dose_escalation.dlt_drug``, or None when none is declared."""
    esc = definition.dose_escalation
    drug = esc.dlt_drug if esc is not None else None
    return log.spec.causality.get(drug) if drug else None


@dataclass
class AeRow:
    """One live AE row as stored: canonical texts and the UTC date-times by item OID, read
    through the roles of the study's ``adverse_events`` block."""

    spec: AdverseEventsDef
    subject_id: int
    form_instance_id: int
    event_oid: str
    repeat: int
    group: str
    row: int
    values: dict[str, str] = field(default_factory=dict)
    moments: dict[str, dt.datetime] = field(default_factory=dict)

    def get(self, item: str | None) -> str | None:
        return self.values.get(item) if item else None

    @property
    def term(self) -> str | None:
        return self.get(self.spec.term)

    @property
    def onset_text(self) -> str | None:
        return self.get(self.spec.onset)

    @property
    def end_text(self) -> str | None:
        return self.get(self.spec.end)

    @property
    def grade_text(self) -> str | None:
        return self.get(self.spec.grade)

    @property
    def serious_text(self) -> str | None:
        return self.get(self.spec.serious)

    @property
    def serious(self) -> bool:
        return self.serious_text == "Y"

    @property
    def grade(self) -> int | None:
        text = self.grade_text
        return whole_number(text or "")

    @property
    def awareness(self) -> dt.datetime | None:
        return self.moments.get(self.spec.awareness) if self.spec.awareness else None

    @property
    def sponsor_report(self) -> dt.datetime | None:
        return self.moments.get(self.spec.sponsor_report) if self.spec.sponsor_report \
            else None

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.form_instance_id, self.group, self.row)


def load_ae_rows(session: Session, subject_ids: Iterable[int], log: AeLog, *,
                 study_id: int | None = None, form_instance_id: int | None = None
                 ) -> dict[int, list[AeRow]]:
    """Live AE rows of the subjects (one statement), by subject, in row order."""
    ids = list(subject_ids)
    if not ids:
        return {}
    stmt = (select(ItemValue.subject_id, ItemValue.form_instance_id, ItemValue.row,
                   ItemValue.item_oid, ItemValue.value, ItemValue.value_datetime,
                   EventInstance.event_oid, EventInstance.repeat)
            .join(FormInstance, FormInstance.id == ItemValue.form_instance_id)
            .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
            .outerjoin(GroupRow, and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                                      GroupRow.group_oid == ItemValue.group_oid,
                                      GroupRow.row == ItemValue.row))
            .where(ItemValue.form_oid == log.form_oid, ItemValue.group_oid == log.group,
                   ItemValue.value.is_not(None), GroupRow.removed_at.is_(None)))
    if form_instance_id is not None:
        stmt = stmt.where(ItemValue.form_instance_id == form_instance_id)
    elif len(ids) <= 500 or study_id is None:
        stmt = stmt.where(ItemValue.subject_id.in_(ids))
    else:
        # Many subjects: select by study so the statement keeps its size.
        stmt = stmt.join(Subject, Subject.id == ItemValue.subject_id).where(
            Subject.study_id == study_id)
    rows: dict[tuple[int, int], AeRow] = {}
    wanted = set(ids)
    for sid, fi, row, item, value, moment, event_oid, repeat in session.execute(stmt):
        if sid not in wanted:
            continue
        ae = rows.get((fi, row))
        if ae is None:
            ae = rows[(fi, row)] = AeRow(log.spec, sid, fi, event_oid, repeat, log.group,
                                         row)
        ae.values[item] = value
        if moment is not None:
            ae.moments[item] = moment
    found: dict[int, list[AeRow]] = defaultdict(list)
    for key in sorted(rows):
        found[rows[key].subject_id].append(rows[key])
    return found


def _partial(text: str | None) -> PartialDate | None:
    if not text:
        return None
    try:
        return PartialDate.parse(text[:10])
    except PartialDateError:
        return None


def onset_of(row: AeRow) -> PartialDate | None:
    return _partial(row.onset_text)


def causality_of(row: AeRow, log: AeLog) -> dict[str, Causality]:
    """The investigator's causality per study drug, where recorded."""
    found = {}
    for drug, item in log.spec.causality.items():
        text = row.get(item)
        try:
            if text:
                found[drug] = Causality(text)
        except ValueError:
            continue
    return found


def _criteria(row: AeRow) -> set[SeriousnessCriterion]:
    return {CRITERIA[name] for name, item in row.spec.criteria.items() if row.get(item) == "Y"}


def _outcome(row: AeRow) -> Outcome | None:
    try:
        return Outcome(row.get(row.spec.outcome) or "")
    except ValueError:
        return None


def to_adverse_event(row: AeRow, log: AeLog) -> AdverseEvent:
    """The domain record of an AE row, for the consistency rules."""
    spec = row.spec
    expected = {"EXPECTED": True, "UNEXPECTED": False}.get(row.get(spec.expectedness) or "")
    return AdverseEvent(
        term=row.term or "", onset=row.onset_text, resolution=row.end_text, grade=row.grade,
        serious={"Y": True, "N": False}.get(row.serious_text or ""), criteria=_criteria(row),
        causality=causality_of(row, log), outcome=_outcome(row),
        death_date=row.get(spec.death_date), expected=expected)


def is_susar(row: AeRow, log: AeLog) -> bool:
    """Serious, related by the investigator to a study drug, and unexpected. The drugs are
    ``adverse_events.susar_drugs``, or every drug of its causality when not given."""
    causality = causality_of(row, log)
    if log.spec.susar_drugs:
        causality = {k: v for k, v in causality.items() if k in log.spec.susar_drugs}
    related = any(c in DEFAULT_RELATED for c in causality.values())
    return row.serious and related and row.get(log.spec.expectedness) == "UNEXPECTED"


def fatal_or_life_threatening(row: AeRow) -> bool:
    criteria = _criteria(row)
    return (SeriousnessCriterion.DEATH in criteria
            or SeriousnessCriterion.LIFE_THREATENING in criteria
            or _outcome(row) is Outcome.FATAL or row.grade in (4, 5))


def row_snapshot(row: AeRow) -> dict[str, str]:
    return dict(sorted(row.values.items()))


def ae_row_path(subject: Subject, row: AeRow, log: AeLog) -> str:
    return row_path(subject, row.event_oid, row.repeat, log.form_oid, row.group, row.row)


# --- definitions of many form instances ----------------------------------------------------


class Definitions:
    """Definitions of stored versions by id, loaded on demand (one query per new id)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.cache: dict[int, StudyDefinition] = {}

    def get(self, version_id: int) -> StudyDefinition:
        found = self.cache.get(version_id)
        if found is None:
            version = self.session.get(StudyVersion, version_id)
            found = self.cache[version_id] = definition_for(version)
        return found


def typed(definition: StudyDefinition, form_oid: str, item_oid: str, text: str | None):
    try:
        item = definition.item(form_oid, item_oid)
    except Exception:  # an item of another version: not readable here
        return None
    return from_canonical(item, text)


def date_items(form: FormDef) -> list[str]:
    return [i.oid for i in form.items if i.type in (ItemType.DATE, ItemType.DATETIME)]


Kept = TypeVar("Kept")


class KeptResults(Generic[Kept]):
    """Results computed once per state of the data: each is kept in this process (the
    last ``size``) under its key, the database and the audit chain head, so it is
    recomputed once the chain moves, which every audited change does in its own
    transaction. Reading the head is the one statement a kept result costs."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._kept: OrderedDict[tuple, Kept] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: Session, key: tuple[Hashable, ...], compute: Callable[[], Kept]
            ) -> Kept:
        full = (str(session.get_bind().url), *key, audit.chain_head(session))
        with self._lock:
            kept = self._kept.get(full)
            if kept is not None:
                self._kept.move_to_end(full)
                return kept
        kept = compute()
        with self._lock:
            self._kept[full] = kept
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return kept
