"""Study versions: folders checked and stored as immutable, content-hashed versions.

A version is stored only when its content hash is new for the study, so loading the same
folder twice (even reformatted) changes nothing. The definition of a stored version is
rebuilt from its stored content, never from the files, and cached per content hash: the
content behind a hash never changes, so every worker may keep its own copy.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ecrf.core import audit
from ecrf.core.audit import Actor
from ecrf.crf import (
    Problem,
    StudyDefinition,
    StudyDefinitionError,
    check_study,
    definition_from_content,
    load_study,
)
from ecrf.studies.models import Study, StudyVersion

__all__ = [
    "LoadResult",
    "StudyDefinitionError",
    "StudyError",
    "check_folder",
    "definition_for",
    "get_study",
    "get_version",
    "latest_version",
    "latest_versions",
    "load_folder",
    "require_study",
    "versions",
]


class StudyError(ValueError):
    """A study request that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class LoadResult:
    study: Study
    version: StudyVersion
    created: bool  # False: the content was already stored as ``version``


def check_folder(path: str | Path) -> list[Problem]:
    """Every problem of a study folder (empty when it may be loaded)."""
    return check_study(path)


def canonical_json(content: dict) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def load_folder(session: Session, actor: Actor, path: str | Path, *,
                note: str | None = None) -> LoadResult:
    """Store the folder as the study's next version unless its content is already stored.

    Raises StudyDefinitionError (with every problem) for an invalid folder.
    """
    loaded = load_study(path)
    definition = loaded.definition
    study = get_study(session, definition.oid)
    if study is None:
        study = Study(oid=definition.oid, name=definition.name, status="active")
        session.add(study)
        session.flush()
        audit.record(session, actor, "study.created", category="metadata",
                     study_oid=study.oid, new_value=study.name)
    existing = session.scalar(select(StudyVersion).where(
        StudyVersion.study_id == study.id, StudyVersion.content_hash == loaded.content_hash))
    if existing is not None:
        return LoadResult(study, existing, created=False)
    previous = session.scalar(
        select(func.max(StudyVersion.number)).where(StudyVersion.study_id == study.id)) or 0
    version = StudyVersion(
        study=study, number=previous + 1, content_hash=loaded.content_hash,
        content=canonical_json(loaded.content), protocol_version=definition.protocol_version,
        source=str(path), loaded_by=actor.username, note=note,
    )
    session.add(version)
    if study.name != definition.name:
        study.name = definition.name
    session.flush()
    _remember(loaded.content_hash, definition)
    audit.record(session, actor, "study.version_loaded", category="metadata",
                 study_oid=study.oid, new_value=version.label, study_version=version.label,
                 details={"content_hash": loaded.content_hash, "number": version.number,
                          "source": str(path), "protocol_version": definition.protocol_version})
    return LoadResult(study, version, created=True)


def get_study(session: Session, oid: str) -> Study | None:
    return session.scalar(select(Study).where(Study.oid == (oid or "").strip().upper()))


def require_study(session: Session, oid: str) -> Study:
    study = get_study(session, oid)
    if study is None:
        raise StudyError(f"no study with OID {oid!r} (load it with `ecrf study load PATH`)")
    return study


def latest_version(session: Session, study: Study) -> StudyVersion | None:
    return session.scalar(select(StudyVersion).where(StudyVersion.study_id == study.id)
                          .order_by(StudyVersion.number.desc()).limit(1))


def latest_versions(session: Session, study_ids: list[int]) -> dict[int, StudyVersion]:
    """The latest version of each study, in one query (home page cards, study lists)."""
    if not study_ids:
        return {}
    newest = (select(StudyVersion.study_id, func.max(StudyVersion.number).label("number"))
              .where(StudyVersion.study_id.in_(study_ids)).group_by(StudyVersion.study_id)
              .subquery())
    rows = session.scalars(select(StudyVersion).join(
        newest, (StudyVersion.study_id == newest.c.study_id)
        & (StudyVersion.number == newest.c.number)))
    return {v.study_id: v for v in rows}


def versions(session: Session, study: Study) -> list[StudyVersion]:
    return list(session.scalars(select(StudyVersion).where(StudyVersion.study_id == study.id)
                                .order_by(StudyVersion.number)))


def get_version(session: Session, study: Study, number: int) -> StudyVersion:
    version = session.scalar(select(StudyVersion).where(
        StudyVersion.study_id == study.id, StudyVersion.number == number))
    if version is None:
        known = ", ".join(f"v{v.number}" for v in versions(session, study)) or "none"
        raise StudyError(f"{study.oid} has no version {number} (stored: {known})")
    return version


# --- definitions of stored versions ---------------------------------------------------------

_DEFINITIONS: dict[str, StudyDefinition] = {}
_LOCK = threading.Lock()


def _remember(content_hash: str, definition: StudyDefinition) -> None:
    with _LOCK:
        _DEFINITIONS[content_hash] = definition


def definition_for(version: StudyVersion) -> StudyDefinition:
    """The definition of a stored version, built once per content hash per process."""
    definition = _DEFINITIONS.get(version.content_hash)
    if definition is None:
        definition = definition_from_content(json.loads(version.content))
        _remember(version.content_hash, definition)
    return definition
