"""CTCAE grading of stored lab values, with the subject's baseline, and the AE prompts a
grade at or above the study threshold raises.

Grading rules beyond ``ecrf.domain.ctcae``:

* The baseline of a test is the subject's first recorded value of it (by the sampling
  date, usually screening). It feeds the terms whose grade depends on it (ALT, AST,
  bilirubin: "baseline abnormal"; creatinine: the worse of ULN- and baseline-based) for
  values measured on a later day; the baseline value itself, and a value whose day is
  unknown, are graded against the ULN alone. When a baseline-dependent value changes, all
  the subject's values of that test are regraded, since the baseline may have moved.
* ``lab.lln``/``lab.uln`` are evaluated on the value's own row (same-row items,
  parameters, subject fields). Site-specific normal ranges are not modelled yet: a study
  that needs them records the limits beside the value (as DEXAML-03 does for chemistry).
* The sampling day is, in order: the row's ``LB.LBDTC`` item, the nearest date item before
  the value in its group, a ``LB.LBDTC`` item elsewhere in the form, the event's date.

AE prompts: AEs are collected from the day after enrolment; a value sampled on or before
the enrolment day (screening) is a baseline condition, recorded as medical history, and
raises no prompt. At most one open prompt per subject and term; further qualifying values while
it is open raise it to the worst grade and widen its dates. Once decided, a value is
covered (no new prompt) by an accepted prompt while its AE row is ongoing or resolves on or
after the value's day with a grade at least as high, and by a declined prompt for values
of no higher grade within 7 days after its last date. A value corrected below the
threshold withdraws the open prompt that points at it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ecrf.capture import EventInstance, FormInstance, GroupRow, ItemValue, Subject, record_clinical
from ecrf.core import utcnow
from ecrf.core.audit import Actor
from ecrf.crf import FormDef, ItemDef, ItemType, StudyDefinition, UnknownOidError
from ecrf.crf.validation import UNDECIDED, evaluate_partial
from ecrf.crf.values import from_canonical
from ecrf.domain.ctcae import GradingError, LabGrade, UnitError, convert_unit, grade_lab
from ecrf.domain.expressions import ExpressionError
from ecrf.safety.models import AeGradePrompt
from ecrf.safety.support import Definitions, ae_log, int_param, load_ae_rows

BASELINE_TESTS = frozenset({"ALT", "AST", "BILI", "CREAT"})
DECLINED_COVERS = dt.timedelta(days=7)


@dataclass
class LabValue:
    iv: ItemValue
    definition: StudyDefinition
    item: ItemDef
    test: str
    unit: str
    day: dt.date | None
    lln: object = None
    uln: object = None


def lab_forms(definition: StudyDefinition, tests: set[str] | None = None) -> set[str]:
    return {i.form for i in definition.iter_items()
            if i.lab is not None and (tests is None or i.lab.test in tests)}


def load_lab_values(session: Session, subject: Subject, definition: StudyDefinition,
                    tests: set[str], *, form_instance_id: int | None = None) -> list[LabValue]:
    """The subject's recorded values of ``tests`` (one statement), with day and limits."""
    forms = lab_forms(definition, tests)
    if not forms:
        return []
    stmt = (select(ItemValue, FormInstance.study_version_id, EventInstance.actual_date)
            .join(FormInstance, FormInstance.id == ItemValue.form_instance_id)
            .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
            .outerjoin(GroupRow, and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                                      GroupRow.group_oid == ItemValue.group_oid,
                                      GroupRow.row == ItemValue.row))
            .where(ItemValue.subject_id == subject.id, ItemValue.form_oid.in_(sorted(forms)),
                   GroupRow.removed_at.is_(None)))
    if form_instance_id is not None:
        stmt = stmt.where(ItemValue.form_instance_id == form_instance_id)
    return _lab_values(session, subject, definition, tests, session.execute(stmt))


