"""Declarative base, naming convention and column types shared by every model, and the
statistics refresh after bulk imports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import (
    CTE,
    CheckConstraint,
    DateTime,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    column,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Session

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """A point in time stored as naive UTC on every backend and returned as aware UTC.

    SQLite has no time zone support and PostgreSQL converts ``timestamptz`` to the
    session zone; storing naive UTC everywhere keeps values (and audit hashes over them)
    identical across both databases.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given for a UTC column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)


# Imports storing fewer values than this leave statistics to autovacuum.
ANALYZE_THRESHOLD = 1000


def analyze_after_import(session: Session, tables: Iterable[str], values: int, *,
                         threshold: int | None = None) -> bool:
    """After a bulk import has committed: refresh PostgreSQL's planner statistics of the
    tables it filled, so the next export or dashboard plans for the rows now there (stale
    statistics made an export after a 4,000-subject import take 30 s instead of 6 s).
    Skipped below ``threshold`` (default ``ANALYZE_THRESHOLD``) values and on SQLite
    (which plans without them); True when it ran."""
    tables = list(tables)
    for table in tables:
        if not table.isidentifier():
            raise ValueError(f"not a table name: {table!r}")
    if threshold is None:
        threshold = ANALYZE_THRESHOLD
    if values < threshold or session.get_bind().dialect.name != "postgresql":
        return False
    for table in tables:
        session.execute(text(f'ANALYZE "{table}"'))
    session.commit()
    return True


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Audited:
    """Mixin for models whose changes must be audited: a flush of such a change with no
    actor bound to the session is refused (``ecrf.core.audit``), and rows are never deleted."""


def one_of(column: str, vocabulary: Iterable[str], *, name: str | None = None
           ) -> CheckConstraint:
    """``CHECK (column IN (...))`` from a vocabulary (a ``StrEnum``), so that the values a
    column may hold are written once, where the code names them too."""
    values = ", ".join(f"'{value}'" for value in vocabulary)
    return CheckConstraint(f"{column} IN ({values})", name=name or column)


def _sql_literal(value: int | str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"literal_table takes int and str values, not {value!r}")
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


def literal_table(name: str, names: tuple[str, ...], rows: Iterable[tuple[int | str, ...]]
                  ) -> CTE | None:
    """A small table of literal rows (ints and strings: OIDs, ids, positions) to join with,
    as a CTE named ``name`` with the columns ``names`` (their types are those of the first
    row), or None without rows. Written as one ``VALUES`` list, so it is not limited to
    SQLite's 500 compound selects, takes no bound parameters, and the statements using
    it are compiled once and cached like any other."""
    rows = list(rows)
    if not rows:
        return None
    values_sql = ", ".join("(" + ", ".join(_sql_literal(v) for v in row) + ")" for row in rows)
    types = [Integer if isinstance(v, int) else String for v in rows[0]]
    raw = text(f"VALUES {values_sql}").columns(
        *(column(f"column{n}", kind) for n, kind in enumerate(types, start=1))).cte(f"{name}_rows")
    return select(*(raw.c[f"column{n}"].label(label)
                    for n, label in enumerate(names, start=1))).cte(name)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
