"""Safety reactions to data capture, connected to its signals by ``register`` and run in
the saving transaction.

After a save: lab values with a ``lab:`` spec are graded by CTCAE v5.0 with the subject's
baseline and the grade, version and basis stored on the value; a grade at or above the
study's ``ae_prompt_grade`` raises an AE prompt; saved AE log rows get their consistency
findings recorded in the audit trail, their SAE report created or updated, and their DLT
candidacy re-evaluated; a change of the DLT anchor's form (the infusion) re-evaluates every
AE row of the subject. Every reaction is idempotent: running it twice for one save writes
nothing the second time.

While historical data is imported (``audit.historical_import``) grades and consistency
findings are still stored, but no AE prompt is raised, no SAE report created, submitted or
notified and no DLT candidate flagged: the events are past.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ecrf import core
from ecrf.capture import (
    FormInstance,
    ItemValue,
    OpenForm,
    Subject,
    item_path,
    record_clinical,
    subject_schedule_data,
)
from ecrf.core import FormChange, audit, utcnow
from ecrf.core.audit import Actor, AuditEvent
from ecrf.crf import FormDef, StudyDefinition, UnknownOidError
from ecrf.domain.adverse_events import check_consistency
from ecrf.safety.dlt import refresh_candidates
from ecrf.safety.grading import (
    BASELINE_TESTS,
    grade_values,
    load_lab_values,
    saved_lab_values,
    store_grades,
    update_prompts,
)
from ecrf.safety.models import AeGradePrompt
from ecrf.safety.operations import prompt_path, sync_reports
from ecrf.safety.support import AeLog, ae_log, ae_row_path, load_ae_rows, to_adverse_event
from ecrf.studies import definition_for

# Reactions that act on the present, held back while historical data is imported
# (``audit.historical_import``): the events are past and were handled where they happened.
AE_PROMPTS = "ae_prompts"
SAE_REPORTS = "sae_reports"
DLT_CANDIDATES = "dlt_candidates"


def register() -> None:
    """Connect safety's receivers; the app factory calls this at start-up."""
    core.connect(core.form_saved, grade_labs, review_adverse_events)


def react(change: FormChange) -> None:
    """Every safety reaction to one saved form, in the order the signal runs them."""
    grade_labs(change)
    review_adverse_events(change)


def _saved_form(change: FormChange) -> tuple[StudyDefinition, FormDef] | None:
    instance = change.form_instance
    if not isinstance(instance, FormInstance):
        return None
    audit.bind_actor(change.session, change.actor)
    definition = definition_for(instance.study_version)
    try:
        return definition, definition.form(change.form_oid)
    except UnknownOidError:
        return None


def grade_labs(change: FormChange) -> None:
    """CTCAE grades of the saved lab values, and the AE prompts they raise."""
    found = _saved_form(change)
    if found is None:
        return
    definition, form = found
    keys = [(c.group, c.row, c.item) for c in change.changes]
    grade_saved_labs(change.session, change.actor, change.subject, definition, form,
                     change.form_instance, keys, change.removed_rows, change.event_oid,
                     change.repeat,
                     saved=change.saved if isinstance(change.saved, OpenForm) else None)


def review_adverse_events(change: FormChange) -> None:
    """AE log rows: consistency findings, SAE reports and their clocks, DLT candidates;
    a change of the DLT anchor's form re-evaluates the subject's DLT candidates."""
    found = _saved_form(change)
    if found is None:
        return
    definition, form = found
    session, actor, subject, instance = (change.session, change.actor, change.subject,
                                         change.form_instance)
    keys = [(c.group, c.row, c.item) for c in change.changes]
    log = ae_log(definition)
    if log is not None and form.oid == log.form_oid:
        rows = {(g, r) for g, r, _ in keys if g == log.group}
        removed = tuple((instance.id, g, r) for g, r in change.removed_rows if g == log.group)
        review_ae_rows(session, actor, subject, definition, log, instance, rows, removed)
    elif _is_dlt_anchor_form(definition, form) and keys \
            and not audit.held_back(session, DLT_CANDIDATES):
        refresh_candidates(session, actor, subject)


def _is_dlt_anchor_form(definition: StudyDefinition, form: FormDef) -> bool:
    esc = definition.dose_escalation
    anchor = definition.anchors.get(esc.dlt_anchor) if esc else None
    return anchor is not None and anchor[0] == form.oid


# --- lab grading --------------------------------------------------------------------------


