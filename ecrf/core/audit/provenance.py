"""Historical imports: data that happened in another system, recorded here as an import.

While an import runs in a session (``historical_import``):

- every audit row the session writes names the file, its SHA-256 and the source system
  (``details["import"]``), and, when the importer gave the source's own AuditRecord for the
  row's path (user, time, reason), carries it too (``details["source"]``); the actor stays
  the person who runs the import;
- reactions to saves that act on the present ask ``held_back(session, reaction)`` and do
  nothing: the events are past and were handled where they happened. SAE reports and their
  notifications, automatic queries, AE prompts and DLT candidates are held back; grades,
  SDV resets, broken signatures, subject statuses and consistency findings still follow
  the data. Each held-back reaction is counted, and the importer writes the counts in its
  own audit row, so the trail says what was not done and why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

_IMPORT_KEY = "ecrf_historical_import"


@dataclass
class ImportProvenance:
    """Where imported data comes from, and what the import held back."""

    file_name: str
    sha256: str
    source_system: str | None = None
    originator: str | None = None
    # audit path -> the source's record of that value: {"user", "time", "reason"}
    sources: dict[str, dict] = field(default_factory=dict)
    held: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        found = {"file": self.file_name, "sha256": self.sha256,
                 "source_system": self.source_system, "originator": self.originator}
        return {k: v for k, v in found.items() if v}


@contextmanager
def historical_import(session: Session, provenance: ImportProvenance
                      ) -> Iterator[ImportProvenance]:
    """Mark ``session`` as importing historical data for the duration of the block."""
    if session.info.get(_IMPORT_KEY) is not None:
        raise RuntimeError("an import is already running in this session")
    session.info[_IMPORT_KEY] = provenance
    try:
        yield provenance
    finally:
        session.info.pop(_IMPORT_KEY, None)


def importing(session: Session) -> ImportProvenance | None:
    """The import running in ``session``, if any."""
    return session.info.get(_IMPORT_KEY)


def held_back(session: Session, reaction: str) -> bool:
    """True while ``session`` imports historical data: the caller skips ``reaction`` (an
    action on the present, such as an SAE notification), and the skip is counted."""
    provenance = importing(session)
    if provenance is None:
        return False
    provenance.held[reaction] += 1
    return True


def import_details(session: Session, path: str | None, details: dict | None) -> dict | None:
    """``details`` of an audit row, with the import's provenance while one runs."""
    provenance = importing(session)
    if provenance is None:
        return details
    found = {**(details or {}), "import": provenance.summary()}
    source = provenance.sources.get(path) if path else None
    if source:
        found["source"] = source
    return found
