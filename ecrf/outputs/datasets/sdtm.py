"""SDTM datasets made from the study definition's SDTM annotations, as CSV and SAS XPORT v5.

Nothing here knows a study or a form by name; what goes where is read from the forms'
annotations (``sdtm_domain:`` per form, ``sdtm: DOMAIN.VARIABLE`` per item), the schedule,
the arms or dose levels, the anchors and the subjects' allocation and status.

- **Events and interventions** (AE, CM, MH, EX): one record per row of a group, in a form
  whose ``sdtm_domain`` is the domain, that holds a value for the domain's topic variable
  (--TERM, --TRT; for EX a start or end date or a dose, EXTRT and the form's header as
  ``_exposure`` says; VISITNUM always comes from the schedule). Items
  of the same domain on other forms (a DLT form repeating an AE term, an "any AE?" question)
  are cross-references and make no record. Yes/no items annotated --OCCUR in a
  non-repeating group of such a form are pre-specified questions: one record each, the
  item's label as the term, --PRESP ``Y``.
- **Findings** (LB, VS, RS): one record per stored value of an item annotated
  ``D.DORRES`` (and, for LB, every item with a ``lab:`` spec), on any form. --TESTCD is the
  lab test or the item OID, --TEST the item label, --DTC the item annotated ``D.DDTC`` of the
  same row (else of the form, else the visit date).
- A multiple-choice value with one code gives that code; with several it gives
  ``MULTIPLE`` and one supplemental qualifier per code. When several items annotate the same
  variable of one record, the first with a value gives it and the others become
  supplemental qualifiers named after the item (a time joins the date before it).
- **AE**: the per-drug causality items (``adverse_events.causality``, else the items
  annotated ``AE.AEREL``) go to SUPPAE as ``AEREL1``, ``AEREL2``... labelled with the item
  label; AEREL, AESER and the study days follow :mod:`ecrf.outputs.datasets.sdtm_rules`.
- **DM**: one record per subject; RFSTDTC/RFENDTC are the first and last exposure dates
  in EX, RFICDTC the ``consent`` anchor, DTHDTC the ``death`` anchor or an item annotated
  ``DM.DTHDTC``; ARMCD/ARM are the randomised arm or the dose level (``DL<n>``), SCRNFAIL
  for a screen failure, NOTASSGN otherwise; ACTARMCD is NOTTRT for an allocated subject
  without exposure.
- **DS**: informed consent (from the ``consent`` anchor) and the disposition event of the
  subject status (screen failure, completion, withdrawal, lost to follow-up, death).
- **TA, TE, TV, TI, TS**: the arms, the scheduled visits, the items annotated
  ``IE.IEORRES``, and the study's identification.

USUBJID is ``STUDYID-SUBJID``; --SEQ numbers each subject's records in the order the
stored data is read (visit, form, row, item).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf.capture import Subject
from ecrf.core import csv_cell
from ecrf.crf import FormDef, GroupDef, ItemDef, ItemType, StudyDefinition
from ecrf.crf.values import from_canonical
from ecrf.domain.ctcae import GradingError, convert_unit
from ecrf.domain.dates import PartialDate
from ecrf.domain.expressions import ExpressionError, compile_cached, evaluate
from ecrf.outputs.datasets.formats import Column
from ecrf.outputs.datasets.sdtm_rules import (
    derive_aerel,
    derive_aeser,
    range_indicator,
    study_day,
)
from ecrf.outputs.datasets.stats import write_dataset_xpt
from ecrf.outputs.rows import FormRecord, Scope, definitions_newest_first, form_records, item_rows
from ecrf.studies import Site

Progress = Callable[[int, str], None]
IG_VERSION = "3.4"

_ID = [("STUDYID", "Study Identifier"), ("DOMAIN", "Domain Abbreviation"),
       ("USUBJID", "Unique Subject Identifier")]
_VISIT = [("VISITNUM", "Visit Number"), ("VISIT", "Visit Name")]
SPECS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "DM": ("Demographics", _ID + [
        ("SUBJID", "Subject Identifier for the Study"),
        ("RFSTDTC", "Subject Reference Start Date/Time"),
        ("RFENDTC", "Subject Reference End Date/Time"),
        ("RFXSTDTC", "Date/Time of First Study Treatment"),
        ("RFXENDTC", "Date/Time of Last Study Treatment"),
        ("RFICDTC", "Date/Time of Informed Consent"),
        ("DTHDTC", "Date/Time of Death"), ("DTHFL", "Subject Death Flag"),
        ("SITEID", "Study Site Identifier"), ("BRTHDTC", "Date/Time of Birth"),
        ("AGE", "Age"), ("AGEU", "Age Units"), ("SEX", "Sex"), ("RACE", "Race"),
        ("ETHNIC", "Ethnicity"), ("ARMCD", "Planned Arm Code"), ("ARM", "Description of Planned Arm"),
        ("ACTARMCD", "Actual Arm Code"), ("ACTARM", "Description of Actual Arm"),
        ("COUNTRY", "Country")]),
    "DS": ("Disposition", _ID + [
        ("DSSEQ", "Sequence Number"), ("DSTERM", "Reported Term for the Disposition Event"),
        ("DSDECOD", "Standardized Disposition Term"), ("DSCAT", "Category for Disposition Event"),
        ("DSSTDTC", "Start Date/Time of Disposition Event"),
        ("DSSTDY", "Study Day of Start of Disposition Event")]),
    "AE": ("Adverse Events", _ID + [
        ("AESEQ", "Sequence Number"), ("AETERM", "Reported Term for the Adverse Event"),
        ("AEDECOD", "Dictionary-Derived Term"), ("AESER", "Serious Event"),
        ("AEACN", "Action Taken with Study Treatment"), ("AEREL", "Causality"),
        ("AEOUT", "Outcome of Adverse Event"),
        ("AESCONG", "Congenital Anomaly or Birth Defect"),
        ("AESDISAB", "Persist or Signif Disability/Incapacity"),
        ("AESDTH", "Results in Death"), ("AESHOSP", "Requires or Prolongs Hospitalization"),
        ("AESLIFE", "Is Life Threatening"),
        ("AESMIE", "Other Medically Important Serious Event"),
        ("AECONTRT", "Concomitant or Additional Trtmnt Given"),
        ("AETOXGR", "Standard Toxicity Grade"),
        ("AESTDTC", "Start Date/Time of Adverse Event"),
        ("AEENDTC", "End Date/Time of Adverse Event"),
        ("AESTDY", "Study Day of Start of Adverse Event"),
        ("AEENDY", "Study Day of End of Adverse Event")]),
    "CM": ("Concomitant/Concurrent Medications", _ID + [
        ("CMSEQ", "Sequence Number"), ("CMTRT", "Reported Name of Drug, Med, or Therapy"),
        ("CMCAT", "Category for Medication"), ("CMPRESP", "CM Pre-specified"),
        ("CMOCCUR", "CM Occurrence"), ("CMINDC", "Indication"), ("CMCLAS", "Medication Class"),
        ("CMDOSE", "Dose per Administration"), ("CMDOSU", "Dose Units"),
        ("CMDOSFRQ", "Dosing Frequency per Interval"), ("CMROUTE", "Route of Administration"),
        ("CMSTDTC", "Start Date/Time of Medication"), ("CMENDTC", "End Date/Time of Medication"),
        ("CMSTDY", "Study Day of Start of Medication"),
        ("CMENDY", "Study Day of End of Medication")]),
    "MH": ("Medical History", _ID + [
        ("MHSEQ", "Sequence Number"), ("MHTERM", "Reported Term for the Medical History"),
        ("MHCAT", "Category for Medical History"), ("MHSCAT", "Subcategory for Medical History"),
        ("MHPRESP", "Medical History Event Pre-Specified"),
        ("MHOCCUR", "Medical History Occurrence"),
        ("MHSTDTC", "Start Date/Time of Medical History Event"),
        ("MHENDTC", "End Date/Time of Medical History Event")]),
    "EX": ("Exposure", _ID + [
        ("EXSEQ", "Sequence Number"), ("EXTRT", "Name of Treatment"),
        ("EXCAT", "Category of Treatment"), ("EXDOSE", "Dose"), ("EXDOSTXT", "Dose Description"),
        ("EXDOSU", "Dose Units"), ("EXDOSFRQ", "Dosing Frequency per Interval"),
        ("EXROUTE", "Route of Administration"), ("EXLOT", "Lot Number"),
        ("EXADJ", "Reason for Dose Adjustment"), ("EXVAMT", "Treatment Vehicle Amount"),
        ("EXSTDTC", "Start Date/Time of Treatment"), ("EXENDTC", "End Date/Time of Treatment"),
        ("EXSTDY", "Study Day of Start of Treatment"),
        ("EXENDY", "Study Day of End of Treatment")] + _VISIT),
    "LB": ("Laboratory Test Results", _ID + [
        ("LBSEQ", "Sequence Number"), ("LBTESTCD", "Lab Test or Examination Short Name"),
        ("LBTEST", "Lab Test or Examination Name"),
        ("LBORRES", "Result or Finding in Original Units"), ("LBORRESU", "Original Units"),
        ("LBORNRLO", "Reference Range Lower Limit in Orig Unit"),
        ("LBORNRHI", "Reference Range Upper Limit in Orig Unit"),
        ("LBSTRESC", "Character Result/Finding in Std Format"),
        ("LBSTRESN", "Numeric Result/Finding in Standard Units"),
        ("LBSTRESU", "Standard Units"), ("LBNRIND", "Reference Range Indicator"),
        ("LBTOXGR", "Standard Toxicity Grade")] + _VISIT + [
        ("LBDTC", "Date/Time of Specimen Collection"), ("LBDY", "Study Day of Specimen Collection")]),
    "VS": ("Vital Signs", _ID + [
        ("VSSEQ", "Sequence Number"), ("VSTESTCD", "Vital Signs Test Short Name"),
        ("VSTEST", "Vital Signs Test Name"), ("VSORRES", "Result or Finding in Original Units"),
        ("VSORRESU", "Original Units"), ("VSSTRESC", "Character Result/Finding in Std Format"),
        ("VSSTRESN", "Numeric Result/Finding in Standard Units"), ("VSSTRESU", "Standard Units"),
    ] + _VISIT + [("VSDTC", "Date/Time of Measurements"), ("VSDY", "Study Day of Vital Signs")]),
    "RS": ("Disease Response and Clin Classification", _ID + [
        ("RSSEQ", "Sequence Number"), ("RSTESTCD", "Assessment Short Name"),
        ("RSTEST", "Assessment Name"), ("RSORRES", "Result or Finding in Original Units"),
        ("RSSTRESC", "Character Result/Finding in Std Format")] + _VISIT + [
        ("RSDTC", "Date/Time of Assessment"), ("RSDY", "Study Day of Assessment")]),
    "TA": ("Trial Arms", [("STUDYID", "Study Identifier"), ("DOMAIN", "Domain Abbreviation"),
                          ("ARMCD", "Planned Arm Code"), ("ARM", "Description of Planned Arm"),
                          ("TAETORD", "Planned Order of Element within Arm"),
                          ("ETCD", "Element Code"), ("ELEMENT", "Description of Element"),
                          ("EPOCH", "Epoch")]),
    "TE": ("Trial Elements", [("STUDYID", "Study Identifier"), ("DOMAIN", "Domain Abbreviation"),
                              ("ETCD", "Element Code"), ("ELEMENT", "Description of Element"),
                              ("TESTRL", "Rule for Start of Element")]),
    "TV": ("Trial Visits", [("STUDYID", "Study Identifier"), ("DOMAIN", "Domain Abbreviation"),
                            ("VISITNUM", "Visit Number"), ("VISIT", "Visit Name"),
                            ("VISITDY", "Planned Study Day of Visit"),
                            ("TVSTRL", "Visit Start Rule")]),
    "TI": ("Trial Inclusion/Exclusion Criteria", [
        ("STUDYID", "Study Identifier"), ("DOMAIN", "Domain Abbreviation"),
        ("IETESTCD", "Incl/Excl Criterion Short Name"), ("IETEST", "Inclusion/Exclusion Criterion"),
        ("IECAT", "Inclusion/Exclusion Category")]),
    "TS": ("Trial Summary", [("STUDYID", "Study Identifier"), ("DOMAIN", "Domain Abbreviation"),
                             ("TSSEQ", "Sequence Number"), ("TSPARMCD", "Trial Summary Parameter Short Name"),
                             ("TSPARM", "Trial Summary Parameter"), ("TSVAL", "Parameter Value")]),
}
SUPP_SPEC = [("STUDYID", "Study Identifier"), ("RDOMAIN", "Related Domain Abbreviation"),
             ("USUBJID", "Unique Subject Identifier"), ("IDVAR", "Identifying Variable"),
             ("IDVARVAL", "Identifying Variable Value"), ("QNAM", "Qualifier Variable Name"),
             ("QLABEL", "Qualifier Variable Label"), ("QVAL", "Data Value"),
             ("QORIG", "Origin")]
NUMERIC = {"AGE", "VISITNUM", "TAETORD", "VISITDY", "EXDOSE", "CMDOSE", "LBSTRESN",
           "VSSTRESN", "EXVAMT"} | {f"{d}SEQ" for d in SPECS} | {
    f"{d}{s}" for d in SPECS for s in ("DY", "STDY", "ENDY")}
TOPIC = {"AE": "AETERM", "CM": "CMTRT", "MH": "MHTERM", "EX": "EXTRT"}
EVENT_DOMAINS = tuple(TOPIC)
EXPOSED = {"EXSTDTC", "EXENDTC", "EXDOSE", "EXDOSTXT"}  # what makes an EX row an exposure
FINDING_DOMAINS = ("LB", "VS", "RS")
METHODS = {
    "STUDYID": "The study OID.", "DOMAIN": "The dataset name.",
    "USUBJID": "STUDYID-SUBJID.", "SUBJID": "The subject key.", "SITEID": "The site code.",
    "AEDECOD": "AETERM as recorded (CTCAE term; no dictionary coding).",
    "AEREL": "RELATED if the causality for any study drug is possible, probable or definite; "
             "NOT RELATED if one is answered and none is related.",
    "AESER": "As recorded; else Y if any seriousness criterion is Y.",
    "RFSTDTC": "The first EXSTDTC of the subject.", "RFENDTC": "The last EXENDTC (or EXSTDTC).",
    "RFXSTDTC": "The first EXSTDTC of the subject.", "RFXENDTC": "The last EXENDTC (or EXSTDTC).",
    "RFICDTC": "The date of the study's consent anchor.",
    "DTHDTC": "The date of the study's death anchor.", "DTHFL": "Y when DTHDTC is known.",
    "ARMCD": "The randomised arm, or DL<n> for dose level n; SCRNFAIL, NOTASSGN.",
    "ACTARMCD": "ARMCD; NOTTRT for an allocated subject without exposure.",
    "DSDECOD": "From the subject status.", "LBNRIND": "LBORRES against LBORNRLO/LBORNRHI.",
    "LBTOXGR": "CTCAE v5.0 grade computed on save.",
    "LBSTRESN": "LBORRES converted to the CTCAE grading unit.",
    "VISITNUM": "The position of the visit in the schedule (repeat n adds (n-1)/100).",
}
SUFFIX_METHODS = {"SEQ": "Number of the record within the subject, in visit, form, row order.",
                  "DY": "Study day against RFSTDTC (day 1 = RFSTDTC, no day 0).",
                  "STDY": "Study day against RFSTDTC (day 1 = RFSTDTC, no day 0).",
                  "ENDY": "Study day against RFSTDTC (day 1 = RFSTDTC, no day 0)."}
STATUS_DISPOSITION = {
    "screen_failed": "SCREEN FAILURE", "completed": "COMPLETED",
    "withdrawn": "WITHDRAWAL BY SUBJECT", "lost_to_follow_up": "LOST TO FOLLOW-UP",
    "died": "DEATH",
}


@dataclass(frozen=True)
class Variable:
    """One variable of a dataset, as define.xml describes it."""

    name: str
    label: str
    type: str  # "text" | "integer" | "float"
    length: int
    origin: str  # "CRF" | "Derived" | "Assigned" | "Protocol"
    sources: tuple[str, ...] = ()  # FORM.ITEM OIDs the values come from (origin CRF)
    method: str | None = None
    codelists: tuple[str, ...] = ()  # code lists of the source items (NY for yes/no)


@dataclass
class Dataset:
    name: str
    label: str
    rows: list[dict[str, object]]
    variables: list[Variable]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables)


@dataclass
class _Record:
    """A record being built: its values, where they came from, its qualifiers."""

    domain: str
    subject_id: int
    values: dict[str, object]
    order: tuple
    supp: list[tuple[str, str, str, str]] = field(default_factory=list)


@dataclass
class _Subject:
    row: Subject
    site: str
    country: str | None
    anchors: dict[str, str] = field(default_factory=dict)
    milestones: list[str] = field(default_factory=list)  # DS.DSSTDTC / IE.IEDTC dates
    dm: dict[str, object] = field(default_factory=dict)
    dm_supp: list[tuple[str, str, str, str]] = field(default_factory=list)


class _Build:
    def __init__(self, study_oid: str, definition: StudyDefinition) -> None:
        self.study = study_oid
        self.definition = definition
        self.records: dict[str, list[_Record]] = {}
        self.sources: dict[tuple[str, str], set[str]] = {}
        self.codelists: dict[tuple[str, str], set[str]] = {}
        self.visits = _visit_numbers(definition)
        self.counter = 0

    def add(self, record: _Record) -> None:
        self.counter += 1
        record.order = (self.counter,)
        self.records.setdefault(record.domain, []).append(record)

    def source(self, domain: str, variable: str, form: str, item: ItemDef) -> None:
        self.sources.setdefault((domain, variable), set()).add(f"{form}.{item.oid}")
        codelist = item.codelist or (item.choices.oid if item.choices else None) or (
            "NY" if item.type == ItemType.YES_NO else None)
        if codelist:
            self.codelists.setdefault((domain, variable), set()).add(codelist)


def _visit_numbers(definition: StudyDefinition) -> dict[str, tuple[int, str]]:
    planned = [e for e in definition.events if e.anchor is not None]
    return {e.oid: (n, e.name) for n, e in enumerate(planned, start=1)}


def _annotation(item: ItemDef) -> tuple[str, str] | None:
    if not item.sdtm or "." not in item.sdtm:
        return None
    domain, variable = item.sdtm.upper().split(".", 1)
    return domain, variable


def _var(item: ItemDef, domain: str) -> str | None:
    found = _annotation(item)
    return found[1] if found and found[0] == domain else None


def ae_groups(definition: StudyDefinition) -> dict[str, tuple[str, dict[str, str]]]:
    """form -> (group, AE variable -> item OID) for every group of a form whose
    ``sdtm_domain`` is AE holding AE.AETERM (the groups that make AE records)."""
    found = {}
    for form in definition.forms.values():
        if (form.sdtm_domain or "").upper() != "AE":
            continue
        for group in form.groups:
            mapping: dict[str, str] = {}
            for item in group.items:
                if (v := _var(item, "AE")):
                    mapping.setdefault(v, item.oid)
            if "AETERM" in mapping:
                found[form.oid] = (group.oid, mapping)
    return found


# --- values -------------------------------------------------------------------------------

def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else format(
            value, "f")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, PartialDate):
        return value.isoformat()
    return str(value)


def _decoded(item: ItemDef, text: str) -> object:
    """The SDTM value of stored text: a code, an ISO 8601 date, a number, or a sorted tuple
    of codes for a multiple choice."""
    value = from_canonical(item, text)
    if value is None:
        return text
    if isinstance(value, frozenset):
        return tuple(sorted(str(v) for v in value))
    if isinstance(value, bool):
        return "Y" if value else "N"
    return value


def _qnam(base: str, n: int) -> str:
    suffix = str(n)
    return base[:8 - len(suffix)] + suffix


def _put(record: _Record, variable: str, item: ItemDef, value: object) -> None:
    """Set a variable of the record from one item's value (module docstring rules)."""
    if isinstance(value, tuple):
        if not value:
            return
        if len(value) == 1:
            value = value[0]
        else:
            if variable not in record.values:
                record.values[variable] = "MULTIPLE"
            for n, code in enumerate(value, start=1):
                record.supp.append((_qnam(variable, n), f"{item.label}"[:40], code, "CRF"))
            return
    current = record.values.get(variable)
    if current is None:
        record.values[variable] = value
    elif (variable.endswith("DTC") and isinstance(value, dt.time)
          and isinstance(current, dt.date) and not isinstance(current, dt.datetime)):
        record.values[variable] = f"{current.isoformat()}T{value.isoformat()}"
    else:
        record.supp.append((item.oid[:8], item.label[:40], _text(value) or "", "CRF"))


