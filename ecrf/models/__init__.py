"""SQLAlchemy models, one module per area. Importing this package registers them all."""

from ecrf.models.accounts import RoleGrant, Site, Study, StudySite, User, UserSession
from ecrf.models.audit import AuditChainHead, AuditEvent
from ecrf.models.base import Base
from ecrf.models.clinical import (
    CheckAcknowledgement,
    EventInstance,
    FormInstance,
    GroupRow,
    ItemValue,
    ScheduledVisit,
    Subject,
)
from ecrf.models.studies import StudyVersion

__all__ = [
    "CheckAcknowledgement",
    "EventInstance",
    "FormInstance",
    "GroupRow",
    "ItemValue",
    "ScheduledVisit",
    "Subject",
    "StudyVersion",
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
