"""Job kinds that produce files from a study: the CRF PDF now, study-wide exports later.

Each kind is registered with ``@job_kind`` and is also callable directly (the CLI runs the
same code synchronously).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from ecrf import studies
from ecrf.jobs import JobContext, JobError, JobParts, JobResult, job_kind
from ecrf.outputs.odm.study import ExportError, version_content, version_ref
from ecrf.studies import Study, StudyVersion


def resolve_version(session: Session, study: Study, number: int | None) -> StudyVersion:
    """The numbered version of the study, or its latest; ExportError says what is missing."""
    try:
        if number is not None:
            return studies.get_version(session, study, number)
    except studies.StudyError as exc:
        raise ExportError(str(exc)) from None
    version = studies.latest_version(session, study)
    if version is None:
        raise ExportError(f"{study.oid} has no stored version yet (load it with "
                          "`ecrf study load PATH`)")
    return version


def crf_file_name(study: Study, version: StudyVersion, annotated: bool,
                  language: str | None) -> str:
    variant = "annotated" if annotated else "blank"
    suffix = f"_{language}" if language and language != "en" else ""
    return f"{study.oid}_v{version.number}_{variant}_crf{suffix}.pdf"


def write_crf_pdf(session: Session, study: Study, version: StudyVersion, *, annotated: bool,
                  language: str | None, generated_by: str, target: str | Path | IO[bytes],
                  progress: Callable[[int, str], None] | None = None,
                  check_cancel: Callable[[], None] | None = None) -> None:
    """Render the blank or annotated CRF of ``version`` to ``target``."""
    from ecrf.outputs.pdf import crf_pdf

    definition = studies.definition_for(version)
    if language and language not in definition.languages:
        raise ExportError(f"{study.oid} {version.label} has no {language!r} translation "
                          f"(languages: {', '.join(definition.languages)})")
    crf_pdf(definition, version_content(version), version_ref(study, version),
            annotated=annotated, generated_by=generated_by,
            generated_at=dt.datetime.now(dt.UTC), language=language, target=target,
            progress=progress, check_cancel=check_cancel)


def _validate_crf(session: Session, study: Study, params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - {"version", "annotated", "language"}
    if unknown:
        raise JobError(f"unknown parameters for a CRF: {', '.join(sorted(unknown))}")
    number = params.get("version")
    if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
        raise JobError(f"version must be a version number, got {number!r}")
    try:
        version = resolve_version(session, study, number)
    except ExportError as exc:
        raise JobError(str(exc)) from None
    language = params.get("language") or None
    languages = studies.definition_for(version).languages
    if language is not None and language not in languages:
        raise JobError(f"{study.oid} {version.label} has no {language!r} translation "
                       f"(languages: {', '.join(languages)})")
    return {"version": version.number, "annotated": bool(params.get("annotated", False)),
            "language": language}


@job_kind("crf_pdf", label=_l("CRF (PDF)"), validate=_validate_crf, expected=(ExportError,))
def crf_pdf_job(ctx: JobContext) -> JobResult:
    version = resolve_version(ctx.session, ctx.study, ctx.params["version"])
    annotated, language = bool(ctx.params["annotated"]), ctx.params.get("language")
    ctx.progress(2, f"loading {version.label}")
    who = f"{ctx.creator.full_name} ({ctx.creator.username})" if ctx.creator else ctx.actor.username
    path = ctx.folder / crf_file_name(ctx.study, version, annotated, language)
    write_crf_pdf(ctx.session, ctx.study, version, annotated=annotated, language=language,
                  generated_by=who, target=path, progress=ctx.progress,
                  check_cancel=ctx.check_cancel)
    return JobResult(path=path, what="crf_pdf", version=version,
                     details={"annotated": annotated, "language": language or "en",
                              "content_hash": version.content_hash})


# --- clinical data: casebooks, ODM, flat and SDTM exports ------------------------------------
# A casebooks job is all or nothing: a subject whose casebook fails makes the whole job
# fail with that subject named (no zip with a missing casebook is ever offered), since a
# regulator's copy must be complete.

VALIDATE_MAX_BYTES = 256 * 2**20
DATA_FORMATS = ("odm", "odm_transactional", "csv", "xpt", "sav", "sdtm", "sdtm_package")


def export_sites(session: Session, study: Study) -> list[tuple[str, str]]:
    """(code, name) of the study's sites, for choosing what a job covers."""
    from sqlalchemy import select

    from ecrf.studies import Site, StudySite

    return [tuple(r) for r in session.execute(
        select(Site.code, Site.name).join(StudySite, StudySite.site_id == Site.id)
        .where(StudySite.study_id == study.id).order_by(Site.code))]