def _stored(record: FormRecord, group: GroupDef, row: int, item: ItemDef):
    return record.values.get((group.oid, row if group.repeating else 1, item.oid))


# --- events and interventions -------------------------------------------------------------

def _causality_items(definition: StudyDefinition, form: FormDef,
                     group: GroupDef) -> list[ItemDef]:
    declared = definition.adverse_events
    oids = {i.oid for i in group.items}
    if declared is not None and declared.form == form.oid and declared.group == group.oid:
        by_oid = {i.oid: i for i in group.items}
        return [by_oid[o] for o in declared.causality.values() if o in oids]
    return [i for i in group.items if _var(i, "AE") == "AEREL"]


def _event_records(build: _Build, record: FormRecord, definition: StudyDefinition,
                   form: FormDef) -> None:
    domain = (form.sdtm_domain or "").upper()
    topic = TOPIC[domain]
    doses = [g for g in form.groups if domain == "EX" and any(
        _var(i, "EX") in ("EXDOSE", "EXDOSTXT") for i in g.items)]
    headers = [g for g in form.groups if doses and not g.repeating and g not in doses
               and any(_var(i, "EX") for i in g.items)]
    for group in form.groups:
        items = [(i, v) for i in group.items if (v := _var(i, domain))]
        if not items or group in headers:
            continue
        causality = _causality_items(definition, form, group) if domain == "AE" else []
        skip = {i.oid for i in causality}
        rows = record.rows_of(group.oid) if group.repeating else [1]
        for row in rows:
            made = _Record(domain, record.subject_id, {}, ())
            for item, variable in items:
                if item.oid in skip or variable.endswith("OCCUR") and not group.repeating:
                    continue
                stored = _stored(record, group, row, item)
                if stored is None:
                    continue
                if variable in ("VISITNUM", "VISIT"):  # the schedule gives the visit
                    made.supp.append((item.oid[:8], item.label[:40], stored.value, "CRF"))
                    continue
                _put(made, variable, item, _decoded(item, stored.value))
                build.source(domain, variable, form.oid, item)
            if domain == "EX" and not EXPOSED.intersection(made.values):
                continue  # a plan or a choice, not an administration
            if domain == "EX":
                _exposure(build, made, record, form, group, doses, headers)
            if made.values.get(topic) in (None, ""):
                continue
            _date_the_times(made, domain)
            if causality:
                answers = []
                for n, item in enumerate(causality, start=1):
                    stored = _stored(record, group, row, item)
                    answer = stored.value if stored is not None else None
                    answers.append(answer)
                    if answer:
                        made.supp.append((f"AEREL{n}", item.label[:40], answer, "CRF"))
                made.values["AEREL"] = derive_aerel(answers)
            if domain == "AE":
                made.values["AEDECOD"] = made.values.get("AETERM")
                made.values["AESER"] = derive_aeser(
                    _text(made.values.get("AESER")),
                    [_text(made.values.get(c)) for c in ("AESDTH", "AESLIFE", "AESHOSP",
                                                        "AESDISAB", "AESCONG", "AESMIE")])
            if domain == "EX":
                _visit(build, made, record)
            made.order = (_text(made.values.get(f"{domain}STDTC")) or "9999", row)
            build.add(made)
        if group.repeating:
            continue
        for item, variable in items:  # pre-specified questions
            if not variable.endswith("OCCUR") or domain == "AE":
                continue
            stored = _stored(record, group, 1, item)
            if stored is None:
                continue
            made = _Record(domain, record.subject_id, {
                topic: item.label, f"{domain}PRESP": "Y",
                f"{domain}OCCUR": _decoded(item, stored.value)}, ("", 0))
            build.source(domain, f"{domain}OCCUR", form.oid, item)
            build.add(made)


