"""Importing ODM 1.3.2 clinical data into an existing study, through data capture.

**All or nothing.** The whole file is checked and stored in one savepoint of the caller's
transaction: every form of every subject is saved with ``capture.save_form``, exactly as if
a person had entered it (the same validation, the same audit rows), and every problem is
reported where it is in the file (subject, event, form, item group and item, by the file's
own OIDs). Unless every record can be stored, the savepoint is rolled back and the database
is exactly as it was; ``dry_run`` always rolls it back. With ``partial``, each subject is
all or nothing instead: the subjects without problems are stored and the others listed.
Subjects missing from the study are enrolled at the file's site (SiteRef) or at the site
given. The file is read one SubjectData at a time.

**Historical.** The import runs as ``audit.historical_import``: every audit row it writes
names the file, its SHA-256 and the source system (ODM SourceSystem, Originator), a value's
AuditRecord in the file (user, time, reason) goes into its audit row (details, and the
reason "imported from ODM <file>: <source reason>"), and the reactions that act on the
present (SAE reports and notifications, automatic queries, AE prompts, DLT candidates) are
held back, while grades are computed and stored. Snapshot files give each item's value;
transactional files are history, replayed change by change in the order of their
AuditRecords (``clinical_read``): a Remove clears the value, an ItemGroupData Remove
removes the row.

Calculated items are recalculated and system-written items
(``StudyDefinition.system_items``) left to the system, never imported, except a
randomization date (``StudyDefinition.allocation_items``): it goes to data capture, which
refuses it, with its form, unless the subject has a randomization in force and the same
date.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
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
from ecrf.outputs.odm.common import q
from ecrf.outputs.odm.importer.allocation import restore_subject_allocation
from ecrf.outputs.odm.importer.clinical_read import (
    ClinicalImportError,
    FileHeader,
    FormData,
    Step,
    annotation,
    file_sha256,
    parse_date,
    read_subject,
    strip,
    subject_elements,
)
from ecrf.outputs.odm.importer.clinical_report import (
    FormOutcome,
    ImportReport,
    Problem,
    SubjectOutcome,
)
from ecrf.outputs.odm.importer.order import dependency_order
from ecrf.outputs.odm.importer.source_data import source_reader
from ecrf.studies import Site, Study, StudySite, definition_for

Progress = Callable[[int, str], None]


class ClinicalImporter:
    def __init__(self, session: Session, actor: Actor, study: Study,
                 provenance: audit.ImportProvenance, *, site_code: str | None = None,
                 today: dt.date | None = None) -> None:
        self.session = session
        self.actor = actor
        self.study = study
        self.provenance = provenance
        self.reason = f"imported from ODM {provenance.file_name}"
        self.site_code = site_code
        self.today = today
        self.transactional = False
        self.users: dict = {}

    def _site(self, code: str | None) -> Site | None:
        if not code:
            return None
        return self.session.scalar(
            select(Site).join(StudySite, StudySite.site_id == Site.id)
            .where(StudySite.study_id == self.study.id, func.upper(Site.code) == code.upper()))

    def subject(self, el: etree._Element) -> SubjectOutcome:
        """Import one SubjectData in its own savepoint: kept only without problems."""
        held = Counter(self.provenance.held)
        savepoint = self.session.begin_nested()
        try:
            outcome = self._subject(el)
        except BaseException:
            if savepoint.is_active:
                savepoint.rollback()
            raise
        if outcome.problems:
            savepoint.rollback()
            self.provenance.held = held
            outcome.state = "not_imported"
            outcome.counts.move_kept("subject_not_imported")
        else:
            savepoint.commit()
            outcome.state = "stored"
        return outcome

    def _subject(self, el: etree._Element) -> SubjectOutcome:
        key = el.get("SubjectKey") or ""
        ref = el.find(q("SiteRef"))
        code = self.site_code or strip(ref.get("LocationOID") if ref is not None else None,
                                       "LOC.")
        outcome = SubjectOutcome(key, code or None)
        subject = self.session.scalar(select(Subject).where(
            Subject.study_id == self.study.id, Subject.subject_key == key))
        version = subject.study_version if subject else _latest(self.session, self.study)
        definition = definition_for(version)
        forms, steps = read_subject(el, definition, transactional=self.transactional,
                                    users=self.users)
        outcomes = {id(data): FormOutcome(data.event, data.repeat, data.form)
                    for data in forms}
        outcome.forms = list(outcomes.values())
        for data in forms:
            outcome.problems += data.problems
            outcomes[id(data)].messages += [p.message for p in data.problems]
        if subject is None:
            subject = self._enrol(el, key, code, forms, outcome)
        if subject is not None:
            outcome.site_code = subject.site.code
            if error := restore_subject_allocation(self.session, self.actor, subject, el,
                                                   self.reason, today=self.today):
                outcome.error = error
                outcome.problems.insert(0, Problem(key, message=error))
                self._count(forms, outcome)
                return outcome
            if not self.transactional:  # history keeps its own order
                # a form after the forms its calculated items read (one step per form)
                rank = {id(data): n for n, data in
                        enumerate(dependency_order(definition, [s.form for s in steps]))}
                steps = sorted(steps, key=lambda step: rank[id(step.form)])
            last = {id(step.form): n for n, step in enumerate(steps)}
            failed: set[int] = set()
            for n, step in enumerate(steps):
                data = step.form
                if data.problems or id(data) in failed:
                    continue
                form_outcome = outcomes[id(data)]
                if self._step(subject, definition, step, form_outcome,
                              last_of_form=last[id(data)] == n):
                    form_outcome.steps += 1
                    outcome.rows_removed += len(step.removals())
                else:
                    failed.add(id(data))
                    outcome.problems += data.problems
            for data in forms:
                outcomes[id(data)].saved = not data.problems
        self._count(forms, outcome)
        return outcome

    def _enrol(self, el: etree._Element, key: str, code: str | None, forms: list[FormData],
               outcome: SubjectOutcome) -> Subject | None:
        site = self._site(code)
        if site is None:
            outcome.error = (f"site {code!r} does not take part in {self.study.oid}"
                             if code else "no site given (SiteRef or --site)")
        else:
            note = annotation(el)
            dates = [d for d in (parse_date(f.event_date) for f in forms) if d]
            enrolled_on = parse_date(note.get("enrolled_on")) or (min(dates) if dates else None) \
                or local_today(site.timezone)
            try:
                subject = capture.enrol_subject(self.session, self.actor, self.study, site, key,
                                                enrolled_on, today=self.today)
            except capture.EnrolmentError as exc:
                outcome.error = str(exc)
            else:
                outcome.enrolled = True
                return subject
        outcome.problems.insert(0, Problem(key, message=outcome.error))
        return None

    @staticmethod
    def _count(forms: list[FormData], outcome: SubjectOutcome) -> None:
        counts = outcome.counts
        for data in forms:
            for change in data.item_data:
                n = change.itemdata  # a multiple choice stands for one ItemData per code
                counts.in_file += n
                if change.skip:
                    counts.skipped[change.skip] += n
                elif change.stored is True:
                    counts.stored += n
                elif change.stored is False:
                    counts.unchanged += n
                else:
                    counts.skipped["subject_not_imported" if outcome.error
                                   else "form_refused"] += n

    def _step(self, subject: Subject, definition: StudyDefinition, step: Step,
              outcome: FormOutcome, *, last_of_form: bool) -> bool:
        """Save one step of a form in a savepoint; on refusal the form's problems say why."""
        data = step.form
        savepoint = self.session.begin_nested()
        try:
            result = self._save(subject, definition, step, outcome, last_of_form)
        except (CaptureError, UnknownOidError) as exc:
            result = None
            data.problem(subject.subject_key, str(exc))
            outcome.messages.append(str(exc))
        finally:
            self.provenance.sources = {}
        if result is None or not result.saved:
            savepoint.rollback()
            if result is not None:
                self._refusals(subject, step, result, outcome)
            refused = {k for k in (result.errors if result is not None else {})}
            for change in step.changes:
                if change.item is not None and not change.skip:
                    change.skip = "invalid_value" if change.key in refused else "form_refused"
            return False
        savepoint.commit()
        changed = set(result.changed)
        for change in step.changes:
            if change.item is not None:
                change.stored = change.key in changed
        outcome.status = result.status
        return True

    def _refusals(self, subject: Subject, step: Step, result: capture.SaveResult,
                  outcome: FormOutcome) -> None:
        data, key = step.form, subject.subject_key
        values = step.values()
        for (group, row, item), messages in sorted(result.errors.items()):
            change = values.get((group, row, item))
            for message in messages:
                if change is not None:
                    data.problem(key, str(message), change)
                else:
                    data.problems.append(Problem(key, data.event_oid, data.repeat_key,
                                                 data.form_oid, group, str(row), item or None,
                                                 str(message)))
                where = f"{group}[{row}].{item}" if item else f"{group}[{row}]"
                outcome.messages.append(f"{where}: {message}")
        for message in result.form_errors:
            data.problem(key, str(message))
            outcome.messages.append(str(message))
        if not data.problems:
            text = "not saved: " + " ".join(str(m) for m in result.blockers)
            data.problem(key, text)
            outcome.messages.append(text)

    def _save(self, subject: Subject, definition: StudyDefinition, step: Step,
              outcome: FormOutcome, last_of_form: bool) -> capture.SaveResult:
        session, data = self.session, step.form
        instance = event_instance(session, subject, data.event, data.repeat)
        if instance is None:
            date = parse_date(data.event_date) or self._date_item(definition, data)
            if date is None and definition.event(data.event).kind is not EventKind.LOG:
                date = subject.enrolled_on
            instance = capture.open_event(session, self.actor, subject, data.event,
                                          data.repeat, date, today=self.today)
        existing = session.scalar(select(FormInstance).where(
            FormInstance.event_instance_id == instance.id, FormInstance.form_oid == data.form))
        given = step.values()
        values = {k: c.value for k, c in given.items()}
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
        removals = step.removals()
        submission = capture.Submission(
            values=values, reasons={k: self._reason(c.record) for k, c in given.items()},
            removed_rows={k: self._reason(c.record, "removed in the source system")
                          for k, c in removals.items()},
            partial=True)
        self.provenance.sources = self._sources(subject, step)
        want_complete = last_of_form and data.status == "complete"
        base = existing.version if existing else None
        result = capture.save_form(session, self.actor, subject, data.event, data.repeat,
                                   data.form, submission, base_version=base,
                                   complete=want_complete, today=self.today)
        if not result.saved and want_complete and not (result.errors or result.form_errors):
            outcome.messages.append("saved in progress, not complete: " + " ".join(
                str(m) for m in result.blockers))
            result = capture.save_form(session, self.actor, subject, data.event, data.repeat,
                                       data.form, submission, base_version=base,
                                       complete=False, today=self.today)
        return result

    def _reason(self, record, default: str | None = None) -> str:
        said = (record.reason if record is not None else None) or default
        return f"{self.reason}: {said}" if said else self.reason

    def _sources(self, subject: Subject, step: Step) -> dict[str, dict]:
        """The source's AuditRecord of each value, by the audit path its change is logged
        under (``audit.ImportProvenance.sources``)."""
        data, found = step.form, {}
        for change in step.changes:
            if change.record is None:
                continue
            if change.item is None:
                path = capture.row_path(subject, data.event, data.repeat, data.form,
                                        change.group, change.row)
            else:
                path = capture.item_path(subject, data.event, data.repeat, data.form,
                                         change.key)
            found[path] = change.record.details()
        return found

    def _date_item(self, definition: StudyDefinition, data: FormData) -> dt.date | None:
        """The event's date from its date item, when this form holds it."""
        item = definition.event_date_items.get(data.event)
        if item is None or item[0] != data.form:
            return None
        for change in reversed(data.item_data):
            if change.item == item[1] and change.row == 1 and change.value:
                return parse_date(change.value[:10])
        return None