def _scope_params(session: Session, study: Study, params: dict[str, Any],
                  allowed: set[str]) -> dict[str, Any]:
    from ecrf.outputs.rows import ScopeError, make_scope

    unknown = set(params) - allowed - {"site"}
    if unknown:
        raise JobError(f"unknown parameters: {', '.join(sorted(unknown))}")
    site = (params.get("site") or "").strip() or None
    try:
        scope = make_scope(session, study, site=site)
    except ScopeError as exc:
        raise JobError(str(exc)) from None
    return {"site": scope.site_code}


def _validate_casebooks(session: Session, study: Study, params: dict[str, Any]
                        ) -> dict[str, Any]:
    from ecrf.outputs.pdf.casebook import CasebookError, casebook_language

    if studies.latest_version(session, study) is None:
        raise JobError(f"{study.oid} has no stored version yet")
    found = _scope_params(session, study, params, {"language"})
    language = params.get("language")
    if language is not None and not isinstance(language, str):
        raise JobError("language must be a language code (en, fr, zh)")
    try:
        return {**found, "language": casebook_language((language or "").strip() or None)}
    except CasebookError as exc:
        raise JobError(str(exc)) from None


def _validate_data(session: Session, study: Study, params: dict[str, Any]) -> dict[str, Any]:
    fmt = params.get("format")
    if fmt not in DATA_FORMATS:
        raise JobError(f"format must be one of {', '.join(DATA_FORMATS)}, got {fmt!r}")
    if studies.latest_version(session, study) is None:
        raise JobError(f"{study.oid} has no stored version yet")
    return {**_scope_params(session, study, params, {"format"}), "format": fmt}


def _who(ctx: JobContext) -> str:
    return f"{ctx.creator.full_name} ({ctx.creator.username})" if ctx.creator \
        else ctx.actor.username


@job_kind("casebooks", label=_l("Subject casebooks (PDF/A, zip)"), validate=_validate_casebooks,
          expected=(ExportError,))
def casebooks_job(ctx: JobContext) -> JobResult | JobParts:
    """A site's (or the study's) casebooks. One subject: made at once. Several: split
    into one ``casebook_part`` job per subject, which the workers make in parallel; when
    the last is done this runs again and zips their files."""
    from ecrf.outputs.pdf.casebook import (
        casebook_subjects,
        write_casebooks_zip,
        zip_casebook_parts,
    )
    from ecrf.outputs.rows import make_scope

    scope = make_scope(ctx.session, ctx.study, site=ctx.params.get("site"))
    path = ctx.folder / f"{ctx.study.oid}_casebooks_{scope.site_code or 'all'}.zip"
    language = ctx.params.get("language")
    parts = ctx.parts()
    try:
        if parts is not None:
            ctx.progress(98, f"zipping {len(parts)} casebooks")
            count = zip_casebook_parts(
                [(p.params["label"], p.params["file"], ctx.folder / PARTS_DIR / p.params["part"])
                 for p in sorted(parts, key=lambda p: p.params["label"])], path)
            shutil.rmtree(ctx.folder / PARTS_DIR, ignore_errors=True)
        else:
            subjects = casebook_subjects(ctx.session, scope)
            if len(subjects) > 1:
                return _casebook_parts(ctx, subjects, language)
            count = write_casebooks_zip(ctx.session, scope, path, generated_by=_who(ctx),
                                        language=language, progress=ctx.progress)
    except ExportError as exc:
        raise JobError(str(exc)) from None
    return JobResult(path=path, what="casebooks", version=studies.latest_version(
        ctx.session, ctx.study), details={"site": scope.site_code or "all",
                                          "subjects": count, "language": language or "en"})


PARTS_DIR = "parts"


def _casebook_parts(ctx: JobContext, subjects: list[tuple[int, str]],
                    language: str | None) -> JobParts:
    from ecrf.outputs.pdf.casebook import casebook_file_name_for, casebook_weights

    generated_at = dt.datetime.now(dt.UTC).isoformat()
    weights = casebook_weights(ctx.session, [subject_id for subject_id, _key in subjects])
    parts = []
    # The longest casebooks are handed out first; the zip keeps the subject order.
    for index, (subject_id, key) in enumerate(sorted(
            subjects, key=lambda s: (-weights.get(s[0], 0), s[1]))):
        parts.append({"subject_id": subject_id, "label": key, "language": language,
                      "generated_at": generated_at, "generated_by": _who(ctx),
                      "file": casebook_file_name_for(ctx.study.oid, key),
                      "part": f"{index:05d}.pdf"})
    return JobParts("casebook_part", parts, noun="subjects")


