"""SDTM of both demo studies: every AE row and every lab value of the capture tables appears
exactly once, no cell holds a list, identifiers and sequences follow SDTM.

The demo loads once for the module (it takes about half a minute)."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
from sqlalchemy import and_, select

from ecrf import create_app
from ecrf.capture.models import FormInstance, GroupRow, ItemValue, Subject
from ecrf.core.extensions import db
from ecrf.outputs.datasets.sdtm import sdtm_package
from ecrf.outputs.rows import make_scope
from ecrf.studies import store as studies
from ecrf.studies.models import Study
from tests.conftest import BASE_CONFIG, PG_URL, _reset_postgres, audit_files

STUDIES = ("DEXAML03", "UCMSCEXO")


@pytest.fixture(scope="module")
def demo(database_url, tmp_path_factory):
    if PG_URL:
        url = database_url
    else:
        path = tmp_path_factory.mktemp("sdtm_demo") / "demo.db"
        shutil.copyfile(database_url.removeprefix("sqlite:///"), path)
        url = f"sqlite:///{path}"
    keys = tmp_path_factory.mktemp("sdtm_demo_keys")
    application = create_app({**BASE_CONFIG, "DATABASE_URL": url, **audit_files(keys)})
    with application.app_context():
        result = application.test_cli_runner().invoke(args=["demo"])
        assert result.exit_code == 0, result.output
        packages = {}
        for oid in STUDIES:
            study = db.session.scalar(select(Study).where(Study.oid == oid))
            packages[oid] = (study, sdtm_package(db.session, make_scope(db.session, study)))
        yield packages
        db.session.remove()
        db.engine.dispose()
    if PG_URL:
        _reset_postgres(url)


def _live_values(study: Study):
    """(subject key, form, item, value) of every stored value not in a removed row."""
    stmt = (select(Subject.subject_key, ItemValue.form_oid, ItemValue.item_oid, ItemValue.value)
            .join(FormInstance, FormInstance.id == ItemValue.form_instance_id)
            .join(Subject, Subject.id == FormInstance.subject_id)
            .outerjoin(GroupRow, and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                                      GroupRow.group_oid == ItemValue.group_oid,
                                      GroupRow.row == ItemValue.row))
            .where(Subject.study_id == study.id, GroupRow.removed_at.is_(None),
                   ItemValue.value.is_not(None), ItemValue.value != ""))
    return list(db.session.execute(stmt))


@pytest.mark.parametrize("oid", STUDIES)
def test_every_ae_row_appears_once(demo, oid):
    study, package = demo[oid]
    definition = studies.definition_for(studies.latest_version(db.session, study))
    log = definition.adverse_events
    expected = Counter((f"{oid}-{key}", value) for key, form, item, value in _live_values(study)
                       if form == log.form and item == log.term)
    got = Counter((r["USUBJID"], r["AETERM"]) for r in package["AE"].rows)
    assert got == expected and sum(expected.values()) > 0
    assert all(r["AEREL"] in ("RELATED", "NOT RELATED") for r in package["AE"].rows)
    causality = set(log.causality.values())
    answered = sum(1 for _k, form, item, _v in _live_values(study)
                   if form == log.form and item in causality)
    assert len([r for r in package["SUPPAE"].rows if r["QNAM"].startswith("AEREL")]) == answered


@pytest.mark.parametrize("oid", STUDIES)
def test_every_lab_value_appears_once(demo, oid):
    study, package = demo[oid]
    definition = studies.definition_for(studies.latest_version(db.session, study))
    expected: Counter = Counter()
    for key, form_oid, item_oid, value in _live_values(study):
        form = definition.forms.get(form_oid)
        item = next((i for i in form.items if i.oid == item_oid), None) if form else None
        if item is None or not (item.lab or (item.sdtm or "").upper() == "LB.LBORRES"):
            continue
        code = item.lab.test if item.lab else item.oid
        expected[(f"{oid}-{key}", code, value)] += 1
    got = Counter((r["USUBJID"], r["LBTESTCD"], r["LBORRES"]) for r in package["LB"].rows)
    assert got == expected and sum(expected.values()) > 0
    graded = [r for r in package["LB"].rows if r["LBTOXGR"] is not None]
    assert graded and all(r["VISITNUM"] is not None or r["VISIT"] is None for r in graded)


@pytest.mark.parametrize("oid", STUDIES)
def test_identifiers_sequences_and_cells(demo, oid):
    study, package = demo[oid]
    subjects = {r["USUBJID"]: r for r in package["DM"].rows}
    assert len(subjects) == len(package["DM"].rows)
    assert all(u == f"{oid}-{r['SUBJID']}" for u, r in subjects.items())
    for name, data in package.items():
        assert data.columns == tuple(v.name for v in data.variables)
        seq = f"{name}SEQ"
        if seq in data.columns and "USUBJID" in data.columns:
            keys = [(r["USUBJID"], r[seq]) for r in data.rows]
            assert len(keys) == len(set(keys)), name
        for row in data.rows:
            assert tuple(row) == data.columns
            assert not any(isinstance(v, list | tuple | set | frozenset | dict)
                           or isinstance(v, str) and v.startswith("[")
                           for v in row.values()), (name, row)
            if "USUBJID" in row:
                assert row["USUBJID"] in subjects, name
            for column, value in row.items():
                if column.endswith("DY") and column != "VISITDY" and value is not None:
                    assert value != 0, (name, column)
    for name, data in package.items():
        if name.startswith("SUPP"):
            keys = [(r["USUBJID"], r["IDVARVAL"], r["QNAM"]) for r in data.rows]
            assert len(keys) == len(set(keys)), name
            parents = {(r["USUBJID"], str(r.get(f"{name[4:]}SEQ") or ""))
                       for r in package[name[4:]].rows}
            assert {(r["USUBJID"], r["IDVARVAL"]) for r in data.rows} <= parents, name
    for name in ("DM", "DS", "AE", "EX", "LB", "VS", "MH", "RS", "TA", "TE", "TV", "TI", "TS"):
        assert package[name].rows, name


def test_dm_arms_and_disposition(demo):
    _study, dexa = demo["DEXAML03"]
    dm = {r["SUBJID"]: r for r in dexa["DM"].rows}
    failures = [r for r in dm.values() if r["ARMCD"] == "SCRNFAIL"]
    assert len(failures) == 1 and failures[0]["ACTARMCD"] == "SCRNFAIL"
    disposition = {(r["USUBJID"], r["DSDECOD"]) for r in dexa["DS"].rows}
    assert (failures[0]["USUBJID"], "SCREEN FAILURE") in disposition
    for _study, package in demo.values():
        events = [r for r in package["DS"].rows if r["DSCAT"] == "DISPOSITION EVENT"]
        assert events and all(r["DSSTDTC"] for r in events)
        consented = {r["USUBJID"] for r in package["DS"].rows
                     if r["DSDECOD"] == "INFORMED CONSENT OBTAINED"}
        assert consented == {r["USUBJID"] for r in package["DM"].rows if r["RFICDTC"]}
    _study, exo = demo["UCMSCEXO"]
    assert {r["ARMCD"] for r in exo["DM"].rows} <= {"DL1", "DL2", "DL3", "SCRNFAIL", "NOTASSGN"}
    assert {r["ARMCD"] for r in exo["TA"].rows} == {"DL1", "DL2", "DL3"}
    for r in exo["DM"].rows:
        assert r["SEX"] in ("M", "F", "U", None) and r["DTHFL"] in ("Y", None)
        assert (r["DTHFL"] == "Y") == (r["DTHDTC"] is not None)
    infusions = [r for r in exo["EX"].rows if r.get("EXDOSTXT")]
    assert infusions and all(r["EXSTDTC"] for r in infusions)
    arms = {r["USUBJID"]: r["ARMCD"] for r in exo["DM"].rows}
    assert all(arms[r["USUBJID"]] == f"DL{r['EXDOSTXT']}" for r in infusions)
    for _study, package in demo.values():
        for r in package["EX"].rows:
            assert r["EXTRT"] and (r["EXSTDTC"] or r["EXENDTC"] or r["EXDOSE"] is not None)
        first = {}
        for r in package["EX"].rows:
            if r["EXSTDTC"]:
                first[r["USUBJID"]] = min(first.get(r["USUBJID"], "9999"), r["EXSTDTC"])
        assert first == {r["USUBJID"]: r["RFSTDTC"] for r in package["DM"].rows
                         if r["RFSTDTC"]}
