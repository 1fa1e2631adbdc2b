"""Review's checks for ``ecrf audit verify``: every lock and signature row has the audit
rows of what happened to it (applied / released, signed / broken), and the signed content
hash equals the audited one. Locks and signatures are few: their audit rows are read once,
in sequence order, and matched by id."""

from __future__ import annotations

import json
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrf.capture import Subject
from ecrf.core import AuditEvent, audit
from ecrf.review.models import Lock, Signature


def _audited(session: Session, actions: tuple[str, ...], key: str
             ) -> dict[int, dict[str, str | None]]:
    """{object id: {action: last new_value}} from the audit rows of ``actions``."""
    found: dict[int, dict[str, str | None]] = {}
    rows = session.execute(select(AuditEvent.action, AuditEvent.new_value, AuditEvent.details)
                           .where(AuditEvent.action.in_(actions)).order_by(AuditEvent.seq))
    for action, new_value, details in rows:
        try:
            ident = int(json.loads(details or "{}").get(key))
        except (TypeError, ValueError):
            continue
        found.setdefault(ident, {})[action] = new_value
    return found


def locks(session: Session):
    audited = _audited(session, ("lock.applied", "lock.released"), "lock_id")
    stored = session.execute(select(Lock.id, Lock.scope, Lock.unlocked_at).order_by(Lock.id)).all()

    def found() -> Iterator[audit.Mismatch]:
        for ident, scope, unlocked_at in stored:
            seen = audited.pop(ident, {})
            where = f"#{ident} ({scope})"
            state = "unlocked" if unlocked_at else "locked"
            if "lock.applied" not in seen:
                yield audit.Mismatch("lock", where, state, None, note="no audit row")
            elif (state == "unlocked") != ("lock.released" in seen):
                yield audit.Mismatch("lock", where, state,
                                     "unlocked" if "lock.released" in seen else "locked")
        for ident, seen in sorted(audited.items()):
            if "lock.applied" in seen:
                yield audit.Mismatch("lock", f"#{ident}", None, "locked",
                                     note="the stored row is gone")

    return len(stored), found()


def signatures(session: Session):
    audited = _audited(session, ("signature.signed", "signature.broken"), "signature_id")
    stored = session.execute(
        select(Signature.id, Signature.scope, Signature.signed_hash, Signature.broken_at,
               Subject.subject_key)
        .join(Subject, Subject.id == Signature.subject_id).order_by(Signature.id)).all()

    def found() -> Iterator[audit.Mismatch]:
        for ident, scope, signed_hash, broken_at, key in stored:
            seen = audited.pop(ident, {})
            where = f"#{ident} ({scope})"
            if "signature.signed" not in seen:
                yield audit.Mismatch("signature", where, signed_hash, None, key, "no audit row")
            elif seen["signature.signed"] != signed_hash:
                yield audit.Mismatch("signature", where, signed_hash, seen["signature.signed"],
                                     key, "signed content hash differs")
            elif (broken_at is not None) != ("signature.broken" in seen):
                yield audit.Mismatch("signature", where,
                                     "broken" if broken_at else "valid",
                                     "broken" if "signature.broken" in seen else "valid", key)
        for ident, seen in sorted(audited.items()):
            if "signature.signed" in seen:
                yield audit.Mismatch("signature", f"#{ident}", None,
                                     seen["signature.signed"], note="the stored row is gone")

    return len(stored), found()


def register() -> None:
    audit.register_reconciliation("locks", locks)
    audit.register_reconciliation("signatures", signatures)