def _exposure(build: _Build, made: _Record, record: FormRecord, form: FormDef,
              group: GroupDef, doses: list[GroupDef], headers: list[GroupDef]) -> None:
    """EXTRT and the values an EX record shares with its form: a group holding a dose is
    one treatment (named by its EXTRT item, else by its label when the form doses several
    treatments or has a header group, else by the form's name); the non-repeating groups
    of the form without a dose are its header (start date, regimen), whose values fill
    what the group leaves empty, the others becoming supplemental qualifiers."""
    if "EXTRT" not in made.values and group.label and group in doses and (
            headers or len(doses) > 1):
        made.values["EXTRT"] = group.label
    for header in headers:
        for item in header.items:
            variable = _var(item, "EX")
            stored = _stored(record, header, 1, item) if variable else None
            if stored is not None and variable in ("VISITNUM", "VISIT"):
                made.supp.append((item.oid[:8], item.label[:40], stored.value, "CRF"))
            elif stored is not None:
                _put(made, variable, item, _decoded(item, stored.value))
                build.source("EX", variable, form.oid, item)
    made.values.setdefault("EXTRT", form.name)


def _date_the_times(made: _Record, domain: str) -> None:
    """A time recorded without a date (an infusion's end) takes the date of --STDTC."""
    start = made.values.get(f"{domain}STDTC")
    day = start.isoformat()[:10] if isinstance(start, dt.date) else (
        start[:10] if isinstance(start, str) and len(start) >= 10 else None)
    for key, value in list(made.values.items()):
        if key.endswith("DTC") and isinstance(value, dt.time):
            if day is None:
                del made.values[key]
                made.supp.append((key, f"Time of {key}", value.isoformat(), "CRF"))
            else:
                made.values[key] = f"{day}T{value.isoformat()}"


