"""SQLAlchemy models, one module per area. Importing this package registers them all."""

from ecrf.models.accounts import RoleGrant, Site, Study, StudySite, User, UserSession
from ecrf.models.audit import AuditChainHead, AuditEvent
from ecrf.models.base import Base

__all__ = [
    "AuditChainHead",
    "AuditEvent",
    "Base",
    "RoleGrant",
    "Site",
    "Study",
    "StudySite",
    "User",
    "UserSession",
]
