"""Helpers for the API tests: tokens, bearer headers, the capture study with subjects."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from ecrf.accounts import tokens as api_tokens
from ecrf.capture import operations as capture
from ecrf.capture.models import Subject
from ecrf.core.audit.models import AuditEvent
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from tests.capture.capture_setup import enrol, load_capture_study

API = "/api/v1"
STUDY = f"{API}/studies/CAPTURE"
EVENT_DAY = dt.date(2025, 5, 2)
ADMIN = Actor(user_id=None, username="cli:test")


def token_for(user, name: str = "script", days: int = 30, *, now: dt.datetime | None = None,
              max_days: int = api_tokens.DEFAULT_MAX_DAYS) -> str:
    """A new token of ``user``; its secret."""
    created = api_tokens.create_token(db.session, ADMIN, user, name, days=days, now=now,
                                      max_days=max_days)
    db.session.commit()
    return created.secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def setup_study(make_study) -> None:
    """CAPTURE (sites S01, S02) with subjects S01-001, S01-002 and S02-001."""
    study = load_capture_study(make_study)
    for key, site in (("S01-001", "S01"), ("S01-002", "S01"), ("S02-001", "S02")):
        enrol(study, key, site)


def subject(key: str) -> Subject:
    return db.session.scalar(select(Subject).where(Subject.subject_key == key))


def start_event(key: str, event_oid: str = "SCREEN", repeat: int = 1,
                day: dt.date | None = EVENT_DAY) -> None:
    found = subject(key)
    actor = Actor(user_id=None, username="crc.setup", role="coordinator",
                  site_code=found.site.code)
    capture.open_event(db.session, actor, found, event_oid, repeat, day)
    db.session.commit()


def form_url(key: str, event_oid: str = "SCREEN", repeat: int = 1, form: str = "VITALS") -> str:
    return f"{STUDY}/subjects/{key}/events/{event_oid}/{repeat}/forms/{form}"


def audit_rows(**where) -> list[AuditEvent]:
    stmt = select(AuditEvent)
    for name, value in where.items():
        stmt = stmt.where(getattr(AuditEvent, name) == value)
    return list(db.session.scalars(stmt.order_by(AuditEvent.seq)))


VITALS_VALUES = {
    "VS.1.VSDT": "2025-05-02", "VS.1.SEX": "M", "VS.1.WEIGHT": "72.5", "VS.1.HEIGHT": "180",
    "VS.1.BRTHDT": "1970-03", "VS.1.RACE": ["ASIAN"], "VS.1.VSTM": "09:30",
}