def _visit(build: _Build, made: _Record, record: FormRecord) -> None:
    found = build.visits.get(record.event_oid)
    if found is None:
        return
    number, name = found
    made.values["VISITNUM"] = Decimal(number) + Decimal(record.repeat - 1) / 100
    made.values["VISIT"] = name + (f" {record.repeat}" if record.repeat > 1 else "")


# --- findings -----------------------------------------------------------------------------

def _number(value: object) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def _limit(source: str | None, resolve) -> Decimal | None:
    if not source:
        return None
    try:
        return _number(evaluate(compile_cached(source), resolve, today=dt.date.today()))
    except ExpressionError:
        return None


def _finding_domain(item: ItemDef) -> str | None:
    found = _annotation(item)
    if found and found[0] in FINDING_DOMAINS and found[1] == f"{found[0]}ORRES":
        return found[0]
    return "LB" if item.lab is not None else None


def _finding_records(build: _Build, record: FormRecord, form: FormDef) -> None:
    where = {i.oid: g for g in form.groups for i in g.items}
    items = {i.oid: i for i in form.items}
    order = {i.oid: n for n, i in enumerate(form.items)}
    for (group_oid, row, item_oid) in sorted(
            record.values, key=lambda k: (k[0], k[1], order.get(k[2], 0))):
        item = items.get(item_oid)
        domain = _finding_domain(item) if item is not None else None
        if domain is None:
            continue
        stored = record.values[(group_oid, row, item_oid)]
        group = where[item_oid]

        def resolve(parts, row=row):
            name = parts[-1]
            owner = where.get(name)
            if owner is None:
                return None
            found = record.values.get((owner.oid, row if owner.repeating else 1, name))
            return from_canonical(items[name], found.value) if found else None

        value = _decoded(item, stored.value)
        p = domain
        made = _Record(domain, record.subject_id, {
            f"{p}TESTCD": (item.lab.test if domain == "LB" and item.lab else item.oid)[:8],
            f"{p}TEST": item.label[:40]}, ())
        if isinstance(value, tuple):  # one code, or MULTIPLE and a qualifier per code
            _put(made, f"{p}ORRES", item, value)
            value = made.values.get(f"{p}ORRES")
        else:  # numbers keep the precision they were entered with
            made.values[f"{p}ORRES"] = stored.value
        numeric = _number(value) if not isinstance(value, str) else None
        build.source(domain, f"{p}ORRES", form.oid, item)
        if domain in ("LB", "VS"):
            made.values[f"{p}ORRESU"] = item.unit
            made.values[f"{p}STRESN"] = numeric
            made.values[f"{p}STRESU"] = item.unit
        made.values[f"{p}STRESC"] = _text(numeric) if numeric is not None else _text(value)
        if domain == "LB" and item.lab is not None:
            low, high = _limit(item.lab.lln, resolve), _limit(item.lab.uln, resolve)
            if numeric is not None:
                try:
                    standard, unit = convert_unit(item.lab.test, numeric,
                                                  item.lab.unit or item.unit)
                    made.values.update(LBSTRESN=standard, LBSTRESU=unit,
                                       LBSTRESC=_text(standard))
                except (GradingError, ValueError):
                    pass
            made.values.update(
                LBORNRLO=_text(low), LBORNRHI=_text(high),
                LBNRIND=range_indicator(numeric, low, high),
                LBTOXGR=None if stored.grade is None else str(stored.grade))
        made.values[f"{p}DTC"] = _finding_date(record, form, group, row, p)
        _visit(build, made, record)
        made.order = (_text(made.values[f"{p}DTC"]) or "9999", record.event_oid, row,
                      order.get(item_oid, 0))
        build.add(made)


