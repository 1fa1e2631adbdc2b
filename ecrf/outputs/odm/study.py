"""What every ODM file of a study takes from the database: which version, who has a role
in the study (AdminData users) and its sites; the study's metadata file itself; and the
refusal every export raises (``ExportError``).

The writers in ``metadata`` are pure (content in, XML out); the audit row every export
leaves (``export.created``) is the audit trail's ``record_export``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf.accounts import RoleGrant, User
from ecrf.core.audit import record_export
from ecrf.outputs.odm.common import AdminInfo, SiteInfo, UserInfo, validate_odm
from ecrf.outputs.odm.metadata import VersionRef, write_metadata
from ecrf.studies import Site, Study, StudySite, StudyVersion

__all__ = [
    "ExportError",
    "admin_info",
    "export_odm_metadata",
    "record_export",
    "validate_odm",
    "version_content",
    "version_ref",
]

# Role -> ODM UserType: site staff act for the investigator, the others for the sponsor.
_USER_TYPES = {
    "investigator": "Investigator",
    "coordinator": "Investigator",
    "monitor": "Sponsor",
    "data_manager": "Sponsor",
    "sponsor_viewer": "Sponsor",
}


class ExportError(ValueError):
    """An export that cannot be produced; the message says why."""


def version_ref(study: Study, version: StudyVersion) -> VersionRef:
    return VersionRef(study_oid=study.oid, number=version.number, label=version.label,
                      content_hash=version.content_hash, loaded_at=version.loaded_at)


def version_content(version: StudyVersion) -> dict[str, Any]:
    return json.loads(version.content)


def admin_info(session: Session, study: Study) -> AdminInfo:
    """Everyone who ever held a role in the study (revoked grants included: their past
    entries and signatures still name them) and every site that took part. Two queries."""
    grants = session.execute(
        select(RoleGrant.role, User.username, User.full_name, Site.code)
        .join(User, RoleGrant.user_id == User.id)
        .outerjoin(Site, RoleGrant.site_id == Site.id)
        .where(RoleGrant.study_id == study.id)
        .order_by(User.username)
    ).all()
    users: dict[str, dict[str, Any]] = {}
    for role, username, full_name, site_code in grants:
        entry = users.setdefault(username, {"name": full_name, "types": [], "sites": []})
        entry["types"].append(_USER_TYPES.get(role, "Other"))
        if site_code and site_code not in entry["sites"]:
            entry["sites"].append(site_code)
    sites = session.execute(
        select(Site.code, Site.name).join(StudySite, StudySite.site_id == Site.id)
        .where(StudySite.study_id == study.id).order_by(Site.code)
    ).all()
    return AdminInfo(
        users=tuple(
            UserInfo(username, entry["name"],
                     "Investigator" if "Investigator" in entry["types"] else entry["types"][0],
                     tuple(entry["sites"]))
            for username, entry in users.items()
        ),
        sites=tuple(SiteInfo(code, name) for code, name in sites),
    )


def export_odm_metadata(session: Session, study: Study, version: StudyVersion,
                        target: str | Path | IO[bytes]) -> None:
    """Write the ODM metadata file of ``version`` (Study + AdminData) to ``target``."""
    from ecrf.studies import definition_for

    write_metadata(target, version_content(version), version_ref(study, version),
                   admin=admin_info(session, study), definition=definition_for(version))

