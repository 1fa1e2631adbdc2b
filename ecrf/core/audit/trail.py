"""Writing and verifying the audit trail.

Every audit row carries the hash of the previous row, so altering, removing or inserting a
row anywhere breaks the chain. The hash is an HMAC-SHA256 with a key kept outside the
database (``keys``): someone who can rewrite the tables cannot recompute it. Rows written
before the instance had a key (databases older than the keyed chain) carry a plain
SHA-256 and no key id; they are accepted only before the first keyed row. After every
commit that wrote audit rows, the new head is appended to the anchor log, also outside
the database. Writers are serialised by locking the single
``audit_chain_head`` row for the rest of the transaction (a row lock on PostgreSQL, the
write lock on SQLite), which also keeps the chain's order equal to commit order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from ecrf.core.audit.keys import (
    Anchor,
    Keyring,
    KeyringError,
    add_key,
    anchor_file,
    anchor_signed,
    append_anchor,
    create_keyring,
    key_file,
    load_keyring,
    make_anchor,
    read_anchors,
)
from ecrf.core.audit.models import AuditChainHead, AuditEvent
from ecrf.core.audit.provenance import import_details
from ecrf.core.base import Audited, utcnow

log = logging.getLogger(__name__)

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
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def _fast_encoder():
    """The C encoder behind ``_ENCODER`` for one flat sequence, without the per-call
    set-up of ``JSONEncoder.encode`` (a tuple of str, int and None has nothing circular);
    ``_ENCODER.encode`` itself wherever the C encoder is absent or encodes differently."""
    def slow(values) -> str:
        return _ENCODER.encode(values)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return slow
    try:
        chunks = make(None, _ENCODER.default, json.encoder.encode_basestring, None,
                      _ENCODER.key_separator, _ENCODER.item_separator, False, False, True)
        probe = (1, 'a"b\\c\n\x01\u00e9\u2028', None, 10 ** 30, "")

        def fast(values) -> str:
            return "".join(chunks(values, 0))
        if fast(probe) == slow(probe):
            return fast
    except TypeError:
        pass
    return slow


_encode_fields = _fast_encoder()


def _payload(prev_hash: str, key_id: str | None, fields: dict) -> bytes:
    head = [prev_hash] if key_id is None else [prev_hash, key_id]
    payload = head + [fields.get(name) for name in HASHED_FIELDS]
    return _ENCODER.encode(payload).encode("utf-8")


def compute_hash(prev_hash: str, fields: dict, ring: Keyring | None = None,
                 key_id: str | None = None) -> str:
    """The row's hash: HMAC-SHA256 under ``key_id`` of ``ring`` (the key id is part of
    what is signed), or, without a key, the plain SHA-256 of rows older than the key."""
    if key_id is None:
        return hashlib.sha256(_payload(prev_hash, None, fields)).hexdigest()
    if ring is None:
        raise AuditError(f"row signed with key {key_id} but no keyring was given")
    return ring.sign(key_id, _payload(prev_hash, key_id, fields))


def missing_key_message(path) -> str:
    return (f"the audit key file {path} is missing but the audit trail has rows signed with "
            "a key: restore that file from its backup (a new key cannot sign a chain "
            "another key started)")


def signing_keyring(session: Session, last_seq: int) -> Keyring:
    """The keyring that signs new rows (``_signing_keyring``), with a key file that cannot
    be read or created refused as any other audit problem (AuditError)."""
    try:
        return _signing_keyring(session, last_seq)
    except KeyringError as exc:
        raise AuditError(str(exc)) from None


def _signing_keyring(session: Session, last_seq: int) -> Keyring:
    """The keyring that signs new rows; created when the chain has no keyed row yet.

    Refused when keyed rows exist but the key file does not, or when the file does not hold
    the key of the chain's last row: a new key is never minted silently over them."""
    path = key_file()
    ring = load_keyring(path)
    if ring is not None and ring.checked:
        return ring
    last_key = session.execute(
        select(AuditEvent.key_id).where(AuditEvent.seq == last_seq)).scalar() if last_seq else None
    if ring is None:
        if last_key is not None:
            raise AuditError(missing_key_message(path))
        try:
            ring = create_keyring(path, since=last_seq + 1)
        except OSError as exc:
            raise AuditError(f"cannot create the audit key file {path}: {exc.strerror}; "
                             "make its folder writable or set ECRF_AUDIT_KEY_FILE") from None
    elif last_key is not None and last_key not in ring.keys:
        raise AuditError(f"the audit key file {path} does not hold key {last_key}, which "
                         "signed the last audit row: restore the right file from its backup")
    elif last_key is None and last_seq >= ring.since:
        raise AuditError(f"the last audit row ({last_seq}) has no key but the audit key file "
                         f"{path} signs every row from {ring.since} on: the trail was altered, "
                         "or this key file belongs to another database")
    ring.checked = True
    return ring


