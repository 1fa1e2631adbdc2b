"""Reading an ODM file for the clinical import: its header, AdminData users and SHA-256,
and its SubjectData one at a time (``subject_elements``).

One SubjectData is read into what the clinical import saves (``read_subject``): its forms
and the steps that save them (one form save each), every ItemData kept with the source
OIDs it came with and its AuditRecord, and every ItemData the import leaves out with its
reason.

A snapshot gives one step per form: the last value of each item. A transactional file is
history: its changes (ItemData, and ItemGroupData removals) are put in the order of their
AuditRecords (``history_order``) and replayed; consecutive changes of one form by one user
form one step, a step never changes an item twice, and a removed row is a step of its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from lxml import etree

from ecrf.crf import ItemType, StudyDefinition, UnknownOidError
from ecrf.outputs.odm.clinical import parse_annotation
from ecrf.outputs.odm.common import ODM_NS, q
from ecrf.outputs.odm.importer.clinical_report import Problem
from ecrf.outputs.odm.importer.source_data import SourceReader, source_reader

Key = tuple[str, int, str]


class ClinicalImportError(ValueError):
    """A file that cannot be imported at all; the message says why."""


@dataclass(frozen=True)
class FileHeader:
    file_type: str  # Snapshot or Transactional
    source_system: str | None  # SourceSystem and SourceSystemVersion
    originator: str | None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ClinicalImportError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def subject_elements(path: Path, study_oid: str, *, header: Callable[[FileHeader], None],
                     users: dict, reader: SourceReader | None = None
                     ) -> Iterator[etree._Element]:
    """Each SubjectData of the file's ClinicalData, one at a time (freed once the caller
    moves on); ``header`` gets the file's header first, ``users`` the AdminData users."""
    seen_clinical = False
    try:
        context = etree.iterparse(str(path), events=("start", "end"),
                                  tag=(q("ODM"), q("AdminData"), q("ClinicalData"),
                                       q("SubjectData")),
                                  resolve_entities=False, no_network=True, load_dtd=False,
                                  huge_tree=False, remove_comments=True)
        for event, el in context:
            if el.tag == q("ODM"):
                if event == "start":
                    system = " ".join(filter(None, (el.get("SourceSystem"),
                                                    el.get("SourceSystemVersion"))))
                    header(FileHeader(el.get("FileType") or "Snapshot", system or None,
                                      el.get("Originator")))
                continue
            if el.tag == q("AdminData"):
                if event == "end":
                    users.update(read_users(el))
                continue
            if el.tag == q("ClinicalData"):
                if event == "start":
                    seen_clinical = True
                    given = el.get("StudyOID")
                    if (reader.study(given) if reader is not None else given) != study_oid:
                        raise ClinicalImportError(
                            f"{path.name} holds data of study {el.get('StudyOID')!r}, not "
                            f"{study_oid}")
                continue
            if event != "end":
                continue
            yield el
            el.clear()
            while el.getprevious() is not None:
                del el.getparent()[0]
    except etree.XMLSyntaxError as exc:
        raise ClinicalImportError(f"{path.name} is not well-formed XML: {exc}") from None
    if not seen_clinical:
        raise ClinicalImportError(f"{path.name} has no ClinicalData element")


def strip(oid: str | None, *prefixes: str) -> str:
    oid = oid or ""
    for prefix in prefixes:
        if oid.startswith(prefix):
            return oid[len(prefix):]
    return oid


def annotation(el: etree._Element) -> dict[str, str]:
    found: dict[str, str] = {}
    for comment in el.findall(f"{{{ODM_NS}}}Annotation/{{{ODM_NS}}}Comment"):
        _level, values = parse_annotation(comment.text)
        found.update(values)
    return found


def parse_date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


@dataclass(frozen=True)
class SourceRecord:
    """An ODM AuditRecord: who changed the value in the source system, when and why."""

    user: str | None = None
    login: str | None = None
    name: str | None = None
    location: str | None = None
    time: str | None = None
    reason: str | None = None
    source_id: str | None = None

    @property
    def moment(self) -> dt.datetime | None:
        return _parse_time(self.time)

    def details(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v}


