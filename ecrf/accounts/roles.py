"""The six roles of ecrf and how they are scoped."""

from __future__ import annotations

from enum import StrEnum

from flask_babel import lazy_gettext as _l


class Role(StrEnum):
    ADMIN = "admin"
    DATA_MANAGER = "data_manager"
    INVESTIGATOR = "investigator"
    COORDINATOR = "coordinator"
    MONITOR = "monitor"
    SPONSOR_VIEWER = "sponsor_viewer"

    @property
    def label(self) -> str:
        return str(ROLE_LABELS[self])

    @property
    def scope(self) -> str:
        """``system`` (no study), ``study`` (whole study) or ``site`` (one site of a study)."""
        if self is Role.ADMIN:
            return "system"
        if self in SITE_ROLES:
            return "site"
        return "study"


ROLE_LABELS = {
    Role.ADMIN: _l("System administrator"),
    Role.DATA_MANAGER: _l("Data manager"),
    Role.INVESTIGATOR: _l("Investigator"),
    Role.COORDINATOR: _l("Research coordinator"),
    Role.MONITOR: _l("Monitor"),
    Role.SPONSOR_VIEWER: _l("Sponsor viewer"),
}

# Site roles are granted for one site of a study. A monitor may also be granted for the
# whole study (site left empty) when one monitor covers every site.
SITE_ROLES = frozenset({Role.INVESTIGATOR, Role.COORDINATOR, Role.MONITOR})
SITE_REQUIRED = frozenset({Role.INVESTIGATOR, Role.COORDINATOR})


class RoleError(ValueError):
    """A role grant that does not fit the role's scope."""


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower().replace("-", "_").replace(" ", "_"))
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise RoleError(f"unknown role {text!r}; expected one of: {names}") from None


def check_scope(role: Role, *, study: object | None, site: object | None) -> None:
    """Refuse grants whose scope does not match the role."""
    if role is Role.ADMIN:
        if study is not None or site is not None:
            raise RoleError("the admin role is system-wide: give no study and no site")
        return
    if study is None:
        raise RoleError(f"the {role.value} role is granted per study: a study is required")
    if role in SITE_REQUIRED and site is None:
        raise RoleError(f"the {role.value} role is granted per site: a site is required")
    if role not in SITE_ROLES and site is not None:
        raise RoleError(f"the {role.value} role covers the whole study: give no site")