def saved_lab_values(session: Session, subject: Subject, definition: StudyDefinition,
                     tests: set[str], instance: FormInstance, stored: Iterable[ItemValue],
                     removed: Iterable[tuple[str, int]]) -> list[LabValue]:
    """``load_lab_values`` of one form just saved, from the values it wrote (``stored``,
    the rows in ``removed`` left out) instead of reading them again."""
    if instance.form_oid not in lab_forms(definition, tests):
        return []
    gone = set(removed)
    meta = (instance.study_version_id, instance.event.actual_date)
    return _lab_values(session, subject, definition, tests,
                       [(iv, *meta) for iv in stored if (iv.group_oid, iv.row) not in gone])


def _lab_values(session: Session, subject: Subject, definition: StudyDefinition,
                tests: set[str], found_rows: Iterable[tuple[ItemValue, int, dt.date | None]]
                ) -> list[LabValue]:
    defs = Definitions(session)
    rows: dict[tuple[int, str, int], dict[str, ItemValue]] = defaultdict(dict)
    meta: dict[int, tuple[int, dt.date | None]] = {}
    for iv, version_id, event_day in found_rows:
        rows[(iv.form_instance_id, iv.group_oid, iv.row)][iv.item_oid] = iv
        meta[iv.form_instance_id] = (version_id, event_day)
    found = []
    params = definition.parameter_values()
    for (fi, _group, row), values in rows.items():
        version_id, event_day = meta[fi]
        defn = defs.get(version_id)
        for iv in values.values():
            if iv.value is None:
                continue
            try:
                item = defn.item(iv.form_oid, iv.item_oid)
            except UnknownOidError:
                continue
            if item.lab is None or item.lab.test not in tests:
                continue
            form = defn.form(iv.form_oid)
            lv = LabValue(iv, defn, item, item.lab.test, item.lab.unit or item.unit or "",
                          _sample_day(form, item, rows, fi, row) or event_day)
            resolve = _resolver(form, rows, fi, row, params, subject)
            for name in ("lln", "uln"):
                source = getattr(item.lab, name)
                if source:
                    setattr(lv, name, _limit(source, resolve))
            found.append(lv)
    return found


def _sample_day(form: FormDef, item: ItemDef, rows, fi: int, row: int) -> dt.date | None:
    group = form.group(item.group)
    own = rows.get((fi, group.oid, row if group.repeating else 1), {})

    def day_of(values: dict[str, ItemValue], oid: str) -> dt.date | None:
        iv = values.get(oid)
        return iv.value_date if iv is not None else None

    dated = [i for i in group.items if i.type in (ItemType.DATE, ItemType.DATETIME)]
    for candidate in [i for i in dated if i.sdtm == "LB.LBDTC"]:
        if day_of(own, candidate.oid):
            return day_of(own, candidate.oid)
    position = [i.oid for i in group.items].index(item.oid)
    for candidate in reversed(group.items[:position]):
        if candidate in dated and day_of(own, candidate.oid):
            return day_of(own, candidate.oid)
    for other in form.groups:
        if other.repeating or other.oid == group.oid:
            continue
        for candidate in other.items:
            if candidate.sdtm == "LB.LBDTC":
                day = day_of(rows.get((fi, other.oid, 1), {}), candidate.oid)
                if day:
                    return day
    return None


def _resolver(form: FormDef, rows, fi: int, row: int, params, subject: Subject):
    where = {i.oid: g for g in form.groups for i in g.items}

    def resolve(parts: tuple[str, ...]) -> object:
        if len(parts) == 2:
            space, name = parts
            if space == "param":
                return params.get(name)
            if space == "subject":
                return {"arm": subject.arm, "site": subject.site.code,
                        "dose_level": str(subject.dose_level)
                        if subject.dose_level is not None else None}.get(name)
            if space != form.oid:
                return None  # other forms and anchors: not read for limits here
            parts = (name,)
        group = where.get(parts[0])
        if group is None:
            return None
        iv = rows.get((fi, group.oid, row if group.repeating else 1), {}).get(parts[0])
        return from_canonical(form.item(parts[0]), iv.value) if iv is not None else None

    return resolve


def _limit(source: str, resolve) -> object:
    try:
        value = evaluate_partial(source, resolve, dt.date.today())
    except ExpressionError:
        return None
    return None if value is UNDECIDED else value


