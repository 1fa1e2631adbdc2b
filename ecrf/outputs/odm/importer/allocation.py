"""Importing a subject's allocation (``ecrf:Allocation``, see ``odm.extension``) before its
forms: arm-specific forms are asked only of a subject with its arm, and a randomization
date is accepted only for a subject randomized here.

The arm, strata and list slot go through ``allocation.restore_allocation`` (audited, the
file named as the source, refused when this study's lists cannot hold them); the
randomization date and number, system items no form save may write, are written by the
randomization service into the event the file gives them, opened on the file's date.
"""

from __future__ import annotations

import datetime as dt

from lxml import etree
from sqlalchemy.orm import Session

from ecrf import allocation, capture
from ecrf.capture import CaptureError, Subject, event_instance
from ecrf.core.audit import Actor
from ecrf.outputs.odm.clinical import parse_annotation
from ecrf.outputs.odm.common import q
from ecrf.outputs.odm.extension import ExtensionError, read_allocation
from ecrf.studies import definition_for


def restore_subject_allocation(session: Session, actor: Actor, subject: Subject,
                               subject_data: etree._Element, source: str, *,
                               today: dt.date | None = None) -> str | None:
    """Restore the allocation the SubjectData carries; the reason it cannot be, or None.
    Runs in a savepoint: a refusal leaves nothing of it."""
    try:
        info = read_allocation(subject_data)
    except ExtensionError as exc:
        return str(exc)
    if info is None:
        return None
    savepoint = session.begin_nested()
    try:
        done = allocation.restore_allocation(session, actor, subject, info, source=source)
        if done.randomized:
            _open_written_event(session, actor, subject, subject_data, today)
            allocation.restore_written_items(session, actor, subject, info, source=source)
    except (allocation.RestoreError, CaptureError, ValueError) as exc:
        savepoint.rollback()
        return f"allocation not restored: {exc}"
    savepoint.commit()
    return None


def _open_written_event(session: Session, actor: Actor, subject: Subject,
                        subject_data: etree._Element, today: dt.date | None) -> None:
    """Start the event whose form holds the randomization's items, on the file's date, as
    the form import would, so that writing them does not open it without a date."""
    rand = definition_for(subject.study_version).randomization
    key = (rand.date_item or rand.number_item) if rand is not None else None
    if key is None:
        return
    form_oid = f"F.{key[0]}"
    for sed in subject_data.iterfind(q("StudyEventData")):
        if sed.find(f"{q('FormData')}[@FormOID='{form_oid}']") is None:
            continue
        event = (sed.get("StudyEventOID") or "").removeprefix("SE.")
        repeat = int(sed.get("StudyEventRepeatKey") or 1)
        if event_instance(session, subject, event, repeat) is not None:
            return
        note: dict[str, str] = {}
        for comment in sed.iterfind(f"{q('Annotation')}/{q('Comment')}"):
            note.update(parse_annotation(comment.text)[1])
        date = dt.date.fromisoformat(note["actual_date"]) if note.get("actual_date") else None
        capture.open_event(session, actor, subject, event, repeat,
                           date or subject.enrolled_on, today=today)
        return
