"""CDISC ODM 1.3.2 clinical data: a study's (or a site's, or a subject's) data after its
metadata, in one file, streamed with constant memory.

Layout: ``Study`` (one MetaDataVersion per stored version the data was entered under),
``AdminData`` (users, locations, signature meanings), then one ``ClinicalData`` per
version: SubjectData (SiteRef) > StudyEventData (StudyEventRepeatKey for repeating
events) > FormData > ItemGroupData (ItemGroupRepeatKey for repeating groups) > ItemData.

- **Snapshot**: the current values; each ItemData carries the latest AuditRecord of its
  item (UserRef, LocationRef, DateTimeStamp in UTC, ReasonForChange, SourceID = the audit
  trail's sequence number). Rows removed from a repeating group are left out. Each level
  carries its latest valid Signature.
- **Transactional**: every change of every value as its own ItemData (TransactionType
  Insert, Update or Remove) with its AuditRecord, in chain order; a removed row is an
  ItemGroupData with TransactionType Remove and the AuditRecord of its removal. Containers
  are Upserts. Every signature is written; those beyond the level's latest valid one, and
  broken ones, sit in sibling elements of TransactionType Context.

What ODM has no attribute for (enrolment date, event date and state, form status) is
written as an Annotation whose Comment reads ``ecrf:<level> name=value; ...``; the
importer reads it back, other systems show it as a comment. A subject's arm, randomization
and dose level close its SubjectData as ``ecrf:Allocation``, ecrf's declared extension
(``extension``). Values are canonical, with
seconds added to times and date-times as ODM expects. A multiple-choice value is one
boolean ItemData per code of its list (``I.<FORM>.<ITEM>.<CODE>``, "1" selected, "0" not;
see ``metadata``), never several codes in one value.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lxml import etree
from sqlalchemy.orm import Session

from ecrf.crf import ItemType, StudyDefinition
from ecrf.crf.values import result_kind
from ecrf.domain.schedule import EventKind
from ecrf.outputs.odm.allocation import allocations_in_scope
from ecrf.outputs.odm.clinical_header import admin_for, versions_for, write_study
from ecrf.outputs.odm.common import (
    CHOICE_NOT_SELECTED,
    CHOICE_SELECTED,
    ODM_NS,
    FileInfo,
    choice_oid,
    element,
    event_oid,
    form_oid,
    group_oid,
    item_oid,
    location_oid,
    new_file_oid,
    odm_datetime,
    odm_stream,
    serialized,
    sub,
    write_admin_data,
    xml_attr,
    xml_text,
)
from ecrf.outputs.odm.extension import allocation_element
from ecrf.outputs.odm.study import version_ref
from ecrf.outputs.rows import (
    ITEM_ACTIONS,
    ROW_REMOVED,
    AuditRow,
    BySubject,
    ItemRow,
    Scope,
    SignatureRow,
    audit_rows,
    histories,
    item_rows,
    signature_rows,
    versions_in_scope,
)
from ecrf.studies import StudyVersion, definition_for

Progress = Callable[[int, str], None]
_XMLNS = f' xmlns="{ODM_NS}"'  # on each element ``xf.write`` writes on its own
_CONVERTED = frozenset({"datetime", "time", "multiple_choice"})
TRANSACTIONS = {"item.entered": "Insert", "item.changed": "Update", "item.cleared": "Remove"}
ANNOTATION_PREFIX = "ecrf:"


def signature_oid(meaning: str) -> str:
    """The SignatureDef of a stored meaning text (11.50): approval, review, responsibility."""
    from ecrf.review import SIGNATURE_MEANINGS as MEANINGS

    for key, text in MEANINGS.items():
        if meaning == text or meaning.lower().startswith(key[:6]):
            return f"SD.{key.upper()}"
    return "SD.APPROVAL"


def user_ref(username: str | None) -> str:
    return f"USR.{username or 'system'}"


def odm_value(kind: str, text: str) -> str:
    """Canonical text as an ODM value of the item's kind."""
    if kind == "datetime":
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
        shown = value.isoformat(timespec="seconds")
        return shown.replace("+00:00", "Z") if value.utcoffset() == dt.timedelta(0) else shown
    if kind == "time" and len(text) == 5:
        return text + ":00"
    if kind == "multiple_choice" and text.startswith("["):
        try:
            codes = json.loads(text)
        except ValueError:
            return text
        if all(isinstance(c, str) and "," not in c for c in codes):
            return ",".join(codes)
    return text


