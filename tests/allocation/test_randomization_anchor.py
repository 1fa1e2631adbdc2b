"""A randomization date is held only by a randomized subject: the earliest one in the study
is ``study.first.randomization``, from which DEXAML-03 computes the end of follow-up of
every subject. The entry screen, the JSON API and the ODM import refuse it for a subject
with no randomization in force (one rule, in data capture), and the study page says where
the study's first randomization comes from and the study end it gives."""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil

import pytest
from sqlalchemy import func, select

from ecrf.allocation import randomization
from ecrf.capture.models import FormInstance, ItemValue, Subject
from ecrf.core import PROJECT_ROOT
from ecrf.core.audit.models import AuditEvent
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.outputs.odm.clinical import export_odm_clinical
from ecrf.outputs.odm.importer.clinical import import_odm_clinical
from ecrf.outputs.rows import make_scope
from ecrf.studies import store as studies
from tests.allocation.test_randomization import (
    ACTOR,
    FIXTURES,
    add_subject,
    generate,
    record,
    site_today,
)
from tests.api import bearer, token_for
from tests.conftest import sign_in

REFUSAL = ("Date of randomisation cannot be recorded: subject {key} has no randomization in "
           "force.")


def stored(subject: Subject, form: str, item: str) -> str | None:
    return db.session.scalar(select(ItemValue.value).where(
        ItemValue.subject_id == subject.id, ItemValue.form_oid == form,
        ItemValue.item_oid == item))


def login(client, make_user, role, study, site=None):
    user = make_user(role=role, study=study, site=site)
    assert sign_in(client, user.username).status_code == 302
    return user


# --- DEXAML-03: the randomization writes the date ------------------------------------------


@pytest.fixture
def dexaml(app, make_site, make_study):
    """DEXAML-03 with TLS-001 randomized and TLS-002 screened but never randomized."""
    make_site("TLS", timezone="Europe/Paris")
    study = studies.load_folder(db.session, ACTOR, PROJECT_ROOT / "forms" / "dexaml03").study
    db.session.commit()
    make_study("DEXAML03", sites=("TLS",))
    generate(study, seed="2024", per_stratum=8)
    yesterday = site_today("TLS") - dt.timedelta(days=1)
    subjects = {}
    for key in ("TLS-001", "TLS-002"):
        subject = add_subject(study, key, site="TLS")
        record(subject, "SCREEN", "CONSENT", {"CONSDT": yesterday})
        record(subject, "SCREEN", "ELIG", {"ELIGIBLE": "Y"})
        record(subject, "SCREEN", "AMLHIST", {"DISSTAT": "RELAPSE"})
        record(subject, "SCREEN", "SALVAGE", {"SALVDT": yesterday, "SALVTYPE": "INTENSIVE",
                                              "HSCTPLAN": "N"}, complete=False)
        subjects[key] = subject
    randomization.randomize(db.session, ACTOR, subjects["TLS-001"])
    db.session.commit()
    return subjects


def rand_url(key: str) -> str:
    return f"/studies/DEXAML03/subjects/{key}/events/SCREEN/1/forms/RAND"


