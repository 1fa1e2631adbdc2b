"""Panels that areas add to the role dashboards.

The dashboards own the boards every study has (subjects, visits, queries, signatures,
SDV). An area with something a role must see first adds a panel in its ``register``:
what it shows is the area's business, where it appears is the dashboard's. A panel is
shown to the roles it names, after the board's own panels, in the order they were added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class DashboardPanel:
    key: str  # unique: adding a panel twice replaces it
    roles: frozenset[str]  # role values ("investigator", ...) the panel is shown to
    template: str  # rendered with ``panel`` and ``data`` (and the board's context)
    build: Callable[[Session, Any, Any], Any]  # (session, user, study) -> data


_PANELS: dict[str, DashboardPanel] = {}


def add_panel(panel: DashboardPanel) -> None:
    _PANELS[panel.key] = panel


def panels_for(role: str) -> list[DashboardPanel]:
    return [panel for panel in _PANELS.values() if role in panel.roles]