def grade_values(values: list[LabValue]) -> dict[int, LabGrade]:
    """Grades by ItemValue id, with each test's baseline applied where it counts."""
    by_test: dict[str, list[LabValue]] = defaultdict(list)
    for lv in values:
        by_test[lv.test].append(lv)
    grades: dict[int, LabGrade] = {}
    for test, members in by_test.items():
        baseline = None
        if test in BASELINE_TESTS:
            dated = sorted((m for m in members if m.day is not None),
                           key=lambda m: (m.day, m.iv.id))
            baseline = dated[0] if dated else None
        for lv in members:
            value = from_canonical(lv.item, lv.iv.value)
            bl = None
            if baseline is not None and lv is not baseline and lv.day is not None \
                    and lv.day > baseline.day:
                bl = _in_unit(test, baseline, lv.unit)
            try:
                grades[lv.iv.id] = grade_lab(test, value, lv.unit, lln=lv.lln, uln=lv.uln,
                                             baseline=bl)
            except GradingError:
                continue
    return grades


def _in_unit(test: str, baseline: LabValue, unit: str) -> Decimal | None:
    value = from_canonical(baseline.item, baseline.iv.value)
    try:
        si, _ = convert_unit(test, Decimal(str(value)), baseline.unit)
        per_unit, _ = convert_unit(test, Decimal(1), unit)
    except (UnitError, GradingError, ArithmeticError, ValueError):
        return None
    return si / per_unit


def store_grades(session: Session, actor: Actor, subject: Subject, values: list[LabValue],
                 grades: dict[int, LabGrade], path_of) -> list[LabValue]:
    """Write grades that differ from the stored ones (audited); returns the changed."""
    changed = []
    for lv in values:
        grade = grades.get(lv.iv.id)
        if grade is None:
            continue
        iv = lv.iv
        if (iv.grade, iv.grade_version, iv.grade_basis) == (grade.grade, grade.version,
                                                             grade.basis):
            continue
        old = None if iv.grade_version is None else f"grade {iv.grade}: {iv.grade_basis}"
        iv.grade, iv.grade_version, iv.grade_basis = grade.grade, grade.version, grade.basis
        record_clinical(session, actor, subject, "lab.graded", path_of(iv),
                        version_label=subject.study_version.label, old=old,
                        new=f"grade {grade.grade}: {grade.basis}",
                        reason=f"{grade.version} grading of {lv.test}",
                        details={"test": lv.test, "grade": grade.grade,
                                 "version": grade.version})
        changed.append(lv)
    return changed


# --- AE prompts -----------------------------------------------------------------------------