def test_the_entry_screen_refuses_a_date_for_a_subject_never_randomized(
        client, make_user, dexaml):
    login(client, make_user, "coordinator", "DEXAML03", site="TLS")
    response = client.post(rand_url("TLS-002"), data={
        "base_version": "", "action": "save", "RAND_MAIN-1-RANDDT": "2020-01-01"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert REFUSAL.format(key="TLS-002") in page
    assert "the earliest one in the study sets dates for every subject" in page
    assert stored(dexaml["TLS-002"], "RAND", "RANDDT") is None
    assert db.session.scalar(select(FormInstance).where(
        FormInstance.subject_id == dexaml["TLS-002"].id,
        FormInstance.form_oid == "RAND")) is None


def test_a_randomized_subject_keeps_its_date_and_the_system_message(client, make_user,
                                                                    dexaml):
    subject = dexaml["TLS-001"]
    day = stored(subject, "RAND", "RANDDT")
    version = db.session.scalar(select(FormInstance.version).where(
        FormInstance.subject_id == subject.id, FormInstance.form_oid == "RAND"))
    login(client, make_user, "coordinator", "DEXAML03", site="TLS")
    response = client.post(rand_url("TLS-001"), data={
        "base_version": str(version), "action": "save",
        "RAND_MAIN-1-RANDDT": "2020-01-01", "reason-RAND_MAIN-1-RANDDT": "typo"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Date of randomisation is set by the system" in page
    assert "has no randomization in force" not in page
    db.session.expire_all()
    assert stored(subject, "RAND", "RANDDT") == day


def test_the_api_refuses_it_with_a_422(client, make_user, dexaml):
    user = make_user(role="coordinator", study="DEXAML03", site="TLS")
    url = "/api/v1/studies/DEXAML03/subjects/TLS-002/events/SCREEN/1/forms/RAND"
    response = client.put(url, headers=bearer(token_for(user)), json={
        "version": None, "values": {"RAND_MAIN.1.RANDDT": "2020-01-01"}})
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    [messages] = body["errors"].values()
    assert messages[0].startswith(REFUSAL.format(key="TLS-002"))
    assert list(body["errors"]) == ["values.RAND_MAIN.1.RANDDT"]
    assert stored(dexaml["TLS-002"], "RAND", "RANDDT") is None


def test_the_odm_import_refuses_the_form_and_leaves_no_trace(dexaml, tmp_path):
    first = dexaml["TLS-001"]
    buffer = io.BytesIO()
    export_odm_clinical(db.session, make_scope(db.session, first.study), buffer)
    text = buffer.getvalue().decode()
    # TLS-001's data as if it were TLS-002's: a randomization date TLS-002 never had.
    start = text.index('<SubjectData SubjectKey="TLS-001"')
    end = text.index("</SubjectData>", start) + len("</SubjectData>")
    other = text[start:end].replace('SubjectKey="TLS-001"', 'SubjectKey="TLS-002"')
    assert "RANDDT" in other
    head = text[:text.index("<SubjectData ")]
    tail = text[text.rindex("</SubjectData>") + len("</SubjectData>"):]
    # With TLS-001's allocation (ecrf:Allocation), TLS-002 is refused whole: its slot is
    # taken by TLS-001.
    path = tmp_path / "other.xml"
    path.write_text(head + other + tail, encoding="utf-8")
    before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    with_allocation = import_odm_clinical(db.session, ACTOR, first.study, path)
    db.session.rollback()
    [outcome] = with_allocation.subjects
    assert outcome.error.startswith("allocation not restored: slot ")
    assert outcome.error.endswith("is already taken by another subject")
    assert not any(f.saved for f in outcome.forms) and outcome.state == "not_imported"
    # Without it, only the form holding the randomization date is refused.
    other = re.sub(r"<ecrf:Allocation.*?</ecrf:Allocation>", "", other, flags=re.S)
    path.write_text(head + other + tail, encoding="utf-8")
    report = import_odm_clinical(db.session, ACTOR, first.study, path)
    db.session.commit()
    [outcome] = report.subjects
    refused = {f.form: f for f in outcome.refused}
    assert set(refused) == {"RAND"}, outcome.lines()
    assert any(REFUSAL.format(key="TLS-002") in m for m in refused["RAND"].messages)
    db.session.expire_all()
    assert stored(dexaml["TLS-002"], "RAND", "RANDDT") is None
    assert db.session.scalar(select(FormInstance).where(
        FormInstance.subject_id == dexaml["TLS-002"].id,
        FormInstance.form_oid == "RAND")) is None
    rows = db.session.scalars(select(AuditEvent).where(
        AuditEvent.subject_key == "TLS-002", AuditEvent.path.like("%RAND%"))).all()
    assert rows == [], [(r.action, r.path) for r in rows]
    # All or nothing: the subject's other forms were not stored either.
    assert not report.committed
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == before
    # the randomized subject's own record re-imports cleanly (same date)
    assert stored(first, "RAND", "RANDDT")


def test_undoing_a_randomization_clears_its_date_and_the_first_date_moves_on(
        client, make_user, dexaml):
    admin = make_user("root", role="admin")
    subject = dexaml["TLS-001"]
    assert stored(subject, "RAND", "RANDDT")
    randomization.undo_randomization(db.session, Actor(admin.id, admin.username, role="admin"),
                                     subject, "wrong patient")
    db.session.commit()
    assert stored(subject, "RAND", "RANDDT") is None
    login(client, make_user, "data_manager", "DEXAML03")
    page = client.get("/studies/DEXAML03").get_data(as_text=True)
    assert "First randomisation" not in page and "not known yet" in page


def test_the_study_page_shows_the_first_randomization_and_the_study_end(
        client, make_user, dexaml):
    subject = dexaml["TLS-001"]
    day = dt.date.fromisoformat(stored(subject, "RAND", "RANDDT"))
    login(client, make_user, "data_manager", "DEXAML03")
    page = client.get("/studies/DEXAML03").get_data(as_text=True)
    assert "First randomisation" in page
    assert day.isoformat() in page and "TLS-001" in page
    assert "Randomisation form" in page and "Date of randomisation" in page
    end = day.replace(year=day.year + 5)  # add_months(…, 60)
    assert "Study end" in page and end.isoformat() in page
    assert "add_months(study.first.randomization, 60)" in page
    assert "no randomisation in force" not in page


def test_the_study_page_flags_a_first_date_held_by_a_subject_not_randomized(
        client, make_user, dexaml):
    # A date written outside data capture (an old import, a database repair).
    record(dexaml["TLS-002"], "SCREEN", "RAND", {"RANDDT": dt.date(2020, 1, 1)},
           complete=False)
    db.session.commit()
    login(client, make_user, "data_manager", "DEXAML03")
    page = client.get("/studies/DEXAML03").get_data(as_text=True)
    assert "2020-01-01" in page and "TLS-002" in page
    assert "no randomisation in force" in page
    assert "2025-01-01" in page  # the study end moved with it


# --- a study where the randomization date is typed in --------------------------------------


@pytest.fixture
def typed(app, make_study, tmp_path):
    """ALLOCR with the randomization date typed in (no date_item) beside another item."""
    folder = tmp_path / "allocr"
    shutil.copytree(FIXTURES / "allocation_randomized", folder)
    study_yaml = folder / "study.yaml"
    study_yaml.write_text(study_yaml.read_text().replace("  date_item: RAND.RANDDT\n", ""))
    (folder / "crfs" / "RAND.yaml").write_text(
        (folder / "crfs" / "RAND.yaml").read_text()
        + "      - oid: RANDBY\n        label: Randomized by\n        type: text\n"
          "        length: 40\n")
    make_study("ALLOCR", sites=("S01",))
    study = studies.load_folder(db.session, ACTOR, folder).study
    db.session.commit()
    subject = add_subject(study, "S01-001")
    record(subject, "SCREEN", "CONSENT", {"CONSDT": site_today("S01") - dt.timedelta(days=2)})
    db.session.commit()
    return subject


def test_a_typed_date_is_refused_and_the_other_entries_stay_on_the_page(
        client, make_user, typed):
    login(client, make_user, "coordinator", "ALLOCR", site="S01")
    url = "/studies/ALLOCR/subjects/S01-001/events/SCREEN/1/forms/RAND"
    day = (site_today("S01") - dt.timedelta(days=1)).isoformat()
    response = client.post(url, data={"base_version": "", "action": "save",
                                      "RAND_MAIN-1-RANDDT": day,
                                      "RAND_MAIN-1-RANDBY": "Dr Kept"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert ("Date of randomization cannot be recorded: subject S01-001 has no randomization "
            "in force.") in page
    assert 'value="Dr Kept"' in page and f'value="{day}"' in page
    assert stored(typed, "RAND", "RANDBY") is None
    # With an allocation in force the same entry is saved.
    typed.arm = "A"
    db.session.commit()
    response = client.post(url, data={"base_version": "", "action": "save",
                                      "RAND_MAIN-1-RANDDT": day,
                                      "RAND_MAIN-1-RANDBY": "Dr Kept"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    db.session.expire_all()
    assert stored(typed, "RAND", "RANDDT") == day


def test_allocation_items_are_declared_by_the_definition(app):
    dex = studies.load_folder(db.session, ACTOR, PROJECT_ROOT / "forms" / "dexaml03")
    definition = studies.definition_for(studies.latest_version(db.session, dex.study))
    assert definition.allocation_items == frozenset({("RAND", "RANDDT")})
    ucmsc = studies.load_folder(db.session, ACTOR, PROJECT_ROOT / "forms" / "ucmscexo")
    assert studies.definition_for(
        studies.latest_version(db.session, ucmsc.study)).allocation_items == frozenset()
