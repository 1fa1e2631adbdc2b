"""Reading laboratory files: numbers and dates as laboratories write them, the CSV
dialects, HL7 v2.5.1 ORU^R01 and FHIR R4 Observation bundles (tables, no database)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from ecrf.esource.parse import (
    LabFileError,
    Observation,
    Problem,
    guess_format,
    hl7_date,
    iso_date,
    number,
    parse,
)

FILES = Path(__file__).parent / "files"
D5, D6 = dt.date(2026, 1, 5), dt.date(2026, 1, 6)


@pytest.mark.parametrize("text, expected", [
    ("1.45", Decimal("1.45")), ("1,45", Decimal("1.45")), (" 152000 ", Decimal("152000")),
    ("0", Decimal("0")), (",5", Decimal("0.5")), ("-1.2", Decimal("-1.2")),
    ("1.5e3", Decimal("1.5e3")), ("1\u00a0000", Decimal("1000")),
    ("", "no value"), ("1.2.3", "value '1.2.3' is not a number"),
    ("pos", "value 'pos' is not a number"), ("1,200.5", "value '1,200.5' is not a number"),
    ("<0.1", "value <0.1 is censored (below or above the measurable range); enter it by hand"),
    (">1000", "value >1000 is censored (below or above the measurable range); enter it by "
              "hand"),
])
def test_numbers(text, expected):
    assert number(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("2026-01-05", D5), ("2026-01-05T07:00", D5), ("2026-01-05 07:00:59", D5),
    ("2026-01-05T23:30:00+08:00", D5), ("2026-01-05T23:30:00.123Z", D5),
    ("2026-01-05T07:00-0500", D5),
    ("05/01/2026", "collection date '05/01/2026' is not ISO 8601 (YYYY-MM-DD, optionally "
                   "with the time)"),
    ("2026-02-30", "collection date '2026-02-30' is not a valid date"),
    ("20260105", "collection date '20260105' is not ISO 8601 (YYYY-MM-DD, optionally with "
                 "the time)"),
])
def test_iso_dates_keep_the_date_as_written(text, expected):
    assert iso_date(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("20260105", D5), ("202601050700", D5), ("20260105070000", D5),
    ("20260105070000.1234+0800", D5), ("2026010507", D5),
    ("2026-01-05", "date-time '2026-01-05' is not an HL7 timestamp (YYYYMMDD[HHMM[SS]])"),
    ("20261305", "date-time '20261305' is not a valid date"),
])
def test_hl7_timestamps(text, expected):
    assert hl7_date(text) == expected


def _csv(*lines: str, bom: bool = False) -> bytes:
    return (("\ufeff" if bom else "") + "\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("data", [
    _csv("subject,collected,code,value,unit", "S-1,2026-01-05 07:00,751-8,1.45,G/L"),
    _csv("subject;collected;code;value;unit", "S-1;2026-01-05 07:00;751-8;1,45;G/L",
         bom=True),
    _csv("Patient ID,Collection Date,LOINC,Result,Units", 'S-1,2026-01-05,751-8,"1,45",G/L'),
    _csv("pid\tdate\tcode\tvalue\tunit", "S-1\t2026-01-05\t751-8\t1.45\tG/L"),
    ("subject;collected;code;value;unit\r\nS-1;2026-01-05;751-8;1,45;G/L\r\n"
     ).encode("cp1252"),
])
def test_csv_dialects(data):
    assert parse(data, "csv") == ([Observation("line 2", ("S-1",), D5, ("751-8",),
                                               Decimal("1.45"), "G/L")], [])


def test_csv_lines_are_refused_by_line_number():
    observations, problems = parse(_csv(
        "subject;collected;code;value;unit",
        "S-1;2026-01-05;751-8;1,45;G/L",
        "",
        "S-1;2026-01-05;751-8",
        ";2026-01-05;751-8;1;G/L",
        "S-1;;751-8;1;G/L",
        "S-1;2026-01-05;;1;G/L",
        "S-1;2026-01-05;751-8;abc;G/L",
        "S-1;2026-01-06;718-7;9,8;µ"), "csv")
    assert [o.where for o in observations] == ["line 2", "line 9"]
    assert observations[1].unit == "µ"
    assert problems == [
        Problem("line 4", "3 column(s), the header has 5"),
        Problem("line 5", "no patient identifier"),
        Problem("line 6", "collection date '' is not ISO 8601 (YYYY-MM-DD, optionally with "
                          "the time)"),
        Problem("line 7", "no test code"),
        Problem("line 8", "value 'abc' is not a number"),
    ]


@pytest.mark.parametrize("data, message", [
    (b"", "the file is empty: a CSV needs a header line"),
    (_csv("patient;when;code;value;unit"), "no collected column in the header"),
])
def test_unreadable_csv(data, message):
    with pytest.raises(LabFileError, match=message):
        parse(data, "csv")


MSH = "MSH|^~\\&|LIS|HOSP|ECRF|SITE|20260105083000||{kind}|M{n}|P|2.5.1"
PID = "PID|1||{pid}^^^HOSP^MR~NAT-77^^^STATE^NI||DOE^JANE"
OBR = "OBR|1|O1|L1|58410-2^CBC^LN|||20260105070000"


def _hl7(*segments: str, sep: str = "\r") -> bytes:
    return (sep.join(segments) + sep).encode()


def test_hl7_results_take_the_obx_time_else_the_obr_time():
    data = _hl7(MSH.format(kind="ORU^R01^ORU_R01", n=1), PID.format(pid="S-1"), OBR,
                "OBX|1|NM|751-8^Neutrophils^LN||1.45|10*9/L^^UCUM|||||F",
                "OBX|2|NM|718-7^Hgb^LN^HB^Hemoglobin^L||9.8|g/dL^^UCUM|||||C|||20260106060000",
                "OBX|3|SN|777-3^Platelets^LN||^152|10*9/L|||||F",
                sep="\n")
    observations, problems = parse(data, "hl7")
    assert problems == []
    assert observations == [
        Observation("message 1, OBX 1", ("S-1", "NAT-77"), D5, ("751-8",), Decimal("1.45"),
                    "10*9/L"),
        Observation("message 1, OBX 2", ("S-1", "NAT-77"), D6, ("718-7", "HB"),
                    Decimal("9.8"), "g/dL"),
        Observation("message 1, OBX 3", ("S-1", "NAT-77"), D5, ("777-3",), Decimal("152"),
                    "10*9/L"),
    ]


@pytest.mark.parametrize("obx, problem, skip", [
    ("OBX|1|NM|751-8^N^LN||1.45|10*9/L|||||P", "result status P is not final (F) or "
                                               "corrected (C)", True),
    ("OBX|1|NM|751-8^N^LN||1.45|10*9/L|||||X", "result status X is not final (F) or "
                                               "corrected (C)", False),
    ("OBX|1|ST|751-8^N^LN||high|10*9/L|||||F", "value type ST is not numeric (NM)", False),
    ("OBX|1|SN|751-8^N^LN||<^0.1|10*9/L|||||F", "value '<^0.1' is censored; enter it by hand",
     False),
    ("OBX|1|NM|751-8^N^LN||1.45|10*9/L|||||F|||2026", "date-time '2026' is not an HL7 "
                                                      "timestamp (YYYYMMDD[HHMM[SS]])", False),
    ("OBX|1|NM|751-8^N^LN|||10*9/L|||||F", "no value", False),
])
def test_hl7_results_refused_or_skipped(obx, problem, skip):
    data = _hl7(MSH.format(kind="ORU^R01^ORU_R01", n=1), PID.format(pid="S-1"), OBR, obx)
    assert parse(data, "hl7") == ([], [Problem("message 1, OBX 1", problem, skip)])


def test_hl7_deleted_results_and_other_messages():
    data = _hl7(MSH.format(kind="ADT^A01^ADT_A01", n=1), PID.format(pid="S-1"),
                MSH.format(kind="ORU^R01^ORU_R01", n=2), PID.format(pid="S-1"), OBR,
                "OBX|1|NM|751-8^N^LN||1.45|10*9/L|||||D",
                MSH.format(kind="ORU^R01^ORU_R01", n=3), OBR,
                "OBX|1|NM|751-8^N^LN||1.45|10*9/L|||||F")
    assert parse(data, "hl7") == ([], [
        Problem("message 1", "a ADT^A01^ADT_A01 message, not ORU^R01 (results)"),
        Problem("message 3, OBX 1", "no patient identifier (PID-3)")])


def test_mllp_framing_is_removed():
    message = _hl7(MSH.format(kind="ORU^R01^ORU_R01", n=1), PID.format(pid="S-1"), OBR,
                   "OBX|1|NM|751-8^N^LN||1.45|10*9/L|||||F")
    observations, problems = parse(b"\x0b" + message + b"\x1c\r", "hl7")
    assert (len(observations), problems) == (1, [])


def test_not_hl7():
    with pytest.raises(LabFileError, match="does not start with an MSH segment"):
        parse(b"PID|1||S-1\r", "hl7")


def _observation(**changes) -> dict:
    resource = {
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-01-05T07:00:00+08:00",
        "valueQuantity": {"value": 1.45, "unit": "10^9/L",
                          "system": "http://unitsofmeasure.org", "code": "10*9/L"}}
    resource.update(changes)
    return {k: v for k, v in resource.items() if v is not None}


def _bundle(*resources) -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": "collection",
                       "entry": [{"resource": r} for r in resources]}).encode()


PATIENT = {"resourceType": "Patient", "id": "p1", "identifier": [{"value": "S-1"}]}


@pytest.mark.parametrize("changes, expected", [
    ({}, Observation("entry 2", ("S-1", "p1"), D5, ("751-8",), Decimal("1.45"), "10*9/L")),
    ({"valueQuantity": {"value": 98, "unit": "g/L"}},
     Observation("entry 2", ("S-1", "p1"), D5, ("751-8",), Decimal("98"), "g/L")),
    ({"effectiveDateTime": None, "effectivePeriod": {"start": "2026-01-06"}},
     Observation("entry 2", ("S-1", "p1"), D6, ("751-8",), Decimal("1.45"), "10*9/L")),
    ({"subject": {"identifier": {"value": "MRN-9"}}},
     Observation("entry 2", ("MRN-9",), D5, ("751-8",), Decimal("1.45"), "10*9/L")),
    ({"status": "amended"},
     Observation("entry 2", ("S-1", "p1"), D5, ("751-8",), Decimal("1.45"), "10*9/L")),
    ({"status": "preliminary"},
     Problem("entry 2", "status preliminary is not final, amended or corrected", True)),
    ({"status": "cancelled"},
     Problem("entry 2", "status cancelled is not final, amended or corrected")),
    ({"status": "entered-in-error"}, None),
    ({"valueQuantity": None, "valueString": "high"},
     Problem("entry 2", "Observation: 'valueQuantity' is a required property")),
    ({"valueQuantity": {"value": "1.45"}},
     Problem("entry 2", "valueQuantity.value: '1.45' is not of type 'number'")),
    ({"valueQuantity": {"value": 0.1, "comparator": "<", "unit": "G/L"}},
     Problem("entry 2", "value <0.1 is censored; enter it by hand")),
    ({"code": {"text": "ANC"}},
     Problem("entry 2", "code: 'coding' is a required property")),
    ({"effectiveDateTime": None}, Problem("entry 2", "no effectiveDateTime")),
])
def test_fhir_observations(changes, expected):
    observations, problems = parse(_bundle(PATIENT, _observation(**changes)), "fhir")
    assert observations + problems == ([expected] if expected else [])


def test_a_single_observation_is_read_too():
    data = json.dumps(_observation(subject={"reference": "Patient/S-1"})).encode()
    assert parse(data, "fhir") == ([Observation("entry 1", ("S-1",), D5, ("751-8",),
                                                Decimal("1.45"), "10*9/L")], [])


@pytest.mark.parametrize("data, message", [
    (b"{", "not JSON"), (b"[]", "not a FHIR resource"),
    (b'{"resourceType": "Patient"}', "a FHIR Patient, not a Bundle of Observations"),
    (b'{"resourceType": "Bundle", "entry": {}}', "Bundle.entry is not a list"),
])
def test_unreadable_fhir(data, message):
    with pytest.raises(LabFileError, match=message):
        parse(data, "fhir")


@pytest.mark.parametrize("name, start, fmt", [
    ("x.csv", b"a;b", "csv"), ("x.hl7", b"MSH|", "hl7"), ("x.json", b"{", "fhir"),
    ("export", b"\x0bMSH|^~", "hl7"), ("export", b'  {"resourceType"', "fhir"),
    ("export", b"subject;date", "csv"),
])
def test_format_from_name_then_content(name, start, fmt):
    assert guess_format(name, start) == fmt


def test_the_fixture_files_agree():
    """The same CBC of 5 January in each format gives the same results."""
    day1 = {}
    for name, fmt in (("counts.csv", "csv"), ("counts.hl7", "hl7"),
                      ("counts.fhir.json", "fhir")):
        observations, _ = parse((FILES / name).read_bytes(), fmt)
        day1[fmt] = sorted((o.codes[0], o.value * {"g/dL": 1, "/µL": Decimal("0.001")}.get(
            o.unit, 1)) for o in observations if o.collected == D5 and o.codes[0] != "1988-5")
    assert day1["csv"] == day1["hl7"] == day1["fhir"] == [
        ("6690-2", Decimal("3.2")), ("718-7", Decimal("10.4")), ("751-8", Decimal("1.45")),
        ("777-3", Decimal("152"))]
