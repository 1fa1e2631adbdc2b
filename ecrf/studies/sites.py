"""Sites and their participation in studies."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf.core import audit
from ecrf.core.audit import Actor
from ecrf.studies.models import Site, Study, StudySite

SITE_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")


class SiteError(ValueError):
    """A site request that cannot be carried out; the message says why."""


def validate_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SiteError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris") from None
    return name


def get_site(session: Session, code: str) -> Site | None:
    return session.scalar(select(Site).where(Site.code == (code or "").strip().upper()))


def require_site(session: Session, code: str) -> Site:
    site = get_site(session, code)
    if site is None:
        raise SiteError(f"no site with code {code!r}")
    return site


def create_site(
    session: Session,
    actor: Actor,
    *,
    code: str,
    name: str,
    timezone: str = "UTC",
    country: str | None = None,
) -> Site:
    code = (code or "").strip().upper()
    if not SITE_CODE_RE.match(code):
        raise SiteError(f"site code {code!r} is not valid: 1-32 letters, digits, '-' or '_'")
    if get_site(session, code) is not None:
        raise SiteError(f"a site with code {code!r} already exists")
    if not (name or "").strip():
        raise SiteError("a site name is required")
    country = (country or "").strip().upper() or None
    if country is not None and not re.fullmatch(r"[A-Z]{2}", country):
        raise SiteError(f"country {country!r} is not an ISO 3166 two-letter code")
    site = Site(code=code, name=name.strip(), timezone=validate_timezone(timezone),
                country=country, active=True)
    session.add(site)
    session.flush()
    audit.record(session, actor, "site.created", category="admin", site_code=code,
                 new_value=f"{code} {site.name} ({site.timezone})")
    return site


def add_site_to_study(session: Session, actor: Actor, study: Study, site: Site) -> StudySite:
    existing = session.scalar(
        select(StudySite).where(StudySite.study_id == study.id, StudySite.site_id == site.id)
    )
    if existing is not None:
        return existing
    link = StudySite(study=study, site=site, active=True)
    session.add(link)
    session.flush()
    audit.record(session, actor, "study.site_added", category="admin",
                 study_oid=study.oid, site_code=site.code)
    return link


def list_sites(session: Session) -> list[Site]:
    return list(session.scalars(select(Site).order_by(Site.code)))