def annotation(level: str, **values: Any) -> etree._Element:
    text = "; ".join(f"{k}={v}" for k, v in values.items() if v not in (None, ""))
    el = element("Annotation", {"SeqNum": 1})
    sub(el, "Comment", {"SponsorOrSite": "Site"}, text=f"{ANNOTATION_PREFIX}{level} {text}")
    return el


def parse_annotation(text: str | None) -> tuple[str | None, dict[str, str]]:
    """(level, values) of an ecrf annotation comment; (None, {}) for anything else."""
    if not text or not text.startswith(ANNOTATION_PREFIX):
        return None, {}
    level, _, rest = text[len(ANNOTATION_PREFIX):].partition(" ")
    values = {}
    for part in rest.split("; "):
        name, sep, value = part.partition("=")
        if sep:
            values[name.strip()] = value.strip()
    return level, values


@dataclass
class ExportSummary:
    subjects: int = 0
    forms: int = 0
    values: int = 0
    versions: list[str] = field(default_factory=list)
    allocations: int = 0


# --- ClinicalData ---------------------------------------------------------------------------

class _Kinds:
    """Per version: the ODM value kind of each item, and which groups/events repeat."""

    def __init__(self, definition: StudyDefinition) -> None:
        self.definition = definition
        self.items: dict[tuple[str, str], str] = {}
        self.repeating_groups: set[tuple[str, str]] = set()
        # Multiple-choice items: their codes, each answered by its own boolean ItemData.
        self.choices: dict[tuple[str, str], tuple[str, ...]] = {}
        for form in definition.forms.values():
            for group in form.groups:
                if group.repeating:
                    self.repeating_groups.add((form.oid, group.oid))
                for item in group.items:
                    self.items[(form.oid, item.oid)] = result_kind(item)
                    if item.type is ItemType.MULTIPLE_CHOICE:
                        codes = definition.choices_of(form.oid, item.oid)
                        self.choices[(form.oid, item.oid)] = codes.codes if codes else ()
        self.repeating_events = {e.oid for e in definition.events
                                 if e.kind in (EventKind.REPEATING, EventKind.UNSCHEDULED)}
        self._items_of: dict[str, dict[str, _Item]] = {}

    def kind(self, form: str, item: str) -> str:
        return self.items.get((form, item), "text")

    def items_of(self, form: str) -> dict[str, _Item]:
        """item OID -> what writing its ItemData needs, filled once per item: the hot loop
        only looks up."""
        found = self._items_of.get(form)
        if found is None:
            found = self._items_of[form] = _FormItems(self, form)
        return found


@dataclass(frozen=True)
class _Item:
    form: str
    item: str
    start: str  # '<ItemData ItemOID="..."', escaped
    kind: str
    converted: bool  # its value is rewritten by ``odm_value``
    codes: tuple[str, ...]  # a multiple-choice item's codes (empty: written as stored)


class _FormItems(dict):
    def __init__(self, kinds: _Kinds, form: str) -> None:
        super().__init__()
        self.kinds, self.form = kinds, form

    def __missing__(self, item: str) -> _Item:
        kind = self.kinds.kind(self.form, item)
        found = self[item] = _Item(
            self.form, item, f'<ItemData ItemOID="{xml_attr(item_oid(self.form, item))}"',
            kind, kind in _CONVERTED, self.kinds.choices.get((self.form, item), ()))
        return found


class _GroupStart:
    """The start tag of a group's ItemGroupData, formatted once per group: only the repeat
    key changes from row to row."""

    def __init__(self, form: str, group: str, repeating: bool, transaction: str | None
                 ) -> None:
        self.oid, self.repeating, self.transaction = group_oid(form, group), repeating, \
            transaction
        self.head = _start_tag("ItemGroupData", {"ItemGroupOID": self.oid}, True)
        self.tail = f' TransactionType="{transaction}"' if transaction else ""
        self.fixed = self.head + self.tail

    def text(self, row: int) -> str:
        if not self.repeating:
            return self.fixed
        return f'{self.head} ItemGroupRepeatKey="{row}"{self.tail}'

    def attrib(self, row: int) -> dict[str, str]:
        found = {"ItemGroupOID": self.oid}
        if self.repeating:
            found["ItemGroupRepeatKey"] = str(row)
        if self.transaction:
            found["TransactionType"] = self.transaction
        return found


