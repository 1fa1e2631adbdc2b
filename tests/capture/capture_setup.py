"""The capture test study loaded into a test database, with enrolled subjects: shared by
the capture service tests and the data-entry web tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select

from ecrf.capture import subjects
from ecrf.capture.models import ItemValue, Subject
from ecrf.core.audit.models import AuditEvent
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.studies import store as studies
from ecrf.studies.models import Site, Study

CAPTURE_STUDY = Path(__file__).resolve().parents[1] / "fixtures" / "capture_study"
LOADER = Actor(user_id=None, username="loader", role="data_manager")
ENROLLED = dt.date(2025, 5, 1)
TODAY = dt.date(2025, 6, 1)


def load_capture_study(make_study) -> Study:
    """CAPTURE with sites S01 and S02, its definition loaded as version 1."""
    study = make_study("CAPTURE", sites=("S01", "S02"))
    studies.load_folder(db.session, LOADER, CAPTURE_STUDY)
    db.session.commit()
    return study


def enrol(study: Study, key: str, site: str = "S01", on: dt.date = ENROLLED) -> Subject:
    site_row = db.session.scalar(select(Site).where(Site.code == site))
    subject = subjects.enrol_subject(db.session, LOADER, study, site_row, key, on, today=TODAY)
    db.session.commit()
    return subject


def actor_for(user, role: str = "coordinator", site: str = "S01") -> Actor:
    return Actor(user_id=user.id if user else None, username=user.username if user else "crc",
                 role=role, site_code=site, ip_address="127.0.0.1")


def count_audit(**where) -> int:
    stmt = select(func.count()).select_from(AuditEvent)
    for name, value in where.items():
        stmt = stmt.where(getattr(AuditEvent, name) == value)
    return db.session.scalar(stmt)


def count_values() -> int:
    return db.session.scalar(select(func.count()).select_from(ItemValue))


def audit_rows(**where) -> list[AuditEvent]:
    stmt = select(AuditEvent)
    for name, value in where.items():
        stmt = stmt.where(getattr(AuditEvent, name) == value)
    return list(db.session.scalars(stmt.order_by(AuditEvent.seq)))
