"""The ClinicalData writer ODM clinical exports used before they wrote pre-formatted text:
every element built with lxml and written by ``xf.write``. Kept, unchanged, as the
reference the text writer's output must equal byte for byte (``test_odm_text_writer``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import IO, Any

from lxml import etree
from sqlalchemy.orm import Session

from ecrf.crf import ItemType, StudyDefinition
from ecrf.crf.values import result_kind
from ecrf.domain.schedule import EventKind
from ecrf.outputs.odm.allocation import allocations_in_scope
from ecrf.outputs.odm.clinical import (
    _CONVERTED,
    TRANSACTIONS,
    ExportSummary,
    Progress,
    annotation,
    odm_value,
    selected_codes,
    signature_oid,
    user_ref,
)
from ecrf.outputs.odm.clinical_header import admin_for, versions_for, write_study
from ecrf.outputs.odm.common import (
    CHOICE_NOT_SELECTED,
    CHOICE_SELECTED,
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
    odm_document,
    q,
    sub,
    write_admin_data,
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

ITEM_DATA = q("ItemData")


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
        self._oids: dict[tuple[str, str], tuple[str, str]] = {}

    def kind(self, form: str, item: str) -> str:
        return self.items.get((form, item), "text")

    def oid_and_kind(self, form: str, item: str) -> tuple[str, str]:
        """(ItemOID, value kind), computed once per item: the hot loop only looks up."""
        found = self._oids.get((form, item))
        if found is None:
            found = self._oids[(form, item)] = (item_oid(form, item), self.kind(form, item))
        return found


class ClinicalWriter:
    def __init__(self, xf: Any, scope: Scope, *, transactional: bool) -> None:
        self.xf = xf
        self.scope = scope
        self.transactional = transactional
        self.summary = ExportSummary()
        self._open: list[Any] = []
        self.allocations: dict[int, Any] = {}

    # element helpers
    def _enter(self, tag: str, attrib: dict[str, Any]) -> None:
        cm = self.xf.element(q(tag), {k: str(v) for k, v in attrib.items() if v is not None})
        cm.__enter__()
        self._open.append(cm)

    def _close_to(self, depth: int) -> None:
        while len(self._open) > depth:
            self._open.pop().__exit__(None, None, None)

    def _audit(self, parent: etree._Element, row: AuditRow, site_code: str) -> None:
        ar = sub(parent, "AuditRecord")
        sub(ar, "UserRef", {"UserOID": user_ref(row.username)})
        sub(ar, "LocationRef", {"LocationOID": location_oid(row.site_code or site_code)})
        sub(ar, "DateTimeStamp", text=odm_datetime(row.occurred_at))
        if row.reason:
            sub(ar, "ReasonForChange", text=row.reason)
        sub(ar, "SourceID", text=str(row.seq))

    def _signature(self, parent: etree._Element, sig: SignatureRow, site_code: str) -> None:
        el = sub(parent, "Signature")
        sub(el, "UserRef", {"UserOID": user_ref(sig.signer_username)})
        sub(el, "LocationRef", {"LocationOID": location_oid(site_code)})
        sub(el, "SignatureRef", {"SignatureOID": signature_oid(sig.meaning)})
        sub(el, "DateTimeStamp", text=odm_datetime(sig.signed_at))

    def _head(self, tag: str, attrib: dict, main: SignatureRow | None, site_code: str,
              note: etree._Element | None, site_ref: bool = False) -> None:
        """Open a container and write what precedes its children (Signature, SiteRef,
        Annotation), in the schema's order."""
        self._enter(tag, attrib)
        holder = element("X")
        if main is not None:
            self._signature(holder, main, site_code)
        if site_ref:
            sub(holder, "SiteRef", {"LocationOID": location_oid(site_code)})
        for child in holder:
            self.xf.write(child)
        if note is not None:
            self.xf.write(note)

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
            self.xf.write(el)

    # the pass over one version's data
    def write_version(self, session: Session, version: StudyVersion, mdv: str,
                      progress: Progress | None, total_hint: int) -> None:
        kinds = _Kinds(definition_for(version))
        txn = self.transactional
        audits = BySubject(audit_rows(session, self.scope,
                                      actions=(*ITEM_ACTIONS, ROW_REMOVED)))
        sigs = BySubject(signature_rows(session, self.scope))
        upsert = "Upsert" if txn else None
        subject = event = form = None
        group: tuple | None = None
        ig: etree._Element | None = None
        items_hist: dict = {}
        removals: dict = {}
        subject_sigs: list[SignatureRow] = []
        current_sub_attrib: dict = {}
        site_code = ""

        def latest_valid(found: list[SignatureRow]) -> SignatureRow | None:
            valid = [s for s in found if s.broken_at is None]
            return valid[-1] if valid else None

        def scoped(level: str, target: int) -> list[SignatureRow]:
            if level == "form":
                return [s for s in subject_sigs if s.scope == "form"
                        and s.form_instance_id == target]
            return [s for s in subject_sigs if s.scope == "event"
                    and s.event_instance_id == target]

        def flush_group() -> None:
            # Written and forgotten before any level closes: the next group starts afresh
            # even when the next subject or form has the same event, form, group and row.
            nonlocal ig, group
            if ig is not None:
                self.xf.write(ig)
                if txn and group is not None:
                    removal = removals.get(group[1])
                    if removal is not None:
                        gone = element("ItemGroupData",
                                       group[2] | {"TransactionType": "Remove"})
                        self._audit(gone, removal, site_code)
                        self.xf.write(gone)
            ig = None
            group = None

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

        with self.xf.element(q("ClinicalData"), {"StudyOID": self.scope.study.oid,
                                                  "MetaDataVersionOID": mdv}):
            row: ItemRow
            for row in item_rows(session, self.scope, version_id=version.id):
                if subject != row.subject_id:
                    close_subject()
                    subject = row.subject_id
                    site_code = row.site_code
                    items_hist, removal_rows = histories(audits.take(subject))
                    removals = removal_rows
                    subject_sigs = sigs.take(subject)
                    current_sub_attrib = {"SubjectKey": row.subject_key,
                                          "TransactionType": upsert}
                    casebook = [s for s in subject_sigs if s.scope == "casebook"]
                    self._head("SubjectData", current_sub_attrib, latest_valid(casebook),
                               site_code, annotation("subject", enrolled_on=row.enrolled_on,
                                                     status=row.subject_status),
                               site_ref=True)
                    self.summary.subjects += 1
                    if progress and self.summary.subjects % 50 == 0:
                        progress(min(95, 10 + self.summary.values * 85 // max(total_hint, 1)),
                                 f"{self.summary.subjects} subjects, "
                                 f"{self.summary.values} values")
                if event is None or event[0] != row.event_instance_id:
                    close_event()
                    attrib = {"StudyEventOID": event_oid(row.event_oid),
                              "StudyEventRepeatKey": row.repeat
                              if row.event_oid in kinds.repeating_events else None,
                              "TransactionType": upsert}
                    found = scoped("event", row.event_instance_id)
                    main = latest_valid(found)
                    self._head("StudyEventData", attrib, main, site_code,
                               annotation("event", actual_date=row.event_date,
                                          state=row.event_state))
                    event = (row.event_instance_id, attrib, found, main)
                if form is None or form[0] != row.form_instance_id:
                    close_form()
                    attrib = {"FormOID": form_oid(row.form_oid), "TransactionType": upsert}
                    found = scoped("form", row.form_instance_id)
                    main = latest_valid(found)
                    self._head("FormData", attrib, main, site_code,
                               annotation("form", status=row.form_status,
                                          study_version=version.number))
                    form = (row.form_instance_id, attrib, found, main)
                    self.summary.forms += 1
                if row.item_oid is None:
                    continue
                removed = row.removed_at is not None
                if removed and not txn:
                    continue
                # The trail's key of the row, within the subject; the group itself is one
                # row of one form instance of one subject.
                hkey = (row.event_oid, row.repeat, row.form_oid, row.group_oid, row.row)
                gkey = (row.subject_id, row.form_instance_id, row.group_oid, row.row)
                if group is None or group[0] != gkey:
                    flush_group()
                    repeating = (row.form_oid, row.group_oid) in kinds.repeating_groups
                    attrib = {"ItemGroupOID": group_oid(row.form_oid, row.group_oid),
                              "ItemGroupRepeatKey": str(row.row) if repeating else None,
                              "TransactionType": upsert}
                    attrib = {k: v for k, v in attrib.items() if v is not None}
                    ig = element("ItemGroupData", attrib)
                    group = (gkey, hkey, attrib)
                self._item(ig, row, kinds, items_hist.get(hkey + (row.item_oid,), ()),
                           site_code)
            close_subject()

    def _allocation(self, subject_id: int) -> None:
        """The subject's arm, randomization and dose level (ecrf's declared extension),
        after its StudyEventData as the schema places extension elements."""
        info = self.allocations.get(subject_id)
        el = allocation_element(info) if info is not None else None
        if el is not None:
            self.xf.write(el)
            self.summary.allocations += 1

    def _choices(self, ig: etree._Element, row: ItemRow, codes: tuple[str, ...],
                 value: str | None, transaction: str | None, change: AuditRow | None,
                 site_code: str) -> bool:
        """A multiple-choice value as one boolean ItemData per code of its list (in a
        transaction, a removal removes each). False, writing nothing, for a value holding
        a code the list does not have: it is then written as it is stored."""
        selected = selected_codes(value)
        if not set(selected) <= set(codes):
            return False
        for code in codes:
            el = etree.SubElement(ig, ITEM_DATA,
                                  ItemOID=choice_oid(row.form_oid, row.item_oid, code))
            if transaction is not None:
                el.set("TransactionType", transaction)
            if transaction != "Remove":
                el.set("Value", CHOICE_SELECTED if code in selected else CHOICE_NOT_SELECTED)
            if change is not None:
                self._audit(el, change, site_code)
        return True

    def _item(self, ig: etree._Element, row: ItemRow, kinds: _Kinds,
              history: list[AuditRow] | tuple, site_code: str) -> None:
        oid, kind = kinds.oid_and_kind(row.form_oid, row.item_oid)
        codes = kinds.choices.get((row.form_oid, row.item_oid))
        if not self.transactional:
            if row.value is None:
                return
            if codes and self._choices(ig, row, codes, row.value, None,
                                       history[-1] if history else None, site_code):
                self.summary.values += 1
                return
            el = etree.SubElement(ig, ITEM_DATA, ItemOID=oid,
                                  Value=odm_value(kind, row.value) if kind in _CONVERTED
                                  else row.value)
            if history:
                self._audit(el, history[-1], site_code)
            self.summary.values += 1
            return
        last = None
        for change in history:
            txn = TRANSACTIONS[change.action]
            if codes and self._choices(ig, row, codes, change.new_value, txn, change,
                                       site_code):
                last = change.new_value
                self.summary.values += 1
                continue
            el = etree.SubElement(ig, q("ItemData"), ItemOID=oid, TransactionType=txn)
            if txn != "Remove" and change.new_value is not None:
                el.set("Value", odm_value(kind, change.new_value))
            self._audit(el, change, site_code)
            last = change.new_value
            self.summary.values += 1
        if row.value != last and row.value is not None:
            # A value the trail does not explain (loaded in bulk, or by a migration).
            txn = "Insert" if not history else "Update"
            if codes and self._choices(ig, row, codes, row.value, txn, None, site_code):
                self.summary.values += 1
                return
            etree.SubElement(ig, q("ItemData"), ItemOID=oid,
                             TransactionType="Insert" if not history else "Update",
                             Value=odm_value(kind, row.value))
            self.summary.values += 1


def reference_export(session: Session, scope: Scope, target: str | Path | IO[bytes], *,
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
    with odm_document(target, info, extensions=True) as xf:
        write_study(xf, scope.study, versions)
        write_admin_data(xf, scope.study.oid, admin)
        writer = ClinicalWriter(xf, scope, transactional=transactional)
        writer.allocations = allocations_in_scope(session, scope)
        for version in versions_in_scope(session, scope):
            if progress:
                progress(10, f"writing the data of {version.label}")
            writer.write_version(session, version, version_ref(scope.study, version).mdv_oid,
                                 progress, total_hint)
            writer.summary.versions.append(version.label)
    return writer.summary
