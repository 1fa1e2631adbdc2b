"""``ecrf export ...`` and ``ecrf import ...``: thin wrappers over the export writers and
the ODM importers."""

from __future__ import annotations

from pathlib import Path

import click

from ecrf.core import cli_actor, db, fail


def _study_and_version(oid: str, number: int | None):
    from ecrf import studies
    from ecrf.outputs.jobs import resolve_version

    try:
        study = studies.require_study(db.session, oid)
        return study, resolve_version(db.session, study, number)
    except (studies.StudyError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


export_cli = click.Group("export", help="Produce regulator-ready outputs of a study.")
import_cli = click.Group("import", help="Bring study definitions in from other systems.")


@export_cli.command("crf")
@click.argument("study")
@click.option("--version", "number", type=int, default=None,
              help="Version number (default: the latest).")
@click.option("--annotated", is_flag=True, help="Annotated CRF (OIDs, SDTM, codes, ranges).")
@click.option("--language", default=None, help="Language of the form texts (default en).")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="PDF file to write.")
def export_crf(study: str, number: int | None, annotated: bool, language: str | None,
               output: str):
    """Blank or annotated CRF of STUDY as a PDF."""
    from ecrf.outputs.jobs import write_crf_pdf
    from ecrf.outputs.odm.study import ExportError, record_export

    study_row, version = _study_and_version(study, number)
    actor = cli_actor()
    target = Path(output)
    try:
        write_crf_pdf(db.session, study_row, version, annotated=annotated, language=language,
                      generated_by=actor.username, target=target)
        record_export(db.session, actor, study_row, version, "crf_pdf", file_name=target.name,
                      details={"annotated": annotated, "language": language or "en",
                               "path": str(target.resolve())})
    except ExportError as exc:
        target.unlink(missing_ok=True)
        fail(exc)
    db.session.commit()
    click.echo(f"wrote {target} ({'annotated' if annotated else 'blank'} CRF of "
               f"{study_row.oid} {version.label})")


@export_cli.command("odm-metadata")
@click.argument("study")
@click.option("--version", "number", type=int, default=None,
              help="Version number (default: the latest).")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="XML file to write.")
def export_odm_metadata_command(study: str, number: int | None, output: str):
    """CDISC ODM 1.3.2 metadata (Study + AdminData) of STUDY, checked against the XSD."""
    from ecrf.outputs.odm.study import export_odm_metadata, record_export, validate_odm

    study_row, version = _study_and_version(study, number)
    target = Path(output)
    export_odm_metadata(db.session, study_row, version, target)
    errors = validate_odm(target)
    if errors:
        target.unlink(missing_ok=True)
        fail(RuntimeError("the export does not validate against the ODM 1.3.2 schema "
                           f"(nothing written): {errors[0]}"))
    record_export(db.session, cli_actor(), study_row, version, "odm_metadata",
                  file_name=target.name, details={"path": str(target.resolve())})
    db.session.commit()
    click.echo(f"wrote {target} (ODM 1.3.2 metadata of {study_row.oid} {version.label}, "
               "valid against the XSD)")


@import_cli.command("odm-metadata")
@click.argument("odm_file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False),
              help="Study folder to create, e.g. forms/mystudy.")
@click.option("--study-oid", default=None, help="Which Study of the file (when it holds several).")
@click.option("--force", is_flag=True, help="Overwrite an existing folder.")
@click.option("--data", "data_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="ClinicalData of the same system (when FILE holds none): code lists, "
                   "ranges and conditions are fitted to it, each change listed.")
@click.option("--show-map", is_flag=True,
              help="Print every source OID and the ecrf OID it became.")
