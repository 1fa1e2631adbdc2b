"""The audit trail: append-only, hash-chained rows written in the transaction of the
change they record (``trail``), read and exported as CSV (``history``), and verified
(``ecrf audit verify``)."""

from __future__ import annotations

from ecrf.core.audit.history import audit_csv, stream_rows, study_audit_query
from ecrf.core.audit.models import AuditChainHead, AuditEvent
from ecrf.core.audit.trail import (
    GENESIS_HASH,
    SYSTEM,
    Actor,
    AuditError,
    VerifyResult,
    bind_actor,
    compute_hash,
    current_actor,
    record,
    record_export,
    verify_chain,
)

__all__ = [
    "Actor", "AuditChainHead", "AuditError", "AuditEvent", "GENESIS_HASH", "SYSTEM",
    "VerifyResult", "audit_csv", "bind_actor", "compute_hash", "current_actor", "record",
    "record_export", "stream_rows", "study_audit_query", "verify_chain",
]
