"""Who may do what, where: grants turned into decisions and site filters for queries."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ecrf.accounts.models import RoleGrant, User
from ecrf.accounts.permissions import ACTIONS
from ecrf.accounts.roles import Role
from ecrf.studies import Study


def active_grants(user: User) -> list[RoleGrant]:
    return [g for g in user.grants if g.revoked_at is None]


def is_admin(user: User) -> bool:
    return any(g.role == Role.ADMIN for g in active_grants(user))


def roles_in_study(user: User, study_id: int) -> set[Role]:
    return {Role(g.role) for g in active_grants(user) if g.study_id == study_id}


def can(user: User, action: str, study: Study | None = None) -> bool:
    allowed = ACTIONS[action]
    for grant in active_grants(user):
        if Role(grant.role) not in allowed:
            continue
        if grant.role == Role.ADMIN or (study is not None and grant.study_id == study.id):
            return True
    return False


def acting_role(user: User, action: str, study: Study | None = None) -> Role | None:
    """The role in which the user performs ``action``: recorded in the audit trail."""
    allowed = ACTIONS[action]
    for grant in sorted(active_grants(user), key=lambda g: g.site_id is not None):
        role = Role(grant.role)
        if role in allowed and (role is Role.ADMIN or (study and grant.study_id == study.id)):
            return role
    return None


def site_ids_for(user: User, action: str, study: Study) -> set[int] | None:
    """Sites where ``user`` may do ``action`` in ``study``: None means every site.

    This is what queries filter on, so site scoping holds in every list and export, not
    only in the views that happen to check it. An admin's system-wide grant counts for the
    actions the admin role holds (undoing a randomization); for the others only the
    admin's study and site grants count, as for anyone. An admin who also holds grants in
    this study works in it where those grants are, for the admin's actions too: a subject
    of another site is as absent for them as for anyone at their sites.
    """
    allowed = ACTIONS[action]
    grants = active_grants(user)
    in_study = [g for g in grants if g.study_id == study.id]
    sites: set[int] = set()
    for grant in grants:
        role = Role(grant.role)
        if role not in allowed:
            continue
        if role is Role.ADMIN:
            if not in_study or any(g.site_id is None for g in in_study):
                return None  # a system-wide grant covers every site, as in ``can``
            sites.update(g.site_id for g in in_study if g.site_id is not None)
            continue
        if grant.study_id != study.id:
            continue
        if grant.site_id is None:
            return None
        sites.add(grant.site_id)
    return sites


def scope_to_sites(stmt: Select, site_column, site_ids: set[int] | None) -> Select:
    if site_ids is None:
        return stmt
    return stmt.where(site_column.in_(site_ids or {-1}))


def studies_for(session: Session, user: User) -> list[Study]:
    if is_admin(user):
        return list(session.scalars(select(Study).order_by(Study.oid)))
    ids = {g.study_id for g in active_grants(user) if g.study_id is not None}
    if not ids:
        return []
    return list(session.scalars(select(Study).where(Study.id.in_(ids)).order_by(Study.oid)))
