"""A small DEXAML-like study written to a folder, and helpers that record clinical rows
directly (as data entry would), for the study, schedule and subject tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from ecrf.capture.models import EventInstance, FormInstance, ItemValue, Subject
from ecrf.core.audit import trail as audit
from ecrf.core.audit.trail import Actor

ACTOR = Actor(user_id=None, username="tester", role="data_manager")

STUDY_YAML = """\
format: 1
study:
  oid: SAMPLE
  name: Sample trial
  title: A DEXAML-like schedule for tests
  protocol_id: NCT00000001
  sponsor: Test sponsor
  protocol_version: "{protocol}"
languages: [en, fr]
parameters:
  study_end_date:
    type: date
    default: {study_end}
arms:
  - {{code: DEX, name: Dexamethasone}}
  - {{code: CTRL, name: Control}}
anchors:
  consent: CONSENT.CONSDT
  randomization: RAND.RANDDT
  c1d1: TREAT.CYCDT
  progression: RESP.PDDT
  eot: EOT.EOTDT
  death: DEATH.DTHDT
  withdrawal: EOS.WDDT
stop:
  anchors: [death, withdrawal]
  study_end: param.study_end_date
events:
  - oid: SCREEN
    name: Screening
    kind: scheduled
    anchor: enrolment
    window: {{before: 0d, after: 28d}}
    forms: [CONSENT, DEMOG]
  - oid: RANDO
    name: Randomisation
    kind: scheduled
    anchor: consent
    offset: 7d
    window: 7d
    forms: [RAND]
  - oid: DEXCYC
    name: Dexamethasone cycle
    kind: repeating
    anchor: c1d1
    window: {{before: 0d, after: 7d}}
    repeat:
      every: 28d
      count: 3
      until: 'not is_blank(anchor.progression)'
    condition: 'subject.arm = "DEX"'
    stop_at: [progression]
    forms: [TREAT]
    date_item: TREAT.CYCDT
  - oid: AZAEVAL
    name: Response after azacitidine
    kind: scheduled
    anchor: c1d1
    offset: 84d
    window: 7d
    condition: 'TREAT.SALVTYPE = "AZA"'
    forms: [RESP]
  - oid: FU
    name: Follow-up
    kind: repeating
    anchor: eot
    offset: 3m
    window: 14d
    repeat: {{every: 3m, count: 8}}
    forms: [FU]
    date_item: FU.FUDT
  - oid: UNSCHED
    name: Unscheduled visit
    kind: unscheduled
    forms: [RESP]
  - oid: AE_LOG
    name: Adverse events
    kind: log
    forms: [AE]
  - oid: EOT_LOG
    name: End of treatment
    kind: log
    forms: [EOT]
  - oid: DEATH_LOG
    name: Death
    kind: log
    forms: [DEATH]
  - oid: EOS_LOG
    name: End of study
    kind: log
    forms: [EOS]
"""

CODELISTS_YAML = """\
codelists:
  SALVTYPE:
    - {code: INTENSIVE, label: Intensive chemotherapy}
    - {code: AZA, label: Azacitidine}
"""


def _crf(oid: str, items: str, name: str | None = None) -> str:
    return f"""\
oid: {oid}
name: {name or oid.title()}
groups:
  - oid: {oid}_MAIN
    items:
{items}"""


def _date_item(oid: str, label: str) -> str:
    return f"""\
      - oid: {oid}
        label: {label}
        type: date
"""


def crfs(amended: bool = False) -> dict[str, str]:
    weight_range = "{min: 30, max: 200}" if amended else "{min: 20, max: 300}"
    demog = (
        ("" if amended else _date_item("BRTHDT", "Date of birth"))
        + f"""\
      - oid: SEX
        label: Sex
        type: single_choice
        choices:
          - {{code: F, label: Female}}
          - {{code: M, label: Male}}
      - oid: WEIGHT
        label: Weight
        type: decimal
        unit: kg
        precision: 1
        range: {weight_range}
"""
        + ("""\
      - oid: HEIGHT
        label: Height
        type: integer
        unit: cm
""" if amended else "")
    )
    treat = _date_item("CYCDT", "Cycle day 1") + """\
      - oid: SALVTYPE
        label: Salvage therapy
        type: single_choice
        codelist: SALVTYPE
"""
    ae = """\
oid: AE
name: Adverse event
groups:
  - oid: AE_LINE
    repeating: true
    items:
      - oid: AETERM
        label: Term
        type: text
        length: 200
      - oid: AESTDTC
        label: Onset date
        type: partial_date