@job_kind("casebook_part", label=_l("One subject's casebook (part of a casebooks job)"),
          expected=(ExportError,), files=False)
def casebook_part_job(ctx: JobContext) -> None:
    """One subject's casebook, written into the folder of the casebooks job it is part of."""
    from ecrf.capture import Subject
    from ecrf.outputs.pdf.casebook import CasebookError, write_casebook_part

    key = ctx.params["label"]
    subject = ctx.session.get(Subject, ctx.params["subject_id"])
    if subject is None:
        raise JobError(f"subject {key} no longer exists")
    if ctx.root is None or ctx.parent_id is None:
        raise JobError(f"the casebook of subject {key} belongs to no casebooks job")
    target = ctx.root / str(ctx.parent_id) / PARTS_DIR / ctx.params["part"]
    ctx.progress(5, f"casebook of {key}")
    try:
        write_casebook_part(ctx.session, subject, target,
                            generated_by=ctx.params["generated_by"],
                            generated_at=dt.datetime.fromisoformat(ctx.params["generated_at"]),
                            language=ctx.params.get("language"))
        ctx.check_cancel()
    except CasebookError as exc:
        raise JobError(str(exc)) from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return None


@job_kind("clinical_data", label=_l("Clinical data export"), validate=_validate_data,
          expected=(ExportError,))
def clinical_data_job(ctx: JobContext) -> JobResult:
    from ecrf.outputs.rows import make_scope

    scope = make_scope(ctx.session, ctx.study, site=ctx.params.get("site"))
    fmt = ctx.params["format"]
    path, details = write_data_export(ctx.session, scope, fmt, ctx.folder,
                                      progress=ctx.progress, generated_by=_who(ctx))
    return JobResult(path=path, what=f"clinical_{fmt}", version=studies.latest_version(
        ctx.session, ctx.study), details={"site": scope.site_code or "all", **details})


def write_data_export(session: Session, scope: Any, fmt: str, folder: Path, *,
                      progress: Callable[[int, str], None] | None = None,
                      validate: bool = True, generated_by: str = "ecrf"
                      ) -> tuple[Path, dict[str, Any]]:
    """One export of the scope's data: an ODM file, a zip of CSV/XPT/SAV/SDTM files, or
    the SDTM package (XPT, define.xml, annotated CRF, manifest)."""
    import zipfile

    from ecrf.outputs.datasets.flat import export_csv
    from ecrf.outputs.datasets.sdtm import export_sdtm
    from ecrf.outputs.datasets.stats import export_stats
    from ecrf.outputs.odm.clinical import export_odm_clinical
    from ecrf.outputs.odm.study import validate_odm

    stem = f"{scope.study.oid}_{scope.site_code or 'all'}"
    if fmt in ("odm", "odm_transactional"):
        transactional = fmt == "odm_transactional"
        path = folder / f"{stem}_odm_{'transactional' if transactional else 'snapshot'}.xml"
        summary = export_odm_clinical(session, scope, path, transactional=transactional,
                                      progress=progress)
        details: dict[str, Any] = {"subjects": summary.subjects, "values": summary.values}
        # The XSD check parses the whole file in memory: beyond this size it is left to
        # the reader (the CLI's --no-validate does the same on request).
        validate = validate and path.stat().st_size <= VALIDATE_MAX_BYTES
        if validate:
            if progress:
                progress(96, "checking the file against the ODM 1.3.2 schema")
            errors = validate_odm(path)
            if errors:
                path.unlink(missing_ok=True)
                raise ExportError("the export does not validate against the ODM 1.3.2 "
                                  f"schema: {errors[0]}")
        return path, {**details, "validated": validate}
    if fmt == "sdtm_package":
        from ecrf.outputs.sdtm_package import write_package_zip

        path = folder / f"{stem}_sdtm_package.zip"
        members = write_package_zip(session, scope, path, generated_by=generated_by,
                                    progress=progress)
        return path, {"files": len(members)}
    staging = folder / f"{stem}_{fmt}"
    if fmt == "csv":
        files = export_csv(session, scope, staging, progress=progress)
    elif fmt in ("xpt", "sav"):
        files = export_stats(session, scope, staging, fmt, progress=progress)
        from ecrf.outputs.datasets.flat import write_dictionary
        from ecrf.outputs.rows import definitions_newest_first

        files.append(write_dictionary(staging / "data_dictionary.csv",
                                      *definitions_newest_first(session, scope.study)))
    else:
        files = export_sdtm(session, scope, staging, progress=progress)
    path = folder / f"{stem}_{fmt}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            archive.write(file, arcname=file.name)
    shutil.rmtree(staging, ignore_errors=True)
    return path, {"files": len(files)}
