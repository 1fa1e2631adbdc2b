"""The audit trail: append-only, hash-chained rows written in the transaction of the
change they record (``trail``), read and exported as CSV (``history``), and verified
(``ecrf audit verify``); data imported from another system is recorded as an import,
with its provenance, and holds back the reactions that act on the present
(``provenance``). Row hashes are HMACs under a key kept outside the database, each commit's
head goes to an anchor log outside it too (``keys``), and the stored data is reconciled
with the trail by the checks each area registers (``reconcile``)."""

from __future__ import annotations

from ecrf.core.audit.history import audit_csv, stream_rows, study_audit_query
from ecrf.core.audit.keys import Anchor, Keyring, KeyringError, anchor_file, key_file, parse_anchor
from ecrf.core.audit.models import AuditChainHead, AuditEvent
from ecrf.core.audit.provenance import (
    ImportProvenance,
    held_back,
    historical_import,
    importing,
)
from ecrf.core.audit.reconcile import (
    Mismatch,
    ReconcileResult,
    as_text,
    path_mismatches,
    reconcile,
    reconcile_alongside,
    register_reconciliation,
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
    current_anchor,
    lock_chain,
    record,
    record_export,
    rotate_key,
    verify_chain,
)

__all__ = [
    "Actor", "Anchor", "AuditChainHead", "AuditError", "AuditEvent", "GENESIS_HASH",
    "ImportProvenance", "Keyring", "KeyringError", "Mismatch", "ReconcileResult", "SYSTEM",
    "VerifyResult", "anchor_file", "as_text", "audit_csv", "bind_actor", "chain_head", "compute_hash",
    "current_actor", "current_anchor", "held_back", "historical_import", "importing",
    "key_file", "lock_chain", "parse_anchor", "path_mismatches", "reconcile", "reconcile_alongside", "record",
    "record_export", "register_reconciliation", "rotate_key", "stream_rows",
    "study_audit_query", "verify_chain",
]
