"""The subject casebook: every event, form, value, query, SDV mark and signature of one
subject, its plots and its complete audit trail, as one PDF/A-3b document carrying the
subject's ODM files (snapshot and full audit trail) as embedded attachments.

Reliability first: the model is read in a fixed number of statements (no query per form
or per item), the HTML comes from templates that mirror the review screens, and any
failure raises (``CasebookError`` names the subject) instead of leaving a partial file.
Everything users typed reaches the PDF through Jinja's autoescape, and the renderer's URL
fetcher serves nothing but the static folder, so typed markup is printed, never run or
fetched.

A casebook prints in one interface language (English, French or Chinese): the
application's words come from the catalogs, the study's texts (event, form, group and item
names, code-list decodes) from the study definition's translations, and dates in that
locale's form; times stay in UTC.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ecrf import review
from ecrf.capture import (
    EVENT_STATE_LABELS,
    FORM_STATUS_LABELS,
    SUBJECT_LABELS,
    EventInstance,
    FormInstance,
    GroupRow,
    ItemValue,
    Subject,
    subject_audit_query,
)
from ecrf.core import format_day, interface_language
from ecrf.core.audit import AuditEvent
from ecrf.crf import StudyDefinition, UnknownOidError
from ecrf.crf.values import display
from ecrf.outputs.pdf.render import make_url_fetcher, static_root
from ecrf.review import Query, signatures_of
from ecrf.studies import StudyVersion, definition_for

Progress = Callable[[int, str], None]


class CasebookError(RuntimeError):
    """A casebook that could not be produced; the message names the subject and why."""


def utc(value: dt.datetime | None) -> str:
    """A moment in UTC, its date in the current locale's form ('2026-03-02 14:05:09 UTC',
    '2 mars 2026 14:05:09 UTC', '2026年3月2日 14:05:09 UTC')."""
    if not value:
        return ""
    value = value.astimezone(dt.UTC)
    return f"{format_day(value.date())} {value:%H:%M:%S} UTC"


def casebook_language(language: str | None) -> str:
    """The interface language a casebook prints in, for a language tag ("zh", "zh_Hans",
    "fr", "en"); English when none is given. CasebookError for a language the application
    does not speak."""
    if not language:
        return "en"
    found = interface_language(language)
    if found is None:
        raise CasebookError(
            f"no casebook language {language!r} (languages: "
            f"{', '.join(current_app.config['LANGUAGES'])})")
    return found


@dataclass
class ItemLine:
    label: str
    oid: str
    code: str | None
    shown: str
    unit: str | None
    grade: str | None
    sdv: str
    sdv_detail: str
    queries: list[dict] = field(default_factory=list)


def _thread(query: Query) -> dict:
    return {
        "id": query.id, "status": query.status, "origin": query.origin,
        "where": "/".join(p for p in (query.event_oid, query.form_oid, query.group_oid and
                                      f"{query.group_oid}[{query.row}]", query.item_oid) if p),
        "messages": [{"author": m.author, "role": m.role or "", "at": utc(m.at),
                      "text": m.text, "status": m.status_to or ""} for m in query.messages],
    }


class CasebookModel:
    """What the template shows for one subject, read in a fixed number of statements."""

    def __init__(self, session: Session, subject: Subject, language: str = "en") -> None:
        self.session = session
        self.subject = subject
        self.language = language  # the interface locale; study texts by its language part
        self.definition = definition_for(subject.study_version)

    def events(self) -> tuple[list[dict], list[FormInstance]]:
        session, subject = self.session, self.subject
        instances = list(session.scalars(
            select(EventInstance).where(EventInstance.subject_id == subject.id)))
        forms = list(session.scalars(
            select(FormInstance).where(FormInstance.subject_id == subject.id)
            .options(selectinload(FormInstance.study_version))))
        order = {e.oid: n for n, e in enumerate(self.definition.events)}
        instances.sort(key=lambda e: (order.get(e.event_oid, len(order)), e.repeat))
        by_event: dict[int, list[FormInstance]] = defaultdict(list)
        for form in forms:
            by_event[form.event_instance_id].append(form)
        values = self._values([f.id for f in forms])
        removed = {(gr.form_instance_id, gr.group_oid, gr.row): gr for gr in session.scalars(
            select(GroupRow).where(GroupRow.form_instance_id.in_([f.id for f in forms] or [-1]),
                                   GroupRow.removed_at.is_not(None)))}
        queries = list(session.scalars(
            select(Query).where(Query.subject_id == subject.id)
            .options(selectinload(Query.messages)).order_by(Query.id)))
        self.other_queries = [_thread(q) for q in queries if q.form_instance_id is None]
        by_form: dict[int, list[Query]] = defaultdict(list)
        for query in queries:
            if query.form_instance_id is not None:
                by_form[query.form_instance_id].append(query)
        sdv_state = review.sdv_forms_status(session, forms)
        signatures = signatures_of(session, subject)
        self.casebook_signatures = [s for s in signatures if s.scope == "casebook"]
        events = []
        for instance in instances:
            try:
                rule = self.definition.event(instance.event_oid)
                name = self.definition.event_name_in(instance.event_oid, self.language)
                form_order = list(rule.forms)
            except UnknownOidError:
                name, form_order = instance.event_oid, []
            mine = sorted(by_event.get(instance.id, []), key=lambda f: (
                form_order.index(f.form_oid) if f.form_oid in form_order else 99, f.form_oid))
            events.append({
                "oid": instance.event_oid, "repeat": instance.repeat, "name": name,
                "anchor": f"event-{instance.event_oid}-{instance.repeat}",
                "date": format_day(instance.actual_date),
                "state": instance.state, "not_done_reason": instance.not_done_reason,
                "signatures": [s for s in signatures if s.scope == "event"
                               and s.event_instance_id == instance.id],
                "forms": [self._form(f, values.get(f.id, {}), removed, by_form.get(f.id, []),
                                     sdv_state.get(f.id),
                                     [s for s in signatures if s.scope == "form"
                                      and s.form_instance_id == f.id]) for f in mine],
            })
        return events, forms

    def _values(self, form_ids: list[int]) -> dict[int, dict[tuple, ItemValue]]:
        found: dict[int, dict[tuple, ItemValue]] = defaultdict(dict)
        if not form_ids:
            return found
        for iv in self.session.scalars(select(ItemValue).where(
                ItemValue.form_instance_id.in_(form_ids))):
            found[iv.form_instance_id][(iv.group_oid, iv.row, iv.item_oid)] = iv
        return found

    def _form(self, instance: FormInstance, values: dict, removed: dict, queries: list[Query],
              state: Any, signatures: list) -> dict:
        definition: StudyDefinition = definition_for(instance.study_version)
        form = definition.form(instance.form_oid)
        lang = self.language
        item_queries: dict[tuple, list[dict]] = defaultdict(list)
        form_queries = []
        for query in queries:
            if query.item_oid:
                item_queries[(query.group_oid, query.row, query.item_oid)].append(_thread(query))
            else:
                form_queries.append(_thread(query))
        sections = []
        for group in form.groups:
            rows = sorted({k[1] for k in values if k[0] == group.oid}) if group.repeating \
                else [1]
            for row in rows:
                gone = removed.get((instance.id, group.oid, row))
                lines = [self._line(definition, form.oid, item, values.get((group.oid, row,
                                                                            item.oid)),
                                    state, item_queries.get((group.oid, row, item.oid), []),
                                    (group.oid, row, item.oid))
                         for item in group.items]
                sections.append({
                    "label": group.label_in(lang) or form.name_in(lang), "row": row if group.repeating else None,
                    "removed": gone and {"at": utc(gone.removed_at),
                                         "reason": gone.removal_reason},
                    "lines": lines,
                })
        return {
            "oid": form.oid, "name": form.name_in(lang), "status": instance.status,
            "anchor": f"form-{instance.id}", "version": instance.study_version.label,
            "updated_at": utc(instance.updated_at), "sections": sections,
            "queries": form_queries, "signatures": signatures,
            "sdv": {"verified": state.verified, "total": state.total,
                    "form_mark": state.form_mark and f"{state.form_mark.verified_by}, "
                                                     f"{utc(state.form_mark.verified_at)}"}
            if state else None,
        }

    def _line(self, definition: StudyDefinition, form_oid: str, item, stored, state,
              threads: list[dict], key: tuple) -> ItemLine:
        text = stored.value if stored is not None else None
        codes = definition.choices_of(form_oid, item.oid)
        shown = display(item, text, codes, self.language) if text is not None else ""
        if item.unit and item.is_numeric and shown.endswith(" " + item.unit):
            shown = shown[: -len(item.unit) - 1]
        grade = None
        if stored is not None and item.lab is not None and text is not None:
            grade = (_("Grade %(g)s (%(v)s)", g=stored.grade, v=stored.grade_version)
                     if stored.grade is not None else
                     _("not graded (%(why)s)", why=stored.grade_basis or "-"))
        sdv_text, detail = "", ""
        if state is not None:
            mark = state.marks.get(key)
            if mark is not None:
                sdv_text, detail = _("Verified"), f"{mark.verified_by}, {utc(mark.verified_at)}"
            elif key in state.needed:
                sdv_text = _("Not verified")
                reset = state.resets.get(key)
                if reset is not None:
                    detail = _("reset %(when)s: %(why)s", when=utc(reset.reset_at),
                               why=reset.reset_reason or "")
        return ItemLine(item.label_in(self.language), item.oid, text if codes else None, shown,
                        item.unit if item.is_numeric else None, grade, sdv_text, detail,
                        threads)

    def audit(self) -> list[dict]:
        prefix = f"{self.subject.study.oid}/{self.subject.subject_key}/"
        rows = []
        stmt = subject_audit_query(self.subject)
        for row in self.session.scalars(stmt.execution_options(yield_per=2000)):
            row: AuditEvent
            path = row.path or ""
            rows.append({"seq": row.seq, "at": utc(row.occurred_at),
                         "who": row.username or "", "role": row.role or "",
                         "action": row.action, "path": path.removeprefix(prefix),
                         "old": row.old_value, "new": row.new_value, "reason": row.reason})
        return rows

    def versions(self, forms: list[FormInstance]) -> list[StudyVersion]:
        found = {self.subject.study_version.id: self.subject.study_version}
        for form in forms:
            found.setdefault(form.study_version.id, form.study_version)
        return sorted(found.values(), key=lambda v: v.number)


_SVG_PROLOGUE = re.compile(r"^\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?", re.S)


def counts_plot(session: Session, subject: Subject) -> str | None:
    """The subject's blood-count plot as inline SVG markup, when the study has counts.

    matplotlib escapes every text it draws, so the markup may be inserted as is."""
    from ecrf import core, safety

    definition = definition_for(subject.study_version)
    if not safety.has_counts(definition):
        return None
    series = safety.subject_series(session, subject)
    if not series.counts:
        return None
    try:
        params = safety.recovery_parameters(definition)
    except safety.EndpointsError:
        return None
    panels = [
        core.ChartPanel("anc", _("ANC"), "10^9/L",
                    {c.day: c.anc for c in series.counts if c.anc is not None},
                    [core.Threshold(params.anc_recovery,
                                     _("recovery %(v)s", v=params.anc_recovery))], log=True),
        core.ChartPanel("plt", _("Platelets"), "10^9/L",
                    {c.day: c.plt for c in series.counts if c.plt is not None},
                    [core.Threshold(params.plt_recovery,
                                     _("recovery %(v)s", v=params.plt_recovery)),
                     core.Threshold(params.severe_thrombocytopenia,
                                     _("severe < %(v)s", v=params.severe_thrombocytopenia))]),
        core.ChartPanel("hgb", _("Haemoglobin"), "g/L",
                    {c.day: c.hgb for c in series.counts if c.hgb is not None},
                    [core.Threshold(params.severe_anemia,
                                     _("severe < %(v)s", v=params.severe_anemia))]),
    ]
    svg = core.subject_counts_svg(panels, horizon=params.horizon_day,
                                   infusion_day=series.infusion_day,
                                   transfusions=[(t.day, t.product) for t in series.transfusions],
                                   title=subject.subject_key)
    return _SVG_PROLOGUE.sub("", svg, count=1)


def subject_endpoints(session: Session, subject: Subject) -> list[dict]:
    """The subject's endpoint values (one row per endpoint, as the endpoint table and the
    API give them), when the study declares endpoints."""
    from ecrf import safety

    definition = definition_for(subject.study_version)
    rows: list[dict] = []
    if safety.has_counts(definition):
        try:
            result = safety.study_endpoints(session, subject.study, None,
                                            subject_id=subject.id)
        except (safety.EndpointsError, ValueError):
            result = None
        rows += [{"endpoint": row.endpoint.replace("_", " ").capitalize(),
                  "status": row.status.replace("_", " "), "value": row.value,
                  "day": row.day, "rule": row.rule, "reason": row.reason}
                 for row in (result.subject_rows() if result else ())
                 if row.subject_key == subject.subject_key]
    if safety.has_survival(definition):
        rows += _survival_rows(session, subject)
    return rows


def _survival_rows(session: Session, subject: Subject) -> list[dict]:
    from ecrf import safety

    try:
        result = safety.study_survival(session, subject.study, {subject.site_id})
    except (safety.SurvivalError, ValueError):
        return []
    found = [row for row in result.subject_rows() if row["subject"] == subject.subject_key]
    if not found:  # never randomised: not in the analysis
        return []
    row = found[0]
    value = (f"{row['months']} months ({row['days']} days) to {row['end']}"
             if row["days"] != "" else None)
    problems = f"; data problem: {row['problems']}" if row["problems"] else ""
    return [{"endpoint": result.spec.name, "status": row["status"], "value": value,
             "day": None, "rule": result.rule, "reason": f"{row['reason']}{problems}"}]


def casebook_html(session: Session, subject: Subject, *, generated_by: str,
                  generated_at: dt.datetime | None = None, language: str | None = None) -> str:
    """The casebook's HTML (what the PDF is laid out from), in ``language`` (an interface
    language or a study text language: "zh" prints Chinese; default English)."""
    from markupsafe import Markup

    generated_at = generated_at or dt.datetime.now(dt.UTC)
    locale = casebook_language(language)
    with force_locale(locale):
        model = CasebookModel(session, subject, locale)
        events, forms = model.events()
        plot = counts_plot(session, subject)
        return current_app.jinja_env.get_template("pdf/casebook.html").render(
            study=subject.study, site=subject.site, subject=subject,
            definition=model.definition, events=events, versions=model.versions(forms),
            casebook_signatures=model.casebook_signatures, other_queries=model.other_queries,
            audit=model.audit(), plot=Markup(plot) if plot else None,
            endpoints=subject_endpoints(session, subject),
            generated_at=utc(generated_at), generated_by=generated_by,
            language=locale.replace("_", "-"), utc=utc, subject_labels=SUBJECT_LABELS, form_status_labels=FORM_STATUS_LABELS,
            event_state_labels=EVENT_STATE_LABELS,
            query_labels=review.QUERY_STATUS_LABELS,
        )


def subject_odm(session: Session, subject: Subject, *, transactional: bool,
                created_at: dt.datetime) -> bytes:
    from ecrf.outputs.odm.clinical import odm_clinical_bytes
    from ecrf.outputs.rows import make_scope

    scope = make_scope(session, subject.study, subject=subject.subject_key)
    return odm_clinical_bytes(session, scope, transactional=transactional,
                              created_at=created_at)


_FONTS = threading.local()


def _fonts_and_stylesheet(root: Path, fetcher: Any) -> tuple[Any, Any]:
    """The font configuration and the parsed casebook stylesheet, made once per worker
    thread (a job worker process has one) and reused by every casebook it lays out:
    fontconfig's font list is read once, not once per subject. Per thread, because a font
    configuration may not be shared between threads."""
    from weasyprint import CSS
    from weasyprint.text.fonts import FontConfiguration

    cached = getattr(_FONTS, "value", None)
    if cached is None or cached[0] != root:
        fonts = FontConfiguration()
        sheet = CSS(filename=str(root / "casebook.css"), url_fetcher=fetcher, font_config=fonts)
        cached = _FONTS.value = (root, fonts, sheet)
    return cached[1], cached[2]


def render_pdf(html: str, target: str | Path | IO[bytes] | None,
               attachments: list[tuple[str, bytes, str]] = ()) -> bytes | None:
    """Lay out and write a PDF/A-3b with ``attachments`` (name, data, description)."""
    from weasyprint import HTML, Attachment

    root = static_root()
    fetcher = make_url_fetcher(root)
    fonts, sheet = _fonts_and_stylesheet(root, fetcher)
    document = HTML(string=html, base_url=root.as_uri() + "/", url_fetcher=fetcher).render(
        stylesheets=[sheet], font_config=fonts)
    files = [Attachment(file_obj=_bytes_io(data), name=name, description=description,
                        relationship="Source")
             for name, data, description in attachments]
    options = {"pdf_variant": "pdf/a-3b", "attachments": files}
    if target is None:
        return document.write_pdf(**options)
    document.write_pdf(str(target) if isinstance(target, Path) else target, **options)
    return None


def _bytes_io(data: bytes):
    import io

    return io.BytesIO(data)


def casebook_pdf(session: Session, subject: Subject, *, generated_by: str,
                 generated_at: dt.datetime | None = None, language: str | None = None,
                 target: str | Path | IO[bytes] | None = None) -> bytes | None:
    """The subject's casebook as PDF/A-3b with its ODM files attached; bytes unless
    ``target``. Raises CasebookError naming the subject on any failure."""
    generated_at = generated_at or dt.datetime.now(dt.UTC)
    try:
        html = casebook_html(session, subject, generated_by=generated_by,
                             generated_at=generated_at, language=language)
        stem = f"{subject.study.oid}_{subject.subject_key}"
        attachments = [
            (f"{stem}_odm_snapshot.xml",
             subject_odm(session, subject, transactional=False, created_at=generated_at),
             "CDISC ODM 1.3.2 snapshot of the subject's data with audit records"),
            (f"{stem}_odm_audit_trail.xml",
             subject_odm(session, subject, transactional=True, created_at=generated_at),
             "CDISC ODM 1.3.2 transactional file: every change with its audit record"),
        ]
        return render_pdf(html, target, attachments)
    except CasebookError:
        raise
    except Exception as exc:
        raise CasebookError(f"the casebook of subject {subject.subject_key} could not be "
                            f"produced: {type(exc).__name__}: {exc}") from exc


def casebook_file_name(subject: Subject) -> str:
    return casebook_file_name_for(subject.study.oid, subject.subject_key)


def casebook_file_name_for(study_oid: str, subject_key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", subject_key)
    return f"{study_oid}_{safe}_casebook.pdf"


def casebook_subjects(session: Session, scope: Any) -> list[tuple[int, str]]:
    """(id, key) of the scope's subjects in key order; ExportError when there is none."""
    from ecrf.outputs.odm.study import ExportError

    rows = session.execute(scope.apply(select(Subject.id, Subject.subject_key))
                           .order_by(Subject.subject_key)).all()
    if not rows:
        raise ExportError(f"there is no subject in {scope.study.oid} ({scope.label})")
    return [(subject_id, key) for subject_id, key in rows]


