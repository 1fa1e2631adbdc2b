"""After `ecrf demo`, every demo subject is consistent with its own study's checks: a
form marked complete passes them, the UCMSC-Exo infusion is complete wherever later visits
are, baseline (screening) lab values raise no AE prompt, and each trial shows a screen
failure, an end of treatment, a withdrawal and a death through its data; no visit planned
after a death is missed, due or overdue."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from ecrf.capture import operations as capture
from ecrf.capture.models import (
    EventInstance,
    FormInstance,
    ItemValue,
    ScheduledVisit,
    Subject,
)
from ecrf.core.extensions import db
from ecrf.crf.validation import completion_problems
from ecrf.safety import study_survival
from ecrf.safety.models import AeGradePrompt
from ecrf.studies.models import Study

# After the infusion: visits whose data presuppose it.
AFTER_INFUSION = {"DLT_EVAL", "D28", "FU_M3", "FU_M6", "FU_M12"}


def _value(form: FormInstance, item: str) -> str | None:
    return db.session.scalar(select(ItemValue.value).where(
        ItemValue.form_instance_id == form.id, ItemValue.item_oid == item))


def check_demo_coherence() -> None:
    """Assertions on the database ``ecrf demo`` has just filled (run by tests/demo/test_demo.py,
    so the demo, which takes minutes, runs once)."""
    rows = db.session.execute(
        select(FormInstance, EventInstance, Subject, Study.oid)
        .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
        .join(Subject, Subject.id == FormInstance.subject_id)
        .join(Study, Study.id == Subject.study_id)).all()
    assert rows

    # A form marked complete has no failing error check, no blank required item.
    broken = []
    for form, event, subject, _oid in rows:
        if form.status != "complete":
            continue
        opened = capture.load_form(db.session, subject, event.event_oid, event.repeat,
                                   form.form_oid)
        problems = [str(i.message) for i in opened.validation.failing_errors]
        problems += [f"blank {k}" for k in opened.validation.missing]
        problems += [str(p) for p in completion_problems(opened.form, opened.validation)]
        if problems:
            broken.append((subject.subject_key, event.event_oid, event.repeat,
                           form.form_oid, problems))
    assert broken == []

    # No infusion left in progress while later visits are done.
    done_after: dict[int, set[str]] = defaultdict(set)
    infusions = {}
    for form, event, subject, oid in rows:
        if oid != "UCMSCEXO":
            continue
        if form.form_oid == "INF":
            infusions[subject.subject_key] = (subject.id, form.status)
        elif event.event_oid in AFTER_INFUSION and form.status == "complete":
            done_after[subject.id].add(event.event_oid)
    assert infusions
    stuck = [key for key, (sid, status) in infusions.items()
             if status != "complete" and done_after[sid]]
    assert stuck == []

    # Baseline abnormalities are medical history: no AE prompt from a screening value.
    prompts = db.session.execute(
        select(AeGradePrompt, Subject, EventInstance.event_oid)
        .join(Subject, Subject.id == AeGradePrompt.subject_id)
        .join(ItemValue, ItemValue.id == AeGradePrompt.item_value_id)
        .join(FormInstance, FormInstance.id == ItemValue.form_instance_id)
        .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)).all()
    assert prompts  # the treatment cytopenias still prompt
    at_screening = [(s.subject_key, p.test) for p, s, event in prompts
                    if event == "SCREEN" or (p.first_date and p.first_date <= s.enrolled_on)]
    assert at_screening == []

    # Each trial tells every kind of subject course through its data.
    def keys(oid: str, form_oid: str, item: str | None = None, value: str | None = None):
        return sorted(s.subject_key for f, _e, s, o in rows
                      if o == oid and f.form_oid == form_oid and f.status == "complete"
                      and (item is None or _value(f, item) == value))

    for oid, end_of_treatment in (("DEXAML03", "EOT"), ("UCMSCEXO", "INF")):
        assert keys(oid, "ELIG", "ELIGIBLE", "N"), f"{oid}: no screen failure"
        assert keys(oid, "DEATH"), f"{oid}: no death"
        assert keys(oid, "EOS", "EOSREAS", "WITHDRAWAL"), f"{oid}: no withdrawal"
        assert keys(oid, end_of_treatment), f"{oid}: no end of treatment"
    assert keys("DEXAML03", "ELIG", "ELIGIBLE", "N") == ["TLS-005"]
    assert keys("UCMSCEXO", "ELIG", "ELIGIBLE", "N") == ["WUH-007"]
    assert keys("DEXAML03", "DEATH") == ["TLS-001", "TLS-004"] and keys("UCMSCEXO", "DEATH") == ["WUH-001"]
    assert keys("DEXAML03", "EOS", "EOSREAS", "WITHDRAWAL") == ["PAR-001"]
    assert keys("UCMSCEXO", "EOS", "EOSREAS", "WITHDRAWAL") == ["WUH-003"]
    # A screen failure gets no dose level and nothing after its eligibility form.
    failed = db.session.scalar(select(Subject).where(Subject.subject_key == "WUH-007"))
    assert failed.dose_level is None
    assert not [f for f, _e, s, _o in rows if s.id == failed.id and f.form_oid == "DOSELVL"]

    # Every status a subject can have (study.yaml status:) is shown by some demo subject.
    statuses = {(oid, s.subject_key): s.status for _f, _e, s, oid in rows}
    assert {k: v for k, v in statuses.items() if v not in ("on_study", "in_follow_up")} == {
        ("DEXAML03", "TLS-005"): "screen_failed", ("UCMSCEXO", "WUH-007"): "screen_failed",
        ("DEXAML03", "TLS-001"): "died", ("UCMSCEXO", "WUH-001"): "died",
        ("DEXAML03", "TLS-004"): "died",
        ("DEXAML03", "PAR-001"): "withdrawn", ("UCMSCEXO", "WUH-003"): "withdrawn",
        ("DEXAML03", "TLS-002"): "withdrawn_from_treatment",
        ("DEXAML03", "PAR-002"): "lost_to_follow_up",
        ("UCMSCEXO", "WUH-002"): "completed",
    }
    assert {v for v in statuses.values()} >= {"on_study", "in_follow_up"}

    # A dead subject's visits planned after the death are not expected, never missed.
    for oid, key in (("DEXAML03", "TLS-001"), ("UCMSCEXO", "WUH-001")):
        death_form = next(f for f, _e, s, o in rows
                          if o == oid and s.subject_key == key and f.form_oid == "DEATH")
        died = _value(death_form, "DTHDT")
        assert died, f"{key}: no death date"
        visits = db.session.scalars(select(ScheduledVisit).where(
            ScheduledVisit.subject_id == death_form.subject_id)).all()
        after = [v for v in visits if v.planned and v.planned.isoformat() > died]
        assert after, f"{key}: no visit planned after the death"
        wrong = [(v.event_oid, v.repeat, v.status) for v in after
                 if v.status in ("missed", "due", "overdue", "upcoming")]
        assert not wrong, f"{key}: visits planned after death on {died}: {wrong}"
        assert {v.status for v in after} <= {"not_expected", "done", "done_out_of_window",
                                              "not_applicable"}

    # Overall survival (DEXAML-03's primary endpoint) has deaths in the control arm and
    # subjects in follow-up censored at their last follow-up contact.
    dex = db.session.scalar(select(Study).where(Study.oid == "DEXAML03"))
    found = study_survival(db.session, dex, None)
    pooled = found.groups[-1]
    assert (pooled.code, pooled.km.n, pooled.km.events) == (None, 7, 2)
    assert [g.code for g in found.groups[:-1]] == ["DEX", "CTRL"]
    assert sum(g.km.events for g in found.groups[:-1]) == 2
    times = {s.subject_key: s.time for s in found.subjects}
    assert times["TLS-001"].event and times["TLS-004"].event
    assert (times["PAR-002"].reason, times["PAR-001"].reason) == ("lost_to_follow_up",
                                                                  "withdrawal")
    contacts = [_value(f, "LKADT") for f, _e, s, oid in rows
                if oid == "DEXAML03" and f.form_oid == "FU" and s.subject_key == "TLS-003"]
    assert len(contacts) >= 2 and times["TLS-003"].reason == "alive"
    assert times["TLS-003"].end.isoformat() == max(contacts)
    assert found.problems == []