def import_odm_metadata(odm_file: str, output: str, study_oid: str | None, force: bool,
                        data_file: str | None, show_map: bool):
    """Turn ODM metadata (ecrf, REDCap, OpenClinica, OpenEDC...) into a study folder.

    For a file from another system the folder holds source_map.yaml: which source OID
    became which ecrf OID, read by `ecrf import odm` to import that system's data."""
    from ecrf.outputs.odm.importer import (
        FolderWriteError,
        OdmImportError,
        import_metadata,
        write_folder,
    )

    try:
        result = import_metadata(odm_file, study_oid=study_oid, data=data_file)
        folder = write_folder(result, output, force=force)
    except (OdmImportError, FolderWriteError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {folder} (study {result.study_oid}, from {result.source}); it passes "
               f"`ecrf study check`")
    if not result.source_map.empty:
        counts = result.source_map.counts()
        click.echo("source map (source_map.yaml): " + ", ".join(
            f"{n} {kind}" for kind, n in counts.items() if kind != "skipped")
            + f"; {counts['skipped']} item(s) skipped on purpose"
            + ("" if show_map else " (--show-map lists them)"))
        if show_map:
            for line in result.source_map.lines():
                click.echo(f"  {line}")
    if result.unsupported:
        click.echo(f"not imported ({len(result.unsupported)}), also listed at the top of "
                   "study.yaml:")
        for note in result.unsupported:
            click.echo(f"  - {note}")


def _scope(study_oid: str, site: str | None = None, subject: str | None = None):
    from ecrf import studies
    from ecrf.outputs.rows import ScopeError, make_scope

    try:
        study = studies.require_study(db.session, study_oid)
        return make_scope(db.session, study, site=site, subject=subject)
    except (studies.StudyError, ScopeError) as exc:
        raise click.ClickException(str(exc)) from None


@export_cli.command("casebook")
@click.argument("study")
@click.argument("subject")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="PDF file to write.")
@click.option("--language", default=None,
              help="Language of the casebook: en (default), fr or zh.")
def export_casebook(study: str, subject: str, output: str, language: str | None):
    """The casebook of SUBJECT (PDF/A-3b with its ODM data attached), in --language: the
    application's words, the study's texts and the dates."""
    from ecrf.capture import Subject
    from ecrf.outputs.odm.study import record_export
    from ecrf.outputs.pdf.casebook import CasebookError, casebook_pdf
    from ecrf.studies import latest_version

    scope = _scope(study, subject=subject)
    actor = cli_actor()
    target = Path(output)
    subject_row = db.session.get(Subject, scope.subject_id)
    try:
        casebook_pdf(db.session, subject_row, generated_by=actor.username, language=language,
                     target=target)
    except CasebookError as exc:
        target.unlink(missing_ok=True)
        fail(exc)
    record_export(db.session, actor, scope.study, latest_version(db.session, scope.study),
                  "casebook", file_name=target.name,
                  details={"subject": subject_row.subject_key, "path": str(target.resolve()),
                           "language": language or "en"})
    db.session.commit()
    click.echo(f"wrote {target} (casebook of {subject_row.subject_key}, {scope.study.oid})")


@export_cli.command("odm")
@click.argument("study")
@click.option("--site", default=None, help="Only this site.")
@click.option("--subject", default=None, help="Only this subject.")
@click.option("--transactional", is_flag=True,
              help="Every change as its own ItemData (default: a snapshot).")
@click.option("--no-validate", is_flag=True,
              help="Skip the check against the ODM 1.3.2 schema (huge files).")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="XML file to write.")
def export_odm_command(study: str, site: str | None, subject: str | None, transactional: bool,
                       no_validate: bool, output: str):
    """CDISC ODM 1.3.2 metadata and clinical data of STUDY, with audit records."""
    from ecrf.outputs.jobs import write_data_export
    from ecrf.outputs.odm.study import ExportError, record_export
    from ecrf.studies import latest_version

    scope = _scope(study, site, subject)
    target = Path(output)
    fmt = "odm_transactional" if transactional else "odm"
    with _staging(target) as folder:
        try:
            made, details = write_data_export(db.session, scope, fmt, Path(folder),
                                              validate=not no_validate)
        except ExportError as exc:
            fail(exc)
        made.replace(target)
    record_export(db.session, cli_actor(), scope.study, latest_version(db.session, scope.study),
                  f"clinical_{fmt}", file_name=target.name,
                  details={**details, "scope": scope.label, "path": str(target.resolve())})
    db.session.commit()
    checked = "not checked against the XSD" if no_validate else "valid against the XSD"
    click.echo(f"wrote {target} ({details['subjects']} subjects, {details['values']} values, "
               f"{'transactional' if transactional else 'snapshot'}, {checked})")


