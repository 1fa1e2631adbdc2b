"""The part of an ODM clinical data file before ClinicalData: the metadata of every stored
version the data was entered under (one MetaDataVersion each, in one Study, sharing one
set of measurement units) and AdminData naming every user and site the data refers to."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf.accounts import User
from ecrf.capture import Subject
from ecrf.core.audit import AuditEvent
from ecrf.outputs.odm.common import AdminInfo, SiteInfo, UserInfo, element, q, sub, unit_oids
from ecrf.outputs.odm.metadata import MetadataWriter
from ecrf.outputs.odm.study import ExportError, admin_info, version_content, version_ref
from ecrf.outputs.rows import Scope, versions_in_scope
from ecrf.review import Signature
from ecrf.studies import Site, Study, StudyVersion, definition_for, latest_version

# --- the header: metadata of every version used, and AdminData ------------------------------

def versions_for(session: Session, scope: Scope) -> list[StudyVersion]:
    used = versions_in_scope(session, scope)
    latest = latest_version(session, scope.study)
    if latest is None:
        raise ExportError(f"{scope.study.oid} has no stored version yet (load it with "
                          "`ecrf study load PATH`)")
    if latest.id not in {v.id for v in used}:
        used.append(latest)
    return sorted(used, key=lambda v: v.number)


def write_study(xf: Any, study: Study, versions: list[StudyVersion]) -> None:
    writers = [MetadataWriter(version_content(v), version_ref(study, v), definition_for(v))
               for v in versions]
    units = unit_oids(sorted({u for w in writers for u in w.units}))
    for writer in writers:
        writer.units = units
    newest = writers[-1].definition
    with xf.element(q("Study"), {"OID": newest.oid}):
        gv = element("GlobalVariables")
        sub(gv, "StudyName", text=newest.name)
        sub(gv, "StudyDescription", text=newest.title or newest.name)
        sub(gv, "ProtocolName", text=newest.protocol_id or newest.name)
        xf.write(gv)
        if units:
            bd = element("BasicDefinitions")
            for unit, oid in units.items():
                mu = sub(bd, "MeasurementUnit", {"OID": oid, "Name": unit})
                sub(sub(mu, "Symbol"), "TranslatedText", text=unit)
            xf.write(bd)
        for writer in writers:
            version = writer.version
            attrib = {"OID": version.mdv_oid, "Name": version.label,
                      "Description": f"{writer.definition.name} {version.label}, content "
                                     f"SHA-256 {version.content_hash}"}
            with xf.element(q("MetaDataVersion"), attrib):
                writer._write_mdv(xf)


def admin_for(session: Session, scope: Scope, versions: list[StudyVersion]) -> AdminInfo:
    """Study users and sites, plus everyone and every site the data names (a CLI operator,
    a revoked user, a site that left the study), so every reference resolves."""
    base = admin_info(session, scope.study)
    users = {u.username: u for u in base.users}
    names = set(session.scalars(select(AuditEvent.username).where(
        AuditEvent.study_oid == scope.study.oid, AuditEvent.category == "clinical").distinct()))
    names |= set(session.scalars(select(Signature.signer_username).where(
        Signature.study_id == scope.study.id).distinct()))
    names = {n or "system" for n in names} - set(users)
    if names:
        full = dict(session.execute(select(User.username, User.full_name)
                                    .where(User.username.in_(sorted(names)))).all())
        for name in sorted(names):
            users[name] = UserInfo(name, full.get(name, name), "Other")
    sites = {s.code: s for s in base.sites}
    codes = set(session.scalars(scope.apply(
        select(Site.code).join(Subject, Subject.site_id == Site.id)).distinct()))
    codes |= {c for c in session.scalars(select(AuditEvent.site_code).where(
        AuditEvent.study_oid == scope.study.oid, AuditEvent.category == "clinical").distinct())
        if c}
    missing = sorted(codes - set(sites))
    if missing:
        for code, name in session.execute(select(Site.code, Site.name)
                                          .where(Site.code.in_(missing))):
            sites[code] = SiteInfo(code, name)
        for code in missing:
            sites.setdefault(code, SiteInfo(code, code))
    return AdminInfo(tuple(users[k] for k in sorted(users)),
                     tuple(sites[k] for k in sorted(sites)),
                     tuple((version_ref(scope.study, v).mdv_oid, v.loaded_at.date())
                           for v in versions))