def _finding_date(record: FormRecord, form: FormDef, group: GroupDef, row: int,
                  domain: str) -> str | None:
    candidates = [(g, i) for g in form.groups for i in g.items
                  if _var(i, domain) == f"{domain}DTC"]
    same = [c for c in candidates if c[0].oid == group.oid]
    day, time = None, None
    for owner, item in same + [c for c in candidates if not c[0].repeating]:
        found = _stored(record, owner, row, item)
        value = _decoded(item, found.value) if found is not None else None
        if isinstance(value, dt.time):
            time = time or value
        elif value is not None and day is None:
            day = _text(value)
    if day is None and record.event_date is not None:
        day = record.event_date.isoformat()
    if day is not None and time is not None and len(day) == 10:
        return f"{day}T{time.isoformat()}"
    return day


# --- subjects: DM and DS ------------------------------------------------------------------

def _subjects(session: Session, scope: Scope) -> dict[int, _Subject]:
    stmt = scope.apply(select(Subject, Site.code, Site.country).join(
        Site, Site.id == Subject.site_id)).order_by(Subject.subject_key)
    return {s.id: _Subject(s, code, country) for s, code, country in session.execute(stmt)}


def _subject_values(subject: _Subject, record: FormRecord, definition: StudyDefinition,
                    form: FormDef, build: _Build) -> None:
    for name, (form_oid, item_oid) in definition.anchors.items():
        if form_oid != form.oid or name in subject.anchors:
            continue
        item = form.item(item_oid)
        stored = _stored(record, form.group(item.group), 1, item)
        if stored is not None:
            subject.anchors[name] = _text(_decoded(item, stored.value))
    consent = definition.anchors.get("consent")
    for group in form.groups:
        if group.repeating:
            continue
        for item in group.items:
            if (item.sdtm or "").upper() in ("DS.DSSTDTC", "IE.IEDTC") and (
                    consent is None or consent[0] != form.oid):
                stored = _stored(record, group, 1, item)
                if stored is not None:
                    subject.milestones.append(_text(_decoded(item, stored.value)) or "")
            variable = _var(item, "DM")
            if not variable or variable in subject.dm:
                continue
            stored = _stored(record, group, 1, item)
            if stored is None:
                continue
            holder = _Record("DM", subject.row.id, subject.dm, ())
            _put(holder, variable, item, _decoded(item, stored.value))
            subject.dm_supp.extend(holder.supp)
            build.source("DM", variable, form.oid, item)


