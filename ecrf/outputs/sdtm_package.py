"""The SDTM submission package of a study: the datasets as SAS XPORT files, define.xml, the
annotated CRF it points into, and ``manifest.json``.

``manifest.json`` names the study, the study version and the content hash of the definition
the package was made from, the scope, the standards, the record count of every dataset, and
every other file of the package with its size in bytes and its SHA-256, so a recipient can
check that nothing was changed or lost on the way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ecrf import studies
from ecrf.outputs.datasets.dataset_json import write_dataset_json
from ecrf.outputs.datasets.define import (
    ACRF,
    CT_VERSION,
    SDTMIG_VERSION,
    define_xml,
    key_variables,
    metadata_version_oid,
)
from ecrf.outputs.datasets.formats import Column
from ecrf.outputs.datasets.sdtm import Dataset, sdtm_package, write_datasets, xpt_value
from ecrf.outputs.odm.study import ExportError, version_content, version_ref
from ecrf.outputs.rows import Scope

Progress = Callable[[int, str], None]
DEFINE = "define.xml"
MANIFEST = "manifest.json"


def _version(session: Session, scope: Scope):
    version = studies.latest_version(session, scope.study)
    if version is None:
        raise ExportError(f"{scope.study.oid} has no stored version yet (load it with "
                          "`ecrf study load PATH`)")
    return version


def write_define(session: Session, scope: Scope, target: Path,
                 package: dict[str, Dataset] | None = None,
                 pages: dict[str, int] | None = None) -> dict[str, Dataset]:
    """define.xml of the scope's SDTM datasets to ``target``; the datasets it describes."""
    version = _version(session, scope)
    package = sdtm_package(session, scope) if package is None else package
    target.write_bytes(define_xml(package, studies.definition_for(version),
                                  study_oid=scope.study.oid, version_label=version.label,
                                  content_hash=version.content_hash, pages=pages))
    return package


def _dataset_json_files(package: dict[str, Dataset], folder: Path, study_oid: str
                        ) -> list[Path]:
    """Dataset-JSON v1.1 files of the package, one per dataset beside its XPT, with the
    full labels and the item and group OIDs define.xml gives them."""
    files = []
    for data in package.values():
        columns = [Column(v.name, v.label, "char" if v.type == "text" else "num",
                          [xpt_value(row.get(v.name), v) for row in data.rows],
                          data_type="integer" if v.type == "integer" else None)
                   for v in data.variables]
        path = folder / f"{data.name.lower()}.json"
        write_dataset_json(path, data.name, data.label, columns, study_oid=study_oid,
                           metadata_version_oid=metadata_version_oid(study_oid),
                           keys=key_variables(data.name, data.columns))
        files.append(path)
    return files


def write_dataset_json_files(session: Session, scope: Scope, folder: Path) -> list[Path]:
    """The SDTM datasets of ``scope`` as Dataset-JSON files in ``folder`` (created)."""
    package = sdtm_package(session, scope)
    folder.mkdir(parents=True, exist_ok=True)
    return _dataset_json_files(package, folder, scope.study.oid)


def _describe(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(2**20), b""):
            digest.update(chunk)
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def write_package(session: Session, scope: Scope, folder: Path, *, generated_by: str,
                  progress: Progress | None = None) -> list[Path]:
    """Write the package files into ``folder`` (created); their paths, manifest last."""
    from ecrf.outputs.pdf import crf_pdf

    report = progress or (lambda percent, message: None)
    version = _version(session, scope)
    folder.mkdir(parents=True, exist_ok=True)
    report(2, "building the SDTM datasets")
    package = sdtm_package(session, scope)
    files = write_datasets(package, folder, csv_files=False,
                           progress=lambda p, m: report(5 + p * 25 // 100, m))
    report(30, "rendering the annotated CRF")
    pages: dict[str, int] = {}
    crf_pdf(studies.definition_for(version), version_content(version),
            version_ref(scope.study, version), annotated=True, generated_by=generated_by,
            target=folder / ACRF, progress=lambda p, m: report(30 + p * 55 // 100, m),
            pages=pages)
    files.append(folder / ACRF)
    report(88, "writing define.xml")
    write_define(session, scope, folder / DEFINE, package, pages)
    files.append(folder / DEFINE)
    files.extend(_dataset_json_files(package, folder, scope.study.oid))
    report(94, "writing the manifest")
    manifest = {
        "study": scope.study.oid,
        "study_version": version.number,
        "study_version_label": version.label,
        "content_hash": version.content_hash,
        "scope": scope.site_code or "all",
        "generated_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "generated_by": generated_by,
        "standards": {"SDTMIG": SDTMIG_VERSION, "Define-XML": "2.1.0",
                      "CDISC CT": CT_VERSION},
        "datasets": {name: len(data.rows) for name, data in package.items()},
        "files": [_describe(path) for path in files],
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
    files.append(folder / MANIFEST)
    return files


def write_package_zip(session: Session, scope: Scope, target: Path, *, generated_by: str,
                      progress: Progress | None = None) -> list[str]:
    """The package as one zip at ``target``; the names of its members. Nothing is left at
    ``target`` when a step fails."""
    with _staging(target) as staging:
        files = write_package(session, scope, staging, generated_by=generated_by,
                              progress=progress)
        partial = staging / target.name
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for file in files:
                archive.write(file, arcname=file.name)
        partial.replace(target)
    return [f.name for f in files]


def write_package_folder(session: Session, scope: Scope, target: Path, *,
                         generated_by: str, progress: Progress | None = None) -> list[str]:
    """The package's files moved into the folder ``target`` once all are written; their
    names (a failure leaves the folder as it was)."""
    with _staging(target) as staging:
        files = write_package(session, scope, staging / "package", generated_by=generated_by,
                              progress=progress)
        target.mkdir(parents=True, exist_ok=True)
        for file in files:
            file.replace(target / file.name)
    return [f.name for f in files]


@contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A scratch folder beside ``target`` (same file system), removed afterwards."""
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=target.parent, prefix=".ecrf-sdtm-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