def _staging(target: Path):
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=target.parent, prefix=".ecrf-export-")


def _flat_command(fmt: str, help_text: str):
    @export_cli.command(fmt, help=help_text)
    @click.argument("study")
    @click.option("--site", default=None, help="Only this site.")
    @click.option("-o", "--output", "output", required=True,
                  type=click.Path(file_okay=False), help="Folder to write the files into.")
    def command(study: str, site: str | None, output: str):
        from ecrf.outputs.datasets.flat import export_csv, write_dictionary
        from ecrf.outputs.datasets.stats import export_stats
        from ecrf.outputs.odm.study import ExportError, record_export
        from ecrf.outputs.rows import definitions_newest_first
        from ecrf.studies import latest_version

        scope = _scope(study, site)
        folder = Path(output)
        try:
            if fmt == "csv":
                files = export_csv(db.session, scope, folder)
            else:
                files = export_stats(db.session, scope, folder, fmt)
                files.append(write_dictionary(folder / "data_dictionary.csv",
                                              *definitions_newest_first(db.session,
                                                                        scope.study)))
        except ExportError as exc:
            fail(exc)
        record_export(db.session, cli_actor(), scope.study,
                      latest_version(db.session, scope.study), f"clinical_{fmt}",
                      file_name=folder.name, details={"scope": scope.label,
                                                      "files": [f.name for f in files],
                                                      "path": str(folder.resolve())})
        db.session.commit()
        click.echo(f"wrote {len(files)} file(s) to {folder}")

    return command


_flat_command("csv", "One CSV per form (repeating groups in long format) and the data "
                     "dictionary.")
_flat_command("xpt", "One SAS transport (XPORT v5) file per form with its Dataset-JSON v1.1 "
                     "file beside it, and the data dictionary.")
_flat_command("sav", "One SPSS file per form, and the data dictionary.")


@export_cli.command("sdtm")
@click.argument("study")
@click.option("--site", default=None, help="Only this site.")
@click.option("-o", "--output", "output", required=True, type=click.Path(),
              help="Folder to write the package into, or a .zip file.")
def export_sdtm_command(study: str, site: str | None, output: str):
    """The SDTM package of STUDY: one XPT file per dataset, define.xml, the annotated CRF
    (acrf.pdf) and manifest.json (every file's size and SHA-256, the study version)."""
    from ecrf.outputs.odm.study import ExportError, record_export
    from ecrf.outputs.sdtm_package import write_package_folder, write_package_zip
    from ecrf.studies import latest_version

    scope = _scope(study, site)
    target = Path(output)
    actor = cli_actor()
    try:
        if target.suffix.lower() == ".zip":
            names = write_package_zip(db.session, scope, target, generated_by=actor.username)
        else:
            if target.exists() and not target.is_dir():
                fail(f"{target} is a file: give a folder or a .zip file")
            names = write_package_folder(db.session, scope, target,
                                         generated_by=actor.username)
    except ExportError as exc:
        fail(exc)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")
    record_export(db.session, actor, scope.study, latest_version(db.session, scope.study),
                  "clinical_sdtm", file_name=target.name,
                  details={"scope": scope.label, "files": names,
                           "path": str(target.resolve())})
    db.session.commit()
    click.echo(f"wrote the SDTM package of {scope.study.oid} to {target} ({len(names)} files, "
               "listed with their SHA-256 in manifest.json)")