def _arm(definition: StudyDefinition, subject: Subject) -> tuple[str, str]:
    if subject.arm:
        for arm in definition.arms:
            if arm.code == subject.arm:
                return arm.code, arm.name
        return subject.arm, subject.arm
    if subject.dose_level is not None and definition.dose_escalation is not None:
        try:
            level = definition.dose_escalation.level(subject.dose_level)
            return f"DL{level.level}", level.label
        except LookupError:
            return f"DL{subject.dose_level}", f"Dose level {subject.dose_level}"
    if subject.status == "screen_failed":
        return "SCRNFAIL", "Screen Failure"
    return "NOTASSGN", "Not Assigned"


def _dm_and_ds(build: _Build, subjects: dict[int, _Subject]) -> None:
    exposure: dict[int, list[str]] = {}
    for rec in build.records.get("EX", []):
        for key in ("EXSTDTC", "EXENDTC"):
            text = _text(rec.values.get(key))
            if text:
                exposure.setdefault(rec.subject_id, []).append(text)
    for sid, subject in subjects.items():
        starts = sorted(_text(r.values.get("EXSTDTC")) for r in build.records.get("EX", [])
                        if r.subject_id == sid and r.values.get("EXSTDTC") is not None)
        start = starts[0] if starts else None
        end = max(exposure.get(sid, []), default=None)
        death = subject.anchors.get("death") or _text(subject.dm.get("DTHDTC"))
        armcd, arm = _arm(build.definition, subject.row)
        allocated = armcd not in ("SCRNFAIL", "NOTASSGN")
        actual = (armcd, arm) if start or not allocated else ("NOTTRT", "Not Treated")
        values = dict(subject.dm)
        values.update(
            SUBJID=subject.row.subject_key, SITEID=subject.site, COUNTRY=subject.country,
            RFSTDTC=start, RFENDTC=end, RFXSTDTC=start, RFXENDTC=end,
            RFICDTC=subject.anchors.get("consent"), DTHDTC=death,
            DTHFL="Y" if death or subject.row.status == "died" else None,
            ARMCD=armcd, ARM=arm, ACTARMCD=actual[0], ACTARM=actual[1])
        if values.get("AGE") is not None:
            values["AGEU"] = "YEARS"
        dm = _Record("DM", sid, values, ("",), list(subject.dm_supp))
        build.add(dm)
        if subject.anchors.get("consent"):
            build.add(_Record("DS", sid, {
                "DSTERM": "INFORMED CONSENT OBTAINED", "DSDECOD": "INFORMED CONSENT OBTAINED",
                "DSCAT": "PROTOCOL MILESTONE", "DSSTDTC": subject.anchors["consent"]},
                (subject.anchors["consent"],)))
        decod = STATUS_DISPOSITION.get(subject.row.status)
        if decod:
            date = death if decod == "DEATH" else subject.anchors.get(
                {"withdrawn": "withdrawal", "lost_to_follow_up": "lost_to_follow_up"}.get(
                    subject.row.status, "")) or max(
                        (m for m in subject.milestones if m), default=None)
            build.add(_Record("DS", sid, {
                "DSTERM": decod, "DSDECOD": decod, "DSCAT": "DISPOSITION EVENT",
                "DSSTDTC": date}, (date or "9999",)))


