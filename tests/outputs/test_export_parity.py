"""Export parity: every stored (live) value appears, unchanged, in every export format:
CSV, SAS XPORT and SPSS (read back with pyreadstat), the ODM snapshot, and the casebook.
A multiple-choice value is its list in the CSV and its 0/1 indicators in CSV, XPT, SAV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pyreadstat
import pytest
from sqlalchemy import and_, select

from ecrf.capture.models import EventInstance, FormInstance, GroupRow, ItemValue, Subject
from ecrf.core.extensions import db
from ecrf.crf.values import display, from_canonical
from ecrf.outputs.datasets.flat import export_csv
from ecrf.outputs.datasets.stats import export_stats
from ecrf.outputs.datasets.tables import indicator_key, indicator_name, item_codes, xpt_names
from ecrf.outputs.odm.clinical import export_odm_clinical, odm_value
from ecrf.outputs.pdf.casebook import casebook_pdf
from ecrf.outputs.rows import definitions_newest_first, form_layouts, make_scope
from ecrf.studies.store import definition_for
from tests.outputs import pdf_text
from tests.outputs.clinical_setup import populate
from tests.outputs.test_odm_clinical import item_values


@pytest.fixture
def cast(app, make_study, make_user):
    return populate(make_study, make_user)


def stored(study) -> list[tuple]:
    rows = db.session.execute(
        select(Subject, EventInstance.event_oid, EventInstance.repeat, ItemValue)
        .join(FormInstance, FormInstance.id == ItemValue.form_instance_id)
        .join(EventInstance, EventInstance.id == FormInstance.event_instance_id)
        .join(Subject, Subject.id == ItemValue.subject_id)
        .outerjoin(GroupRow, and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                                  GroupRow.group_oid == ItemValue.group_oid,
                                  GroupRow.row == ItemValue.row))
        .where(Subject.study_id == study.id, ItemValue.value.is_not(None),
               GroupRow.removed_at.is_(None))).all()
    assert len(rows) > 40
    return rows


def _dataset(definition, form, group):
    repeating = definition.form(form).group(group).repeating
    return f"{form}__{group}" if repeating else form


def _typed(value):
    if isinstance(value, Decimal | int):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def test_every_stored_value_is_in_every_export(cast, tmp_path):
    scope = make_scope(db.session, cast.study)
    values = stored(cast.study)
    definition = definition_for(cast.subject.study_version)
    export_csv(db.session, scope, tmp_path / "csv")
    export_stats(db.session, scope, tmp_path / "xpt", "xpt")
    export_stats(db.session, scope, tmp_path / "sav", "sav")
    definitions = definitions_newest_first(db.session, cast.study)[1]
    codes = item_codes(definitions, form_layouts(definitions))
    names = xpt_names(form_layouts(definitions), codes)
    buffer = io.BytesIO()
    export_odm_clinical(db.session, scope, buffer)
    odm = item_values(buffer.getvalue())
    books = {}
    for subject in (cast.subject, cast.other):
        path = tmp_path / f"{subject.subject_key}.pdf"
        casebook_pdf(db.session, subject, generated_by="parity", target=path)
        # Without white space: a long value may wrap anywhere in its table cell.
        books[subject.subject_key] = "".join(pdf_text(path).split())

    csv_rows, xpt_rows, sav_rows = {}, {}, {}
    checked = 0
    for subject, event, repeat, iv in values:
        item = definition.item(iv.form_oid, iv.item_oid)
        name = _dataset(definition, iv.form_oid, iv.group_oid)
        repeating = name != iv.form_oid
        if name not in csv_rows:
            with (tmp_path / "csv" / f"{name}.csv").open(newline="", encoding="utf-8") as f:
                csv_rows[name] = list(csv.DictReader(f))
            xpt_rows[name] = pyreadstat.read_xport(str(tmp_path / "xpt" / f"{name}.xpt"),
                                                   output_format="dict")[0]
            sav_rows[name] = pyreadstat.read_sav(str(tmp_path / "sav" / f"{name}.sav"),
                                                 output_format="dict")[0]
        index = next(n for n, r in enumerate(csv_rows[name])
                     if r["subject"] == subject.subject_key and r["event"] == event
                     and r["event_repeat"] == str(repeat)
                     and (not repeating or r["group_repeat"] == str(iv.row)))
        where = f"{subject.subject_key} {event}[{repeat}] {iv.form_oid}.{iv.item_oid}[{iv.row}]"
        assert csv_rows[name][index][iv.item_oid] == iv.value, where
        typed = from_canonical(item, iv.value)
        expected = _typed(typed) if isinstance(typed, Decimal | int | dt.date | dt.time) \
            else iv.value
        if item.type.value == "multiple_choice":
            ticked = from_canonical(item, iv.value)
            assert ticked, where
            for code in codes[(iv.form_oid, iv.item_oid)]:
                flag = 1 if code.code in ticked else 0
                xpt_name = names[name][1][indicator_key(iv.item_oid, code.code)]
                assert xpt_rows[name][xpt_name][index] == flag, where
                assert sav_rows[name][indicator_name(iv.item_oid, code.code)][index] == flag
                assert csv_rows[name][index][indicator_name(iv.item_oid, code.code)] \
                    == str(flag), where
        else:
            xpt_name = names[name][1][iv.item_oid]
            assert xpt_rows[name][xpt_name][index] == expected, where
            assert sav_rows[name][iv.item_oid][index] == expected, where
        key = (subject.subject_key, f"SE.{event}",
               str(repeat) if event == "CYCLE" else None, f"F.{iv.form_oid}",
               f"IG.{iv.form_oid}.{iv.group_oid}", str(iv.row) if repeating else None,
               f"I.{iv.form_oid}.{iv.item_oid}")
        if item.type.value == "multiple_choice":
            # One boolean ItemData per code of the item's list.
            codes = definition.choices_of(iv.form_oid, iv.item_oid).codes
            selected = {c for c in codes if odm.pop(key[:-1] + (f"{key[-1]}.{c}",)) == "1"}
            assert selected == set(json.loads(iv.value)), where
            odm[key] = iv.value
        else:
            kind = item.result_type or item.type.value
            assert odm[key] == odm_value(kind, iv.value), where
        shown = display(item, iv.value, definition.choices_of(iv.form_oid, iv.item_oid))
        shown = shown.removesuffix(f" {item.unit}") if item.unit else shown
        assert "".join(shown.split()) in books[subject.subject_key], where
        checked += 1
    assert checked == len(values) == len(odm)
