"""Reconciling stored data with the audit trail: what the tables hold now must be what the
trail last recorded, or someone changed the data without an audit row.

Each area that owns audited data registers its checks (``register_reconciliation``); a
check returns how many stored facts it compared and an iterator over the mismatches.
``path_mismatches`` does the usual comparison in the database: a select of (path, stored
value) against the ``new_value`` of the last audit row of the given actions on each path,
joined in one statement, so only the mismatches travel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import Select, String, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session

from ecrf.core.audit.models import AuditEvent


@dataclass(frozen=True)
class Mismatch:
    what: str  # "item value", "form status", "lock"...
    where: str  # the audit path, or the row
    stored: str | None
    audited: str | None
    subject_key: str | None = None
    note: str | None = None  # e.g. "no audit row"

    def __str__(self) -> str:
        who = f" (subject {self.subject_key})" if self.subject_key else ""
        why = f": {self.note}" if self.note else ""
        return (f"{self.what} {self.where}{who}: stored {self.stored!r}, last audited "
                f"{self.audited!r}{why}")


Check = Callable[[Session], tuple[int, Iterable[Mismatch]]]
_CHECKS: dict[str, Check] = {}


def register_reconciliation(name: str, check: Check) -> None:
    """Add (or replace) the check called ``name`` to what ``ecrf audit verify`` runs."""
    _CHECKS[name] = check


def reconciliations() -> dict[str, Check]:
    return dict(_CHECKS)


def as_text(column):
    return cast(column, String)


def last_audited(actions: Iterable[str]):
    """Subquery (path, new_value) of the last audit row of ``actions`` on each path."""
    last = (select(AuditEvent.path, func.max(AuditEvent.seq).label("seq"))
            .where(AuditEvent.action.in_(sorted(actions)), AuditEvent.path.is_not(None))
            .group_by(AuditEvent.path).subquery())
    return (select(last.c.path, AuditEvent.new_value)
            .join(AuditEvent, AuditEvent.seq == last.c.seq).subquery())


def path_mismatches(session: Session, what: str, stored: Select, actions: Iterable[str], *,
                    default: str | None = None, require_row: bool = False,
                    require_stored: bool = False) -> tuple[int, Iterator[Mismatch]]:
    """Compare ``stored`` (columns ``path``, ``value``, ``subject_key``) with the last
    audit row of ``actions`` on each path.

    A path with no audit row counts as ``default`` unless ``require_row`` (then it is a
    mismatch by itself); with ``require_stored``, an audited non-empty value whose stored
    row is gone is one too."""
    s = stored.subquery()
    audited = last_audited(actions)
    expected = audited.c.new_value if default is None else case(
        (audited.c.path.is_(None), default), else_=audited.c.new_value)
    differs = s.c.value.is_distinct_from(expected)
    if require_row:
        differs = or_(audited.c.path.is_(None), differs)
    count = session.execute(select(func.count()).select_from(s)).scalar_one()
    query = (select(s.c.path, s.c.value, expected, audited.c.path.is_(None),
                    s.c.subject_key)
             .select_from(s).outerjoin(audited, audited.c.path == s.c.path)
             .where(differs).order_by(s.c.path))

    def found() -> Iterator[Mismatch]:
        for path, value, new_value, no_row, subject_key in session.execute(query):
            yield Mismatch(what, path, value, new_value, subject_key,
                           "no audit row" if no_row and require_row else None)
        if require_stored:
            gone = (select(audited.c.path, audited.c.new_value)
                    .select_from(audited).outerjoin(s, s.c.path == audited.c.path)
                    .where(and_(s.c.path.is_(None), audited.c.new_value.is_not(None)))
                    .order_by(audited.c.path))
            for path, new_value in session.execute(gone):
                yield Mismatch(what, path, None, new_value, None, "the stored row is gone")

    return count, found()


@dataclass
class ReconcileResult:
    checked: dict[str, int]
    mismatches: dict[str, int]
    shown: list[Mismatch]
    limit: int

    @property
    def ok(self) -> bool:
        return not any(self.mismatches.values())

    @property
    def total(self) -> int:
        return sum(self.mismatches.values())

    def lines(self) -> list[str]:
        compared = ", ".join(f"{n} {name}" for name, n in self.checked.items())
        out = [f"data reconciled with the trail: {compared}; {self.total} mismatches"]
        if self.total:
            out.append("mismatches by kind: " + ", ".join(
                f"{name} {n}" for name, n in self.mismatches.items() if n))
            out.extend(f"  MISMATCH {m}" for m in self.shown)
            if self.total > len(self.shown):
                out.append(f"  ... and {self.total - len(self.shown)} more")
        return out


def reconcile(session: Session, limit: int = 50) -> ReconcileResult:
    """Run every registered check; keep the first ``limit`` mismatches, count them all."""
    result = ReconcileResult({}, {}, [], limit)
    for name, check in sorted(_CHECKS.items()):
        count, found = check(session)
        result.checked[name] = count
        result.mismatches[name] = 0
        for mismatch in found:
            result.mismatches[name] += 1
            if len(result.shown) < limit:
                result.shown.append(mismatch)
    return result