# Takes the lock and reads the head in one statement (RETURNING: PostgreSQL, SQLite 3.35+).
_LOCK_HEAD = text("UPDATE audit_chain_head SET last_seq = last_seq WHERE id = 1 "
                  "RETURNING last_seq, last_hash")
_READ_HEAD = text("SELECT last_seq, last_hash FROM audit_chain_head WHERE id = 1")
_WRITE_HEAD = text("UPDATE audit_chain_head SET last_seq = :seq, last_hash = :hash WHERE id = 1")


def _chain_state(session: Session) -> list:
    """[last seq, last hash, seq written to the head, seq at the start, keyring, key id]
    for this transaction."""
    state = session.info.get(_CHAIN_KEY)
    if state is None:
        # The UPDATE takes the lock before we read, so two transactions never chain from
        # the same predecessor; the lock is held until commit or rollback.
        row = session.execute(_LOCK_HEAD).first()
        if row is None:
            raise AuditError("the audit chain head is missing: run `ecrf db upgrade`")
        ring = signing_keyring(session, row.last_seq)
        state = [row.last_seq, row.last_hash, row.last_seq, row.last_seq, ring, ring.active]
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
    provenance of the data while a historical import runs). The row returned carries
    its seq and hash; on PostgreSQL it leaves the session when flushed (the flush's rows
    are written with the chain head in one statement), so it has no ``id``: read the
    trail by ``seq`` instead."""
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
    key_id = state[5]
    row_hash = state[4].sign(key_id, _payload(state[1], key_id, fields))
    row = AuditEvent(
        **{k: v for k, v in fields.items() if k != "occurred_at"},
        occurred_at=dt.datetime.fromisoformat(fields["occurred_at"][:-1]).replace(tzinfo=dt.UTC),
        prev_hash=state[1],
        row_hash=row_hash,
        key_id=key_id,
    )
    session.add(row)
    # The head row is written once, when the rows are flushed (see _write_head).
    state[0], state[1] = fields["seq"], row_hash
    return row


def rotate_key(session: Session, actor: Actor, reason: str | None = None) -> tuple[str, str]:
    """Add a new signing key to the keyring and record it: the row "audit.key_rotated"
    (old and new key ids) is the last one signed by the old key; later rows use the new
    one, and the old key stays in the keyring to verify the rows it signed. Holds the
    chain's lock, so no other writer signs in between. The caller commits."""
    state = _chain_state(session)
    ring, old = state[4], state[5]
    new = add_key(ring, since=state[0] + 2)
    record(session, actor, "audit.key_rotated", category="security", old_value=old,
           new_value=new, reason=reason,
           details={"key_file": str(ring.path), "first_row_of_new_key": state[0] + 2})
    session.flush()
    return old, new


def current_anchor(session: Session) -> Anchor:
    """The chain's head as a signed anchor line, for a third party to archive."""
    head = session.execute(_READ_HEAD).first()
    if head is None:
        raise AuditError("the audit chain head is missing: run `ecrf db upgrade`")
    ring = signing_keyring(session, head.last_seq)
    return make_anchor(ring, head.last_seq, head.last_hash)


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
    keys: tuple[str, ...] = ()  # key ids that signed rows, in order of first use
    unkeyed: int = 0  # legacy rows from before the key
    anchors_checked: int = 0
    key_file: str | None = None

    def __str__(self) -> str:
        if self.ok:
            signed = (f"signed with key{'s' if len(self.keys) > 1 else ''} "
                      f"{', '.join(self.keys)}" if self.keys else "no keyed row yet")
            legacy = f", {self.unkeyed} legacy unkeyed" if self.unkeyed else ""
            return (f"audit trail intact: {self.rows_checked} rows verified ({signed}{legacy}; "
                    f"{self.anchors_checked} anchor{'' if self.anchors_checked == 1 else 's'} "
                    "matched)")
        if self.first_broken_seq is None:
            return f"audit trail NOT VERIFIED: {self.problem}"
        return f"audit trail BROKEN at row {self.first_broken_seq}: {self.problem}"


