"""Reading laboratory files into observations: a CSV from the laboratory system, HL7 v2
ORU^R01 messages (parsed by hl7apy) and FHIR R4 Observation bundles (JSON, checked
against the subset of Observation this import reads). Pure: no database, no Flask.

Every result becomes an ``Observation`` or a ``Problem``, both named by where they are
in the file ("line 4", "message 2, OBX 3", "entry 5") so that a reader can find them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import jsonschema
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

FORMATS = ("csv", "hl7", "fhir")


class LabFileError(ValueError):
    """A file that cannot be read at all; the message says why."""


@dataclass(frozen=True)
class Observation:
    """One numeric result as the file gives it."""

    where: str  # "line 4", "message 2, OBX 3", "entry 5"
    patient: tuple[str, ...]  # the identifiers the file gives for the patient
    collected: dt.date  # the collection date, as written (the hospital's local date)
    codes: tuple[str, ...]  # the test's codes (LOINC and local), first the main one
    value: Decimal
    unit: str


@dataclass(frozen=True)
class Problem:
    """A result that is not imported: ``skip`` when that is on purpose (not final yet,
    a test or patient the study does not take), else a problem that refuses the file."""

    where: str
    reason: str
    skip: bool = False


Parsed = tuple[list[Observation], list[Problem]]

_NUMBER = re.compile(r"^[-+]?(\d+([.,]\d*)?|[.,]\d+)([eE][-+]?\d+)?$")
_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?"
                  r"(Z|[+-]\d{2}:?\d{2})?$")
_HL7_TS = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2,6}(\.\d+)?)?([+-]\d{4})?$")


def decode(data: bytes) -> str:
    """UTF-8 (with or without a byte-order mark), else Windows-1252 as laboratory
    systems on Windows write."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    if "\x00" in text:  # a binary file, or a corrupted export: no database stores it
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise LabFileError(f"line {line} holds a NUL byte: this is not a text file as "
                           "laboratory systems export them")
    return text


def number(text: str) -> Decimal | str:
    """A result as a Decimal (decimal comma accepted), or why it is not one."""
    text = text.strip().replace("\u00a0", "").replace(" ", "")
    if not text:
        return "no value"
    if text[0] in "<>≤≥":
        return f"value {text} is censored (below or above the measurable range); enter it by hand"
    if not _NUMBER.match(text):
        return f"value {text!r} is not a number"
    try:
        return Decimal(text.replace(",", "."))
    except InvalidOperation:
        return f"value {text!r} is not a number"


def iso_date(text: str) -> dt.date | str:
    """The date of an ISO 8601 date or date-time, as written (its zone is not applied:
    the hospital writes its own local time)."""
    text = text.strip()
    found = _ISO.match(text)
    if found is None:
        return (f"collection date {text!r} is not ISO 8601 (YYYY-MM-DD, optionally with "
                "the time)")
    try:
        return dt.date.fromisoformat(found.group(1))
    except ValueError:
        return f"collection date {text!r} is not a valid date"


def hl7_date(text: str) -> dt.date | str:
    """The date of an HL7 v2 DTM (YYYYMMDD[HHMM[SS[.S]]][+/-ZZZZ])."""
    text = text.strip()
    found = _HL7_TS.match(text)
    if found is None:
        return f"date-time {text!r} is not an HL7 timestamp (YYYYMMDD[HHMM[SS]])"
    try:
        return dt.date(int(found.group(1)), int(found.group(2)), int(found.group(3)))
    except ValueError:
        return f"date-time {text!r} is not a valid date"


def parse(data: bytes, fmt: str) -> Parsed:
    if fmt == "csv":
        return parse_csv(decode(data))
    if fmt == "hl7":
        return parse_hl7(decode(data))
    if fmt == "fhir":
        return parse_fhir(decode(data))
    raise LabFileError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