def _start_tag(tag: str, attrib: dict[str, Any], xmlns: bool = False) -> str:
    """``<tag a="v" ...`` (not closed), attributes whose value is None left out."""
    text = "".join(f' {name}="{xml_attr(str(value))}"' for name, value in attrib.items()
                   if value is not None)
    return f"<{tag}{_XMLNS if xmlns else ''}{text}"


def annotation_text(level: str, **values: Any) -> str:
    """``annotation`` as ``xf.write`` writes it."""
    text = "; ".join(f"{k}={v}" for k, v in values.items() if v not in (None, ""))
    return (f'<Annotation{_XMLNS} SeqNum="1"><Comment SponsorOrSite="Site">'
            f"{xml_text(f'{ANNOTATION_PREFIX}{level} {text}')}</Comment></Annotation>")


def _event_note(actual_date: dt.date | None, state: str | None) -> str:
    """``annotation_text("event", actual_date=..., state=...)``, written out: once per
    event instance."""
    shown = []
    if actual_date is not None:
        shown.append(f"actual_date={actual_date}")
    if state:
        shown.append(f"state={state}")
    return (f'<Annotation{_XMLNS} SeqNum="1"><Comment SponsorOrSite="Site">'
            f"{xml_text(ANNOTATION_PREFIX + 'event ' + '; '.join(shown))}</Comment>"
            "</Annotation>")