@export_cli.command("define")
@click.argument("study")
@click.option("--site", default=None, help="Only this site.")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="XML file to write.")
def export_define_command(study: str, site: str | None, output: str):
    """define.xml (Define-XML 2.1) of the SDTM datasets of STUDY; its CRF origins point
    at the named destinations of the annotated CRF, acrf.pdf."""
    from ecrf.outputs.odm.study import ExportError, record_export
    from ecrf.outputs.sdtm_package import write_define
    from ecrf.studies import latest_version

    scope = _scope(study, site)
    target = Path(output)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        package = write_define(db.session, scope, target)
    except ExportError as exc:
        target.unlink(missing_ok=True)
        fail(exc)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")
    record_export(db.session, cli_actor(), scope.study, latest_version(db.session, scope.study),
                  "define_xml", file_name=target.name,
                  details={"scope": scope.label, "datasets": sorted(package),
                           "path": str(target.resolve())})
    db.session.commit()
    click.echo(f"wrote {target} (define.xml 2.1 of {len(package)} SDTM datasets of "
               f"{scope.study.oid})")


@export_cli.command("dataset-json")
@click.argument("study")
@click.option("--site", default=None, help="Only this site.")
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False),
              help="Folder to write <dataset>.json into.")
def export_dataset_json_command(study: str, site: str | None, output: str):
    """The SDTM datasets of STUDY as CDISC Dataset-JSON v1.1, one file per dataset (the
    same files as in the SDTM package)."""
    from ecrf.outputs.odm.study import ExportError, record_export
    from ecrf.outputs.sdtm_package import write_dataset_json_files
    from ecrf.studies import latest_version

    scope = _scope(study, site)
    target = Path(output)
    try:
        written = write_dataset_json_files(db.session, scope, target)
    except ExportError as exc:
        fail(exc)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")
    record_export(db.session, cli_actor(), scope.study, latest_version(db.session, scope.study),
                  "dataset_json", file_name=target.name,
                  details={"scope": scope.label, "files": [p.name for p in written],
                           "path": str(target.resolve())})
    db.session.commit()
    click.echo(f"wrote {len(written)} Dataset-JSON file(s) of {scope.study.oid} into {target}")


@import_cli.command("odm")
@click.argument("odm_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--study", "study_oid", required=True, help="Study to import the data into.")
@click.option("--site", default=None,
              help="Site of subjects to enrol (default: each subject's SiteRef).")
@click.option("--dry-run", is_flag=True,
              help="Check the whole file and report; store nothing.")
@click.option("--partial", is_flag=True,
              help="Store the subjects without problems and list the others (default: all "
                   "or nothing).")
@click.option("--report", "report_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the report as JSON to this file.")
def import_odm_clinical_command(odm_file: str, study_oid: str, site: str | None,
                                dry_run: bool, partial: bool, report_file: str | None):
    """Import ODM clinical data into STUDY through data capture (validated, audited, all or
    nothing unless --partial), as historical data: no notification, automatic query, AE
    prompt or DLT review is raised for it."""
    import json

    from ecrf import studies
    from ecrf.capture import IMPORTED_TABLES
    from ecrf.core import analyze_after_import
    from ecrf.outputs.odm.importer.clinical import ClinicalImportError, import_odm_clinical

    try:
        study = studies.require_study(db.session, study_oid)
        report = import_odm_clinical(db.session, cli_actor(), study, odm_file,
                                     site_code=site, partial=partial, dry_run=dry_run)
    except (studies.StudyError, ClinicalImportError) as exc:
        fail(exc)
    for line in report.lines():
        click.echo(line)
    if report_file:
        target = Path(report_file)
        try:
            target.write_text(json.dumps(report.as_json(), indent=2, ensure_ascii=False) + "\n",
                              encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write the report {target}: {exc.strerror or exc}; nothing was "
                 "stored")
        click.echo(f"report written to {target}")
    if not report.committed:
        db.session.rollback()
        if report.problems:
            raise click.ClickException(f"nothing was stored: {len(report.problems)} "
                                       "problem(s), listed above")
        return
    db.session.commit()
    analyze_after_import(db.session, IMPORTED_TABLES, report.counts.stored)