# The columns of the hash input, straight from the driver: PostgreSQL writes the
# timestamp in ``_iso``'s form itself; elsewhere ``_stored_iso`` reshapes the stored text.
def _rows_sql(dialect: str) -> str:
    columns = ", ".join(
        "to_char(occurred_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        if name == "occurred_at" and dialect == "postgresql" else name
        for name in HASHED_FIELDS)
    return f"SELECT {columns}, prev_hash, row_hash, key_id FROM audit_event ORDER BY seq"


def _stored_iso(value) -> str:
    """``_iso`` of a timestamp as the SQLite driver returns it (SQLAlchemy's naive UTC text,
    ``YYYY-MM-DD HH:MM:SS.ffffff``), without parsing the usual form."""
    if isinstance(value, str) and len(value) == 26 and value[10] == " " and value[19] == ".":
        return f"{value[:10]}T{value[11:]}Z"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return _iso(value)


def _rows(session: Session, batch: int = 50000) -> Iterator[tuple]:
    """Every row's HASHED_FIELDS (the timestamp in ``_iso``'s form), prev hash, row hash
    and key id, in chain order, read through the driver's own cursor (a server-side one on
    PostgreSQL), not as ORM rows."""
    connection = session.connection()
    dialect = connection.dialect.name
    raw = connection.connection.driver_connection
    if dialect == "postgresql":
        with raw.cursor(name="ecrf_audit_verify") as cursor:
            cursor.itersize = batch
            cursor.execute(_rows_sql(dialect))
            while chunk := cursor.fetchmany(batch):
                yield from chunk
        return
    cursor = raw.cursor()
    try:
        cursor.execute(_rows_sql(dialect))
        while chunk := cursor.fetchmany(batch):
            for row in chunk:
                yield (row[0], _stored_iso(row[1]), *row[2:])
    finally:
        cursor.close()


def _row_matches(session: Session, seq: int, prev: str, key_id: str | None,
                 ring: Keyring | None, digest: str) -> bool:
    """Whether row ``seq`` hashes to ``digest`` with its fields read and encoded in Python
    (``_payload``), the encoding that signed it."""
    row = session.execute(select(AuditEvent).where(AuditEvent.seq == seq)).scalar_one()
    fields = {name: getattr(row, name) for name in HASHED_FIELDS}
    fields["occurred_at"] = _iso(row.occurred_at)
    try:
        found = compute_hash(prev, fields, ring, key_id)
    except (AuditError, KeyringError):
        return False
    return hmac.compare_digest(found, digest)


@dataclass
class _Anchors:
    """The anchors to meet during the walk: seq -> (where it comes from, hash)."""

    by_seq: dict[int, list[tuple[str, str]]]
    problem: tuple[int | None, str] | None = None


def _load_anchors(ring: Keyring | None, extra: list[tuple[str, object]]) -> _Anchors:
    found = _Anchors({})
    path = anchor_file()
    entries, bad = read_anchors(path)
    if bad:
        found.problem = (None, f"the anchor log {path} has unreadable line {bad[0]}")
    named = [(f"anchor log {path.name}, line {n}", a) for n, a in entries] + list(extra)
    for where, anchor in named:
        if not anchor_signed(ring, anchor):
            if found.problem is None:
                why = ("its key is not in the keyring" if ring is None or anchor.key_id
                       not in ring.keys else "its signature does not match")
                found.problem = (anchor.seq, f"{where} (row {anchor.seq}) is not a valid "
                                 f"anchor: {why}")
            continue
        found.by_seq.setdefault(anchor.seq, []).append((where, anchor.hash))
    return found


