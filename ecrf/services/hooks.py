"""Reactions to data capture, registered by the areas that need them.

Data capture must not know every rule that follows a change (SDV resets, broken
signatures, automatic queries, lab grading, SAE clocks, locks). Those areas register
callbacks here and capture calls ``before_change`` and ``after_save`` inside the same
transaction, so a refusal or a failure rolls everything back together.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from ecrf.services.audit import Actor

# Modules that register callbacks when imported; loaded on first dispatch so that every
# entry point (web, API, CLI, jobs) gets the same reactions.
_PROVIDERS = (
    "ecrf.services.review_hooks",
    "ecrf.services.safety_hooks",
)


@dataclass(frozen=True)
class ItemChange:
    group: str
    row: int
    item: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class FormChange:
    """What a save is about to do (``before_change``) or did (``after_save``)."""

    session: Session
    actor: Actor
    subject: object  # models.Subject
    event_oid: str
    repeat: int
    form_oid: str
    form_instance: object | None  # models.FormInstance; None before the first save
    changes: tuple[ItemChange, ...] = ()
    removed_rows: tuple[tuple[str, int], ...] = ()
    status_before: str | None = None
    status_after: str | None = None
    extra: dict = field(default_factory=dict)


BeforeChange = Callable[[FormChange], None]
AfterSave = Callable[[FormChange], None]

_before: list[BeforeChange] = []
_after: list[AfterSave] = []
_loaded = False


def on_before_change(callback: BeforeChange) -> BeforeChange:
    """Register a check run before any clinical write; it may raise to refuse the change."""
    if callback not in _before:
        _before.append(callback)
    return callback


def on_after_save(callback: AfterSave) -> AfterSave:
    """Register a reaction run after a form was saved, in the same transaction."""
    if callback not in _after:
        _after.append(callback)
    return callback


def _load_providers() -> None:
    global _loaded
    if _loaded:
        return
    for name in _PROVIDERS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    _loaded = True


def before_change(change: FormChange) -> None:
    _load_providers()
    for callback in list(_before):
        callback(change)


def after_save(change: FormChange) -> None:
    _load_providers()
    for callback in list(_after):
        callback(change)
