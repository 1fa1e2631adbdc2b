"""The stored clinical data of a study, read for exports in one ordered pass.

Every export of clinical data (ODM, CSV, XPT, SAV, SDTM, the casebook's ODM attachment)
reads item values through ``item_rows``: one SQL statement, ordered by subject, event,
repeat, form, group, row and item, streamed with ``yield_per`` (a server-side cursor on
PostgreSQL), so memory does not grow with the study. What belongs to a subject but not to
a value (audit rows, signatures) comes from a second ordered statement read in step
(``BySubject``): the two cursors advance together, one subject at a time.

A scope is a study, optionally narrowed to sites (the user's, or one named site) and to
one subject.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from ecrf import accounts
from ecrf.capture import EventInstance, FormInstance, GroupRow, ItemValue, Subject
from ecrf.core.audit import AuditEvent
from ecrf.crf import FormDef, GroupDef, ItemDef, StudyDefinition
from ecrf.review import Signature
from ecrf.studies import Site, Study, StudySite, StudyVersion, definition_for

BATCH = 5000
ITEM_ACTIONS = ("item.entered", "item.changed", "item.cleared")
ROW_REMOVED = "row.removed"


class ScopeError(ValueError):
    """A site or subject that does not exist in the study; the message says which."""


@dataclass(frozen=True)
class Scope:
    """What an export covers: a study, some of its sites (None: all) or one subject."""

    study: Study
    site_ids: frozenset[int] | None = None
    subject_id: int | None = None
    site_code: str | None = None
    subject_key: str | None = None

    def apply(self, stmt, subject_table=Subject):
        stmt = stmt.where(subject_table.study_id == self.study.id)
        if self.site_ids is not None:
            stmt = accounts.scope_to_sites(stmt, subject_table.site_id, set(self.site_ids))
        if self.subject_id is not None:
            stmt = stmt.where(subject_table.id == self.subject_id)
        return stmt

    @property
    def label(self) -> str:
        if self.subject_key:
            return f"subject {self.subject_key}"
        if self.site_code:
            return f"site {self.site_code}"
        return "all sites"


def make_scope(session: Session, study: Study, *, site: str | None = None,
               subject: str | None = None, site_ids: set[int] | None = None) -> Scope:
    """The scope of an export; ``site_ids`` (the user's sites) narrows it further."""
    allowed = frozenset(site_ids) if site_ids is not None else None
    site_row = None
    if site:
        site_row = session.scalar(
            select(Site).join(StudySite, StudySite.site_id == Site.id)
            .where(StudySite.study_id == study.id, func.upper(Site.code) == site.upper()))
        if site_row is None:
            raise ScopeError(f"site {site!r} does not take part in {study.oid}")
        allowed = frozenset({site_row.id}) if allowed is None else allowed & {site_row.id}
    subject_row = None
    if subject:
        stmt = select(Subject).where(Subject.study_id == study.id,
                                     Subject.subject_key == subject)
        subject_row = session.scalar(stmt)
        if subject_row is None or (allowed is not None and subject_row.site_id not in allowed):
            raise ScopeError(f"no subject {subject!r} in {study.oid}"
                             + (f" at site {site_row.code}" if site_row else ""))
    return Scope(study, allowed, subject_row.id if subject_row else None,
                 site_row.code if site_row else None,
                 subject_row.subject_key if subject_row else None)


class ItemRow(NamedTuple):
    subject_id: int
    subject_key: str
    site_code: str
    subject_status: str
    enrolled_on: dt.date
    event_instance_id: int
    event_oid: str
    repeat: int
    event_date: dt.date | None
    event_state: str
    form_instance_id: int
    form_oid: str
    form_status: str
    version_id: int
    group_oid: str | None
    row: int | None
    item_oid: str | None
    value: str | None
    grade: int | None
    grade_version: str | None
    removed_at: dt.datetime | None


def item_rows(session: Session, scope: Scope, *, version_id: int | None = None,
              form_oid: str | None = None, batch: int = BATCH) -> Iterator[ItemRow]:
    """Every stored value in scope (and each form without values, with item None), ordered
    by subject, event, repeat, form, group, row, item; one statement, streamed."""
    columns = (Subject.id, Subject.subject_key, Site.code, Subject.status,
               Subject.enrolled_on, EventInstance.id, EventInstance.event_oid,
               EventInstance.repeat, EventInstance.actual_date, EventInstance.state,
               FormInstance.id, FormInstance.form_oid, FormInstance.status,
               FormInstance.study_version_id, ItemValue.group_oid, ItemValue.row,
               ItemValue.item_oid, ItemValue.value, ItemValue.grade, ItemValue.grade_version,
               GroupRow.removed_at)
    stmt = (
        select(*(c.label(name) for c, name in zip(columns, ItemRow._fields, strict=True)))
        .select_from(FormInstance)
        .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
        .join(Subject, Subject.id == FormInstance.subject_id)
        .join(Site, Site.id == Subject.site_id)
        .outerjoin(ItemValue, ItemValue.form_instance_id == FormInstance.id)
        .outerjoin(GroupRow, and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                                  GroupRow.group_oid == ItemValue.group_oid,
                                  GroupRow.row == ItemValue.row))
    )
    stmt = scope.apply(stmt)
    if version_id is not None:
        stmt = stmt.where(FormInstance.study_version_id == version_id)
    if form_oid is not None:
        stmt = stmt.where(FormInstance.form_oid == form_oid)
    stmt = stmt.order_by(Subject.id, EventInstance.event_oid, EventInstance.repeat,
                         FormInstance.form_oid, ItemValue.group_oid, ItemValue.row,
                         ItemValue.item_oid)
    # Core rows (no ORM loading step): rows are read in batches from a server-side cursor
    # and answer to the ItemRow field names.
    # Options on the statement, not the connection: Connection.execution_options would
    # leave every later statement of the transaction on a server-side cursor.
    # Taken a batch at a time: row by row, the result's own iteration costs more than the
    # export's work on the row.
    result = session.connection().execute(stmt.execution_options(yield_per=batch))
    make = ItemRow._make
    for part in result.partitions():
        yield from map(make, part)


