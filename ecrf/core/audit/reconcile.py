"""Reconciling stored data with the audit trail: what the tables hold now must be what the
trail last recorded, or someone changed the data without an audit row.

Each area that owns audited data registers its checks (``register_reconciliation``); a
check returns how many stored facts it compared and an iterator over the mismatches.
``path_mismatches`` does the usual comparison: a select of (path, stored value) and the
``new_value`` of the last audit row of the given actions on each path, joined in the
database, which returns only the mismatches (ordered by path); where the database cannot
join them so (SQLite before 3.39 has no full outer join) both sides stream ordered by
path and are merged here. Memory stays flat either way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import (
    Engine,
    Select,
    String,
    and_,
    case,
    cast,
    collate,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

try:
    from sqlalchemy.dialects.postgresql import distinct_on
except ImportError:  # SQLAlchemy before 2.1: select().distinct(expression)
    distinct_on = None

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


# A check returns (the number of stored facts compared, or a function giving it once the
# mismatches were read) and the mismatches.
Check = Callable[[Session], tuple[int | Callable[[], int], Iterable[Mismatch]]]
_CHECKS: dict[str, Check] = {}


def register_reconciliation(name: str, check: Check) -> None:
    """Add (or replace) the check called ``name`` to what ``ecrf audit verify`` runs."""
    _CHECKS[name] = check


def reconciliations() -> dict[str, Check]:
    return dict(_CHECKS)


def as_text(column):
    return cast(column, String)


def _binary(expr, session: Session):
    """``expr`` ordered by code point on every database (so that Python's string order,
    used to merge two ordered streams, agrees with the database's)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return collate(expr, "C")
    if name == "sqlite":
        return collate(expr, "BINARY")
    return expr


def last_audited(session: Session, actions: Iterable[str]):
    """Select (path, new_value) of the last audit row of ``actions`` on each path, ordered
    by path."""
    last = (select(AuditEvent.path, func.max(AuditEvent.seq).label("seq"))
            .where(AuditEvent.action.in_(sorted(actions)), AuditEvent.path.is_not(None))
            .group_by(AuditEvent.path).subquery())
    return (select(last.c.path, AuditEvent.new_value)
            .join(AuditEvent, AuditEvent.seq == last.c.seq)
            .order_by(_binary(last.c.path, session)))


def _last_audited_rows(session: Session, actions: Iterable[str]):
    """``last_audited`` unordered, for a join; on PostgreSQL one sort of the trail's rows
    (DISTINCT ON, the path in code-point order) rather than a group and a lookup by seq."""
    if session.get_bind().dialect.name != "postgresql":
        return last_audited(session, actions).order_by(None)
    path = _binary(AuditEvent.path, session)
    rows = (select(path.label("path"), AuditEvent.new_value)
            .where(AuditEvent.action.in_(sorted(actions)), AuditEvent.path.is_not(None))
            .order_by(path, AuditEvent.seq.desc()))
    return rows.ext(distinct_on(path)) if distinct_on is not None else rows.distinct(path)


def _full_join(session: Session) -> bool:
    if session.get_bind().dialect.name == "sqlite":
        return sqlite3.sqlite_version_info >= (3, 39)
    return True


def path_mismatches(session: Session, what: str, stored: Select, actions: Iterable[str], *,
                    default: str | None = None, require_row: bool = False,
                    require_stored: bool = False) -> tuple[Callable[[], int], Iterator[Mismatch]]:
    """Compare ``stored`` (columns ``path``, ``value``, ``subject_key``) with the last
    audit row of ``actions`` on each path, in the database: a full join on the path that
    returns only the mismatches, in path order, so memory stays flat whatever the size of
    the trail.

    A path with no audit row counts as ``default`` unless ``require_row`` (then it is a
    mismatch by itself); with ``require_stored``, an audited non-empty value whose stored
    row is gone is one too. Returns a function giving the number of stored rows compared
    (once the mismatches are read) and the mismatches."""
    if not _full_join(session):
        return _merged_mismatches(session, what, stored, actions, default=default,
                                  require_row=require_row, require_stored=require_stored)
    s = stored.subquery()
    a = _last_audited_rows(session, actions).subquery()
    no_row = a.c.path.is_(None)
    expected = case((no_row, literal(default, String)), else_=a.c.new_value)
    if require_row:
        differs = or_(no_row, s.c.value.is_distinct_from(a.c.new_value))
    else:
        differs = s.c.value.is_distinct_from(expected)
    wanted = and_(s.c.path.is_not(None), differs)
    if require_stored:
        wanted = or_(wanted, and_(s.c.path.is_(None), a.c.new_value.is_not(None)))
    path = func.coalesce(s.c.path, a.c.path)
    found_rows = (select(path, s.c.path.is_(None), no_row, s.c.value, expected, s.c.subject_key)
                  .select_from(s.join(a, _binary(s.c.path, session) == a.c.path, full=True))
                  .where(wanted).order_by(_binary(path, session)))
    counted: list[int] = []

    def count() -> int:
        if not counted:
            counted.append(session.execute(select(func.count()).select_from(s)).scalar_one())
        return counted[0]

    def found() -> Iterator[Mismatch]:
        for where, gone, unaudited, value, audited, subject_key in session.execute(
                found_rows.execution_options(yield_per=20000)):
            if gone:
                yield Mismatch(what, where, None, audited, None, "the stored row is gone")
            elif unaudited and require_row:
                yield Mismatch(what, where, value, None, subject_key, "no audit row")
            else:
                yield Mismatch(what, where, value, audited, subject_key)

    return count, found()


def _merged_mismatches(session: Session, what: str, stored: Select, actions: Iterable[str], *,
                    default: str | None = None, require_row: bool = False,
                    require_stored: bool = False) -> tuple[Callable[[], int], Iterator[Mismatch]]:
    """Compare ``stored`` (columns ``path``, ``value``, ``subject_key``) with the last
    audit row of ``actions`` on each path: two streams ordered by path, merged here, so
    memory stays flat whatever the size of the trail.

    A path with no audit row counts as ``default`` unless ``require_row`` (then it is a
    mismatch by itself); with ``require_stored``, an audited non-empty value whose stored
    row is gone is one too. Returns a function giving the number of stored rows compared
    (once the mismatches are read) and the mismatches."""
    s = stored.subquery()
    ordered = select(s.c.path, s.c.value, s.c.subject_key).order_by(_binary(s.c.path, session))
    counted = [0]

    def found() -> Iterator[Mismatch]:
        # Two connections would be needed to stream both at once on some drivers: the
        # audited side is smaller (one row per path) and is read in batches alongside.
        audited = session.execute(last_audited(session, actions).execution_options(
            yield_per=20000))
        next_audited = next(audited, None)
        for path, value, subject_key in session.execute(
                ordered.execution_options(yield_per=20000)):
            counted[0] += 1
            while next_audited is not None and next_audited[0] < path:
                if require_stored and next_audited[1] is not None:
                    yield Mismatch(what, next_audited[0], None, next_audited[1], None,
                                   "the stored row is gone")
                next_audited = next(audited, None)
            if next_audited is not None and next_audited[0] == path:
                expected, no_row = next_audited[1], False
                next_audited = next(audited, None)
            else:
                expected, no_row = default, True
            if no_row and require_row:
                yield Mismatch(what, path, value, None, subject_key, "no audit row")
            elif value != expected:
                yield Mismatch(what, path, value, expected, subject_key)
        while next_audited is not None:
            if require_stored and next_audited[1] is not None:
                yield Mismatch(what, next_audited[0], None, next_audited[1], None,
                               "the stored row is gone")
            next_audited = next(audited, None)

    return (lambda: counted[0]), found()


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
        out = [f"data reconciled with the trail: {compared}; {self.total} mismatch{'' if self.total == 1 else 'es'}"]
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
    if session.get_bind().dialect.name == "postgresql":
        # Each check is one large join and sort: compiling it (JIT) costs more than it
        # saves, and sorts of a million paths spill to disk at the default work_mem.
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    for name, check in sorted(_CHECKS.items()):
        count, found = check(session)
        result.mismatches[name] = 0
        for mismatch in found:
            result.mismatches[name] += 1
            if len(result.shown) < limit:
                result.shown.append(mismatch)
        result.checked[name] = count() if callable(count) else count
    return result


def reconcile_alongside(engine: Engine, limit: int = 50) -> Future[ReconcileResult] | None:
    """Start ``reconcile`` on a connection of its own in a second thread, so that the
    database joins while this thread walks the chain (the thread mostly waits on the
    database); ``None`` on SQLite, where the caller runs it afterwards in its own session."""
    if engine.dialect.name == "sqlite":
        return None

    def run() -> ReconcileResult:
        with Session(engine) as session:
            try:
                return reconcile(session, limit=limit)
            finally:
                session.rollback()

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecrf-reconcile")
    try:
        return pool.submit(run)
    finally:
        pool.shutdown(wait=False)
