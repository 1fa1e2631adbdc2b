"""Demo: load both trials from forms/ and enrol demo subjects (safe to repeat)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf import capture, studies
from ecrf.capture import Subject, local_today
from ecrf.core.audit import Actor
from ecrf.crf import StudyDefinitionError
from ecrf.studies import Site, Study

log = logging.getLogger(__name__)

# (study OID, folder under FORMS_DIR, name used while the folder cannot be loaded)
TRIALS = [("DEXAML03", "dexaml03", "DEXAML-03"), ("UCMSCEXO", "ucmscexo", "UCMSC-Exo")]

# (study OID, site, screening number, enrolled this many days ago)
SUBJECTS = [
    ("DEXAML03", "TLS", "TLS-001", 540),
    ("DEXAML03", "PAR", "PAR-001", 495),
    ("DEXAML03", "TLS", "TLS-002", 430),
    ("DEXAML03", "TLS", "TLS-003", 352),
    ("DEXAML03", "PAR", "PAR-002", 268),
    ("DEXAML03", "TLS", "TLS-004", 181),
    ("DEXAML03", "PAR", "PAR-003", 96),
    ("DEXAML03", "TLS", "TLS-005", 17),
    ("UCMSCEXO", "WUH", "WUH-001", 430),
    ("UCMSCEXO", "WUH", "WUH-002", 400),
    ("UCMSCEXO", "WUH", "WUH-003", 244),
    ("UCMSCEXO", "WUH", "WUH-004", 187),
    ("UCMSCEXO", "WUH", "WUH-005", 122),
    ("UCMSCEXO", "WUH", "WUH-006", 45),
    ("UCMSCEXO", "WUH", "WUH-007", 9),
]

# Screened and found not eligible (their demo.yaml scripts the decision): no dose level, no
# randomization, nothing entered after the eligibility form.
SCREEN_FAILURES = {("DEXAML03", "TLS-005"), ("UCMSCEXO", "WUH-007")}


def ensure_studies(session: Session, actor: Actor, config) -> dict[str, Study]:
    """Load the demo trials from ``FORMS_DIR``; unchanged folders create nothing.

    A folder that cannot be loaded (still being written, say) is reported in the log and
    its study kept without a version, so the rest of the demo still works.
    """
    found: dict[str, Study] = {}
    forms = Path(config["FORMS_DIR"])
    for oid, folder, name in TRIALS:
        try:
            found[oid] = studies.load_folder(session, actor, forms / folder).study
            continue
        except StudyDefinitionError as exc:
            log.warning("demo: %s not loaded (%d problems; run `ecrf study check %s`)",
                        oid, len(exc.problems), forms / folder)
        study = studies.get_study(session, oid)
        if study is None:
            study = Study(oid=oid, name=name, status="active")
            session.add(study)
            session.flush()
        found[oid] = study
    return found


def enrol_subjects(session: Session, actor: Actor, config) -> None:
    """Enrol the demo subjects that are missing, at sites that already take part."""
    oids = sorted({oid for oid, *_ in SUBJECTS})
    study_rows = {s.oid: s for s in session.scalars(select(Study).where(Study.oid.in_(oids)))}
    sites = {s.code: s for s in session.scalars(select(Site))}
    existing = {(oid, key) for oid, key in session.execute(
        select(Study.oid, Subject.subject_key).join(Study, Study.id == Subject.study_id)
        .where(Study.oid.in_(oids)))}
    loaded = {oid for oid, study in study_rows.items()
              if studies.latest_version(session, study) is not None}
    for oid, code, key, days_ago in SUBJECTS:
        if (oid, key) in existing or oid not in loaded:
            continue
        site = sites[code]
        enrolled_on = local_today(site.timezone) - dt.timedelta(days=days_ago)
        capture.enrol_subject(session, actor, study_rows[oid], site, key, enrolled_on)
