"""The statistician files open everywhere: XPORT labels in ASCII by a declared rule and
never cut inside a character, SPSS value labels from the code lists, multiple-choice
items as 0/1 indicators, a Dataset-JSON v1.1 file beside every XPORT file (valid against
CDISC's schema), and every file read back: pyreadstat for all, pandas' own XPORT reader
as a second, independent one."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path

import jsonschema
import pandas
import pyreadstat
import pytest

from ecrf.core.extensions import db
from ecrf.outputs.datasets.dataset_json import dataset_json, write_dataset_json
from ecrf.outputs.datasets.flat import export_csv
from ecrf.outputs.datasets.formats import (
    Column,
    ascii_label,
    ascii_text,
    cut_utf8,
    labels_of,
    write_sav,
    write_xpt,
)
from ecrf.outputs.datasets.stats import export_stats
from ecrf.outputs.rows import make_scope
from tests.outputs.clinical_setup import populate

FIXTURES = Path(__file__).parent.parent / "fixtures"
SCHEMA = json.loads((FIXTURES / "dataset_json" / "dataset.schema.json").read_text("utf-8"))
CREATED = dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)


def schema_errors(document: dict) -> list[str]:
    validator = jsonschema.Draft201909Validator(SCHEMA)
    return [e.message for e in validator.iter_errors(document)]


# --- the ASCII rule ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("Weight (kg)", "Weight (kg)"),
    ("Temperature (°C)", "Temperature (degC)"),
    ("ANC ≥ 0.5 and platelets ≤ 50", "ANC >= 0.5 and platelets <= 50"),
    ("Événement indésirable, Entraîne", "Evenement indesirable, Entraine"),
    ("Dose (µg/m²)", "Dose (ug/m2)"),
    ("Dose (μg) ± 10 %", "Dose (ug) +/- 10 %"),
    ("« entraîne le décès »", '" entraine le deces "'),
    ("Straße – Œdème", "Strasse - OEdeme"),
    ("不良事件", None),
    ("Fièvre 发热", None),
    ("", ""),
])
def test_ascii_spelling(text, expected):
    assert ascii_text(text) == expected


@pytest.mark.parametrize("label, fallback, expected", [
    ("Weight (kg)", "WEIGHT", "Weight (kg)"),
    # spelt first, then cut at 40 characters: ">=" is never half a character
    ("First relapsed or refractory AML with ≥ 5% bone-marrow blasts", "IN03",
     "First relapsed or refractory AML with >="),
    ("x" * 39 + "≥ 5", "V", "x" * 39 + ">"),
    ("不良事件", "AETERM", "AETERM"),
    ("不良事件", "Adverse event", "Adverse event"),
    ("a " * 30, "V", ("a " * 20).rstrip()),
    ("", "V", ""),
])
def test_xpt_label(label, fallback, expected):
    assert ascii_label(label, fallback) == expected
    assert labels_of(label, fallback) == (expected, label)


@pytest.mark.parametrize("text, limit, expected", [
    ("é" * 30, 40, "é" * 20),
    ("x" + "é" * 30, 40, "x" + "é" * 19),
    ("≥" * 14, 40, "≥" * 13),
    ("中文标签" * 5, 40, "中文标签" * 3 + "中"),
    ("short", 40, "short"),
])
def test_utf8_cut_on_character_boundaries(text, limit, expected):
    assert cut_utf8(text, limit) == expected.encode("utf-8")


def test_non_ascii_labels_and_values_read_back_with_two_readers(tmp_path):
    columns = [
        Column("IN03", "First relapsed or refractory AML with ≥ 5% bone-marrow blasts",
               "char", ["Y", "N"]),
        Column("TEMP", "Température (°C)", "num", [38.5, 0.0]),
        Column("NOTE", "备注", "char", [None, "发热 39 °C"]),
    ]
    path = tmp_path / "elig.xpt"
    write_xpt(path, "ELIG", "Éligibilité ≥ 中文", columns, CREATED)
    data, meta = pyreadstat.read_xport(str(path), output_format="dict")
    assert meta.file_label == "ELIG"  # no ASCII form: the dataset's name
    assert meta.column_labels == ["First relapsed or refractory AML with >=",
                                  "Temperature (degC)", "NOTE"]
    assert data["NOTE"] == ["", "发热 39 °C"] and data["TEMP"] == [38.5, 0.0]
    frame = pandas.read_sas(path, format="xport", encoding="utf-8")
    assert list(frame.columns) == ["IN03", "TEMP", "NOTE"]
    # (pandas counts the observations of a file whose rows are at most 80 bytes from the
    # blanks of its last record: a last row ending in blanks would be lost to it)
    assert list(frame["IN03"]) == ["Y", "N"] and frame["NOTE"][1] == "发热 39 °C"
    assert frame["TEMP"][0] == 38.5
    # pandas reads the IBM zero (eight zero bytes, as SAS writes it) as 16**-65
    assert math.isclose(frame["TEMP"][1], 0.0, abs_tol=1e-70)
    with path.open("rb") as handle:
        handle.seek(0)
        header = handle.read(80 * 8)
    assert header.isascii()


def test_a_label_without_ascii_form_falls_back_to_english_then_to_the_name(tmp_path):
    columns = [Column("AETERM", "不良事件名称", "char", ["发热"], english="Adverse event term"),
               Column("AESEV", "严重程度", "char", ["3"])]
    path = tmp_path / "ae.xpt"
    write_xpt(path, "AE", "不良事件", columns, CREATED)
    _data, meta = pyreadstat.read_xport(str(path))
    assert meta.column_labels == ["Adverse event term", "AESEV"]
    assert meta.file_label == "AE"


@pytest.mark.parametrize("items, expected", [
    ({"RACE": ["WHITE", "ASIAN"]}, ["RACE_WHITE", "RACE_ASIAN"]),
    ({"SX": ["A-B", "A_B", "A B"]}, ["SX_A_B", "SX_A_B_2", "SX_A_B_3"]),
    ({"SX": ["CAT"], "SX_CAT": None}, ["SX_CAT_2"]),  # an item already has the name
])
def test_indicator_names_are_unique_in_their_dataset(items, expected):
    from ecrf.crf import ItemDef, ItemType
    from ecrf.crf.definition import CodeListItem
    from ecrf.outputs.datasets.tables import Dataset, indicator_names

    defs = tuple(ItemDef(oid, oid, ItemType.MULTIPLE_CHOICE if codes else ItemType.TEXT,
                         "F", "G")
                 for oid, codes in items.items())
    codes = {("F", oid): tuple(CodeListItem(c, c) for c in found)
             for oid, found in items.items() if found}
    names = indicator_names(Dataset("F", "F", None, defs), codes)
    assert list(names.values()) == expected


# --- SPSS value labels ------------------------------------------------------------------------

def test_spss_value_labels_for_short_and_long_strings_and_numbers(tmp_path):
    columns = [
        Column("SEX", "Sex", "char", ["F", "M", None], {"F": "Female", "M": "Male"}),
        Column("AEOUT", "Outcome", "char", ["RECOVERED/RESOLVED", "FATAL", None],
               {"RECOVERED/RESOLVED": "Recovered/resolved", "FATAL": "Fatal (décès)",
                "NOT RECOVERED/NOT RESOLVED": "Not recovered"}),
        Column("RACE_ASIAN", "Race: Asian", "num", [1.0, 0.0, None], {1.0: "Yes", 0.0: "No"}),
    ]
    path = tmp_path / "labels.sav"
    write_sav(path, "Labels ≥ 中文", columns, CREATED)
    data, meta = pyreadstat.read_sav(str(path), output_format="dict")
    assert meta.variable_value_labels == {
        "SEX": {"F": "Female", "M": "Male"},
        "AEOUT": {"RECOVERED/RESOLVED": "Recovered/resolved", "FATAL": "Fatal (décès)",
                  "NOT RECOVERED/NOT RESOLVED": "Not recovered"},
        "RACE_ASIAN": {1.0: "Yes", 0.0: "No"}}
    assert meta.file_label == "Labels ≥ 中文"
    assert data["AEOUT"][:2] == ["RECOVERED/RESOLVED", "FATAL"]
    shown, _meta = pyreadstat.read_sav(str(path), apply_value_formats=True)
    assert list(shown["SEX"][:2]) == ["Female", "Male"]
    assert list(shown["AEOUT"][:2]) == ["Recovered/resolved", "Fatal (décès)"]
    assert list(shown["RACE_ASIAN"][:2]) == ["Yes", "No"]


# --- Dataset-JSON -----------------------------------------------------------------------------

def test_dataset_json_of_a_dataset_made_elsewhere(tmp_path):
    columns = [Column("USUBJID", "Unique Subject Identifier", "char", ["S-1", "S-2"]),
               Column("AESEQ", "Sequence Number", "num", [1.0, 2.0], data_type="integer"),
               Column("AESTDT", "Start date", "date", [dt.date(2025, 5, 10), None]),
               Column("AEDTM", "Reported", "datetime",
                      [dt.datetime(2025, 5, 10, 10, 15, tzinfo=dt.timezone(
                          dt.timedelta(hours=2))), None]),
               Column("LBSTRESN", "Numeric result ≥", "num", [1.25, None])]
    path = write_dataset_json(tmp_path / "ae.json", "AE", "Adverse Events", columns,
                              created=CREATED, study_oid="CLINX", keys=["USUBJID", "AESEQ"])
    document = json.loads(path.read_text("utf-8"))
    assert schema_errors(document) == []
    assert document["datasetJSONVersion"] == "1.1.0"
    assert document["datasetJSONCreationDateTime"] == "2026-01-05T09:30:00Z"
    assert document["itemGroupOID"] == "IG.AE" and document["records"] == 2
    assert [c["dataType"] for c in document["columns"]] == ["string", "integer", "date",
                                                           "datetime", "double"]
    assert document["columns"][0] == {"itemOID": "IT.AE.USUBJID", "name": "USUBJID",
                                      "label": "Unique Subject Identifier",
                                      "dataType": "string", "length": 3, "keySequence": 1}
    assert document["columns"][4]["label"] == "Numeric result ≥"
    assert document["rows"] == [["S-1", 1, "2025-05-10", "2025-05-10T08:15:00", 1.25],
                                ["S-2", 2, None, None, None]]


def test_dataset_json_refuses_columns_of_unequal_length():
    with pytest.raises(ValueError, match="same number of values"):
        dataset_json("X", "X", [Column("A", "A", "char", ["a"]), Column("B", "B", "num", [])])


def test_schema_refuses_what_the_writer_must_not_produce():
    document = dataset_json("X", "X", [Column("A", "A", "char", ["a"])], created=CREATED)
    assert schema_errors(document) == []
    assert schema_errors({**document, "datasetJSONVersion": "1.0.0"})
    assert schema_errors({k: v for k, v in document.items() if k != "itemGroupOID"})


# --- a study's export -------------------------------------------------------------------------

@pytest.fixture
def cast(app, make_study, make_user):
    return populate(make_study, make_user)


def test_study_export_value_labels_indicators_and_dataset_json(cast, tmp_path):
    scope = make_scope(db.session, cast.study)
    export_stats(db.session, scope, tmp_path / "sav", "sav")
    written = export_stats(db.session, scope, tmp_path / "xpt", "xpt")
    export_csv(db.session, scope, tmp_path / "csv")
    data, meta = pyreadstat.read_sav(str(tmp_path / "sav" / "DEMOG.sav"), output_format="dict")
    assert meta.variable_value_labels["SEX"] == {"F": "Female", "M": "Male"}
    assert meta.variable_value_labels["RACE_ASIAN"] == {1.0: "Yes", 0.0: "No"}
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    assert (labels["RACE_WHITE"], labels["RACE_OTHER"]) == ("Race: White", "Race: Other")
    assert "RACE" not in data
    assert (data["RACE_WHITE"], data["RACE_ASIAN"], data["RACE_OTHER"]) == (
        [1.0], [1.0], [0.0])
    assert data["ELIGIBLE"] == ["Y"]
    assert meta.variable_value_labels["ELIGIBLE"] == {"Y": "Yes", "N": "No"}
    xpt, xmeta = pyreadstat.read_xport(str(tmp_path / "xpt" / "DEMOG.xpt"),
                                       output_format="dict")
    assert [n for n in xmeta.column_names if n.startswith("RAC")] == [
        "RACWHITE", "RACASIAN", "RACOTHER"]
    assert (xpt["RACWHITE"], xpt["RACASIAN"], xpt["RACOTHER"]) == ([1.0], [1.0], [0.0])
    xlabels = dict(zip(xmeta.column_names, xmeta.column_labels, strict=True))
    assert xlabels["RACASIAN"] == "Race: Asian"
    with (tmp_path / "csv" / "DEMOG.csv").open(newline="", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle))
    assert row["RACE"] == '["WHITE","ASIAN"]'
    assert (row["RACE_WHITE"], row["RACE_ASIAN"], row["RACE_OTHER"]) == ("1", "1", "0")
    jsons = sorted(p for p in written if p.suffix == ".json")
    assert [p.stem for p in jsons] == sorted(p.stem for p in written if p.suffix == ".xpt")
    document = json.loads((tmp_path / "xpt" / "DEMOG.json").read_text("utf-8"))
    assert schema_errors(document) == []
    assert [c["name"] for c in document["columns"]] == xmeta.column_names
    assert document["rows"][0][xmeta.column_names.index("RACASIAN")] == 1
    assert document["studyOID"] == "CLINX"
    assert [c["name"] for c in document["columns"] if "keySequence" in c] == [
        "SUBJECT", "EVENT", "EVENTRPT"]


# --- both demo studies, every dataset -----------------------------------------------------------

def _number(value) -> float:
    """A value pyreadstat gives as a date, date-time or time, as SAS stores it (days or
    seconds since 1960-01-01, seconds since midnight); pandas gives the number."""
    if isinstance(value, dt.datetime):
        return (value - dt.datetime(1960, 1, 1)).total_seconds()
    if isinstance(value, dt.date):
        return float((value - dt.date(1960, 1, 1)).days)
    if isinstance(value, dt.time):
        return float(value.hour * 3600 + value.minute * 60 + value.second)
    return round(value, 9)


def _non_ascii(labels) -> bool:
    return any(label and not label.isascii() for label in labels)


def test_every_demo_dataset_opens_in_both_readers(runner, tmp_path):
    from sqlalchemy import select

    from ecrf.studies.models import Study

    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    relabelled = {}
    for oid in ("DEXAML03", "UCMSCEXO"):
        study = db.session.scalar(select(Study).where(Study.oid == oid))
        scope = make_scope(db.session, study)
        folder = tmp_path / oid
        csvs = [p for p in export_csv(db.session, scope, folder / "csv")
                if p.name != "data_dictionary.csv"]
        xpts = export_stats(db.session, scope, folder / "xpt", "xpt")
        savs = export_stats(db.session, scope, folder / "sav", "sav")
        assert len(csvs) == len(savs) == len(xpts) // 2 > 10
        for path in csvs:
            name = path.stem
            with path.open(newline="", encoding="utf-8") as handle:
                rows = len(list(csv.DictReader(handle)))
            sav, sav_meta = pyreadstat.read_sav(str(folder / "sav" / f"{name}.sav"),
                                                output_format="dict")
            assert sav_meta.number_rows == rows, name
            xpt, meta = pyreadstat.read_xport(str(folder / "xpt" / f"{name}.xpt"),
                                              output_format="dict")
            assert meta.number_rows == rows, name
            assert all(label.isascii() and len(label) <= 40 for label in meta.column_labels)
            assert meta.file_label.isascii()
            with pandas.read_sas(folder / "xpt" / f"{name}.xpt", format="xport",
                                 encoding="utf-8", iterator=True) as reader:
                assert reader.columns == meta.column_names, name
                assert reader.nobs == rows, name
                frame = reader.read() if rows else None
            for column in meta.column_names if rows else ():
                if meta.readstat_variable_types[column] == "string":
                    assert [v or "" for v in frame[column]] == xpt[column], (name, column)
                else:
                    assert [None if math.isnan(v) else round(v, 9) for v in frame[column]] \
                        == [None if v is None else _number(v) for v in xpt[column]], name
            document = json.loads((folder / "xpt" / f"{name}.json").read_text("utf-8"))
            assert schema_errors(document) == [], name
            assert document["records"] == rows and len(document["rows"]) == rows
            assert [c["name"] for c in document["columns"]] == meta.column_names
            full = [c["label"] for c in document["columns"]]
            if _non_ascii(full) or not document["label"].isascii():
                relabelled[f"{oid} {name}"] = {
                    c["name"]: (c["label"], short) for c, short in zip(
                        document["columns"], meta.column_labels, strict=True)
                    if not c["label"].isascii()}
            for column, values in sav.items():
                if column in sav_meta.variable_value_labels:
                    assert {v for v in values if v not in ("", None)} \
                        <= set(sav_meta.variable_value_labels[column]), (name, column)
    assert relabelled["DEXAML03 ELIG"]["IN03"] == (
        "First relapsed or refractory AML with ≥ 5% bone-marrow blasts or ≥ 1% blasts in "
        "peripheral blood", "First relapsed or refractory AML with >=")
    assert relabelled["UCMSCEXO VS"]["TEMP"] == ("Temperature (°C)", "Temperature (degC)")
    assert sorted(relabelled) == [
        "DEXAML03 ELIG", "DEXAML03 HSCT", "DEXAML03 RESP", "DEXAML03 VS",
        "UCMSCEXO COUNTS__CNT_DAY", "UCMSCEXO ELIG", "UCMSCEXO FN__FN_LINE",
        "UCMSCEXO INF", "UCMSCEXO VISIT", "UCMSCEXO VS"]