def guess_format(name: str, data: bytes) -> str:
    """The format from the file's name, else from its first characters."""
    suffix = name.lower().rsplit(".", 1)[-1] if "." in name else ""
    if suffix in ("csv", "txt", "tsv"):
        return "csv"
    if suffix in ("hl7", "er7", "oru"):
        return "hl7"
    if suffix == "json":
        return "fhir"
    start = decode(data[:64]).lstrip("\x0b \r\n\t")
    if start.startswith("MSH"):
        return "hl7"
    if start.startswith("{"):
        return "fhir"
    return "csv"


# --- CSV -----------------------------------------------------------------------------------

# The declared columns and the headings laboratory systems give them (case ignored).
CSV_COLUMNS = {
    "patient": ("subject", "subject_id", "subject_key", "patient", "patient_id", "pid",
                "mrn", "ipp"),
    "collected": ("collected", "collection", "collection_datetime", "collection_date",
                  "datetime", "date", "specimen_datetime"),
    "code": ("code", "loinc", "test_code", "analyte"),
    "value": ("value", "result"),
    "unit": ("unit", "units"),
}


def parse_csv(text: str) -> Parsed:
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise LabFileError("the file is empty: a CSV needs a header line")
    header = lines[0]
    delimiter = ";" if header.count(";") > header.count(",") else ","
    if "\t" in header and header.count("\t") > header.count(delimiter):
        delimiter = "\t"
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    names = [h.strip().lower().replace(" ", "_").replace("-", "_") for h in next(reader)]
    columns: dict[str, int] = {}
    for role, aliases in CSV_COLUMNS.items():
        found = [i for i, name in enumerate(names) if name in aliases]
        if not found:
            raise LabFileError(f"no {role} column in the header (accepted headings: "
                               f"{', '.join(aliases)}); found {', '.join(names) or 'none'}")
        columns[role] = found[0]
    observations: list[Observation] = []
    problems: list[Problem] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {reader.line_num}"
        if len(row) < len(names):
            problems.append(Problem(where, f"{len(row)} column(s), the header has "
                                           f"{len(names)}"))
            continue
        cell = {role: row[index].strip() for role, index in columns.items()}
        found = _observation(where, cell["patient"], iso_date(cell["collected"]),
                             cell["code"], cell["value"], cell["unit"])
        (observations if isinstance(found, Observation) else problems).append(found)
    return observations, problems


def _observation(where: str, patient: str, collected: dt.date | str, code: str, value: str,
                 unit: str, *, codes: tuple[str, ...] = ()) -> Observation | Problem:
    if not patient:
        return Problem(where, "no patient identifier")
    if isinstance(collected, str):
        return Problem(where, collected)
    if not code:
        return Problem(where, "no test code")
    amount = number(value)
    if isinstance(amount, str):
        return Problem(where, amount)
    return Observation(where, (patient,), collected, (code, *codes), amount, unit.strip())


# --- HL7 v2 --------------------------------------------------------------------------------

_FINAL = {"F": "final", "C": "corrected"}


def split_messages(text: str) -> list[str]:
    """The messages of a file: MLLP framing removed, segments ended by CR, a message
    starting at each MSH segment."""
    text = text.replace("\x0b", "").replace("\x1c", "").replace("\r\n", "\r")
    text = text.replace("\n", "\r")
    messages: list[list[str]] = []
    for segment in text.split("\r"):
        if not segment.strip():
            continue
        if segment.startswith("MSH"):
            messages.append([])
        elif not messages:
            raise LabFileError("the file does not start with an MSH segment: not HL7 v2")
        messages[-1].append(segment)
    return ["\r".join(m) + "\r" for m in messages]


def parse_hl7(text: str) -> Parsed:
    messages = split_messages(text)
    if not messages:
        raise LabFileError("no HL7 message in the file (no MSH segment)")
    observations: list[Observation] = []
    problems: list[Problem] = []
    for index, raw in enumerate(messages, start=1):
        where = f"message {index}"
        try:
            message = parse_message(raw, find_groups=False,
                                    validation_level=VALIDATION_LEVEL.TOLERANT)
        except (HL7apyException, ValueError, IndexError) as exc:
            problems.append(Problem(where, f"not a readable HL7 v2 message: {exc}"))
            continue
        kind = message.msh.msh_9.to_er7()
        if not kind.startswith("ORU^R01"):
            problems.append(Problem(where, f"a {kind} message, not ORU^R01 (results)"))
            continue
        _hl7_results(where, message, observations, problems)
    return observations, problems