class AuditRow(NamedTuple):
    subject_id: int
    seq: int
    occurred_at: dt.datetime
    action: str
    username: str | None
    role: str | None
    site_code: str | None
    path: str | None
    old_value: str | None
    new_value: str | None
    reason: str | None


def audit_rows(session: Session, scope: Scope, *, actions: Sequence[str] | None = None,
               batch: int = BATCH) -> Iterator[AuditRow]:
    """Clinical audit rows of the subjects in scope, by subject then chain order."""
    stmt = (
        select(Subject.id, AuditEvent.seq, AuditEvent.occurred_at, AuditEvent.action,
               AuditEvent.username, AuditEvent.role, AuditEvent.site_code, AuditEvent.path,
               AuditEvent.old_value, AuditEvent.new_value, AuditEvent.reason)
        .select_from(AuditEvent)
        .join(Subject, and_(Subject.subject_key == AuditEvent.subject_key,
                            Subject.study_id == scope.study.id))
        .where(AuditEvent.study_oid == scope.study.oid, AuditEvent.category == "clinical")
    )
    if actions is not None:
        stmt = stmt.where(AuditEvent.action.in_(list(actions)))
    stmt = scope.apply(stmt).order_by(Subject.id, AuditEvent.seq)
    for row in session.execute(stmt.execution_options(yield_per=batch)):
        yield AuditRow._make(row)


class SignatureRow(NamedTuple):
    subject_id: int
    id: int
    scope: str
    event_instance_id: int | None
    form_instance_id: int | None
    signer_username: str
    signer_name: str
    meaning: str
    signed_at: dt.datetime
    broken_at: dt.datetime | None
    broken_reason: str | None


def signature_rows(session: Session, scope: Scope) -> Iterator[SignatureRow]:
    stmt = (select(Subject.id, Signature.id, Signature.scope, Signature.event_instance_id,
                   Signature.form_instance_id, Signature.signer_username,
                   Signature.signer_name, Signature.meaning, Signature.signed_at,
                   Signature.broken_at, Signature.broken_reason)
            .select_from(Signature).join(Subject, Subject.id == Signature.subject_id))
    stmt = scope.apply(stmt).order_by(Subject.id, Signature.signed_at, Signature.id)
    for row in session.execute(stmt.execution_options(yield_per=BATCH)):
        yield SignatureRow._make(row)


class BySubject:
    """Rows ordered by subject id, handed out one subject at a time, in step with another
    cursor ordered the same way (subjects must be asked for in increasing id order)."""

    def __init__(self, rows: Iterable[Any]) -> None:
        self._rows = iter(rows)
        self._next = next(self._rows, None)

    def take(self, subject_id: int) -> list[Any]:
        found = []
        while self._next is not None and self._next[0] < subject_id:
            self._next = next(self._rows, None)
        while self._next is not None and self._next[0] == subject_id:
            found.append(self._next)
            self._next = next(self._rows, None)
        return found


ItemKey = tuple[str, int, str, str, int, str]  # event, repeat, form, group, row, item
RowKey = tuple[str, int, str, str, int]


def parse_path(path: str | None) -> tuple[str, ...] | None:
    """``STUDY/SUBJ/EV[r]/FORM/GROUP[row]/ITEM`` -> (EV, r, FORM, GROUP, row[, ITEM])."""
    if not path:
        return None
    parts = path.split("/")
    if len(parts) not in (5, 6):
        return None
    try:
        event, repeat = _indexed(parts[2])
        group, row = _indexed(parts[4])
    except ValueError:
        return None
    key: tuple = (event, repeat, parts[3], group, row)
    return key + (parts[5],) if len(parts) == 6 else key


