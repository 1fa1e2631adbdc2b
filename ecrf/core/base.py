"""Declarative base, naming convention and column types shared by every model."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import CheckConstraint, DateTime, MetaData, TypeDecorator
from sqlalchemy.orm import DeclarativeBase

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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