class ClinicalWriter:
    """Writes ClinicalData as pre-formatted text (``xml_attr``/``xml_text``), the same
    bytes lxml would write for the same elements, in chunks through ``raw``; the rare
    elements (signatures in Context siblings, allocations) are built with lxml and
    serialized."""

    FLUSH_PARTS = 4096

    def __init__(self, raw: Callable[[bytes], None], scope: Scope, *,
                 transactional: bool) -> None:
        self.raw = raw
        self.scope = scope
        self.transactional = transactional
        self.summary = ExportSummary()
        self.parts: list[str] = []
        self._open: list[str] = []
        self.allocations: dict[int, Any] = {}
        self._users: dict[str | None, str] = {}
        self._locations: dict[str, str] = {}

    def flush(self) -> None:
        if self.parts:
            self.raw("".join(self.parts).encode("utf-8"))
            self.parts.clear()

    # element helpers
    def _enter(self, tag: str, attrib: dict[str, Any], start: str | None = None) -> None:
        """Open a container; ``start`` is its start tag when already formatted."""
        self.parts.append(start if start is not None else _start_tag(tag, attrib) + ">")
        self._open.append(tag)

    def _close_to(self, depth: int) -> None:
        while len(self._open) > depth:
            self.parts.append(f"</{self._open.pop()}>")

    def _audit(self, row: AuditRow, site_code: str) -> str:
        """The AuditRecord of a change, as text."""
        user = self._users.get(row.username)
        if user is None:
            user = self._users[row.username] = (
                f'<AuditRecord><UserRef UserOID="{xml_attr(user_ref(row.username))}"/>')
        code = row.site_code or site_code
        location = self._locations.get(code)
        if location is None:
            location = self._locations[code] = (
                f'<LocationRef LocationOID="{xml_attr(location_oid(code))}"/>')
        reason = (f"<ReasonForChange>{xml_text(row.reason)}</ReasonForChange>"
                  if row.reason else "")
        return (f"{user}{location}<DateTimeStamp>{odm_datetime(row.occurred_at)}"
                f"</DateTimeStamp>{reason}<SourceID>{row.seq}</SourceID></AuditRecord>")

    def _signature(self, parent: etree._Element, sig: SignatureRow, site_code: str) -> None:
        el = sub(parent, "Signature")
        sub(el, "UserRef", {"UserOID": user_ref(sig.signer_username)})
        sub(el, "LocationRef", {"LocationOID": location_oid(site_code)})
        sub(el, "SignatureRef", {"SignatureOID": signature_oid(sig.meaning)})
        sub(el, "DateTimeStamp", text=odm_datetime(sig.signed_at))

    def _head(self, tag: str, attrib: dict, main: SignatureRow | None, site_code: str,
              note: str, site_ref: bool = False, start: str | None = None) -> None:
        """Open a container and write what precedes its children (Signature, SiteRef,
        Annotation), in the schema's order."""
        self._enter(tag, attrib, start)
        if main is not None:
            holder = element("X")
            self._signature(holder, main, site_code)
            self.parts.append(serialized(holder[0]))
        if site_ref:
            self.parts.append(f'<SiteRef{_XMLNS} LocationOID='
                              f'"{xml_attr(location_oid(site_code))}"/>')
        self.parts.append(note)

    def _extra_signatures(self, tag: str, attrib: dict, signatures: list[SignatureRow],
                          main: SignatureRow | None, site_code: str) -> None:
        """Transactional: the level's other signatures, each in a Context sibling."""
        if not self.transactional:
            return
        for sig in signatures:
            if main is not None and sig.id == main.id:
                continue
            el = element(tag, {**attrib, "TransactionType": "Context"})
            self._signature(el, sig, site_code)
            if sig.broken_at is not None:
                el.append(annotation("signature", broken_at=odm_datetime(sig.broken_at),
                                     reason=sig.broken_reason))
            if tag == "SubjectData":
                # SiteRef comes after Signature; the schema wants it there too.
                el.insert(1, element("SiteRef", {"LocationOID": location_oid(site_code)}))
            self.parts.append(serialized(el))

    # the pass over one version's data
    def write_version(self, session: Session, version: StudyVersion, mdv: str,
                      progress: Progress | None, total_hint: int) -> None:
        kinds = _Kinds(definition_for(version))
        txn = self.transactional
        audits = BySubject(audit_rows(session, self.scope,
                                      actions=(*ITEM_ACTIONS, ROW_REMOVED)))
        sigs = BySubject(signature_rows(session, self.scope))
        upsert = "Upsert" if txn else None
        parts = self.parts
        emit = parts.append
        subject = event = form = None
        # The ItemGroupData being written: its key (form instance, group, row), the trail's
        # key of the row within the subject, its attributes, and where its start tag sits
        # in ``parts`` (closed as ``/>`` when no ItemData follows).
        g_form = g_group = g_row = None
        group: tuple | None = None
        g_at = -1
        group_starts: dict[tuple[str, str], _GroupStart] = {}
        # Formatted once per form and per form status (the version is this pass's).
        form_starts: dict[str, str] = {}
        form_notes: dict[str, str] = {}
        upsert_attr = f' TransactionType="{upsert}"' if upsert else ""
        form_items: dict[str, _Item] = {}
        items_hist: dict = {}
        removals: dict = {}
        subject_sigs: list[SignatureRow] = []
        current_sub_attrib: dict = {}
        site_code = ""

        def latest_valid(found: list[SignatureRow]) -> SignatureRow | None:
            valid = [s for s in found if s.broken_at is None]
            return valid[-1] if valid else None

        def scoped(level: str, target: int) -> list[SignatureRow]:
            if not subject_sigs:
                return []
            if level == "form":
                return [s for s in subject_sigs if s.scope == "form"
                        and s.form_instance_id == target]
            return [s for s in subject_sigs if s.scope == "event"
                    and s.event_instance_id == target]

        def flush_group() -> None:
            # Written and forgotten before any level closes: the next group starts afresh
            # even when the next subject or form has the same event, form, group and row.
            nonlocal group, g_form, g_group, g_row
            if group is not None:
                if len(parts) == g_at + 1:
                    parts[g_at] += "/>"
                else:
                    parts[g_at] += ">"
                    emit("</ItemGroupData>")
                if txn:
                    removal = removals.get(group[0])
                    if removal is not None:
                        emit(_start_tag("ItemGroupData",
                                        group[1].attrib(g_row) | {"TransactionType": "Remove"},
                                        True)
                             + ">" + self._audit(removal, site_code) + "</ItemGroupData>")
                if len(parts) > self.FLUSH_PARTS:
                    self.flush()
            group = g_form = g_group = g_row = None

        def close_form() -> None:
            nonlocal form
            flush_group()
            if form is not None:
                self._close_to(2)
                fid, attrib, found, main = form
                self._extra_signatures("FormData", attrib, found, main, site_code)
            form = None

        def close_event() -> None:
            nonlocal event
            close_form()
            if event is not None:
                self._close_to(1)
                _eid, attrib, found, main = event
                self._extra_signatures("StudyEventData", attrib, found, main, site_code)
            event = None

        def close_subject() -> None:
            nonlocal subject
            close_event()
            if subject is not None:
                self._allocation(subject)
                self._close_to(0)
                main = latest_valid([s for s in subject_sigs if s.scope == "casebook"])
                self._extra_signatures("SubjectData", current_sub_attrib,
                                       [s for s in subject_sigs if s.scope == "casebook"],
                                       main, site_code)
            subject = None

        emit(_start_tag("ClinicalData", {"StudyOID": self.scope.study.oid,
                                         "MetaDataVersionOID": mdv}) + ">")
        row: ItemRow
        for row in item_rows(session, self.scope, version_id=version.id):
            if subject != row.subject_id:
                close_subject()
                subject = row.subject_id
                site_code = row.site_code
                items_hist, removals = histories(audits.take(subject))
                subject_sigs = sigs.take(subject)
                current_sub_attrib = {"SubjectKey": row.subject_key,
                                      "TransactionType": upsert}
                casebook = [s for s in subject_sigs if s.scope == "casebook"]
                self._head("SubjectData", current_sub_attrib, latest_valid(casebook),
                           site_code, annotation_text("subject", enrolled_on=row.enrolled_on,
                                                      status=row.subject_status),
                           site_ref=True)
                self.summary.subjects += 1
                if progress and self.summary.subjects % 50 == 0:
                    progress(min(95, 10 + self.summary.values * 85 // max(total_hint, 1)),
                             f"{self.summary.subjects} subjects, "
                             f"{self.summary.values} values")
            if event is None or event[0] != row.event_instance_id:
                close_event()
                repeat = row.repeat if row.event_oid in kinds.repeating_events else None
                attrib = {"StudyEventOID": event_oid(row.event_oid),
                          "StudyEventRepeatKey": repeat, "TransactionType": upsert}
                found = scoped("event", row.event_instance_id)
                main = latest_valid(found) if found else None
                key = "" if repeat is None else f' StudyEventRepeatKey="{repeat}"'
                self._head("StudyEventData", attrib, main, site_code,
                           _event_note(row.event_date, row.event_state),
                           start=f'<StudyEventData StudyEventOID='
                                 f'"{xml_attr(attrib["StudyEventOID"])}"{key}{upsert_attr}>')
                event = (row.event_instance_id, attrib, found, main)
            if form is None or form[0] != row.form_instance_id:
                close_form()
                attrib = {"FormOID": form_oid(row.form_oid), "TransactionType": upsert}
                found = scoped("form", row.form_instance_id)
                main = latest_valid(found) if found else None
                note = form_notes.get(row.form_status)
                if note is None:
                    note = form_notes[row.form_status] = annotation_text(
                        "form", status=row.form_status, study_version=version.number)
                start = form_starts.get(row.form_oid)
                if start is None:
                    start = form_starts[row.form_oid] = _start_tag("FormData", attrib) + ">"
                self._head("FormData", attrib, main, site_code, note, start=start)
                form = (row.form_instance_id, attrib, found, main)
                form_items = kinds.items_of(row.form_oid)
                self.summary.forms += 1
            if row.item_oid is None:
                continue
            if row.removed_at is not None and not txn:
                continue
            # The group is one row of one form instance of one subject.
            if row.row != g_row or row.group_oid != g_group or g_form != form[0]:
                flush_group()
                start = group_starts.get((row.form_oid, row.group_oid))
                if start is None:
                    start = group_starts[(row.form_oid, row.group_oid)] = _GroupStart(
                        row.form_oid, row.group_oid,
                        (row.form_oid, row.group_oid) in kinds.repeating_groups, upsert)
                g_at = len(parts)
                emit(start.text(row.row))
                g_form, g_group, g_row = form[0], row.group_oid, row.row
                # The trail's key of the row, within the subject.
                group = ((row.event_oid, row.repeat, row.form_oid, row.group_oid, row.row),
                         start)
            item = form_items[row.item_oid]
            history = (items_hist.get(group[0] + (row.item_oid,), ()) if items_hist
                       else ())
            if txn:
                self._changes(item, row.value, history, site_code)
            elif row.value is not None:
                if item.codes and self._choices(item, row.value, None,
                                                history[-1] if history else None,
                                                site_code):
                    pass
                elif history:
                    emit(f'{item.start} Value="{xml_attr(odm_value(item.kind, row.value) if item.converted else row.value)}">'  # noqa: E501
                         f"{self._audit(history[-1], site_code)}</ItemData>")
                else:
                    emit(f'{item.start} Value="{xml_attr(odm_value(item.kind, row.value) if item.converted else row.value)}"/>')  # noqa: E501
                self.summary.values += 1
        close_subject()
        emit("</ClinicalData>")
        self.flush()

    def _allocation(self, subject_id: int) -> None:
        """The subject's arm, randomization and dose level (ecrf's declared extension),
        after its StudyEventData as the schema places extension elements."""
        info = self.allocations.get(subject_id)
        el = allocation_element(info) if info is not None else None
        if el is not None:
            self.parts.append(serialized(el))
            self.summary.allocations += 1

    def _choices(self, item: _Item, value: str | None, transaction: str | None,
                 change: AuditRow | None, site_code: str) -> bool:
        """A multiple-choice value as one boolean ItemData per code of its list (in a
        transaction, a removal removes each). False, writing nothing, for a value holding
        a code the list does not have: it is then written as it is stored."""
        selected = selected_codes(value)
        if not set(selected) <= set(item.codes):
            return False
        txn = f' TransactionType="{transaction}"' if transaction is not None else ""
        audit = self._audit(change, site_code) if change is not None else None
        for code in item.codes:
            text = f'<ItemData ItemOID="{xml_attr(choice_oid(item.form, item.item, code))}"{txn}'
            if transaction != "Remove":
                text += (f' Value="{CHOICE_SELECTED if code in selected else CHOICE_NOT_SELECTED}"')
            self.parts.append(f"{text}>{audit}</ItemData>" if audit is not None
                              else f"{text}/>")
        return True

    def _changes(self, item: _Item, value: str | None, history: list[AuditRow] | tuple,
                 site_code: str) -> None:
        """Transactional: every change of one value, then the stored value if the trail
        does not explain it."""
        emit = self.parts.append
        last = None
        for change in history:
            txn = TRANSACTIONS[change.action]
            if item.codes and self._choices(item, change.new_value, txn, change, site_code):
                last = change.new_value
                self.summary.values += 1
                continue
            shown = (f' Value="{xml_attr(odm_value(item.kind, change.new_value))}"'
                     if txn != "Remove" and change.new_value is not None else "")
            emit(f'{item.start} TransactionType="{txn}"{shown}>'
                 f"{self._audit(change, site_code)}</ItemData>")
            last = change.new_value
            self.summary.values += 1
        if value != last and value is not None:
            # A value the trail does not explain (loaded in bulk, or by a migration).
            txn = "Insert" if not history else "Update"
            if not (item.codes and self._choices(item, value, txn, None, site_code)):
                emit(f'{item.start} TransactionType="{txn}" '
                     f'Value="{xml_attr(odm_value(item.kind, value))}"/>')
            self.summary.values += 1


def selected_codes(text: str | None) -> list[str]:
    """The codes of a stored multiple-choice value (a JSON list, or codes and commas)."""
    if not text:
        return []
    if text.startswith("["):
        try:
            found = json.loads(text)
        except ValueError:
            return [text]
        return [str(c) for c in found] if isinstance(found, list) else [text]
    return [c for c in text.split(",") if c]


def export_odm_clinical(session: Session, scope: Scope, target: str | Path | IO[bytes], *,
                        transactional: bool = False, created_at: dt.datetime | None = None,
                        progress: Progress | None = None, total_hint: int = 0
                        ) -> ExportSummary:
    """Write metadata, AdminData and the clinical data of ``scope`` to ``target``."""
    created_at = created_at or dt.datetime.now(dt.UTC)
    versions = versions_for(session, scope)
    admin = admin_for(session, scope, versions)
    kind = "Transactional" if transactional else "Snapshot"
    info = FileInfo(
        file_oid=new_file_oid(scope.study.oid, "CD", created_at), created_at=created_at,
        file_type=kind, granularity="All",
        description=f"{scope.study.name}: clinical data ({kind.lower()}, {scope.label}) "
                    "with audit records and signatures",
        as_of=created_at,
    )
    with odm_stream(target, info, extensions=True) as (xf, raw):
        write_study(xf, scope.study, versions)
        write_admin_data(xf, scope.study.oid, admin)
        writer = ClinicalWriter(raw, scope, transactional=transactional)
        writer.allocations = allocations_in_scope(session, scope)
        for version in versions_in_scope(session, scope):
            if progress:
                progress(10, f"writing the data of {version.label}")
            writer.write_version(session, version, version_ref(scope.study, version).mdv_oid,
                                 progress, total_hint)
            writer.summary.versions.append(version.label)
    return writer.summary


def odm_clinical_bytes(session: Session, scope: Scope, **kwargs: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    export_odm_clinical(session, scope, buffer, **kwargs)
    return buffer.getvalue()
