"""The review test study in a test database, and saving forms as the entry screen and
the API do: through ``capture.save_form``, whose signals run review's reactions.
"""

from __future__ import annotations

import datetime as dt
import shutil
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, select

from ecrf.capture import operations as capture
from ecrf.capture.models import FormInstance, Subject
from ecrf.capture.support import event_instance
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.studies import store as studies
from ecrf.studies.models import Study
from tests.capture.capture_setup import LOADER, TODAY, enrol

REVIEW_STUDY = Path(__file__).resolve().parents[1] / "fixtures" / "review_study"
EXAM_DAY = dt.date(2025, 5, 2)

def load_review_study(make_study, *, sdv_scope: str | None = None, tmp_path=None) -> Study:
    """REVIEW with sites S01 and S02; ``sdv_scope`` loads a copy with that parameter."""
    study = make_study("REVIEW", sites=("S01", "S02"))
    folder = REVIEW_STUDY
    if sdv_scope is not None:
        folder = tmp_path / "review_study"
        shutil.copytree(REVIEW_STUDY, folder)
        text = (folder / "study.yaml").read_text()
        (folder / "study.yaml").write_text(text.replace("default: all", f"default: {sdv_scope}"))
    studies.load_folder(db.session, LOADER, folder)
    db.session.commit()
    return study


def subject_at(study: Study, key: str, site: str = "S01") -> Subject:
    return enrol(study, key, site)


def vitals(**values) -> dict:
    base = {"VSDT": EXAM_DAY.isoformat(), "WEIGHT": "72.5", "SYSBP": "120"}
    base.update(values)
    return {("VS", 1, k): v for k, v in base.items() if v is not None}


def demog(**values) -> dict:
    base = {"BRTHDT": "1970-03", "SEX": "F", "INITIALS": "ABC"}
    base.update(values)
    return {("DM", 1, k): v for k, v in base.items() if v is not None}


def start(actor: Actor, subject: Subject, event: str = "SCREEN", day: dt.date = EXAM_DAY):
    instance = capture.open_event(db.session, actor, subject, event, 1, day, today=TODAY)
    db.session.commit()
    return instance


def form_of(subject: Subject, form: str = "VITALS", event: str = "SCREEN") -> FormInstance:
    found = event_instance(db.session, subject, event, 1)
    return db.session.scalar(select(FormInstance).where(
        FormInstance.event_instance_id == found.id, FormInstance.form_oid == form))


def save(actor: Actor, subject: Subject, form: str = "VITALS", values: dict | None = None, *,
         event: str = "SCREEN", complete: bool = False, reasons: dict | None = None,
         acks: dict | None = None, commit: bool = True):
    existing = form_of(subject, form, event) if event_instance(
        db.session, subject, event, 1) else None
    submission = capture.Submission(values=values if values is not None else vitals(),
                                    reasons=reasons or {}, acknowledgements=acks or {})
    result = capture.save_form(db.session, actor, subject, event, 1, form, submission,
                                      base_version=existing.version if existing else None,
                                      complete=complete, today=TODAY)
    if commit:
        db.session.commit()
    return result


class _Counter:
    n = 0

    def __init__(self) -> None:
        self.seen: list[str] = []


@contextmanager
def count_statements():
    """Count the SQL statements run inside the block (``.n``; their text in ``.seen``)."""
    counter = _Counter()
    engine = db.engine

    def count(_conn, _cursor, statement, *args) -> None:
        counter.n += 1
        counter.seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", count)
