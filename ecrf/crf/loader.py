"""Reading a study folder, validating it, and building its definition.

A folder becomes *content*: a canonical, JSON-serialisable dict of what the files say
(``{"study": ..., "codelists": ..., "crfs": {OID: ...}}``). The content hash is taken on
its canonical JSON, so reformatting, comments and key order never change it, while any
changed value does. The database stores the content; the app rebuilds the definition from
it with ``definition_from_content`` without reading files again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .build import build_definition
from .check import StudyChecker
from .check_forms import check_forms
from .check_study_yaml import check_study_file
from .definition import StudyDefinition
from .problems import Problem, StudyDefinitionError, sorted_problems
from .schema import schema_problems
from .source_map import SOURCE_MAP_FILE, check_source_map, parse_source_map
from .yaml_lines import Document, read_yaml_file

STUDY_FILE = "study.yaml"
CODELISTS_FILE = "codelists.yaml"
CRF_DIR = "crfs"


@dataclass(frozen=True)
class LoadedStudy:
    definition: StudyDefinition
    content: dict[str, Any]
    content_hash: str


def content_hash(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class _Folder:
    study: Document | None = None
    codelists: Document | None = None
    crfs: list[Document] | None = None
    problems: list[Problem] | None = None
    source_map: Document | None = None


def _read(folder: Path, relative: str, problems: list[Problem]) -> Document | None:
    doc, found = read_yaml_file(folder / relative, relative)
    problems.extend(found)
    return doc


def _read_folder(path: str | Path) -> _Folder:
    folder = Path(path)
    problems: list[Problem] = []
    result = _Folder(crfs=[], problems=problems)
    if not folder.exists():
        problems.append(Problem(str(path), None, "", "study folder not found"))
        return result
    if not folder.is_dir():
        problems.append(Problem(str(path), None, "", "not a folder"))
        return result
    if (folder / STUDY_FILE).is_file():
        result.study = _read(folder, STUDY_FILE, problems)
    else:
        problems.append(Problem(STUDY_FILE, None, "", "missing: a study folder needs study.yaml"))
    if (folder / CODELISTS_FILE).is_file():
        result.codelists = _read(folder, CODELISTS_FILE, problems)
    if (folder / SOURCE_MAP_FILE).is_file():
        result.source_map = _read(folder, SOURCE_MAP_FILE, problems)
    crf_dir = folder / CRF_DIR
    files = sorted(crf_dir.iterdir()) if crf_dir.is_dir() else []
    for file in files:
        relative = f"{CRF_DIR}/{file.name}"
        if file.suffix == ".yml":
            problems.append(Problem(relative, None, "", "CRF files must end in .yaml"))
        elif file.suffix == ".yaml" and file.is_file():
            doc = _read(folder, relative, problems)
            if doc is not None:
                result.crfs.append(doc)  # type: ignore[union-attr]
    if not any(f.suffix == ".yaml" for f in files):
        problems.append(Problem(f"{CRF_DIR}/", None, "", "no CRF files (crfs/<FORM>.yaml)"))
    return result


def _validate(study: Document | None, codelists: Document | None,
              crfs: list[Document]) -> list[Problem]:
    problems: list[Problem] = []
    for doc, kind in [(study, "study"), (codelists, "codelists"), *((d, "crf") for d in crfs)]:
        if doc is not None:
            problems.extend(schema_problems(doc, kind))
    checker = StudyChecker(study, codelists, crfs)
    checker.index()
    check_study_file(checker)
    check_forms(checker)
    checker.check_unique_oids()
    checker.check_all_labels()
    problems.extend(checker.problems)
    return problems


def _check_source_map(data: Any, content: dict[str, Any]) -> list[Problem]:
    """The source map is checked against the study it maps into (once that study is valid)."""
    smap, problems = parse_source_map(data)
    if not problems:
        problems = check_source_map(smap, build_definition(content))
    return problems


def _check_folder(folder: _Folder) -> list[Problem]:
    problems = list(folder.problems or [])
    problems.extend(_validate(folder.study, folder.codelists, folder.crfs or []))
    if not problems and folder.source_map is not None and folder.study is not None:
        problems.extend(_check_source_map(folder.source_map.data, _content(
            folder.study, folder.codelists, folder.crfs or [])))
    return sorted_problems(problems)


def check_study(path: str | Path) -> list[Problem]:
    """Every problem of a study folder, in report order; never raises for bad content."""
    return _check_folder(_read_folder(path))


def _content(study: Document, codelists: Document | None,
             crfs: list[Document]) -> dict[str, Any]:
    return {
        "study": study.data,
        "codelists": (codelists.data or {}).get("codelists", {}) if codelists else {},
        "crfs": {doc.data["oid"]: doc.data for doc in crfs},
    }


def load_study(path: str | Path) -> LoadedStudy:
    """Validate and load a study folder; StudyDefinitionError lists every problem."""
    folder = _read_folder(path)
    problems = _check_folder(folder)
    if problems:
        raise StudyDefinitionError(problems, str(path))
    assert folder.study is not None
    content = _content(folder.study, folder.codelists, folder.crfs or [])
    if folder.source_map is not None:
        content["source_map"] = (folder.source_map.data or {}).get("source_map")
    return LoadedStudy(build_definition(content), content, content_hash(content))


def documents_from_content(content: dict[str, Any]
                           ) -> tuple[Document, Document | None, list[Document]]:
    study = Document.from_data(STUDY_FILE, content.get("study"))
    lists = content.get("codelists")
    codelists = Document.from_data(CODELISTS_FILE, {"codelists": lists}) if lists else None
    crfs = [Document.from_data(f"{CRF_DIR}/{oid}.yaml", data)
            for oid, data in sorted((content.get("crfs") or {}).items())]
    return study, codelists, crfs


def definition_from_content(content: dict[str, Any]) -> StudyDefinition:
    """Rebuild a definition from stored content, re-validating it (no line numbers)."""
    if not isinstance(content, dict) or not isinstance(content.get("crfs"), dict):
        raise StudyDefinitionError([Problem(
            "content", None, "", "content must be a mapping with a 'crfs' mapping of form OID "
                                 "to CRF")])
    study, codelists, crfs = documents_from_content(content)
    problems = sorted_problems(_validate(study, codelists, crfs))
    if not problems and content.get("source_map") is not None:
        problems = sorted_problems(_check_source_map({"source_map": content["source_map"]},
                                                     content))
    if problems:
        raise StudyDefinitionError(problems, "stored study content")
    return build_definition(content)