def casebook_weights(session: Session, subject_ids: list[int]) -> dict[int, int]:
    """How many values each subject has stored (what a casebook's length follows), in one
    statement: a split job hands out the longest casebooks first, so no worker starts a
    long one when the others are nearly done."""
    from sqlalchemy import func

    if not subject_ids:
        return {}
    return dict(session.execute(
        select(ItemValue.subject_id, func.count(ItemValue.id))
        .where(ItemValue.subject_id.in_(subject_ids)).group_by(ItemValue.subject_id)).all())


def _zip_casebooks(path: Path, books: Any) -> int:
    """Write the zip of ``books`` ((subject key, file name, PDF bytes), in order) with its
    manifest (file, SHA-256, size); the partial zip is removed on any failure."""
    import csv
    import hashlib
    import io
    import zipfile

    manifest = io.StringIO()
    writer = csv.writer(manifest, lineterminator="\r\n")
    writer.writerow(["subject", "file", "sha256", "bytes"])
    count = 0
    try:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for key, name, data in books:
                archive.writestr(name, data)
                writer.writerow([key, name, hashlib.sha256(data).hexdigest(), len(data)])
                count += 1
            archive.writestr("manifest.csv", manifest.getvalue())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return count


def write_casebooks_zip(session: Session, scope: Any, path: Path, *, generated_by: str,
                        language: str | None = None, progress: Progress | None = None) -> int:
    """Every casebook of the scope in one zip, with a manifest (file, SHA-256, size), made
    one after the other in this process (the CLI's way; a job splits a site's casebooks
    into one part per subject instead, see ``write_casebook_part``).

    All or nothing: the first casebook that fails stops the export with an ExportError
    naming the subject, and the partial zip is removed."""
    import io

    from ecrf.outputs.odm.study import ExportError

    rows = casebook_subjects(session, scope)
    generated_at = dt.datetime.now(dt.UTC)

    def books():
        for index, (subject_id, key) in enumerate(rows):
            if progress:
                progress(2 + 96 * index // len(rows),
                         f"casebook {index + 1} of {len(rows)}: {key}")
            subject = session.get(Subject, subject_id)
            buffer = io.BytesIO()
            try:
                casebook_pdf(session, subject, generated_by=generated_by,
                             generated_at=generated_at, language=language, target=buffer)
            except CasebookError as exc:
                raise ExportError(str(exc)) from exc
            yield key, casebook_file_name(subject), buffer.getvalue()

    return _zip_casebooks(path, books())


def write_casebook_part(session: Session, subject: Subject, target: Path, *,
                        generated_by: str, generated_at: dt.datetime,
                        language: str | None = None) -> None:
    """One subject's casebook of a site's casebooks job, written to ``target`` whole or
    not at all (through a temporary file renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        casebook_pdf(session, subject, generated_by=generated_by, generated_at=generated_at,
                     language=language, target=partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def zip_casebook_parts(parts: list[tuple[str, str, Path]], path: Path) -> int:
    """The zip of a split casebooks job from its parts' files ((subject key, file name in
    the zip, file written by the part), in subject order); ExportError for a missing one."""
    from ecrf.outputs.odm.study import ExportError

    def books():
        for key, name, file in parts:
            if not file.is_file():
                raise ExportError(f"the casebook of subject {key} is missing ({file.name})")
            yield key, name, file.read_bytes()

    return _zip_casebooks(path, books())
