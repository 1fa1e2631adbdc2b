"""SDTM-shaped AE and LB datasets, as CSV and SAS XPORT v5.

Nothing here knows a form by name. **AE** rows come from every repeating group holding an
item annotated ``sdtm: AE.AETERM``; each AE variable is read from the item of that group
annotated with it (AEDECOD repeats AETERM: ecrf does not code terms). **LB** rows come
from every item with a ``lab:`` grading spec: LBTESTCD is its test, LBORRES/LBORRESU its
value and unit, LBSTRESN/LBSTRESU the value in the unit CTCAE grades in, LBORNRLO and
LBORNRHI its LLN and ULN (numbers or expressions over the same row), LBNRIND LOW, HIGH
or NORMAL against them, LBTOXGR the stored CTCAE grade, and LBDTC the date of the item of
the same row (or of the form) annotated ``LB.LBDTC``. USUBJID is ``STUDYID-SUBJECT``;
AESEQ and LBSEQ number each subject's rows in visit order.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

from sqlalchemy.orm import Session

from ecrf.core import csv_cell
from ecrf.crf import FormDef, ItemDef, StudyDefinition
from ecrf.crf.values import from_canonical
from ecrf.domain.ctcae import GradingError, convert_unit
from ecrf.domain.expressions import ExpressionError, compile_cached, evaluate
from ecrf.outputs.datasets.formats import Column
from ecrf.outputs.datasets.stats import write_dataset_xpt
from ecrf.outputs.rows import FormRecord, Scope, definitions_newest_first, form_records, item_rows

Progress = Callable[[int, str], None]
AE_COLUMNS = ("STUDYID", "DOMAIN", "USUBJID", "AESEQ", "AETERM", "AEDECOD", "AESTDTC",
              "AEENDTC", "AETOXGR", "AESER", "AESDTH", "AESLIFE", "AESHOSP", "AESDISAB",
              "AESCONG", "AESMIE", "AEREL", "AEACN", "AEOUT")
LB_COLUMNS = ("STUDYID", "DOMAIN", "USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBORRES",
              "LBORRESU", "LBSTRESN", "LBSTRESU", "LBORNRLO", "LBORNRHI", "LBNRIND",
              "LBTOXGR", "LBDTC", "VISIT")
LABELS = {
    "STUDYID": "Study Identifier", "DOMAIN": "Domain Abbreviation",
    "USUBJID": "Unique Subject Identifier", "AESEQ": "Sequence Number",
    "AETERM": "Reported Term for the Adverse Event", "AEDECOD": "Dictionary-Derived Term",
    "AESTDTC": "Start Date/Time of Adverse Event", "AEENDTC": "End Date/Time of Adverse Event",
    "AETOXGR": "Standard Toxicity Grade", "AESER": "Serious Event",
    "AESDTH": "Results in Death", "AESLIFE": "Is Life Threatening",
    "AESHOSP": "Requires or Prolongs Hospitalization",
    "AESDISAB": "Persist or Signif Disability/Incapacity",
    "AESCONG": "Congenital Anomaly or Birth Defect",
    "AESMIE": "Other Medically Important Serious Event", "AEREL": "Causality",
    "AEACN": "Action Taken with Study Treatment", "AEOUT": "Outcome of Adverse Event",
    "LBSEQ": "Sequence Number", "LBTESTCD": "Lab Test or Examination Short Name",
    "LBTEST": "Lab Test or Examination Name", "LBORRES": "Result or Finding in Original Units",
    "LBORRESU": "Original Units", "LBSTRESN": "Numeric Result/Finding in Standard Units",
    "LBSTRESU": "Standard Units", "LBORNRLO": "Reference Range Lower Limit in Orig Unit",
    "LBORNRHI": "Reference Range Upper Limit in Orig Unit",
    "LBNRIND": "Reference Range Indicator", "LBTOXGR": "Standard Toxicity Grade",
    "LBDTC": "Date/Time of Specimen Collection", "VISIT": "Visit Name",
}
NUMERIC = {"AESEQ", "LBSEQ", "LBSTRESN"}


def _var(item: ItemDef, domain: str) -> str | None:
    if item.sdtm and item.sdtm.upper().startswith(domain + "."):
        return item.sdtm.split(".", 1)[1].upper()
    return None


def ae_groups(definition: StudyDefinition) -> dict[str, tuple[str, dict[str, str]]]:
    """form -> (group, AE variable -> item OID) for every group holding AE.AETERM."""
    found = {}
    for form in definition.forms.values():
        for group in form.groups:
            mapping = {v: i.oid for i in group.items if (v := _var(i, "AE"))}
            if "AETERM" in mapping:
                found[form.oid] = (group.oid, mapping)
    return found


def lab_forms(definition: StudyDefinition) -> dict[str, FormDef]:
    return {f.oid: f for f in definition.forms.values() if any(i.lab for i in f.items)}


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


def ae_rows(record: FormRecord, group: str, mapping: dict[str, str], study_oid: str
            ) -> Iterator[dict[str, object]]:
    for row in record.rows_of(group):
        values = {v: getattr(record.values.get((group, row, oid)), "value", None)
                  for v, oid in mapping.items()}
        line = {c: values.get(c) for c in AE_COLUMNS}
        line.update(STUDYID=study_oid, DOMAIN="AE",
                    USUBJID=f"{study_oid}-{record.subject_key}", AEDECOD=values.get("AETERM"))
        yield line


def lb_rows(record: FormRecord, form: FormDef, study_oid: str, visit: str
            ) -> Iterator[dict[str, object]]:
    where = {i.oid: g for g in form.groups for i in g.items}
    items = {i.oid: i for i in form.items}
    date_items = [i for i in form.items if _var(i, "LB") == "LBDTC"]
    order = {i.oid: n for n, i in enumerate(form.items)}
    keys = sorted(record.values, key=lambda k: (k[0], k[1], order.get(k[2], 0)))
    for group_oid, row, item_oid in keys:
        item = items.get(item_oid)
        if item is None or item.lab is None:
            continue
        stored = record.values[(group_oid, row, item_oid)]
        group = where[item_oid]

        def resolve(parts, group=group, row=row):
            name = parts[-1]
            owner = where.get(name)
            if owner is None:
                return None
            found = record.values.get((owner.oid, row if owner.repeating else 1, name))
            return from_canonical(items[name], found.value) if found else None

        value = _number(from_canonical(item, stored.value))
        low, high = _limit(item.lab.lln, resolve), _limit(item.lab.uln, resolve)
        standard, unit = None, None
        try:
            if value is not None:
                standard, unit = convert_unit(item.lab.test, value, item.lab.unit or item.unit)
        except (GradingError, ValueError):
            standard = unit = None
        indicator = None
        if value is not None and (low is not None or high is not None):
            indicator = "LOW" if low is not None and value < low else \
                "HIGH" if high is not None and value > high else "NORMAL"
        date = None
        same = [c for c in date_items if where[c.oid].oid == group.oid]
        for candidate in same + [c for c in date_items if not where[c.oid].repeating]:
            owner = where[candidate.oid]
            found = record.values.get((owner.oid, row if owner.repeating else 1, candidate.oid))
            if found is not None:
                date = found.value
                break
        yield {
            "STUDYID": study_oid, "DOMAIN": "LB", "USUBJID": f"{study_oid}-{record.subject_key}",
            "LBTESTCD": item.lab.test, "LBTEST": item.label, "LBORRES": stored.value,
            "LBORRESU": item.unit, "LBSTRESN": standard, "LBSTRESU": unit,
            "LBORNRLO": None if low is None else format(low, "f"),
            "LBORNRHI": None if high is None else format(high, "f"), "LBNRIND": indicator,
            "LBTOXGR": None if stored.grade is None else str(stored.grade), "LBDTC": date,
            "VISIT": visit,
        }


def sdtm_domains(session: Session, scope: Scope) -> dict[str, list[dict[str, object]]]:
    """The AE and LB rows of the scope, numbered per subject (one statement per form)."""
    _versions, definitions = definitions_newest_first(session, scope.study)
    newest = definitions[0]
    visits = {e.oid: e.name for e in newest.events}
    result: dict[str, list[dict[str, object]]] = {"AE": [], "LB": []}
    for domain, forms in (("AE", ae_groups(newest)), ("LB", lab_forms(newest))):
        rows = result[domain]
        for form_oid, spec in forms.items():
            for record in form_records(item_rows(session, scope, form_oid=form_oid)):
                if domain == "AE":
                    rows += list(ae_rows(record, spec[0], spec[1], scope.study.oid))
                else:
                    rows += list(lb_rows(record, spec, scope.study.oid,
                                         visits.get(record.event_oid, record.event_oid)
                                         + (f" {record.repeat}" if record.repeat > 1 else "")))
        rows.sort(key=lambda r: r["USUBJID"])
        seq_name = f"{domain}SEQ"
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["USUBJID"]] = counts.get(row["USUBJID"], 0) + 1
            row[seq_name] = counts[row["USUBJID"]]
    return result


def export_sdtm(session: Session, scope: Scope, folder: Path, *,
                progress: Progress | None = None) -> list[Path]:
    """``ae.csv``, ``ae.xpt``, ``lb.csv`` and ``lb.xpt`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    domains = sdtm_domains(session, scope)
    written = []
    for domain, columns in (("AE", AE_COLUMNS), ("LB", LB_COLUMNS)):
        rows = domains[domain]
        path = folder / f"{domain.lower()}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow(columns)
            for row in rows:
                writer.writerow([csv_cell(_text(row.get(c))) for c in columns])
        written.append(path)
        xpt = folder / f"{domain.lower()}.xpt"
        write_dataset_xpt(xpt, domain, "Adverse Events" if domain == "AE" else "Laboratory "
                          "Test Results", [
                              Column(c, LABELS.get(c, c), "num" if c in NUMERIC else "char",
                                     [_value(row.get(c), c) for row in rows])
                              for c in columns])
        written.append(xpt)
        if progress:
            progress(50 if domain == "AE" else 95, f"wrote {domain} ({len(rows)} rows)")
    return written


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else format(
            value, "f")
    return str(value)


def _value(value: object, column: str) -> object:
    if column in NUMERIC:
        return None if value is None else float(value)
    return _text(value)
