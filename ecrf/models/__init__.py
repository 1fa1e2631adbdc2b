"""SQLAlchemy models, one module per area. Importing this package registers them all."""

from ecrf.models.accounts import RoleGrant, Site, Study, StudySite, User, UserSession
from ecrf.models.allocation import (
    Allocation,
    EscalationDecision,
    RandomizationList,
    RandomizationSlot,
)
from ecrf.models.api_tokens import ApiToken
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
from ecrf.models.jobs import Job
from ecrf.models.review import Lock, Query, QueryMessage, SdvMark, Signature
from ecrf.models.safety import AeGradePrompt, DltAssessment, NotificationLog, SaeReport
from ecrf.models.studies import StudyVersion

__all__ = [
    "AeGradePrompt",
    "DltAssessment",
    "NotificationLog",
    "SaeReport",
    "Lock",
    "Query",
    "QueryMessage",
    "SdvMark",
    "Signature",
    "ApiToken",
    "Allocation",
    "EscalationDecision",
    "RandomizationList",
    "RandomizationSlot",
    "CheckAcknowledgement",
    "EventInstance",
    "FormInstance",
    "GroupRow",
    "ItemValue",
    "Job",
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
