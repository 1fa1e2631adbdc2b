"""The clinical export test study (tests/fixtures/odm_clinical/study) with two subjects
whose data exercises every export: every item type, a repeating lab group graded by
CTCAE, adverse events annotated with SDTM variables, a changed value with its reason, a
removed row, an answered query, SDV marks, a valid and a broken signature, and text with
HTML/script payloads."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from ecrf.accounts.models import User
from ecrf.capture import operations as capture
from ecrf.capture import subjects
from ecrf.capture.models import FormInstance, Subject
from ecrf.capture.support import event_instance
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.review import queries, sdv, signatures
from ecrf.studies import store as studies
from ecrf.studies.models import Site, Study
from tests.conftest import PASSWORD

STUDY_FOLDER = Path(__file__).resolve().parents[1] / "fixtures" / "odm_clinical" / "study"
LOADER = Actor(user_id=None, username="loader", role="data_manager")
TODAY = dt.date(2025, 6, 1)
XSS_TEXT = '<script>alert(1)</script> & <img src=x onerror="fetch(\'http://evil\')">'
XSS_QUERY = "Is this right? <img src=x onerror=alert(2)> <b>bold</b>"


@dataclass
class Cast:
    study: Study
    subject: Subject
    other: Subject
    crc: Actor
    inv: Actor
    monitor: Actor
    inv_user: User


def actor(user: User, role: str, site: str | None = "S01") -> Actor:
    return Actor(user_id=user.id, username=user.username, role=role, site_code=site,
                 ip_address="127.0.0.1")


def load_study(make_study, sites=("S01", "S02")) -> Study:
    study = make_study("CLINX", sites=sites)
    studies.load_folder(db.session, LOADER, STUDY_FOLDER)
    db.session.commit()
    return study


def enrol(study: Study, key: str, site: str = "S01", on: dt.date = dt.date(2025, 5, 1)):
    site_row = db.session.scalar(select(Site).where(Site.code == site))
    subject = subjects.enrol_subject(db.session, LOADER, study, site_row, key, on, today=TODAY)
    db.session.commit()
    return subject


def form_of(subject: Subject, form: str, event: str, repeat: int = 1) -> FormInstance | None:
    found = event_instance(db.session, subject, event, repeat)
    if found is None:
        return None
    return db.session.scalar(select(FormInstance).where(
        FormInstance.event_instance_id == found.id, FormInstance.form_oid == form))


def save(who: Actor, subject: Subject, event: str, form: str, values: dict, *,
         repeat: int = 1, complete: bool = False, reasons: dict | None = None,
         removed: dict | None = None, day: dt.date | None = None):
    if event_instance(db.session, subject, event, repeat) is None:
        capture.open_event(db.session, who, subject, event, repeat,
                           day or dt.date(2025, 5, 2) if event != "LOGS" else day,
                           today=TODAY)
    existing = form_of(subject, form, event, repeat)
    if form == "DEMOG":
        # A partial save re-submits kept values, calculated ones included: blank it so
        # that it is recalculated rather than refused.
        values = {**values, ("DEMOG_MAIN", 1, "BMI"): None}
    submission = capture.Submission(values=values, reasons=reasons or {},
                                    removed_rows=removed or {}, partial=True)
    result = capture.save_form(db.session, who, subject, event, repeat, form, submission,
                               base_version=existing.version if existing else None,
                               complete=complete, today=TODAY)
    assert result.saved, (result.errors, result.form_errors, result.blockers)
    db.session.commit()
    return result


DEMOG = {"BRTHDTC": "1970-03", "SEX": "F", "WEIGHT": "72.5", "HEIGHT": "168",
         "RACE": ["ASIAN", "WHITE"], "VISITTM": "09:30", "SAMPLEDTM": "2025-05-02 10:15",
         "ELIGIBLE": "Y", "INITIALS": "ABC", "NOTES": XSS_TEXT}
LAB_DAYS = [("2025-05-08", "0.40", "20"), ("2025-05-09", "1.20", "60"),
            ("2025-05-10", "2.50", "180")]
AES = [
    {"AETERM": "Febrile neutropenia", "AESTDTC": "2025-05-10", "AEENDTC": "2025-05-14",
     "AETOXGR": "3", "AESER": "Y", "AESDTH": "N", "AESLIFE": "N", "AESHOSP": "Y",
     "AESDISAB": "N", "AESCONG": "N", "AESMIE": "N", "AERELX": "possible",
     "AEACN": "DOSE NOT CHANGED", "AEOUT": "RECOVERED/RESOLVED"},
    {"AETERM": "Nausea", "AESTDTC": "2025-05", "AETOXGR": "1", "AESER": "N",
     "AERELX": "unrelated", "AEACN": "NOT APPLICABLE", "AEOUT": "NOT RECOVERED/NOT RESOLVED"},
    {"AETERM": "Entered by mistake", "AESTDTC": "2025-05-11", "AETOXGR": "1", "AESER": "N"},
]


def populate(make_study, make_user) -> Cast:
    study = load_study(make_study)
    crc_user = make_user("crc1", role="coordinator", study="CLINX", site="S01",
                         full_name="Carla Coordinator")
    inv_user = make_user("inv1", role="investigator", study="CLINX", site="S01",
                         full_name="Dr Ines Martin")
    mon_user = make_user("mon1", role="monitor", study="CLINX", full_name="Max Monitor")
    crc2_user = make_user("crc2", role="coordinator", study="CLINX", site="S02",
                          full_name="Cole Coordinator")
    crc, inv = actor(crc_user, "coordinator"), actor(inv_user, "investigator")
    monitor = actor(mon_user, "monitor", None)
    subject = enrol(study, "S01-001")
    other = enrol(study, "S02-001", "S02")

    save(crc, subject, "SCREEN", "CONSENT", {("CONSENT_MAIN", 1, "CONSDT"): "2025-05-02"},
         complete=True)
    save(crc, subject, "SCREEN", "DEMOG", {("DEMOG_MAIN", 1, k): v for k, v in DEMOG.items()},
         complete=True)
    save(crc, subject, "SCREEN", "DEMOG", {("DEMOG_MAIN", 1, "WEIGHT"): "74.0"},
         reasons={("DEMOG_MAIN", 1, "WEIGHT"): "transcription error, see source"},
         complete=True)
    lab = {}
    for row, (day, neut, plt) in enumerate(LAB_DAYS, start=1):
        lab.update({("LAB_DAY", row, "LBDT"): day, ("LAB_DAY", row, "NEUT"): neut,
                    ("LAB_DAY", row, "PLT"): plt})
    lab.update({("LAB_CHEM", 1, "CHEMDT"): "2025-05-08", ("LAB_CHEM", 1, "ALT"): "130.0",
                ("LAB_CHEM", 1, "ALTULN"): "40.0"})
    save(crc, subject, "CYCLE", "LAB", lab, day=dt.date(2025, 5, 8), complete=True)
    ae = {("AE_LINE", row, k): v for row, line in enumerate(AES, start=1)
          for k, v in line.items()}
    save(crc, subject, "LOGS", "AE", ae)
    save(crc, subject, "LOGS", "AE", {}, removed={("AE_LINE", 3): "duplicate of line 1"})

    demog_form = form_of(subject, "DEMOG", "SCREEN")
    consent_form = form_of(subject, "CONSENT", "SCREEN")
    query = queries.raise_query(db.session, monitor, subject, XSS_QUERY,
                                target=queries.QueryTarget("SCREEN", 1, "DEMOG", "DEMOG_MAIN",
                                                           1, "NOTES"))
    db.session.commit()
    queries.answer(db.session, crc, query, "Confirmed against the source <i>notes</i>.")
    sdv.verify_items(db.session, monitor, consent_form, [("CONSENT_MAIN", 1, "CONSDT")])
    sdv.verify_items(db.session, monitor, demog_form, [("DEMOG_MAIN", 1, "SEX")])
    db.session.commit()
    lockout = {"lockout_threshold": 5, "lockout_minutes": 15}
    signatures.sign(db.session, inv, signatures.SignTarget(subject, "form", form=consent_form),
                    password=PASSWORD, meaning="approval", username="inv1",
                    require_username=True, **lockout)
    signatures.sign(db.session, inv, signatures.SignTarget(subject, "form", form=demog_form),
                    password=PASSWORD, meaning="responsibility", username="inv1",
                    require_username=True, **lockout)
    db.session.commit()
    # A change after signing breaks the DEMOG signature.
    save(crc, subject, "SCREEN", "DEMOG", {("DEMOG_MAIN", 1, "HEIGHT"): "170"},
         reasons={("DEMOG_MAIN", 1, "HEIGHT"): "remeasured"}, complete=True)

    crc2 = actor(crc2_user, "coordinator", "S02")
    save(crc2, other, "SCREEN", "CONSENT", {("CONSENT_MAIN", 1, "CONSDT"): "2025-05-03"},
         complete=True, day=dt.date(2025, 5, 3))
    db.session.refresh(subject)
    return Cast(study, subject, other, crc, inv, monitor, inv_user)