def _hl7_results(where: str, message, observations: list[Observation],
                 problems: list[Problem]) -> None:
    patient: tuple[str, ...] = ()
    order_date: dt.date | str = "no collection date (OBR-7 or OBX-14)"
    for segment in message.children:
        name = segment.name
        if name == "PID":
            patient = tuple(i for i in (rep.cx_1.to_er7().strip() for rep in segment.pid_3)
                            if i)
        elif name == "OBR":
            stamp = segment.obr_7.to_er7().strip()
            order_date = hl7_date(stamp) if stamp else "no collection date (OBR-7 or OBX-14)"
        elif name == "OBX":
            at = f"{where}, OBX {segment.obx_1.to_er7() or '?'}"
            found = _obx(at, segment, patient, order_date)
            if found is not None:
                (observations if isinstance(found, Observation) else problems).append(found)


def _obx(where: str, obx, patient: tuple[str, ...], order_date: dt.date | str
         ) -> Observation | Problem | None:
    status = obx.obx_11.to_er7().strip()
    if status == "D":
        return None  # deleted: the result was withdrawn by the laboratory
    if status not in _FINAL:
        return Problem(where, f"result status {status or 'missing'} is not final (F) or "
                              "corrected (C)", skip=status in ("P", "R", "S", "I", "O"))
    value_type = obx.obx_2.to_er7().strip()
    if value_type not in ("NM", "SN"):
        return Problem(where, f"value type {value_type or 'missing'} is not numeric (NM)")
    value = obx.obx_5.to_er7()
    if value_type == "SN":  # structured numeric: comparator^number
        parts = value.split("^")
        if parts[0].strip() not in ("", "="):
            return Problem(where, f"value {value!r} is censored; enter it by hand")
        value = parts[1] if len(parts) > 1 else ""
    code = obx.obx_3.ce_1.to_er7().strip()
    alternate = obx.obx_3.ce_4.to_er7().strip()
    stamp = obx.obx_14.to_er7().strip()
    collected = hl7_date(stamp) if stamp else order_date
    if not patient:
        return Problem(where, "no patient identifier (PID-3)")
    found = _observation(where, patient[0], collected, code, value, obx.obx_6.ce_1.to_er7(),
                         codes=(alternate,) if alternate else ())
    if isinstance(found, Problem):
        return found
    return Observation(found.where, patient, found.collected, found.codes, found.value,
                       found.unit)


# --- FHIR R4 -------------------------------------------------------------------------------

UCUM = "http://unitsofmeasure.org"
_CODING = {"type": "object", "properties": {"system": {"type": "string"},
                                            "code": {"type": "string", "minLength": 1}},
           "required": ["code"]}