def verify_chain(session: Session, *, study_oid: str | None = None,
                 anchors: list[tuple[str, object]] | None = None) -> VerifyResult:
    """Check the whole chain against the keyring, the head row and the anchors (the log
    outside the database, and ``anchors`` given by a third party: (where, Anchor)); with
    ``study_oid`` count only that study's rows.

    The chain is global (one sequence for the instance), so verifying a study still walks
    every row: a study's rows are only trustworthy if nothing around them was removed.
    """
    path = key_file()
    try:
        ring = load_keyring(path)
    except KeyringError as exc:
        return VerifyResult(False, 0, None, str(exc), key_file=str(path))
    pending = _load_anchors(ring, anchors or [])
    expected_seq = 1
    prev = GENESIS_HASH
    checked = unkeyed = matched = 0
    first_keyed: int | None = None
    used: dict[str, None] = {}
    macs: dict[str, hmac.HMAC] = {}
    since = ring.since if ring is not None else None
    by_seq = pending.by_seq

    def broken(seq, problem) -> VerifyResult:
        return VerifyResult(False, checked, seq, problem, tuple(used), unkeyed, matched,
                            str(path))

    sha256 = hashlib.sha256
    compare = hmac.compare_digest
    encode = _encode_fields
    width = len(HASHED_FIELDS)
    study_at = HASHED_FIELDS.index("study_oid")
    for row in _rows(session):
        seq, prev_hash, row_hash, key_id = row[0], row[width], row[width + 1], row[width + 2]
        # The payload as _payload builds it: the hashed fields' JSON after the head.
        fields = encode(row[:width])[1:-1]
        if seq != expected_seq:
            what = "missing" if seq > expected_seq else "duplicated"
            return broken(expected_seq, f"row {expected_seq} is {what}")
        if prev_hash != prev:
            return broken(seq, "link to the previous row does not match")
        if key_id is None:
            if first_keyed is not None:
                return broken(seq, f"row has no key but row {first_keyed} and later are "
                              "signed: an unkeyed row after keyed ones is a forgery")
            if since is not None and seq >= since:
                return broken(seq, f"row has no key but the keyring signs every row from "
                              f"{since} on")
            digest = sha256(f'["{prev}",{fields}]'.encode()).hexdigest()
            unkeyed += 1
        else:
            mac = macs.get(key_id)
            if mac is None:
                if ring is None:
                    return broken(seq, missing_key_message(path))
                mac = ring.mac(key_id)
                if mac is None:
                    return broken(seq, f"row is signed with key {key_id}, which the audit "
                                  f"key file {path} does not hold")
                # The keyed OpenSSL object inside hmac.HMAC when there is one: copying it
                # skips a Python wrapper per row.
                mac = macs[key_id] = getattr(mac, "_hmac", None) or mac
                used[key_id] = None
            if first_keyed is None:
                first_keyed = seq
            # The key id matches the key file's id pattern: nothing in it needs escaping.
            mac = mac.copy()
            mac.update(f'["{prev}","{key_id}",{fields}]'.encode())
            digest = mac.hexdigest()
        if not compare(digest, row_hash) and not _row_matches(
                session, seq, prev, key_id, ring, row_hash):
            return broken(seq, "row content does not match its hash")
        if seq in by_seq:
            for where, anchored in by_seq.pop(seq):
                if anchored != row_hash:
                    return broken(seq, f"row differs from the head recorded in {where}: "
                                  "the chain was rewritten from this row or before")
                matched += 1
        prev = row_hash
        expected_seq += 1
        if study_oid is None or row[study_at] == study_oid:
            checked += 1
    last = expected_seq - 1
    head = session.execute(
        select(AuditChainHead.last_seq, AuditChainHead.last_hash).where(AuditChainHead.id == 1)
    ).first()
    if head is not None and (head.last_seq != last or head.last_hash != prev):
        return broken(expected_seq, f"the trail ends at row {last} but {head.last_seq} rows "
                      "were written: rows were removed from the end")
    if by_seq:
        seq = max(by_seq)
        where = by_seq[seq][0][0]
        return broken(seq, f"{where} records row {seq} but the trail ends at row {last}: "
                      "rows were removed from the end and the head moved back (or the "
                      "anchor log belongs to another database: one instance folder, one "
                      "database)")
    if pending.problem is not None:
        return broken(*pending.problem)
    return VerifyResult(True, checked, keys=tuple(used), unkeyed=unkeyed,
                        anchors_checked=matched, key_file=str(path))