def read_users(admin: etree._Element) -> dict[str, tuple[str | None, str | None]]:
    """UserOID -> (login name, full name) from AdminData."""
    users = {}
    for user in admin.iterfind(q("User")):
        full = user.findtext(q("FullName")) or " ".join(filter(None, (
            user.findtext(q("FirstName")), user.findtext(q("LastName"))))) or None
        users[user.get("OID") or ""] = (user.findtext(q("LoginName")), full)
    return users


def _record(el: etree._Element, users: dict) -> SourceRecord | None:
    ar = el.find(q("AuditRecord"))
    if ar is None:
        return None
    user_ref = ar.find(q("UserRef"))
    location = ar.find(q("LocationRef"))
    user = user_ref.get("UserOID") if user_ref is not None else None
    login, name = users.get(user or "", (None, None))
    return SourceRecord(user=user, login=login, name=name,
                        location=location.get("LocationOID") if location is not None else None,
                        time=(ar.findtext(q("DateTimeStamp")) or "").strip() or None,
                        reason=(ar.findtext(q("ReasonForChange")) or "").strip() or None,
                        source_id=(ar.findtext(q("SourceID")) or "").strip() or None)


@dataclass
class Change:
    """One ItemData (``item`` set) or one removed row (``item`` None) of the file."""

    index: int  # position in the SubjectData
    group: str
    row: int
    item: str | None
    value: str | None
    group_oid: str  # as in the file
    row_key: str | None
    item_oid: str | None
    record: SourceRecord | None
    skip: str | None = None  # why the import leaves it out (clinical_report.SKIP_REASONS)
    stored: bool | None = None  # once saved: True if it changed the value, else unchanged
    itemdata: int = 1  # ItemData of the file it stands for (a multiple choice: one per code)

    @property
    def key(self) -> Key:
        return (self.group, self.row, self.item or "")


@dataclass
class FormData:
    event: str
    repeat: int
    form: str
    event_oid: str  # as in the file
    form_oid: str
    repeat_key: str | None = None
    status: str | None = None
    event_date: str | None = None
    changes: list[Change] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def item_data(self) -> list[Change]:
        return [c for c in self.changes if c.item is not None]

    def problem(self, subject: str, message: str, change: Change | None = None) -> Problem:
        found = Problem(subject, self.event_oid, self.repeat_key, self.form_oid,
                        change.group_oid if change else None,
                        change.row_key if change else None,
                        change.item_oid if change else None, message)
        self.problems.append(found)
        return found


@dataclass
class Step:
    """Changes of one form saved together; each item (and each removed row) at most once."""

    form: FormData
    changes: list[Change] = field(default_factory=list)

    def values(self) -> dict[Key, Change]:
        return {c.key: c for c in self.changes if c.item is not None}

    def removals(self) -> dict[tuple[str, int], Change]:
        return {(c.group, c.row): c for c in self.changes if c.item is None}


def _item_data(igd: etree._Element):
    """ItemData elements, and the typed ItemDataString, ItemDataInteger... of ODM 1.3."""
    for child in igd:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        if name == "ItemData":
            yield child, child.get("Value")
        elif name.startswith("ItemData") and child.get("ItemOID"):
            yield child, (child.text or "").strip() or None


CHECKED = frozenset({"1", "true"})