def _indexed(text: str) -> tuple[str, int]:
    name, _, rest = text.partition("[")
    if not rest.endswith("]"):
        raise ValueError(text)
    return name, int(rest[:-1])


def histories(rows: Iterable[AuditRow]) -> tuple[dict[ItemKey, list[AuditRow]],
                                                 dict[RowKey, AuditRow]]:
    """One subject's item changes by item (chain order) and its row removals by row."""
    items: dict[ItemKey, list[AuditRow]] = {}
    removals: dict[RowKey, AuditRow] = {}
    for row in rows:
        key = parse_path(row.path)
        if key is None:
            continue
        if row.action == ROW_REMOVED and len(key) == 5:
            removals[key] = row
        elif row.action in ITEM_ACTIONS and len(key) == 6:
            items.setdefault(key, []).append(row)
    return items, removals


# --- versions and columns -------------------------------------------------------------------

def versions_in_scope(session: Session, scope: Scope) -> list[StudyVersion]:
    """The stored versions forms in scope were entered under, oldest first."""
    ids = select(FormInstance.study_version_id).join(
        Subject, Subject.id == FormInstance.subject_id)
    ids = scope.apply(ids).distinct()
    return list(session.scalars(select(StudyVersion).where(StudyVersion.id.in_(ids))
                                .order_by(StudyVersion.number)))


def all_versions(session: Session, study: Study) -> list[StudyVersion]:
    return list(session.scalars(select(StudyVersion).where(StudyVersion.study_id == study.id)
                                .order_by(StudyVersion.number)))


@dataclass(frozen=True)
class FormLayout:
    """A form's columns over every version: the latest version's groups and items first,
    then whatever only older versions had (so no stored value lacks a column)."""

    oid: str
    name: str
    form: FormDef
    main: tuple[ItemDef, ...]  # items of the non-repeating groups
    repeating: tuple[tuple[GroupDef, tuple[ItemDef, ...]], ...]

    def items(self) -> Iterator[tuple[GroupDef | None, ItemDef]]:
        for item in self.main:
            yield None, item
        for group, items in self.repeating:
            for item in items:
                yield group, item


def form_layouts(definitions: Sequence[StudyDefinition]) -> list[FormLayout]:
    """One layout per form of any version; ``definitions`` newest first."""
    order: dict[str, list[FormDef]] = {}
    for definition in definitions:
        for oid in _forms_in_order(definition):
            order.setdefault(oid, []).append(definition.form(oid))
    layouts = []
    for oid, forms in order.items():
        main: dict[str, ItemDef] = {}
        groups: dict[str, tuple[GroupDef, dict[str, ItemDef]]] = {}
        for form in forms:
            for group in form.groups:
                if group.repeating:
                    entry = groups.setdefault(group.oid, (group, {}))
                    for item in group.items:
                        entry[1].setdefault(item.oid, item)
                else:
                    for item in group.items:
                        main.setdefault(item.oid, item)
        layouts.append(FormLayout(oid, forms[0].name, forms[0], tuple(main.values()),
                                  tuple((g, tuple(items.values()))
                                        for g, items in groups.values())))
    return layouts


def _forms_in_order(definition: StudyDefinition) -> list[str]:
    seen: dict[str, None] = {}
    for event in definition.events:
        for oid in event.forms:
            seen.setdefault(oid, None)
    for oid in definition.forms:
        seen.setdefault(oid, None)
    return list(seen)


def definitions_newest_first(session: Session, study: Study
                             ) -> tuple[list[StudyVersion], list[StudyDefinition]]:
    versions = list(reversed(all_versions(session, study)))
    return versions, [definition_for(v) for v in versions]


# --- one form instance at a time -------------------------------------------------------------

@dataclass
class FormRecord:
    """One stored form instance with its live values (removed rows left out)."""

    subject_id: int
    subject_key: str
    site_code: str
    event_oid: str
    repeat: int
    event_date: dt.date | None
    form_instance_id: int
    form_oid: str
    status: str
    version_id: int
    values: dict[tuple[str, int, str], ItemRow]

    def rows_of(self, group_oid: str) -> list[int]:
        return sorted({r for g, r, _i in self.values if g == group_oid})


def form_records(rows: Iterable[ItemRow]) -> Iterator[FormRecord]:
    """Group ``item_rows`` into form instances (one instance in memory at a time)."""
    current: FormRecord | None = None
    for row in rows:
        if current is None or current.form_instance_id != row.form_instance_id:
            if current is not None:
                yield current
            current = FormRecord(row.subject_id, row.subject_key, row.site_code, row.event_oid,
                                 row.repeat, row.event_date, row.form_instance_id, row.form_oid,
                                 row.form_status, row.version_id, {})
        if row.item_oid is not None and row.removed_at is None and row.value is not None:
            current.values[(row.group_oid, row.row, row.item_oid)] = row
    if current is not None:
        yield current