def _latest(session: Session, study: Study):
    from ecrf.studies import latest_version

    version = latest_version(session, study)
    if version is None:
        raise ClinicalImportError(f"{study.oid} has no stored version to import data into")
    return version


def import_odm_clinical(session: Session, actor: Actor, study: Study, path: str | Path, *,
                        site_code: str | None = None, today: dt.date | None = None,
                        progress: Progress | None = None, partial: bool = False,
                        dry_run: bool = False) -> ImportReport:
    """Import every SubjectData of the file's ClinicalData for ``study``: all or nothing
    (``partial``: subject by subject), nothing at all with ``dry_run``. Flushes, never
    commits; what is not kept is already rolled back (``report.committed`` says whether
    anything is kept for the caller to commit). Raises ClinicalImportError, with nothing
    written, for a file that cannot be imported at all."""
    path = Path(path)
    audit.bind_actor(session, actor)
    _latest(session, study)
    report = ImportReport(path.name, study.oid, sha256=file_sha256(path), partial=partial,
                          dry_run=dry_run)
    provenance = audit.ImportProvenance(path.name, report.sha256)
    importer = ClinicalImporter(session, actor, study, provenance, site_code=site_code,
                                today=today)
    started = time.perf_counter()
    audit.lock_chain(session)  # the transaction is open before the first savepoint
    outer = session.begin_nested()
    try:
        with audit.historical_import(session, provenance):
            _read(path, study, importer, report, progress)
            keep = _settle(report)
            report.held = dict(provenance.held)
            if keep and not dry_run:
                _record(session, actor, study, report)
    except BaseException:
        if outer.is_active:
            outer.rollback()
        raise
    report.committed = keep and not dry_run
    if report.committed:
        outer.commit()
    else:
        outer.rollback()
    report.seconds = time.perf_counter() - started
    return report


