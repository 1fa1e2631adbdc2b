"""Demo content for `make run`: sites, users of every role, both trials, subjects.

Idempotent: running it again adds only what is missing.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf.models.accounts import Study
from ecrf.security.passwords import policy_from_config
from ecrf.security.roles import Role
from ecrf.services import accounts, sites
from ecrf.services.audit import Actor

DEMO_PASSWORD = "Ecrf-demo-2026"

SITES = [
    ("TLS", "CHU de Toulouse", "Europe/Paris", "FR"),
    ("PAR", "Hôpital Saint-Louis, Paris", "Europe/Paris", "FR"),
    ("WUH", "Wuhan Union Hospital", "Asia/Shanghai", "CN"),
]

STUDY_SITES = {"DEXAML03": ["TLS", "PAR"], "UCMSCEXO": ["WUH"]}

# (username, full name, [(role, study, site)])
USERS = [
    ("admin", "Alex Admin", [(Role.ADMIN, None, None)]),
    ("dm.lead", "Dana Moreau", [(Role.DATA_MANAGER, "DEXAML03", None),
                                (Role.DATA_MANAGER, "UCMSCEXO", None)]),
    ("inv.toulouse", "Dr Claire Dupont", [(Role.INVESTIGATOR, "DEXAML03", "TLS")]),
    ("crc.toulouse", "Julien Martin", [(Role.COORDINATOR, "DEXAML03", "TLS")]),
    ("inv.paris", "Dr Hugo Bernard", [(Role.INVESTIGATOR, "DEXAML03", "PAR")]),
    ("crc.paris", "Léa Petit", [(Role.COORDINATOR, "DEXAML03", "PAR")]),
    ("inv.wuhan", "Dr Li Wei", [(Role.INVESTIGATOR, "UCMSCEXO", "WUH")]),
    ("crc.wuhan", "Zhang Min", [(Role.COORDINATOR, "UCMSCEXO", "WUH")]),
    ("monitor", "Marc Leroy", [(Role.MONITOR, "DEXAML03", None),
                               (Role.MONITOR, "UCMSCEXO", None)]),
    ("sponsor", "Sophie Girard", [(Role.SPONSOR_VIEWER, "DEXAML03", None),
                                  (Role.SPONSOR_VIEWER, "UCMSCEXO", None)]),
]


def ensure_studies(session: Session, actor: Actor) -> dict[str, Study]:
    """The demo trials. Placeholder rows until study definitions are loaded from forms/."""
    found: dict[str, Study] = {}
    for oid, name in (("DEXAML03", "DEXAML-03"), ("UCMSCEXO", "UCMSC-Exo")):
        study = session.scalar(select(Study).where(Study.oid == oid))
        if study is None:
            study = Study(oid=oid, name=name, status="active")
            session.add(study)
            session.flush()
        found[oid] = study
    return found


def load_demo(session: Session, actor: Actor, config) -> str:
    from ecrf.services import demo_data, demo_studies

    studies = demo_studies.ensure_studies(session, actor, config) or ensure_studies(session, actor)
    site_rows = {}
    for code, name, tz, country in SITES:
        site = sites.get_site(session, code) or sites.create_site(
            session, actor, code=code, name=name, timezone=tz, country=country)
        site_rows[code] = site
    for oid, codes in STUDY_SITES.items():
        for code in codes:
            sites.add_site_to_study(session, actor, studies[oid], site_rows[code])
    session.flush()
    for study in studies.values():
        session.refresh(study)
    policy = policy_from_config(config)
    for username, full_name, grants in USERS:
        user = accounts.get_user(session, username)
        if user is None:
            user, _ = accounts.create_user(session, actor, username=username, full_name=full_name,
                                           password=DEMO_PASSWORD, temporary=False, policy=policy)
        held = {(g.role, g.study_id, g.site_id) for g in user.active_grants()}
        for role, oid, code in grants:
            study = studies[oid] if oid else None
            site = site_rows[code] if code else None
            key = (role.value, study.id if study else None, site.id if site else None)
            if key not in held:
                accounts.grant_role(session, actor, user, role, study=study, site=site)
    demo_studies.enrol_subjects(session, actor, config)
    demo_data.enter_data(session, actor, config)
    lines = ["Demo data ready.", "", f"Demo accounts (password for all: {DEMO_PASSWORD}):"]
    for username, _full_name, grants in USERS:
        roles = "; ".join(accounts.describe(r, studies[o] if o else None,
                                            site_rows[c] if c else None) for r, o, c in grants)
        lines.append(f"  {username:<14} {roles}")
    return "\n".join(lines)
