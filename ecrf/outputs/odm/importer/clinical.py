"""Importing ODM 1.3.2 clinical data into an existing study, through data capture.

Each form of the file is saved with ``capture.save_form``, exactly as if a person had
entered it: the same validation, the same audit rows, with the reason "imported from ODM
<file>" for every changed value. A form is all or nothing: a value that fails validation
refuses the whole form (listed in the report) and nothing of it is saved, while the
subject's other forms are saved (each form runs in its own savepoint). Subjects missing
from the study are enrolled at the file's site (SiteRef) or at the site given.

Snapshot files give each item's value; transactional files give its changes, applied in
order (a Remove clears the value, an ItemGroupData Remove removes the row). Calculated
items are recalculated and system-written items (``StudyDefinition.system_items``) left to
the system, never imported, except a randomization date
(``StudyDefinition.allocation_items``): it goes to data capture, which refuses it, with its
form, unless the subject has a randomization in force and the same date. A subject's
``ecrf:Allocation`` (arm, randomization, dose level) is restored before its forms
(``importer.allocation``), which are saved after the forms their calculated items read
(``importer.order``); a multiple choice given code by code is folded back into one value
(``importer.choices``). The file is read one SubjectData at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ecrf import capture
from ecrf.capture import CaptureError, FormInstance, ItemValue, Subject, event_instance, local_today
from ecrf.core import audit
from ecrf.core.audit import Actor
from ecrf.crf import ItemType, StudyDefinition, UnknownOidError
from ecrf.domain.schedule import EventKind
from ecrf.outputs.odm.clinical import parse_annotation
from ecrf.outputs.odm.common import ODM_NS, q
from ecrf.outputs.odm.importer.allocation import restore_subject_allocation
from ecrf.outputs.odm.importer.choices import fold_choices
from ecrf.outputs.odm.importer.order import dependency_order
from ecrf.outputs.odm.importer.source_data import source_reader
from ecrf.studies import Site, Study, StudySite, definition_for

Progress = Callable[[int, str], None]


class ClinicalImportError(ValueError):
    """A file that cannot be imported at all; the message says why."""


@dataclass
class FormOutcome:
    event: str
    repeat: int
    form: str
    saved: bool
    status: str = ""
    messages: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.event}[{self.repeat}]/{self.form}"


@dataclass
class SubjectOutcome:
    subject_key: str
    site_code: str | None = None
    enrolled: bool = False
    error: str | None = None
    forms: list[FormOutcome] = field(default_factory=list)

    @property
    def refused(self) -> list[FormOutcome]:
        return [f for f in self.forms if not f.saved]

    def lines(self) -> list[str]:
        head = f"{self.subject_key}"
        if self.site_code:
            head += f" (site {self.site_code})"
        if self.error:
            return [f"{head}: not imported: {self.error}"]
        saved = sum(1 for f in self.forms if f.saved)
        head += f": {'enrolled; ' if self.enrolled else ''}{saved} form(s) saved"
        if self.refused:
            head += f", {len(self.refused)} refused"
        lines = [head]
        for form in self.forms:
            for message in form.messages:
                state = "refused" if not form.saved else "note"
                lines.append(f"  {form.where} {state}: {message}")
        return lines


@dataclass
class ImportReport:
    file_name: str
    study_oid: str
    subjects: list[SubjectOutcome] = field(default_factory=list)

    @property
    def refused_forms(self) -> int:
        return sum(len(s.refused) for s in self.subjects) + sum(1 for s in self.subjects
                                                                 if s.error)

    @property
    def saved_forms(self) -> int:
        return sum(1 for s in self.subjects for f in s.forms if f.saved)


def _strip(oid: str | None, *prefixes: str) -> str:
    oid = oid or ""
    for prefix in prefixes:
        if oid.startswith(prefix):
            return oid[len(prefix):]
    return oid


def _annotation(el: etree._Element) -> dict[str, str]:
    found: dict[str, str] = {}
    for comment in el.findall(f"{{{ODM_NS}}}Annotation/{{{ODM_NS}}}Comment"):
        _level, values = parse_annotation(comment.text)
        found.update(values)
    return found


def _date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


@dataclass
class _FormData:
    event: str
    repeat: int
    form: str
    status: str | None = None
    event_date: str | None = None
    values: dict[tuple[str, int, str], str | None] = field(default_factory=dict)
    removed: dict[tuple[str, int], str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)


def _read_subject(el: etree._Element, definition: StudyDefinition) -> list[_FormData]:
    """The forms of one SubjectData, with the last value given for each item."""
    forms: dict[tuple[str, int, str], _FormData] = {}
    source = source_reader(definition)  # the OIDs of the system the study came from
    for sed, event, repeat in source.events(el):
        event_note = _annotation(sed)
        for fd in sed.iterfind(q("FormData")):
            form = source.form(fd.get("FormOID"))
            data = forms.setdefault((event, repeat, form), _FormData(event, repeat, form))
            data.status = _annotation(fd).get("status") or data.status
            data.event_date = data.event_date or event_note.get("actual_date")
            for igd in fd.iterfind(q("ItemGroupData")):
                group = source.group(fd.get("FormOID"), igd.get("ItemGroupOID"))
                row = int(igd.get("ItemGroupRepeatKey") or 1)
                if igd.get("TransactionType") == "Remove":
                    reason = igd.findtext(f"{q('AuditRecord')}/{q('ReasonForChange')}")
                    data.removed[(group, row)] = reason or "removed in the source system"
                    continue
                for group, oid, value in source.values(fd.get("FormOID"), igd):
                    data.values[(group, row, oid)] = value
    for data in forms.values():
        fold_choices(definition, data.form, data.values)
        try:
            fdef = definition.form(data.form)
        except UnknownOidError:
            data.unknown.append(f"form {data.form} is not in the study definition")
            continue
        items = {i.oid: i for i in fdef.items}
        for key in list(data.values):
            item = items.get(key[2])
            if item is None:
                data.unknown.append(f"{key[0]}.{key[2]} is not an item of {data.form}")
                data.values.pop(key)
            elif item.type is ItemType.CALCULATED:
                data.values.pop(key)  # recalculated by data capture
            elif ((data.form, item.oid) in definition.system_items
                  and (data.form, item.oid) not in definition.allocation_items):
                # Written by this instance's system (its randomization, the assigned dose
                # level), never taken from a file: data capture would refuse another value.
                # A randomization date is passed on, so that a date of a subject not
                # randomized here is refused rather than silently dropped.
                data.values.pop(key)
    return list(forms.values())


class ClinicalImporter:
    def __init__(self, session: Session, actor: Actor, study: Study, file_name: str, *,
                 site_code: str | None = None, today: dt.date | None = None) -> None:
        self.session = session
        self.actor = actor
        self.study = study
        self.reason = f"imported from ODM {file_name}"
        self.site_code = site_code
        self.today = today

    def _site(self, code: str | None) -> Site | None:
        if not code:
            return None
        return self.session.scalar(
            select(Site).join(StudySite, StudySite.site_id == Site.id)
            .where(StudySite.study_id == self.study.id, func.upper(Site.code) == code.upper()))

    def subject(self, el: etree._Element) -> SubjectOutcome:
        key = el.get("SubjectKey") or ""
        ref = el.find(q("SiteRef"))
        code = self.site_code or _strip(ref.get("LocationOID") if ref is not None else None,
                                        "LOC.")
        outcome = SubjectOutcome(key, code or None)
        subject = self.session.scalar(select(Subject).where(
            Subject.study_id == self.study.id, Subject.subject_key == key))
        version = subject.study_version if subject else _latest(self.session, self.study)
        definition = definition_for(version)
        forms = _read_subject(el, definition)
        if subject is None:
            site = self._site(code)
            if site is None:
                outcome.error = (f"site {code!r} does not take part in {self.study.oid}"
                                 if code else "no site given (SiteRef or --site)")
                return outcome
            note = _annotation(el)
            dates = [d for d in (_date(f.event_date) for f in forms) if d]
            enrolled_on = _date(note.get("enrolled_on")) or (min(dates) if dates else None) \
                or local_today(site.timezone)
            try:
                with self.session.begin_nested():
                    subject = capture.enrol_subject(self.session, self.actor, self.study, site,
                                                     key, enrolled_on, today=self.today)
            except capture.EnrolmentError as exc:
                outcome.error = str(exc)
                return outcome
            outcome.enrolled = True
        outcome.site_code = subject.site.code
        if error := restore_subject_allocation(self.session, self.actor, subject, el,
                                               self.reason, today=self.today):
            outcome.error = error
            return outcome
        for data in dependency_order(definition, forms):
            outcome.forms.append(self.form(subject, definition, data))
        return outcome

    def form(self, subject: Subject, definition: StudyDefinition, data: _FormData
             ) -> FormOutcome:
        outcome = FormOutcome(data.event, data.repeat, data.form, saved=False)
        if data.unknown:
            outcome.messages = data.unknown
            return outcome
        date = _date(data.event_date)
        savepoint = self.session.begin_nested()
        try:
            saved = self._save(subject, definition, data, date, outcome)
        except CaptureError as exc:
            saved = False
            outcome.messages.append(str(exc))
        except UnknownOidError as exc:
            saved = False
            outcome.messages.append(str(exc))
        if saved:
            savepoint.commit()
        else:
            savepoint.rollback()
        outcome.saved = saved
        return outcome

    def _save(self, subject: Subject, definition: StudyDefinition, data: _FormData,
              date: dt.date | None, outcome: FormOutcome) -> bool:
        session = self.session
        instance = event_instance(session, subject, data.event, data.repeat)
        if instance is None:
            date = date or self._date_item(definition, data)
            if date is None and definition.event(data.event).kind is not EventKind.LOG:
                date = subject.enrolled_on
            instance = capture.open_event(session, self.actor, subject, data.event,
                                          data.repeat, date, today=self.today)
        existing = session.scalar(select(FormInstance).where(
            FormInstance.event_instance_id == instance.id, FormInstance.form_oid == data.form))
        values = dict(data.values)
        if existing is not None:
            # Kept calculated values would be re-submitted by a partial save and refused:
            # blank them so that they are recalculated from the new values.
            calculated = {i.oid for i in definition.form(data.form).items
                          if i.type is ItemType.CALCULATED}
            for group, row, oid in session.execute(select(
                    ItemValue.group_oid, ItemValue.row, ItemValue.item_oid).where(
                    ItemValue.form_instance_id == existing.id)):
                if oid in calculated:
                    values[(group, row, oid)] = None
        submission = capture.Submission(
            values=values, reasons={k: self.reason for k in data.values},
            removed_rows={k: f"{self.reason}: {v}" for k, v in data.removed.items()},
            partial=True)
        want_complete = data.status == "complete"
        result = capture.save_form(session, self.actor, subject, data.event, data.repeat,
                                   data.form, submission,
                                   base_version=existing.version if existing else None,
                                   complete=want_complete, today=self.today)
        if not result.saved and want_complete and not (result.errors or result.form_errors):
            outcome.messages.append("saved in progress, not complete: " + " ".join(
                str(m) for m in result.blockers))
            result = capture.save_form(session, self.actor, subject, data.event, data.repeat,
                                       data.form, submission,
                                       base_version=existing.version if existing else None,
                                       complete=False, today=self.today)
        if not result.saved:
            for (group, row, item), messages in sorted(result.errors.items()):
                where = f"{group}[{row}].{item}" if item else f"{group}[{row}]"
                outcome.messages += [f"{where}: {m}" for m in messages]
            outcome.messages += [str(m) for m in result.form_errors]
            if not outcome.messages:
                outcome.messages.append("not saved: " + " ".join(str(m) for m in
                                                                  result.blockers))
            return False
        outcome.status = result.status
        return True

    def _date_item(self, definition: StudyDefinition, data: _FormData) -> dt.date | None:
        """The event's date from its date item, when this form holds it."""
        item = definition.event_date_items.get(data.event)
        if item is None or item[0] != data.form:
            return None
        for (_group, row, oid), value in data.values.items():
            if oid == item[1] and row == 1 and value:
                return _date(value[:10])
        return None