def _read(path: Path, study: Study, importer: ClinicalImporter, report: ImportReport,
          progress: Progress | None) -> None:
    def header(found: FileHeader) -> None:
        report.file_type = found.file_type
        report.source_system = importer.provenance.source_system = found.source_system
        report.originator = importer.provenance.originator = found.originator
        importer.transactional = found.file_type == "Transactional"

    reader = source_reader(definition_for(_latest(importer.session, study)))
    for el in subject_elements(path, study.oid, header=header, users=importer.users,
                               reader=reader):
        report.subjects.append(importer.subject(el))
        if progress:
            progress(len(report.subjects), f"imported {el.get('SubjectKey')}")


def _settle(report: ImportReport) -> bool:
    """Whether what was checked may be kept, and the final state and counts of each
    subject: refused as a whole, valid subjects store nothing either."""
    keep = not report.problems or (report.partial and any(
        s.state == "stored" for s in report.subjects))
    for outcome in report.subjects:
        if outcome.state == "stored" and (report.dry_run or not keep):
            outcome.state = "checked"
        if not keep and outcome.state == "checked":
            outcome.counts.move_kept("import_refused")
        report.counts.add(outcome.counts)
        if keep and outcome.state != "not_imported":
            report.rows_removed += outcome.rows_removed
    return keep


def _record(session: Session, actor: Actor, study: Study, report: ImportReport) -> None:
    audit.record(session, actor, "import.odm_clinical", category="data", study_oid=study.oid,
                 new_value=report.file_name, details={
                     "file_type": report.file_type,
                     "mode": "partial" if report.partial else "all-or-nothing",
                     "subjects": len(report.subjects),
                     "subjects_not_imported": report.refused_subjects,
                     "forms_saved": report.saved_forms, "forms_refused": report.refused_forms,
                     "item_data": report.counts.as_dict(), "held_back": report.held})


__all__ = ["ClinicalImportError", "ImportReport", "SubjectOutcome", "import_odm_clinical"]