# --- trial design -------------------------------------------------------------------------

def _arms(definition: StudyDefinition) -> list[tuple[str, str]]:
    if definition.arms:
        return [(a.code, a.name) for a in definition.arms]
    if definition.dose_escalation is not None:
        return [(f"DL{lv.level}", lv.label) for lv in definition.dose_escalation.levels]
    return []


def _trial_design(definition: StudyDefinition, subjects: int) -> dict[str, list[dict]]:
    arms = _arms(definition)
    ta, te = [], [{"ETCD": "SCRN", "ELEMENT": "Screening",
                   "TESTRL": "Informed consent"}]
    for code, name in arms:
        ta.append({"ARMCD": code, "ARM": name, "TAETORD": 1, "ETCD": "SCRN",
                   "ELEMENT": "Screening", "EPOCH": "SCREENING"})
        ta.append({"ARMCD": code, "ARM": name, "TAETORD": 2, "ETCD": code[:8],
                   "ELEMENT": name, "EPOCH": "TREATMENT"})
        te.append({"ETCD": code[:8], "ELEMENT": name, "TESTRL": f"Allocation to {name}"})
    tv = []
    for oid, (number, name) in _visit_numbers(definition).items():
        event = definition.event(oid)
        days = event.offset.amount if getattr(event.offset, "unit", "") == "d" else None
        tv.append({"VISITNUM": number, "VISIT": name,
                   "VISITDY": days + 1 if days is not None and event.anchor == "enrolment"
                   else None,
                   "TVSTRL": f"{event.anchor} + {event.offset}"})
    ti = []
    for form in definition.forms.values():
        for group in form.groups:
            for item in group.items:
                if _var(item, "IE") != "IEORRES":
                    continue
                where = f"{group.oid} {group.label or ''}".upper()
                ti.append({"IETESTCD": item.oid[:8], "IETEST": item.label[:200],
                           "IECAT": "EXCLUSION" if "EXCL" in where else
                           "INCLUSION" if "INCL" in where else None})
    ts = [("TITLE", "Trial Title", definition.title or definition.name),
          ("SPONSOR", "Clinical Study Sponsor", definition.sponsor),
          ("REGID", "Registry Identifier", definition.protocol_id),
          ("RANDOM", "Trial is Randomized", "Y" if definition.randomization else "N"),
          ("NARMS", "Planned Number of Arms", str(len(arms)) if arms else None),
          ("ACTSUB", "Actual Number of Subjects", str(subjects)),
          ("SDTIGVER", "SDTM IG Version", IG_VERSION)]
    return {"TA": ta, "TE": te, "TV": tv, "TI": ti,
            "TS": [{"TSSEQ": 1, "TSPARMCD": c, "TSPARM": p, "TSVAL": v}
                   for c, p, v in ts if v]}


# --- assembly -----------------------------------------------------------------------------