@event.listens_for(Session, "before_flush")
def _refuse_unattributed_changes(session: Session, flush_context, instances) -> None:
    touched = [o for o in (*session.new, *session.dirty) if isinstance(o, Audited)]
    deleted = [o for o in session.deleted if isinstance(o, Audited)]
    if deleted:
        raise AuditError(f"{deleted[0]!r} is clinical data: deletion is a status, never a row removal")
    if touched and current_actor(session) is None:
        raise AuditError(f"audited change to {touched[0]!r} has no actor")


_ROW_COLUMNS = tuple(c for c in AuditEvent.__table__.columns if c.key != "id")
_AT = [c.key for c in _ROW_COLUMNS].index("occurred_at")
_ROWS_SQL: list[str] = []


def _rows_with_head_sql(dialect) -> str:
    """PostgreSQL: audit rows inserted in a WITH, each column given as one array, then the
    chain head updated: one text whatever the number of rows, which the driver keeps
    parsed (a VALUES list of every field is parsed again at each save)."""
    if not _ROWS_SQL:
        # Arrays of the columns' types without their lengths: a value too long for its
        # column is refused by the INSERT, never cut by the cast.
        arrays = ", ".join(f"%s::{c.type.compile(dialect=dialect).split('(')[0]}[]"
                           for c in _ROW_COLUMNS)
        _ROWS_SQL.append(
            f"WITH audit_rows AS (INSERT INTO audit_event "
            f"({', '.join(c.name for c in _ROW_COLUMNS)}) SELECT * FROM unnest({arrays})) "
            "UPDATE audit_chain_head SET last_seq = %s, last_hash = %s WHERE id = 1")
    return _ROWS_SQL[0]


@event.listens_for(Session, "before_flush")
def _insert_with_head(session: Session, flush_context, instances) -> None:
    # On PostgreSQL the audit rows of a flush and the head they end on are written by one
    # statement, under the lock taken in _chain_state; the rows leave the session (nothing
    # reads them back from it). Elsewhere the ORM inserts them and _write_head follows.
    state = session.info.get(_CHAIN_KEY)
    if state is None or state[2] == state[0]:
        return
    rows = [o for o in session.new if isinstance(o, AuditEvent)]
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return
    rows.sort(key=lambda row: row.seq)
    if rows[-1].seq != state[0] or rows[0].seq != state[2] + 1:
        return  # not exactly the rows since the head was last written: the ORM's way
    for row in rows:
        session.expunge(row)
    columns = [[getattr(row, c.key) for row in rows] for c in _ROW_COLUMNS]
    columns[_AT] = [at.astimezone(dt.UTC).replace(tzinfo=None)  # naive UTC, as UTCDateTime
                    for at in columns[_AT]]
    connection.exec_driver_sql(_rows_with_head_sql(connection.dialect),
                               (*columns, state[0], state[1]))
    state[2] = state[0]


@event.listens_for(Session, "after_flush")
def _write_head(session: Session, flush_context) -> None:
    # One head update per flush instead of one per audit row: the rows and the head they
    # end on reach the database in the same flush, under the lock taken in _chain_state.
    state = session.info.get(_CHAIN_KEY)
    if state is not None and state[2] != state[0]:
        session.connection().execute(_WRITE_HEAD, {"seq": state[0], "hash": state[1]})
        state[2] = state[0]


@event.listens_for(Session, "after_commit")
def _anchor_commit(session: Session) -> None:
    # The batch is committed: its head goes to the anchor log outside the database. A
    # failure to write it is logged, never raised (the data is already committed).
    state = session.info.pop(_CHAIN_KEY, None)
    if state is None or state[0] == state[3]:
        return
    try:
        append_anchor(anchor_file(), make_anchor(state[4], state[0], state[1]))
    except (OSError, KeyringError) as exc:
        log.error("audit rows up to %s committed but not anchored: %s", state[0], exc)


@event.listens_for(Session, "after_soft_rollback")
def _forget_chain(session: Session, *args) -> None:
    session.info.pop(_CHAIN_KEY, None)
