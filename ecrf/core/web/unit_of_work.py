"""One transaction per request, committed or rolled back in one place.

A view runs its work inside ``transaction()``: the block's end commits, an exception
rolls back and propagates, so the view catches the refusals it expects and re-renders
the page from the posted form, with nothing of the refused work kept. A refusal that is
itself part of the record (a failed sign-in, a wrong signing password counting toward
the lockout) is named in ``keep``: the transaction is committed before it propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError, OperationalError

from ecrf.core.extensions import db

log = logging.getLogger(__name__)


class Transaction:
    def __init__(self) -> None:
        self.discarded = False

    def discard(self) -> None:
        """Roll back at the end of the block: the work was refused by its result (a form
        with errors) rather than by an exception."""
        self.discarded = True


@contextmanager
def transaction(*, keep: tuple[type[BaseException], ...] = ()) -> Iterator[Transaction]:
    session = db.session
    unit = Transaction()
    try:
        yield unit
    except keep:
        session.commit()
        raise
    except BaseException:
        session.rollback()
        raise
    if unit.discarded:
        session.rollback()
    else:
        session.commit()


def store_derived(work: Callable[[], object]) -> None:
    """Keep what a page derived on the way (stored schedules brought up to today): commit
    when ``work`` says it changed something. Another worker doing the same at the same
    moment may win the race: its result stands, and the page shows the stored state."""
    try:
        with transaction() as unit:
            if not work():
                unit.discard()
    except (IntegrityError, OperationalError):
        log.warning("derived data lost a race to another request; showing the stored state",
                    exc_info=True)


def keep_derived(written: int) -> None:
    """Commit the rows a read-only page derived while reading (counts kept for the next
    views) when it wrote any: nothing else of such a request is pending. What the page
    loaded stays loaded (it is what was just committed): rendering reads nothing again."""
    if not written:
        return
    session = db.session()
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        store_derived(lambda: True)
    finally:
        session.expire_on_commit = expire
