"""The audit trail: append-only, hash-chained rows written in the transaction of the
change they record (``trail``), read and exported as CSV (``history``), and verified
(``ecrf audit verify``); data imported from another system is recorded as an import,
with its provenance, and holds back the reactions that act on the present
(``provenance``)."""

from __future__ import annotations

from ecrf.core.audit.history import audit_csv, stream_rows, study_audit_query
from ecrf.core.audit.models import AuditChainHead, AuditEvent
from ecrf.core.audit.provenance import (
    ImportProvenance,
    held_back,
    historical_import,
    importing,
)
from ecrf.core.audit.trail import (
    GENESIS_HASH,
    SYSTEM,
    Actor,
    AuditError,
    VerifyResult,
    bind_actor,
    chain_head,
    compute_hash,
    current_actor,
    lock_chain,
    record,
    record_export,
    verify_chain,
)

__all__ = [
    "Actor", "AuditChainHead", "AuditError", "AuditEvent", "GENESIS_HASH", "ImportProvenance",
    "SYSTEM", "VerifyResult", "audit_csv", "bind_actor", "chain_head", "compute_hash", "current_actor",
    "held_back", "historical_import", "importing", "lock_chain", "record", "record_export", "stream_rows",
    "study_audit_query", "verify_chain",
]