def grade_saved_labs(session: Session, actor: Actor, subject: Subject,
                     definition: StudyDefinition, form: FormDef, instance: FormInstance,
                     keys: list[tuple[str, int, str]], removed_rows, event_oid: str,
                     repeat: int, *, saved: OpenForm | None = None) -> None:
    """Grade the lab values a save of ``instance`` changed (``saved``: the form as the save
    wrote it, whose values are then not read again)."""
    if not any(i.lab is not None for i in form.items):
        return
    lab_keys = set()
    for group, row, item in keys:
        try:
            if form.item(item).lab is not None:
                lab_keys.add((group, row, item))
        except UnknownOidError:
            continue
    removed = set(removed_rows)
    if not lab_keys and not removed:
        return
    tests = {form.item(item).lab.test for _, _, item in lab_keys}
    values = load_lab_values(session, subject, definition, tests & BASELINE_TESTS)
    if tests - BASELINE_TESTS and saved is not None and saved.instance is instance:
        values += saved_lab_values(session, subject, definition, tests - BASELINE_TESTS,
                                   instance, saved.stored.values(), saved.removed)
    elif tests - BASELINE_TESTS:
        values += load_lab_values(session, subject, definition, tests - BASELINE_TESTS,
                                  form_instance_id=instance.id)
    saved = [lv for lv in values if lv.iv.form_instance_id == instance.id
             and (lv.iv.group_oid, lv.iv.row, lv.iv.item_oid) in lab_keys]
    scope = [lv for lv in values if lv in saved or lv.test in BASELINE_TESTS]
    grades = grade_values(values)

    def path_of(iv: ItemValue) -> str:
        fi = session.get(FormInstance, iv.form_instance_id)
        return item_path(subject, fi.event.event_oid, fi.event.repeat, iv.form_oid,
                         (iv.group_oid, iv.row, iv.item_oid))

    regraded = store_grades(session, actor, subject, scope, grades, path_of)
    considered = saved + [lv for lv in regraded if lv not in saved]
    # A lab value just saved with a value is not gone: only the others are looked up.
    kept = {(lv.iv.group_oid, lv.iv.row, lv.iv.item_oid) for lv in saved}
    gone = _gone_values(session, instance, lab_keys - kept, removed, {lv.iv.id for lv in values})
    _withdraw(session, actor, subject, gone)
    if considered and not audit.held_back(session, AE_PROMPTS):
        update_prompts(session, actor, subject, definition, considered, values, grades,
                       prompt_path)


def _gone_values(session: Session, instance: FormInstance, lab_keys, removed,
                 live: set[int]) -> dict[int, str]:
    """Values cleared or in removed rows: ids with the reason their prompt goes."""
    wanted = [k for k in lab_keys] + [(g, r, None) for g, r in removed]
    if not wanted:
        return {}
    gone = {}
    for iv in session.scalars(select(ItemValue).where(
            ItemValue.form_instance_id == instance.id,
            or_(*[and_(ItemValue.group_oid == g, ItemValue.row == r,
                       *([ItemValue.item_oid == i] if i else [])) for g, r, i in wanted]))):
        if (iv.group_oid, iv.row) in removed:
            gone[iv.id] = f"row {iv.row} of {iv.group_oid} was removed"
        elif iv.value is None and iv.id not in live:
            gone[iv.id] = f"{iv.item_oid} was cleared"
    return gone


def _withdraw(session: Session, actor: Actor, subject: Subject, gone: dict[int, str]) -> None:
    if not gone:
        return
    for prompt in session.scalars(select(AeGradePrompt).where(
            AeGradePrompt.item_value_id.in_(sorted(gone)), AeGradePrompt.status == "open")):
        prompt.status, prompt.decided_at = "withdrawn", utcnow()
        prompt.reason = gone[prompt.item_value_id]
        record_clinical(session, actor, subject, "ae_prompt.withdrawn", prompt_path(prompt),
                        version_label=subject.study_version.label, old="open",
                        new="withdrawn", reason=prompt.reason)


# --- AE log rows ------------------------------------------------------------------------------

FINDINGS = "ae.findings"
RESOLVED = "ae.findings_resolved"


def review_ae_rows(session: Session, actor: Actor, subject: Subject,
                   definition: StudyDefinition, log: AeLog, instance: FormInstance,
                   changed: set[tuple[str, int]], removed: tuple) -> None:
    if not changed and not removed:
        return
    rows = [r for r in load_ae_rows(session, [subject.id], log, form_instance_id=instance.id)
            .get(subject.id, []) if (r.group, r.row) in changed]
    if rows:
        _record_findings(session, actor, subject, definition, log, rows)
        if not audit.held_back(session, SAE_REPORTS):
            sync_reports(session, actor, subject, log, rows)
    if definition.dose_escalation is not None and not audit.held_back(session, DLT_CANDIDATES):
        refresh_candidates(session, actor, subject, rows, removed)


def _record_findings(session: Session, actor: Actor, subject: Subject,
                     definition: StudyDefinition, log: AeLog, rows) -> None:
    """An audit row whenever a row's domain findings change (appear, differ or clear)."""
    consent = None
    if "consent" in definition.anchors:
        consent = subject_schedule_data(session, definition, subject).anchors.get("consent")
    paths = {r.key: ae_row_path(subject, r, log) for r in rows}
    last: dict[str, str | None] = {}
    for path, action, value in session.execute(
            select(AuditEvent.path, AuditEvent.action, AuditEvent.new_value)
            .where(AuditEvent.study_oid == subject.study.oid,
                   AuditEvent.subject_key == subject.subject_key,
                   AuditEvent.action.in_((FINDINGS, RESOLVED)),
                   AuditEvent.path.in_(sorted(paths.values())))
            .order_by(AuditEvent.seq)):
        last[path] = value if action == FINDINGS else None
    for row in rows:
        findings = check_consistency(to_adverse_event(row, log), consent_date=consent)
        text = "; ".join(f"{f.severity}: {f.message}" for f in findings) or None
        path = paths[row.key]
        if text == last.get(path):
            continue
        record_clinical(session, actor, subject, FINDINGS if text else RESOLVED, path,
                        version_label=subject.study_version.label, old=last.get(path),
                        new=text, reason="AE consistency rules",
                        details={"codes": [f.code for f in findings]} if findings else None)