def update_prompts(session: Session, actor: Actor, subject: Subject,
                   definition: StudyDefinition, considered: list[LabValue],
                   all_values: list[LabValue], grades: dict[int, LabGrade],
                   prompt_path) -> list[AeGradePrompt]:
    """Create, raise or withdraw prompts for the values just entered or regraded."""
    threshold = int_param(definition, "ae_prompt_grade", 3)
    term_of = {g.test: g.term for g in grades.values() if g.term}
    ids = {lv.iv.id for lv in considered}
    prompts = list(session.scalars(select(AeGradePrompt).where(
        AeGradePrompt.subject_id == subject.id).order_by(AeGradePrompt.id)))
    label = subject.study_version.label
    withdrawn_terms: set[str] = set()
    for prompt in prompts:
        if prompt.status != "open" or prompt.item_value_id not in ids:
            continue
        lv = next(v for v in considered if v.iv.id == prompt.item_value_id)
        if lv.iv.grade is not None and lv.iv.grade >= threshold:
            continue
        shown = lv.iv.grade if lv.iv.grade is not None else "none"
        prompt.status, prompt.decided_at = "withdrawn", utcnow()
        prompt.reason = f"the value was changed to {lv.iv.value}: grade {shown}"
        record_clinical(session, actor, subject, "ae_prompt.withdrawn", prompt_path(prompt),
                        version_label=label, old="open", new="withdrawn", reason=prompt.reason)
        withdrawn_terms.add(prompt.term)
    qualifying = sorted(
        (lv for lv in all_values
         if lv.iv.grade is not None and lv.iv.grade >= threshold and lv.test in term_of
         and not _at_baseline(lv, subject)
         and (lv.iv.id in ids or term_of[lv.test] in withdrawn_terms)),
        key=lambda lv: (lv.day or dt.date.max, lv.iv.id))
    created: list[AeGradePrompt] = []
    widened: list[AeGradePrompt] = []
    ae_rows = None
    for lv in qualifying:
        term = term_of[lv.test]
        same = [p for p in prompts if p.term == term]
        open_ = [p for p in same if p.status == "open"]
        if open_:
            if _widen(open_[0], lv) and open_[0] not in created and open_[0] not in widened:
                widened.append(open_[0])
            continue
        decided = [p for p in same if p.status in ("accepted", "declined")]
        if decided:
            if ae_rows is None:
                log = ae_log(definition)
                ae_rows = {r.key: r for r in (load_ae_rows(session, [subject.id], log)
                                              .get(subject.id, []) if log else [])}
            if any(_covered(p, lv, ae_rows) for p in decided):
                continue
        prompt = AeGradePrompt(
            subject_id=subject.id, item_value_id=lv.iv.id, test=lv.test, term=term,
            grade=lv.iv.grade, grade_version=lv.iv.grade_version or "", value=lv.iv.value,
            unit=lv.unit, first_date=lv.day, last_date=lv.day, status="open")
        session.add(prompt)
        prompts.append(prompt)
        created.append(prompt)
    if created:
        session.flush()
    for prompt in created:
        record_clinical(session, actor, subject, "ae_prompt.created", prompt_path(prompt),
                        version_label=label, new=_summary(prompt),
                        reason=f"{prompt.test} {prompt.value} {prompt.unit or ''} graded "
                               f"{prompt.grade} ({prompt.grade_version}), at or above grade "
                               f"{threshold}",
                        details={"item_value": prompt.item_value_id})
    for prompt in widened:
        record_clinical(session, actor, subject, "ae_prompt.updated", prompt_path(prompt),
                        version_label=label, new=_summary(prompt),
                        reason="further values at or above the prompt threshold")
    return created + widened


def _at_baseline(lv: LabValue, subject: Subject) -> bool:
    """Sampled before AE collection starts: on or before the enrolment day."""
    return lv.day is not None and lv.day <= subject.enrolled_on


def _summary(prompt: AeGradePrompt) -> str:
    days = ""
    if prompt.first_date:
        days = f", {prompt.first_date.isoformat()}"
        if prompt.last_date and prompt.last_date != prompt.first_date:
            days += f" to {prompt.last_date.isoformat()}"
    return f"{prompt.term}, grade {prompt.grade}{days}"


def _widen(prompt: AeGradePrompt, lv: LabValue) -> bool:
    changed = False
    if lv.iv.grade > prompt.grade:
        prompt.grade, prompt.item_value_id = lv.iv.grade, lv.iv.id
        prompt.value, prompt.unit = lv.iv.value, lv.unit
        prompt.grade_version = lv.iv.grade_version or prompt.grade_version
        changed = True
    if lv.day is not None:
        if prompt.first_date is None or lv.day < prompt.first_date:
            prompt.first_date, changed = lv.day, True
        if prompt.last_date is None or lv.day > prompt.last_date:
            prompt.last_date, changed = lv.day, True
    return changed


def _covered(prompt: AeGradePrompt, lv: LabValue, ae_rows) -> bool:
    if lv.iv.grade > prompt.grade and prompt.status == "declined":
        return False
    if prompt.status == "declined":
        return (lv.day is not None and prompt.first_date is not None
                and prompt.last_date is not None
                and prompt.first_date <= lv.day <= prompt.last_date + DECLINED_COVERS)
    row = ae_rows.get((prompt.ae_form_instance_id, prompt.ae_group_oid, prompt.ae_row))
    if row is None:
        return False
    grade = row.grade or prompt.grade
    if lv.iv.grade > grade:
        return False
    end = row.end_text
    if not end or lv.day is None:
        return True
    try:
        return dt.date.fromisoformat(end) >= lv.day
    except ValueError:
        return end[:7] >= lv.day.isoformat()[:7]
