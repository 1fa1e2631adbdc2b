"""Whether a subject's form may be entered now, as the entry screen shows it.

Capture does not know locks: data review owns them (form, subject and site locks, study
freeze and lock) and refuses a locked save through ``form_changing``. The entry screen
must also *show* a lock before anyone types, and say it when a lock arrived while the user
was typing. Review adds a reader here in its ``register``; the screen asks ``entry_lock``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ecrf.capture.models import FormInstance, Subject
from ecrf.crf.values import Message


@dataclass(frozen=True)
class EntryLock:
    """Why a form is read-only: ``scope`` is form, subject, site, study_frozen or
    study_locked; ``message`` says what, by whom, when and why."""

    scope: str
    message: Message
    who: str | None = None
    when: dt.datetime | None = None
    reason: str | None = None


LockReader = Callable[[Session, Subject, FormInstance | None], EntryLock | None]

_READERS: list[LockReader] = []


def add_lock_reader(reader: LockReader) -> None:
    """Add a reader for the life of the process (adding the same one again does nothing)."""
    if reader not in _READERS:
        _READERS.append(reader)


def entry_lock(session: Session, subject: Subject, form_instance: FormInstance | None
               ) -> EntryLock | None:
    """The first lock a reader finds on this form of ``subject``, or None: enter freely."""
    for reader in _READERS:
        found = reader(session, subject, form_instance)
        if found is not None:
            return found
    return None