def _latest(session: Session, study: Study):
    from ecrf.studies import latest_version

    version = latest_version(session, study)
    if version is None:
        raise ClinicalImportError(f"{study.oid} has no stored version to import data into")
    return version


def import_odm_clinical(session: Session, actor: Actor, study: Study, path: str | Path, *,
                        site_code: str | None = None, today: dt.date | None = None,
                        progress: Progress | None = None) -> ImportReport:
    """Import every SubjectData of the file's ClinicalData for ``study``; flushes, never
    commits (the caller commits what was saved)."""
    path = Path(path)
    audit.bind_actor(session, actor)
    _latest(session, study)
    importer = ClinicalImporter(session, actor, study, path.name, site_code=site_code,
                                today=today)
    report = ImportReport(path.name, study.oid)
    seen_clinical = False
    try:
        context = etree.iterparse(str(path), events=("start", "end"),
                                  tag=(q("ClinicalData"), q("SubjectData")),
                                  resolve_entities=False, no_network=True, load_dtd=False,
                                  huge_tree=False, remove_comments=True)
        for event, el in context:
            if el.tag == q("ClinicalData"):
                if event == "start":
                    seen_clinical = True
                    if source_reader(definition_for(_latest(session, study))).study(
                            el.get("StudyOID")) != study.oid:
                        raise ClinicalImportError(
                            f"{path.name} holds data of study {el.get('StudyOID')!r}, not "
                            f"{study.oid}")
                continue
            if event != "end":
                continue
            report.subjects.append(importer.subject(el))
            if progress:
                progress(len(report.subjects), f"imported {el.get('SubjectKey')}")
            el.clear()
            while el.getprevious() is not None:
                del el.getparent()[0]
    except etree.XMLSyntaxError as exc:
        raise ClinicalImportError(f"{path.name} is not well-formed XML: {exc}") from None
    if not seen_clinical:
        raise ClinicalImportError(f"{path.name} has no ClinicalData element")
    audit.record(session, actor, "import.odm_clinical", category="data", study_oid=study.oid,
                 new_value=path.name, details={
                     "subjects": len(report.subjects), "forms_saved": report.saved_forms,
                     "forms_refused": report.refused_forms})
    return report


__all__ = ["ClinicalImportError", "ImportReport", "SubjectOutcome", "import_odm_clinical"]
