"""Studies and sites: study folders (``forms/``) checked and stored as immutable,
content-hashed versions whose definitions every area reads, the sites, and which sites
take part in which study."""

from __future__ import annotations

from flask import Flask

from ecrf.studies.cli import command_site, command_study
from ecrf.studies.labels import STUDY_STATUS_LABELS
from ecrf.studies.models import Site, Study, StudySite, StudyStatus, StudyVersion
from ecrf.studies.sites import SiteError, add_site_to_study, create_site, get_site, list_sites
from ecrf.studies.store import (
    LoadResult,
    StudyError,
    check_folder,
    definition_for,
    get_study,
    get_version,
    latest_version,
    latest_versions,
    load_folder,
    require_study,
    versions,
)
from ecrf.studies.store import versions as study_versions

__all__ = [
    "LoadResult", "STUDY_STATUS_LABELS", "Site", "SiteError", "Study", "StudyError",
    "StudySite", "StudyStatus", "StudyVersion", "add_site_to_study", "check_folder",
    "command_site", "command_study", "create_site", "definition_for", "get_site",
    "get_study", "get_version", "latest_version", "latest_versions", "list_sites",
    "load_folder", "naming_of", "register", "require_study", "study_versions", "versions",
]


def register(app: Flask) -> None:
    """The ``study`` and ``sites`` commands; called by the app factory first, so that the
    other areas add their ``study`` commands to this group."""
    from ecrf.studies import cli

    cli.register(app)
    app.add_template_global(naming_of, "naming_of")
    app.add_template_global(STUDY_STATUS_LABELS, "study_status_labels")


def naming_of(version: StudyVersion | Study | None):
    """Events, forms and items of a stored version (or a study's latest) named for the
    current user, labels in their language and OIDs only if they asked:
    ``naming_of(form.study_version).form(oid)``."""
    from ecrf.core import db
    from ecrf.core.web import naming

    if isinstance(version, Study):
        version = latest_version(db.session, version)
    return naming(definition_for(version) if version is not None else None)
