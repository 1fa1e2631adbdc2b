"""Writing and verifying the audit trail.

Every audit row carries the hash of the previous row, so altering, removing or inserting a
row anywhere breaks the chain. Writers are serialised by locking the single
``audit_chain_head`` row for the rest of the transaction (a row lock on PostgreSQL, the
write lock on SQLite), which also keeps the chain's order equal to commit order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from ecrf.core.audit.models import AuditChainHead, AuditEvent
from ecrf.core.audit.provenance import import_details
from ecrf.core.base import Audited, utcnow

GENESIS_HASH = "0" * 64
_CHAIN_KEY = "ecrf_audit_chain"
_ACTOR_KEY = "ecrf_actor"

HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "category",
    "action",
    "user_id",
    "username",
    "role",
    "study_oid",
    "site_code",
    "subject_key",
    "path",
    "old_value",
    "new_value",
    "reason",
    "study_version",
    "details",
    "ip_address",
)


class AuditError(RuntimeError):
    """An audited change that cannot be recorded as the rules require."""


@dataclass(frozen=True)
class Actor:
    """Who is acting: the person, the role they act in, and where from."""

    user_id: int | None
    username: str
    role: str | None = None
    site_code: str | None = None
    ip_address: str | None = None


SYSTEM = Actor(user_id=None, username="system")


def bind_actor(session: Session, actor: Actor) -> None:
    session.info[_ACTOR_KEY] = actor


def current_actor(session: Session) -> Actor | None:
    return session.info.get(_ACTOR_KEY)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def compute_hash(prev_hash: str, fields: dict) -> str:
    payload = [prev_hash] + [fields.get(name) for name in HASHED_FIELDS]
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


_LOCK_HEAD = text("UPDATE audit_chain_head SET last_seq = last_seq WHERE id = 1")
_READ_HEAD = text("SELECT last_seq, last_hash FROM audit_chain_head WHERE id = 1")
_WRITE_HEAD = text("UPDATE audit_chain_head SET last_seq = :seq, last_hash = :hash WHERE id = 1")


def _chain_state(session: Session) -> list:
    """[last seq, last hash, seq written to the head] for this transaction."""
    state = session.info.get(_CHAIN_KEY)
    if state is None:
        # The UPDATE takes the lock before we read, so two transactions never chain from
        # the same predecessor; the lock is held until commit or rollback.
        session.execute(_LOCK_HEAD)
        row = session.execute(_READ_HEAD).first()
        if row is None:
            raise AuditError("the audit chain head is missing: run `ecrf db upgrade`")
        state = [row.last_seq, row.last_hash, row.last_seq]
        session.info[_CHAIN_KEY] = state
    return state


def chain_head(session: Session) -> tuple[int, str] | None:
    """(last seq, last hash) of the audit chain as this session sees it: every audited
    change moves it in the change's own transaction, so it tells whether anything
    changed since (results computed from the data can be kept until it moves)."""
    row = session.execute(_READ_HEAD).first()
    return None if row is None else (row.last_seq, row.last_hash)


def lock_chain(session: Session) -> None:
    """Take the audit chain's lock now, before a long operation that writes audit rows.

    It also opens the database transaction before any savepoint: SQLite's driver begins
    a transaction only at the first write, and on SQLite releasing a savepoint opened
    outside a transaction commits it, so an operation that must be able to roll back all
    its savepoints takes this first."""
    _chain_state(session)


def record(
    session: Session,
    actor: Actor | None,
    action: str,
    *,
    category: str,
    study_oid: str | None = None,
    site_code: str | None = None,
    subject_key: str | None = None,
    path: str | None = None,
    old_value: object = None,
    new_value: object = None,
    reason: str | None = None,
    study_version: str | None = None,
    details: dict | None = None,
    username: str | None = None,
) -> AuditEvent:
    """Append one row to the audit trail inside the caller's transaction (with the
    provenance of the data while a historical import runs)."""
    actor = actor or current_actor(session)
    if actor is None:
        raise AuditError(f"audit action {action!r} has no actor")
    # Bind before any statement runs: the head update below autoflushes pending changes.
    session.info.setdefault(_ACTOR_KEY, actor)
    state = _chain_state(session)
    details = import_details(session, path, details)
    fields = {
        "seq": state[0] + 1,
        "occurred_at": _iso(utcnow()),
        "category": category,
        "action": action,
        "user_id": actor.user_id,
        "username": username if username is not None else actor.username,
        "role": actor.role,
        "study_oid": study_oid,
        "site_code": site_code if site_code is not None else actor.site_code,
        "subject_key": subject_key,
        "path": path,
        "old_value": _text(old_value),
        "new_value": _text(new_value),
        "reason": reason,
        "study_version": study_version,
        "details": json.dumps(details, sort_keys=True, default=str) if details else None,
        "ip_address": actor.ip_address,
    }
    row_hash = compute_hash(state[1], fields)
    row = AuditEvent(
        **{k: v for k, v in fields.items() if k != "occurred_at"},
        occurred_at=dt.datetime.fromisoformat(fields["occurred_at"][:-1]).replace(tzinfo=dt.UTC),
        prev_hash=state[1],
        row_hash=row_hash,
    )
    session.add(row)
    # The head row is written once, when the rows are flushed (see _write_head).
    state[0], state[1] = fields["seq"], row_hash
    return row


def record_export(session: Session, actor: Actor, study, version, what: str, *,
                  file_name: str, details: dict | None = None) -> AuditEvent:
    """The audit row of an export: who produced which file of what, in the caller's
    transaction (21 CFR 11.10(b): copies of records are themselves traceable).
    ``study`` has an ``oid``; ``version``, if any, a ``label``."""
    return record(session, actor, "export.created", category="export", study_oid=study.oid,
                  new_value=file_name, study_version=version.label if version else None,
                  details={"what": what, **(details or {})})


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return json.dumps(sorted(value))
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows_checked: int
    first_broken_seq: int | None = None
    problem: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"audit trail intact: {self.rows_checked} rows verified"
        return f"audit trail BROKEN at row {self.first_broken_seq}: {self.problem}"


def _rows(session: Session, batch: int = 20000) -> Iterator:
    columns = [getattr(AuditEvent, name) for name in HASHED_FIELDS if name != "seq"]
    stmt = (
        select(AuditEvent.seq, *columns, AuditEvent.prev_hash, AuditEvent.row_hash, AuditEvent.id)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=batch)
    )
    yield from session.execute(stmt)


def verify_chain(session: Session, *, study_oid: str | None = None) -> VerifyResult:
    """Check the whole chain; with ``study_oid`` report only links of that study's rows.

    The chain is global (one sequence for the instance), so verifying a study still walks
    every row: a study's rows are only trustworthy if nothing around them was removed.
    """
    expected_seq = 1
    prev = GENESIS_HASH
    checked = 0
    names = HASHED_FIELDS
    for row in _rows(session):
        values = dict(zip(names, row[: len(names)], strict=True))
        values["occurred_at"] = _iso(values["occurred_at"])
        seq = values["seq"]
        relevant = study_oid is None or values["study_oid"] == study_oid
        if seq != expected_seq:
            what = "missing" if seq > expected_seq else "duplicated"
            return VerifyResult(False, checked, expected_seq, f"row {expected_seq} is {what}")
        if row.prev_hash != prev:
            return VerifyResult(False, checked, seq, "link to the previous row does not match")
        if compute_hash(prev, values) != row.row_hash:
            return VerifyResult(False, checked, seq, "row content does not match its hash")
        prev = row.row_hash
        expected_seq += 1
        if relevant:
            checked += 1
    head = session.execute(
        select(AuditChainHead.last_seq, AuditChainHead.last_hash).where(AuditChainHead.id == 1)
    ).first()
    if head is not None and (head.last_seq != expected_seq - 1 or head.last_hash != prev):
        return VerifyResult(
            False, checked, expected_seq, f"the trail ends at row {expected_seq - 1} but "
            f"{head.last_seq} rows were written: rows were removed from the end"
        )
    return VerifyResult(True, checked)


@event.listens_for(Session, "before_flush")
def _refuse_unattributed_changes(session: Session, flush_context, instances) -> None:
    touched = [o for o in (*session.new, *session.dirty) if isinstance(o, Audited)]
    deleted = [o for o in session.deleted if isinstance(o, Audited)]
    if deleted:
        raise AuditError(f"{deleted[0]!r} is clinical data: deletion is a status, never a row removal")
    if touched and current_actor(session) is None:
        raise AuditError(f"audited change to {touched[0]!r} has no actor")


@event.listens_for(Session, "after_flush")
def _write_head(session: Session, flush_context) -> None:
    # One head update per flush instead of one per audit row: the rows and the head they
    # end on reach the database in the same flush, under the lock taken in _chain_state.
    state = session.info.get(_CHAIN_KEY)
    if state is not None and state[2] != state[0]:
        session.connection().execute(_WRITE_HEAD, {"seq": state[0], "hash": state[1]})
        state[2] = state[0]


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget_chain(session: Session, *args) -> None:
    session.info.pop(_CHAIN_KEY, None)
