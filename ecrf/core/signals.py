"""Signals between areas: data capture announces a change, other areas react.

Data capture must not know every rule that follows a change (locks, SDV resets, broken
signatures, automatic queries, lab grading, SAE clocks). It sends ``form_changing``
before any clinical write and ``form_saved`` after a form was written; the areas that
react connect their receivers in their own ``register(app)``, called by the app factory,
so a receiver that cannot be imported stops the start-up instead of being skipped.

Receivers run inside the saving transaction, in the order they were connected: a
receiver of ``form_changing`` refuses a change by raising, and an exception in any
receiver rolls the whole save back with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from blinker import NamedSignal, Signal
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from ecrf.core.audit.trail import Actor


class _OrderedSet(MutableSet):
    """blinker calls receivers in the order of its set class; this one keeps connection
    order, so the audit rows that reactions write always come in the same order."""

    def __init__(self, items: Iterable = ()) -> None:
        self._items = dict.fromkeys(items)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item) -> None:
        self._items[item] = None

    def discard(self, item) -> None:
        self._items.pop(item, None)

    def copy(self) -> _OrderedSet:
        return _OrderedSet(self._items)


class _OrderedSignal(NamedSignal):
    set_class = _OrderedSet


@dataclass(frozen=True)
class ItemChange:
    group: str
    row: int
    item: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class FormChange:
    """What a save is about to do (``form_changing``) or did (``form_saved``).

    It is the signal's sender: receivers are called as ``receiver(change)``.
    """

    session: Session
    actor: Actor
    subject: object  # capture's Subject
    event_oid: str
    repeat: int
    form_oid: str  # "" for a change of the event itself (started, redated, not done)
    form_instance: object | None  # capture's FormInstance; None before the first save
    changes: tuple[ItemChange, ...] = ()
    removed_rows: tuple[tuple[str, int], ...] = ()
    status_before: str | None = None
    status_after: str | None = None
    # ``form_saved`` from a form save: the form as just written and validated (capture's
    # OpenForm), so that receivers read it instead of loading and validating it again.
    saved: object | None = None
    # Shared by the ``form_changing`` and ``form_saved`` of one save: what a receiver of
    # the first learnt for one of the second.
    extra: dict = field(default_factory=dict)


form_changing = _OrderedSignal("form-changing", doc="""\
Sent before any clinical write of a subject's event or form; a receiver refuses the
change by raising (locked data, a frozen study).""")

form_saved = _OrderedSignal("form-saved", doc="""\
Sent after a form was written, in the same transaction; receivers react (SDV resets,
broken signatures, automatic queries, grading, SAE clocks).""")

Receiver = Callable[[FormChange], None]


def connect(signal: Signal, *receivers: Receiver) -> None:
    """Connect receivers for the life of the process (blinker ignores a second connect)."""
    for receiver in receivers:
        signal.connect(receiver, weak=False)


def receivers_of(signal: Signal) -> list[Receiver]:
    """The receivers connected to ``signal``, in the order they are called."""
    return list(signal.receivers_for(None))