def read_subject(el: etree._Element, definition: StudyDefinition, *, transactional: bool,
                 users: dict) -> tuple[list[FormData], list[Step]]:
    """The forms of one SubjectData, and the steps that save them, in order. OIDs are read
    through the study's source map (``source_data``): a study imported from another
    system takes that system's files."""
    subject = el.get("SubjectKey") or ""
    reader = source_reader(definition)
    forms: dict[tuple[str, int, str], FormData] = {}
    index = 0
    for sed, event, repeat_found in reader.events(el):
        event_oid = sed.get("StudyEventOID") or "" if sed is not el else ""
        repeat_key = sed.get("StudyEventRepeatKey") if sed is not el else None
        repeat = repeat_found
        event_note = annotation(sed) if sed is not el else {}
        for fd in sed.iterfind(q("FormData")):
            form_oid = fd.get("FormOID") or ""
            form = reader.form(form_oid)
            data = forms.setdefault((event, repeat, form),
                                    FormData(event, repeat, form, event_oid, form_oid,
                                             repeat_key))
            data.status = annotation(fd).get("status") or data.status
            data.event_date = data.event_date or event_note.get("actual_date")
            multiple = _multiple_choice(definition, form)
            for igd in fd.iterfind(q("ItemGroupData")):
                group_oid = igd.get("ItemGroupOID") or ""
                group = reader.group(form_oid, group_oid)
                row_key = igd.get("ItemGroupRepeatKey")
                row = int(row_key) if row_key and row_key.isdigit() else (0 if row_key else 1)
                removing = igd.get("TransactionType") == "Remove"
                if removing:
                    index += 1
                    data.changes.append(Change(index, group, row, None, None, group_oid,
                                               row_key, None, _record(igd, users)))
                choices: dict[tuple[str, str], Change] = {}
                for item_el, raw in _item_data(igd):
                    index += 1
                    item_oid = item_el.get("ItemOID") or ""
                    value = None if item_el.get("TransactionType") == "Remove" \
                        or item_el.get("IsNull") == "Yes" else raw
                    record = _record(item_el, users)
                    target_group, target = reader.map.locate_item(form_oid, group_oid,
                                                                  item_oid)
                    item, code = target.item or "", target.choice
                    if target.skip:
                        change = Change(index, target_group, row, item or item_oid, value,
                                        group_oid, row_key, item_oid, record,
                                        skip=target.skip)
                        data.changes.append(change)
                        continue
                    if code is None and "." in item and item.partition(".")[0] in multiple:
                        item, _dot, code = item.partition(".")
                    if code is not None:  # one code of a multiple choice: folded into it
                        change = choices.get((target_group, item))
                        if change is None:
                            change = Change(index, target_group, row, item, None, group_oid,
                                            row_key, item_oid, record, itemdata=0)
                            change.value = []
                            choices[(target_group, item)] = change
                            data.changes.append(change)
                        change.itemdata += 1
                        change.record = record or change.record
                        if value is not None and (reader.map.is_checked(value)
                                                  or value.strip().lower() in CHECKED):
                            change.value.append(code)
                        continue
                    change = Change(index, target_group, row, item,
                                    reader.map.translate_code(target, value), group_oid,
                                    row_key, item_oid, record)
                    if removing:
                        change.skip = "row_removed"
                    data.changes.append(change)
                for change in choices.values():
                    if removing:
                        change.skip = "row_removed"
                    if not change.value and all(
                            v is None for v in _code_values(igd, change, reader, form_oid)):
                        change.value = None  # every code removed: the item is cleared
    found = list(forms.values())
    for data in found:
        _classify(subject, data, definition)
    if transactional:
        return found, _replay(found)
    return found, [s for s in map(_snapshot_step, found) if s is not None]


def _multiple_choice(definition: StudyDefinition, form_oid: str) -> set[str]:
    try:
        form = definition.form(form_oid)
    except UnknownOidError:
        return set()
    return {i.oid for i in form.items if i.type is ItemType.MULTIPLE_CHOICE}


def _code_values(igd: etree._Element, change: Change, reader: SourceReader,
                 form_oid: str) -> list[str | None]:
    """The values the ItemGroupData gives the codes of a multiple-choice item."""
    found = []
    for item_el, raw in _item_data(igd):
        group, target = reader.map.locate_item(form_oid, igd.get("ItemGroupOID"),
                                               item_el.get("ItemOID"))
        item = target.item or ""
        if target.choice is None and "." in item:
            item = item.partition(".")[0]
        if group == change.group and item == change.item:
            removed = item_el.get("TransactionType") == "Remove" \
                or item_el.get("IsNull") == "Yes"
            found.append(None if removed else raw)
    return found


