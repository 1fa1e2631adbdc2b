"""Values the system writes stay the system's, and a stratification factor corrected after
randomization keeps the allocation and the treatment branch (DEXAML-03 as defined in
forms/, through the app)."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from sqlalchemy import select

from ecrf.allocation import randomization
from ecrf.allocation.models import Allocation
from ecrf.capture.models import FormInstance, ItemValue, ScheduledVisit, Subject
from ecrf.core import PROJECT_ROOT
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.outputs.odm.clinical import export_odm_clinical
from ecrf.outputs.odm.importer.clinical import import_odm_clinical
from ecrf.outputs.rows import make_scope
from ecrf.review.models import Query
from ecrf.studies import store as studies
from tests.allocation.test_randomization import ACTOR, add_subject, generate, record, site_today
from tests.conftest import sign_in

FORM_URL = "/studies/DEXAML03/subjects/TLS-001/events/SCREEN/1/forms/{form}"
STRATA_URL = "/studies/DEXAML03/subjects/TLS-001/randomization/strata"


@pytest.fixture
def randomized(app, make_site, make_study):
    """TLS-001 randomized in stratum salvage = INTENSIVE, disease status = RELAPSE."""
    make_site("TLS", timezone="Europe/Paris")
    study = studies.load_folder(db.session, ACTOR, PROJECT_ROOT / "forms" / "dexaml03").study
    db.session.commit()
    make_study("DEXAML03", sites=("TLS",))
    generate(study, seed="2024", per_stratum=8)
    subject = add_subject(study, "TLS-001", site="TLS")
    yesterday = site_today("TLS") - dt.timedelta(days=1)
    record(subject, "SCREEN", "CONSENT", {"CONSDT": yesterday})
    record(subject, "SCREEN", "ELIG", {"ELIGIBLE": "Y"})
    record(subject, "SCREEN", "AMLHIST", {"DISSTAT": "RELAPSE"})
    record(subject, "SCREEN", "SALVAGE", {"SALVDT": yesterday, "SALVTYPE": "INTENSIVE",
                                          "HSCTPLAN": "N"}, complete=False)
    randomization.randomize(db.session, ACTOR, subject)
    db.session.commit()
    return subject


def login(client, make_user, role, site=None):
    user = make_user(role=role, study="DEXAML03", site=site)
    assert sign_in(client, user.username).status_code == 302
    return user


def stored(subject: Subject, form: str, item: str) -> str | None:
    return db.session.scalar(select(ItemValue.value).where(
        ItemValue.subject_id == subject.id, ItemValue.form_oid == form,
        ItemValue.item_oid == item))


def version(subject: Subject, form: str) -> int:
    return db.session.scalar(select(FormInstance.version).where(
        FormInstance.subject_id == subject.id, FormInstance.form_oid == form))


def branch(subject: Subject) -> dict[str, str]:
    return dict(db.session.execute(select(ScheduledVisit.event_oid, ScheduledVisit.status)
                                   .where(ScheduledVisit.subject_id == subject.id,
                                          ScheduledVisit.event_oid.in_(("INDUCT", "AZA_C1"))))
                .all())


def salvage_post(subject: Subject, salvtype: str, **extra) -> dict:
    return {"base_version": str(version(subject, "SALVAGE")), "action": "save",
            "SALVAGE_MAIN-1-SALVDT": stored(subject, "SALVAGE", "SALVDT"),
            "SALVAGE_MAIN-1-SALVTYPE": salvtype, "SALVAGE_MAIN-1-HSCTPLAN": "N",
            "reason-SALVAGE_MAIN-1-SALVTYPE": "wrong box ticked", **extra}


# --- the randomization's own values ---------------------------------------------------------


def test_the_randomization_number_is_refused_to_a_coordinator_and_stays(
        client, make_user, randomized):
    number, day = stored(randomized, "RAND", "RANDNO"), stored(randomized, "RAND", "RANDDT")
    assert number.startswith("R0") and day
    login(client, make_user, "coordinator", site="TLS")
    response = client.post(FORM_URL.format(form="RAND"), data={
        "base_version": str(version(randomized, "RAND")), "action": "save",
        "RAND_MAIN-1-RANDNO": "R999999", "reason-RAND_MAIN-1-RANDNO": "typo",
        "RAND_MAIN-1-RANDDT": "2020-01-01", "reason-RAND_MAIN-1-RANDDT": "typo"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Randomisation number is set by the system (randomization) and cannot be changed " \
           f"here; it stays {number}." in page
    assert "Date of randomisation is set by the system" in page
    db.session.expire_all()
    assert stored(randomized, "RAND", "RANDNO") == number
    assert stored(randomized, "RAND", "RANDDT") == day
    assert not db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "item.changed", AuditEvent.path.like("%/RANDNO")))


def test_the_arm_cannot_be_posted(client, make_user, randomized):
    arm = randomized.arm
    other = "CTRL" if arm == "DEX" else "DEX"
    login(client, make_user, "coordinator", site="TLS")
    client.post(FORM_URL.format(form="RAND"), data={
        "base_version": str(version(randomized, "RAND")), "action": "save",
        "RAND_MAIN-1-RANDARM": other, "reason-RAND_MAIN-1-RANDARM": "swap"})
    db.session.expire_all()
    assert db.session.get(Subject, randomized.id).arm == arm
    assert stored(randomized, "RAND", "RANDARM") in (None, arm)


def test_the_entry_page_shows_system_values_read_only(client, make_user, randomized):
    number = stored(randomized, "RAND", "RANDNO")
    login(client, make_user, "coordinator", site="TLS")
    page = client.get(FORM_URL.format(form="RAND")).get_data(as_text=True)
    assert "set by the system" in page and number in page
    assert 'name="RAND_MAIN-1-RANDNO"' not in page and 'name="RAND_MAIN-1-RANDDT"' not in page
    assert 'name="reason-RAND_MAIN-1-RANDNO"' not in page


def test_a_blank_save_of_the_randomization_form_keeps_the_system_values(
        client, make_user, randomized):
    number = stored(randomized, "RAND", "RANDNO")
    login(client, make_user, "coordinator", site="TLS")
    response = client.post(FORM_URL.format(form="RAND"), data={
        "base_version": str(version(randomized, "RAND")), "action": "save"})
    assert response.status_code == 302
    db.session.expire_all()
    assert stored(randomized, "RAND", "RANDNO") == number


def test_exports_carry_the_system_number(client, make_user, randomized):
    number = stored(randomized, "RAND", "RANDNO")
    login(client, make_user, "coordinator", site="TLS")
    client.post(FORM_URL.format(form="RAND"), data={
        "base_version": str(version(randomized, "RAND")), "action": "save",
        "RAND_MAIN-1-RANDNO": "R999999", "reason-RAND_MAIN-1-RANDNO": "typo"})
    buffer = io.BytesIO()
    export_odm_clinical(db.session, make_scope(db.session, randomized.study), buffer)
    data = buffer.getvalue().decode()
    assert f'ItemOID="RAND.RANDNO" Value="{number}"' in data or \
        f'Value="{number}"' in data
    assert "R999999" not in data


def test_an_imported_file_never_overwrites_the_system_number(randomized, tmp_path):
    number = stored(randomized, "RAND", "RANDNO")
    buffer = io.BytesIO()
    export_odm_clinical(db.session, make_scope(db.session, randomized.study), buffer)
    text = buffer.getvalue().decode().replace(f'Value="{number}"', 'Value="R999999"')
    assert "R999999" in text
    path = tmp_path / "edited.xml"
    path.write_text(text, encoding="utf-8")
    report = import_odm_clinical(db.session, ACTOR, randomized.study, path)
    db.session.commit()
    assert report.refused_forms == 0
    db.session.expire_all()
    assert stored(randomized, "RAND", "RANDNO") == number


# --- stratification factors after randomization ---------------------------------------------


def test_a_coordinator_cannot_change_a_stratum_after_randomization(client, make_user,
                                                                   randomized):
    login(client, make_user, "coordinator", site="TLS")
    new_day = (site_today("TLS") - dt.timedelta(days=2)).isoformat()
    response = client.post(FORM_URL.format(form="SALVAGE"), data=salvage_post(
        randomized, "AZA", **{"SALVAGE_MAIN-1-SALVDT": new_day,
                              "reason-SALVAGE_MAIN-1-SALVDT": "date of the meeting"}))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert ("Planned salvage therapy (stratification factor) was used to randomize this "
            "subject (stratum salvage): after randomization only a data manager can "
            "correct it.") in page
    assert new_day in page  # the other entry stays on the page
    db.session.expire_all()
    assert stored(randomized, "SALVAGE", "SALVTYPE") == "INTENSIVE"
    assert client.get(STRATA_URL).status_code in (403, 404)


def test_a_data_manager_corrects_a_stratum_and_the_allocation_and_branch_stay(
        client, make_user, randomized):
    arm = randomized.arm
    allocation = db.session.scalar(select(Allocation).where(
        Allocation.subject_id == randomized.id))
    assert branch(randomized)["AZA_C1"] == "not_applicable"
    assert branch(randomized)["INDUCT"] != "not_applicable"
    login(client, make_user, "data_manager")
    subject_page = client.get("/studies/DEXAML03/subjects/TLS-001").get_data(as_text=True)
    assert f'href="{STRATA_URL}"' in subject_page
    page = client.get(STRATA_URL).get_data(as_text=True)
    assert "Used at randomization" in page and "Intensive chemotherapy" in page
    response = client.post(STRATA_URL, data={"stratum": "salvage", "value": "AZA",
                                              "reason": ""})
    assert response.status_code == 422 and "Give the reason" in response.get_data(as_text=True)
    response = client.post(STRATA_URL, data={"stratum": "salvage", "value": "INTENSIVE",
                                              "reason": "checked"})
    assert response.status_code == 422 and "is already recorded as Intensive chemotherapy" \
        in response.get_data(as_text=True)
    response = client.post(STRATA_URL, data={"stratum": "salvage", "value": "AZA",
                                              "reason": "source shows azacitidine"})
    assert response.status_code == 302
    db.session.expire_all()
    subject = db.session.get(Subject, randomized.id)
    assert stored(subject, "SALVAGE", "SALVTYPE") == "AZA"
    # The allocation, the arm and the strata it was made in do not move ...
    assert subject.arm == arm
    kept = db.session.get(Allocation, allocation.id)
    assert kept.undone_at is None and json.loads(kept.strata)["salvage"] == "INTENSIVE"
    assert json.loads(subject.strata)["salvage"] == "INTENSIVE"
    # ... nor does the treatment branch.
    assert branch(subject)["AZA_C1"] == "not_applicable"
    assert branch(subject)["INDUCT"] != "not_applicable"
    # The mis-stratification is recorded against the allocation and queried.
    row = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "allocation.stratum_corrected"))
    details = json.loads(row.details)
    assert details["used"] == "INTENSIVE" and details["recorded"] == "AZA"
    assert details["allocation_id"] == allocation.id
    query = db.session.scalar(select(Query).where(Query.subject_id == subject.id))
    assert query.status == "open" and query.item_oid == "SALVTYPE"
    assert "Mis-stratification" in query.messages[0].text
    assert "Intensive chemotherapy (amsacrine-cytarabine) (INTENSIVE)" in query.messages[0].text
    page = client.get(STRATA_URL).get_data(as_text=True)
    assert "mis-stratified" in page and "Azacitidine" in page
    # The randomization form shows the stratum used, not the corrected factor.
    page = client.get(FORM_URL.format(form="RAND")).get_data(as_text=True)
    strsalv = page[page.index('id="wrap-RAND_MAIN-1-STRSALV"'):][:800]
    assert "INTENSIVE" in strsalv and "AZA" not in strsalv


def test_the_randomization_page_shows_used_and_recorded_strata(client, make_user,
                                                               randomized):
    login(client, make_user, "coordinator", site="TLS")
    page = client.get("/studies/DEXAML03/subjects/TLS-001/randomize").get_data(as_text=True)
    assert "Stratification factors" in page and "Used at randomization" in page
    assert "Recorded now" in page and "First relapse" in page


# --- UCMSC-Exo: the dose level is the escalation's ------------------------------------------

DOSE_URL = "/studies/UCMSCEXO/subjects/WUH-001/events/SCREEN/1/forms/DOSELVL"


@pytest.fixture
def assigned(app, make_site, make_study):
    """WUH-001 given dose level 2 by the escalation, its screening event started."""
    make_site("WUH", timezone="Asia/Shanghai")
    study = studies.load_folder(db.session, ACTOR, PROJECT_ROOT / "forms" / "ucmscexo").study
    db.session.commit()
    make_study("UCMSCEXO", sites=("WUH",))
    subject = add_subject(study, "WUH-001", site="WUH")
    record(subject, "SCREEN", "ELIG", {"ELIGIBLE": "Y"})
    subject.dose_level = 2
    db.session.commit()
    return subject


def test_the_dose_level_form_shows_the_assigned_level_and_fills_it_in(client, make_user,
                                                                      assigned):
    login_at = make_user(role="coordinator", study="UCMSCEXO", site="WUH")
    assert sign_in(client, login_at.username).status_code == 302
    page = client.get(DOSE_URL).get_data(as_text=True)
    assert "set by the system" in page and "Dose level 2" in page
    assert 'name="DOSELVL_MAIN-1-DOSELVL"' not in page
    day = site_today("WUH").isoformat()
    other = {"action": "save", "base_version": "", "DOSELVL_MAIN-1-DLASGDT": day,
             "DOSELVL_MAIN-1-COHORT": "2", "DOSELVL_MAIN-1-SRCCONF": "Y"}
    response = client.post(DOSE_URL, data={**other, "DOSELVL_MAIN-1-DOSELVL": "3"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Assigned dose level is set by the system (dose-level assignment) and cannot be " \
           "changed here; it stays Dose level 2." in page
    assert stored(assigned, "DOSELVL", "DOSELVL") is None
    assert client.post(DOSE_URL, data=other).status_code == 302
    db.session.expire_all()
    assert stored(assigned, "DOSELVL", "DOSELVL") == "2"
    assert stored(assigned, "DOSELVL", "COHORT") == "2"


def test_a_correction_on_frozen_data_is_refused_with_the_reason(client, make_user,
                                                                 randomized):
    randomized.study.status = "frozen"
    db.session.commit()
    login(client, make_user, "data_manager")
    response = client.post(STRATA_URL, data={"stratum": "salvage", "value": "AZA",
                                              "reason": "source shows azacitidine"})
    assert response.status_code == 422
    assert "frozen" in response.get_data(as_text=True)
    db.session.expire_all()
    assert stored(randomized, "SALVAGE", "SALVTYPE") == "INTENSIVE"