def sdtm_package(session: Session, scope: Scope) -> dict[str, Dataset]:
    """Every SDTM dataset of the scope with its variables' metadata (empty ones left out)."""
    versions, definitions = definitions_newest_first(session, scope.study)
    newest = definitions[0]
    by_version = {v.id: d for v, d in zip(versions, definitions, strict=True)}
    study = scope.study.oid
    build = _Build(study, newest)
    subjects = _subjects(session, scope)
    for record in form_records(item_rows(session, scope)):
        definition = by_version.get(record.version_id, newest)
        form = definition.forms.get(record.form_oid)
        subject = subjects.get(record.subject_id)
        if form is None or subject is None:
            continue
        _subject_values(subject, record, definition, form, build)
        if (form.sdtm_domain or "").upper() in EVENT_DOMAINS:
            _event_records(build, record, definition, form)
        _finding_records(build, record, form)
    _dm_and_ds(build, subjects)
    keys = {sid: f"{study}-{s.row.subject_key}" for sid, s in subjects.items()}
    references = {r.subject_id: _text(r.values.get("RFSTDTC"))
                  for r in build.records.get("DM", [])}
    datasets: dict[str, Dataset] = {}
    supp: dict[str, list[dict]] = {}
    for domain in SPECS:
        if domain in ("TA", "TE", "TV", "TI", "TS"):
            continue
        records = sorted(build.records.get(domain, []),
                         key=lambda r: (keys[r.subject_id], r.order))
        rows, counts = [], {}
        for rec in records:
            usubjid = keys[rec.subject_id]
            row = {"STUDYID": study, "DOMAIN": domain, "USUBJID": usubjid}
            row.update({k: _cell(k, v) for k, v in rec.values.items()})
            reference = references.get(rec.subject_id)
            for dtc, dy in ((f"{domain}DTC", f"{domain}DY"), (f"{domain}STDTC", f"{domain}STDY"),
                            (f"{domain}ENDTC", f"{domain}ENDY")):
                if dy in dict(SPECS[domain][1]):
                    row[dy] = study_day(row.get(dtc), reference)
            if domain != "DM":
                counts[usubjid] = counts.get(usubjid, 0) + 1
                row[f"{domain}SEQ"] = counts[usubjid]
            rows.append(row)
            for qnam, qlabel, qval, qorig in rec.supp:
                supp.setdefault(domain, []).append({
                    "STUDYID": study, "RDOMAIN": domain, "USUBJID": usubjid,
                    "IDVAR": "" if domain == "DM" else f"{domain}SEQ",
                    "IDVARVAL": "" if domain == "DM" else str(row[f"{domain}SEQ"]),
                    "QNAM": qnam, "QLABEL": qlabel, "QVAL": qval, "QORIG": qorig})
        datasets[domain] = _dataset(domain, SPECS[domain][0], SPECS[domain][1], rows, build)
    for domain, rows in _trial_design(newest, len(subjects)).items():
        for row in rows:
            row.update(STUDYID=study, DOMAIN=domain)
        datasets[domain] = _dataset(domain, SPECS[domain][0], SPECS[domain][1], rows, build,
                                    origin="Protocol")
    for domain, rows in supp.items():
        name = f"SUPP{domain}"
        datasets[name] = _dataset(name, f"Supplemental Qualifiers for {domain}", SUPP_SPEC,
                                  rows, build, origin="Assigned")
    return {k: v for k, v in datasets.items() if v.rows}


def _cell(name: str, value: object) -> object:
    if name in NUMERIC:
        return _number(value) if not isinstance(value, int) else value
    return _text(value)


def _dataset(name: str, label: str, spec: list[tuple[str, str]], rows: list[dict],
             build: _Build, origin: str = "Derived") -> Dataset:
    present = {k for row in rows for k, v in row.items() if v is not None}
    required = {"STUDYID", "DOMAIN", "USUBJID", f"{name}SEQ", "RDOMAIN", "QNAM", "QVAL"}
    keep = [(n, lab) for n, lab in spec if n in present or n in required]
    variables = []
    for var, lab in keep:
        values = [row.get(var) for row in rows]
        if var in NUMERIC:
            kind = "integer" if all(v is None or Decimal(str(v)) == int(v) for v in values) \
                else "float"
            length = 8
        else:
            kind = "text"
            length = max([len(str(v).encode("utf-8")) for v in values if v is not None],
                         default=1)
        sources = tuple(sorted(build.sources.get((name, var), ())))
        if sources:
            variables.append(Variable(var, lab, kind, length, "CRF", sources, None, tuple(
                sorted(build.codelists.get((name, var), ())))))
        else:
            method = METHODS.get(var) or next(
                (m for s, m in SUFFIX_METHODS.items() if var == f"{name}{s}"), None)
            variables.append(Variable(var, lab, kind, length, "Derived" if method else origin,
                                      (), method))
    for row in rows:
        for var, _lab in keep:
            row.setdefault(var, None)
        for extra in [k for k in row if k not in {v for v, _ in keep}]:
            del row[extra]
    return Dataset(name, label, [{v: row[v] for v, _ in keep} for row in rows], variables)


def sdtm_domains(session: Session, scope: Scope) -> dict[str, list[dict[str, object]]]:
    """The rows of every SDTM dataset of the scope, by dataset name."""
    return {name: data.rows for name, data in sdtm_package(session, scope).items()}


def export_sdtm(session: Session, scope: Scope, folder: Path, *,
                progress: Progress | None = None) -> list[Path]:
    """``<dataset>.csv`` and ``<dataset>.xpt`` in ``folder`` for every SDTM dataset."""
    return write_datasets(sdtm_package(session, scope), folder, progress=progress)


def write_datasets(package: dict[str, Dataset], folder: Path, *, csv_files: bool = True,
                   progress: Progress | None = None) -> list[Path]:
    """``<dataset>.xpt`` (and ``<dataset>.csv`` unless ``csv_files`` is false) in
    ``folder`` for every dataset of ``package``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for n, data in enumerate(package.values(), start=1):
        if csv_files:
            path = folder / f"{data.name.lower()}.csv"
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, lineterminator="\r\n")
                writer.writerow(data.columns)
                for row in data.rows:
                    writer.writerow([csv_cell(_text(row.get(c))) for c in data.columns])
            written.append(path)
        xpt = folder / f"{data.name.lower()}.xpt"
        write_dataset_xpt(xpt, data.name, data.label, [
            Column(v.name, v.label, "char" if v.type == "text" else "num",
                   [xpt_value(row.get(v.name), v) for row in data.rows])
            for v in data.variables])
        written.append(xpt)
        if progress:
            progress(int(95 * n / len(package)), f"wrote {data.name} ({len(data.rows)} rows)")
    return written


def xpt_value(value: object, variable: Variable) -> object:
    """A cell as the XPT (and Dataset-JSON) writer takes it: text, or a number."""
    if variable.type != "text":
        return None if value is None else float(value)
    return _text(value)


def variables_of(datasets: Iterable[Dataset]) -> dict[str, list[Variable]]:
    return {d.name: d.variables for d in datasets}