def _classify(subject: str, data: FormData, definition: StudyDefinition) -> None:
    """Mark what the import leaves out, and the problems that refuse the form."""
    try:
        definition.event(data.event)
    except UnknownOidError:
        data.problem(subject, f"event {data.event_oid} is not in the study definition")
        for change in data.item_data:
            change.skip = change.skip or "unknown_event"
        return
    if data.repeat < 1:
        data.problem(subject, f"repeat key of event {data.event_oid} is not a number")
        for change in data.item_data:
            change.skip = change.skip or "unknown_event"
        return
    try:
        fdef = definition.form(data.form)
    except UnknownOidError:
        data.problem(subject, f"form {data.form_oid} is not in the study definition")
        for change in data.item_data:
            change.skip = change.skip or "unknown_form"
        return
    items = {i.oid: i for i in fdef.items}
    groups = {g.oid for g in fdef.groups}
    for change in data.changes:
        if change.row < 1:
            data.problem(subject, f"repeat key {change.row_key!r} is not a number", change)
            change.skip = change.skip or "invalid_value"
            continue
        if change.item is None:
            if change.group not in groups:
                data.problem(subject, f"item group {change.group_oid} is not a group of "
                                      f"{data.form_oid}", change)
            continue
        if change.skip:
            continue
        item = items.get(change.item)
        if item is None:
            data.problem(subject, f"{change.group}.{change.item} is not an item of {data.form}",
                         change)
            change.skip = "unknown_item"
        elif item.type is ItemType.CALCULATED:
            change.skip = "calculated"  # recalculated by data capture
        elif ((data.form, item.oid) in definition.system_items
              and (data.form, item.oid) not in definition.allocation_items):
            # Written by this instance's system (its randomization, the assigned dose
            # level), never taken from a file: data capture would refuse another value.
            # A randomization date is passed on, so that a date of a subject not
            # randomized here is refused rather than silently dropped.
            change.skip = "system"


def _snapshot_step(data: FormData) -> Step | None:
    last: dict[Key, Change] = {}
    removals = []
    for change in data.changes:
        if change.item is None:
            removals.append(change)
        elif change.skip is None:
            if change.key in last:
                last[change.key].skip = "superseded"
            last[change.key] = change
    return Step(data, list(last.values()) + removals) if last or removals else None


def _replay(forms: list[FormData]) -> list[Step]:
    """The subject's history, one step per run of changes of one form by one user."""
    owner = {}
    changes = []
    for data in forms:
        for change in data.changes:
            if change.skip is None or change.item is None:
                owner[change.index] = data
                changes.append(change)
    steps: list[Step] = []
    for (_form, _user), run in groupby(
            history_order(changes),
            key=lambda c: (id(owner[c.index]), c.record.user if c.record else None)):
        step: Step | None = None
        seen: set[Key] = set()
        for change in run:
            # A removed row is a save of its own: the row must exist before it is removed,
            # and a later change of the row comes after.
            removal = change.item is None
            if step is None or change.key in seen or removal or "removal" in seen:
                step, seen = Step(owner[change.index]), set()
                steps.append(step)
            seen.add("removal" if removal else change.key)
            step.changes.append(change)
    return steps


def history_order(changes: list[Change]) -> list[Change]:
    """Changes in the order of their source times (ODM gives seconds); equal times in the
    order of their SourceID when it is a number (ecrf writes its audit sequence there),
    else in the file's order. A change without a time, or without a numeric SourceID,
    keeps its place after the change before it in the file."""
    moment = dt.datetime.min.replace(tzinfo=dt.UTC)
    number = -1
    keyed = []
    for change in sorted(changes, key=lambda c: c.index):
        record = change.record
        moment = (record.moment if record else None) or moment
        sid = record.source_id if record else None
        number = int(sid) if sid and sid.isdigit() else number
        keyed.append(((moment, number, change.index), change))
    return [c for _k, c in sorted(keyed, key=lambda k: k[0])]