"""
    return {
        "CONSENT": _crf("CONSENT", _date_item("CONSDT", "Date of consent")),
        "DEMOG": _crf("DEMOG", demog, "Demographics"),
        "RAND": _crf("RAND", _date_item("RANDDT", "Date of randomisation")),
        "TREAT": _crf("TREAT", treat, "Treatment"),
        "RESP": _crf("RESP", _date_item("RSDT", "Assessment date")
                     + _date_item("PDDT", "Progression date"), "Response"),
        "FU": _crf("FU", _date_item("FUDT", "Date of follow-up"), "Follow-up"),
        "AE": ae,
        "EOT": _crf("EOT", _date_item("EOTDT", "End of treatment date"), "End of treatment"),
        "DEATH": _crf("DEATH", _date_item("DTHDT", "Date of death"), "Death"),
        "EOS": _crf("EOS", _date_item("WDDT", "Withdrawal date"), "End of study"),
    }


def write_study(folder: Path, *, amended: bool = False, study_end: str | None = None) -> Path:
    """Write the sample study (or its amendment, protocol 1.1) to ``folder``."""
    (folder / "crfs").mkdir(parents=True, exist_ok=True)
    for old in (folder / "crfs").glob("*.yaml"):
        old.unlink()
    (folder / "study.yaml").write_text(STUDY_YAML.format(
        protocol="1.1" if amended else "1.0", study_end=study_end or "null"), encoding="utf-8")
    (folder / "codelists.yaml").write_text(CODELISTS_YAML, encoding="utf-8")
    for oid, text in crfs(amended).items():
        (folder / "crfs" / f"{oid}.yaml").write_text(text, encoding="utf-8")
    return folder


# --- recording clinical rows directly -----------------------------------------------------------


def event(session, subject: Subject, event_oid: str, *, repeat: int = 1, state: str = "done",
          actual_date: dt.date | None = None) -> EventInstance:
    audit.bind_actor(session, ACTOR)
    found = session.scalar(select(EventInstance).where(
        EventInstance.subject_id == subject.id, EventInstance.event_oid == event_oid,
        EventInstance.repeat == repeat))
    if found is None:
        found = EventInstance(subject_id=subject.id, event_oid=event_oid, repeat=repeat)
        session.add(found)
    found.state = state
    found.actual_date = actual_date
    session.flush()
    return found


def record(session, subject: Subject, event_oid: str, form_oid: str, values: dict[str, object],
           *, repeat: int = 1, state: str = "done", actual_date: dt.date | None = None,
           group: str | None = None, row: int = 1, status: str = "in_progress",
           version_id: int | None = None) -> FormInstance:
    """Record values of one form as data entry would (typed shadows included)."""
    instance = event(session, subject, event_oid, repeat=repeat, state=state,
                     actual_date=actual_date)
    form = session.scalar(select(FormInstance).where(
        FormInstance.event_instance_id == instance.id, FormInstance.form_oid == form_oid))
    if form is None:
        form = FormInstance(event_instance_id=instance.id, subject_id=subject.id,
                            form_oid=form_oid, status=status,
                            study_version_id=version_id or subject.study_version_id)
        session.add(form)
        session.flush()
    for item_oid, value in values.items():
        set_value(session, form, item_oid, value, group=group or f"{form_oid}_MAIN", row=row)
    session.flush()
    return form


def set_value(session, form: FormInstance, item_oid: str, value: object, *,
              group: str | None = None, row: int = 1) -> ItemValue:
    audit.bind_actor(session, ACTOR)
    group = group or f"{form.form_oid}_MAIN"
    found = session.scalar(select(ItemValue).where(
        ItemValue.form_instance_id == form.id, ItemValue.group_oid == group,
        ItemValue.row == row, ItemValue.item_oid == item_oid))
    if found is None:
        found = ItemValue(form_instance_id=form.id, subject_id=form.subject_id,
                          form_oid=form.form_oid, group_oid=group, row=row, item_oid=item_oid)
        session.add(found)
    found.value_number = found.value_date = found.value_datetime = None
    if value is None:
        found.value = None
    elif isinstance(value, dt.date):
        found.value, found.value_date = value.isoformat(), value
    elif isinstance(value, int | Decimal):
        found.value, found.value_number = str(value), Decimal(value)
    else:
        found.value = str(value)
    session.flush()
    return found