# The part of an R4 Observation this import reads; the rest of the resource is ignored.
OBSERVATION_SUBSET = {
    "type": "object",
    "required": ["resourceType", "status", "code", "subject", "valueQuantity"],
    "properties": {
        "resourceType": {"const": "Observation"},
        "status": {"enum": ["registered", "preliminary", "final", "amended", "corrected",
                            "cancelled", "entered-in-error", "unknown"]},
        "code": {"type": "object", "required": ["coding"],
                 "properties": {"coding": {"type": "array", "minItems": 1,
                                           "items": _CODING}}},
        "subject": {"type": "object", "anyOf": [
            {"required": ["reference"]}, {"required": ["identifier"]}],
            "properties": {"reference": {"type": "string"},
                           "identifier": {"type": "object", "required": ["value"],
                                          "properties": {"value": {"type": "string"}}}}},
        "effectiveDateTime": {"type": "string"},
        "effectivePeriod": {"type": "object", "properties": {"start": {"type": "string"}}},
        "valueQuantity": {"type": "object", "required": ["value"],
                          "properties": {"value": {"type": "number"},
                                         "unit": {"type": "string"},
                                         "system": {"type": "string"},
                                         "code": {"type": "string"},
                                         "comparator": {"type": "string"}}},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(OBSERVATION_SUBSET)


def parse_fhir(text: str) -> Parsed:
    try:
        document = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise LabFileError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise LabFileError("the JSON is nested too deeply to be a FHIR bundle") from None
    if _holds_nul(document):
        raise LabFileError("a text of the JSON holds a NUL character (\\u0000): no laboratory "
                           "value or identifier does")
    if not isinstance(document, dict):
        raise LabFileError("not a FHIR resource: the JSON is not an object")
    kind = document.get("resourceType")
    if kind == "Observation":
        entries = [{"resource": document}]
    elif kind == "Bundle":
        entries = document.get("entry", [])
        if not isinstance(entries, list):
            raise LabFileError("Bundle.entry is not a list")
    else:
        raise LabFileError(f"a FHIR {kind or 'document without resourceType'}, not a Bundle "
                           "of Observations")
    patients = _patients(entries)
    observations: list[Observation] = []
    problems: list[Problem] = []
    for index, entry in enumerate(entries, start=1):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "Observation":
            continue
        found = _fhir_observation(f"entry {index}", resource, patients)
        if found is not None:
            (observations if isinstance(found, Observation) else problems).append(found)
    return observations, problems


def _holds_nul(node) -> bool:
    """Whether a NUL character is in any key or text of a JSON document."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _patients(entries: list) -> dict[str, tuple[str, ...]]:
    """Patient references of the bundle (Patient/id and fullUrl) -> their identifiers."""
    found: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
            continue
        values = tuple(str(i["value"]) for i in resource.get("identifier") or ()
                       if isinstance(i, dict) and i.get("value"))
        if resource.get("id"):
            found[f"Patient/{resource['id']}"] = values
        if entry.get("fullUrl"):
            found[str(entry["fullUrl"])] = values
    return found


def _fhir_observation(where: str, resource: dict, patients: dict[str, tuple[str, ...]]
                      ) -> Observation | Problem | None:
    errors = sorted(_VALIDATOR.iter_errors(_plain(resource)), key=lambda e: list(e.path))
    if errors:
        error = errors[0]
        at = ".".join(str(p) for p in error.path) or "Observation"
        return Problem(where, f"{at}: {error.message}")
    status = resource["status"]
    if status == "entered-in-error":
        return None
    if status not in ("final", "amended", "corrected"):
        return Problem(where, f"status {status} is not final, amended or corrected",
                       skip=status in ("registered", "preliminary"))
    quantity = resource["valueQuantity"]
    if quantity.get("comparator"):
        return Problem(where, f"value {quantity['comparator']}{quantity['value']} is censored; "
                              "enter it by hand")
    unit = quantity.get("code") if quantity.get("system") == UCUM and quantity.get("code") \
        else quantity.get("unit") or quantity.get("code") or ""
    stamp = resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}
                                                   ).get("start")
    collected = iso_date(stamp) if stamp else "no effectiveDateTime"
    subject = resource["subject"]
    identifiers: tuple[str, ...] = ()
    if subject.get("identifier", {}).get("value"):
        identifiers += (subject["identifier"]["value"],)
    reference = subject.get("reference")
    if reference:
        identifiers += patients.get(reference, ())
        if reference.startswith("Patient/"):
            identifiers += (reference.removeprefix("Patient/"),)
    codes = tuple(c["code"] for c in resource["code"]["coding"])
    if isinstance(collected, str):
        return Problem(where, collected)
    if not identifiers:
        return Problem(where, "no patient identifier (subject)")
    return Observation(where, tuple(dict.fromkeys(identifiers)), collected, codes,
                       Decimal(str(quantity["value"])), str(unit).strip())


def _plain(value):
    """JSON read with Decimal numbers, as jsonschema's number type expects them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    return value
