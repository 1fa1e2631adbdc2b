"""The safety test study loaded into a test database, and saving through data capture with
the safety reactions applied: shared by the safety service, endpoint and web tests."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

from sqlalchemy import select

from ecrf.capture import operations as capture
from ecrf.capture import subjects
from ecrf.capture.models import ItemValue, Subject
from ecrf.core.audit import trail as audit
from ecrf.core.audit.models import AuditEvent
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.core.signals import FormChange, ItemChange
from ecrf.studies import store as studies
from ecrf.studies.models import Site, Study

SAFETY_STUDY = Path(__file__).resolve().parents[1] / "fixtures" / "safety_study"
LOADER = Actor(user_id=None, username="loader", role="data_manager")
ENROLLED = dt.date(2025, 5, 20)
TODAY = dt.date(2025, 8, 31)
EVENT_OF = {"CONSENT": "SCREEN", "LAB": "SCREEN", "CHEMO": "CHEMO_D1", "INF": "INFUSION",
            "COUNTS": "HEMOBS", "FN": "HEMOBS", "DLT": "DLT_EVAL", "AE": "AE_LOG"}
LOG_EVENTS = {"AE_LOG"}


def load_safety_study(make_study, sites=("S01", "S02"), folder: Path = SAFETY_STUDY) -> Study:
    study = make_study("SAFETY", sites=sites)
    studies.load_folder(db.session, LOADER, folder)
    db.session.commit()
    return study


def safety_variant(target: Path, renames: dict[str, str] | None = None,
                   drop: tuple[str, ...] = (), edits: tuple[tuple[str, str], ...] = ()
                   ) -> Path:
    """A copy of the safety study with OIDs renamed (whole words, in every file), then in
    study.yaml: ``drop`` removes top-level blocks (``"adverse_events"``) or single indented
    lines (``"  dlt_drug:"``), and ``edits`` replaces texts."""
    shutil.copytree(SAFETY_STUDY, target)
    words = re.compile(r"\b(" + "|".join(map(re.escape, renames)) + r")\b") if renames \
        else None
    for path in target.rglob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        if words is not None:
            text = words.sub(lambda m: renames[m.group(1)], text)
        if path.name == "study.yaml":
            text = _drop(text, drop)
            for old, new in edits:
                assert old in text, old
                text = text.replace(old, new)
        path.write_text(text, encoding="utf-8")
    return target


def _drop(text: str, keys: tuple[str, ...]) -> str:
    kept, block = [], False
    for line in text.splitlines(keepends=True):
        if any(line.startswith(f"{k}:") for k in keys if not k.startswith(" ")):
            block = True
            continue
        if block and (line.startswith(" ") or not line.strip()):
            continue
        block = False
        if not any(line.startswith(k) for k in keys if k.startswith(" ")):
            kept.append(line)
    return "".join(kept)


def enrol(study: Study, key: str, site: str = "S01", on: dt.date = ENROLLED,
          level: int | None = None) -> Subject:
    site_row = db.session.scalar(select(Site).where(Site.code == site))
    subject = subjects.enrol_subject(db.session, LOADER, study, site_row, key, on, today=TODAY)
    if level is not None:
        audit.bind_actor(db.session, LOADER)
        subject.dose_level = level
    db.session.commit()
    return subject


def actor_for(user, role: str = "investigator", site: str = "S01") -> Actor:
    return Actor(user_id=user.id if user else None, username=user.username if user else "inv",
                 role=role, site_code=site, ip_address="127.0.0.1")


def save(actor: Actor, subject: Subject, form: str, values: dict, *, event: str | None = None,
         repeat: int = 1, day: dt.date | None = None, removed: dict | None = None,
         reasons: dict | None = None, reason: str | None = None, commit: bool = True):
    """Save through capture (partial: other saved values kept), then run the safety
    reactions on the change, as capture's after-save hook does once it is wired in."""
    from ecrf.safety import handlers as safety_hooks

    event = event or EVENT_OF[form]
    if reason:
        reasons = {**{key: reason for key in values}, **(reasons or {})}
    if capture.event_instance(db.session, subject, event, repeat) is None:
        start = None if event in LOG_EVENTS else (day or ENROLLED)
        capture.open_event(db.session, actor, subject, event, repeat, start, today=TODAY)
    opened = capture.load_form(db.session, subject, event, repeat, form, today=TODAY)
    result = capture.save_form(
        db.session, actor, subject, event, repeat, form,
        capture.Submission(values=values, partial=True, removed_rows=removed or {},
                           reasons=reasons or {}),
        base_version=opened.version, complete=False, today=TODAY)
    assert result.saved, (result.errors, result.form_errors)
    if result.form_instance is not None:
        safety_hooks.react(FormChange(
            db.session, actor, subject, event, repeat, form, result.form_instance,
            tuple(ItemChange(g, r, i, None, None) for g, r, i in result.changed),
            tuple((removed or {}).keys())))
    if commit:
        db.session.commit()
    return result


def row_values(group: str, row: int, **items) -> dict:
    return {(group, row, k): v for k, v in items.items() if v is not None}


def counts_row(row: int, day: dt.date, **items) -> dict:
    return row_values("CNT_DAY", row, LBDT=day.isoformat(), **items)


def ae_row(row: int, **items) -> dict:
    return row_values("AE_LINE", row, **items)


def stored(subject: Subject, form: str, item: str, row: int = 1) -> ItemValue:
    return db.session.scalar(select(ItemValue).where(
        ItemValue.subject_id == subject.id, ItemValue.form_oid == form,
        ItemValue.item_oid == item, ItemValue.row == row))


def audit_actions(subject: Subject, prefix: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.subject_key == subject.subject_key, AuditEvent.action.startswith(prefix))
        .order_by(AuditEvent.seq)))
