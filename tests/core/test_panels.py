"""Areas add their dashboard panels when the app is created, not when found by name."""

from __future__ import annotations

from ecrf.core.panels import DashboardPanel, add_panel, panels_for
from ecrf.safety import operations as safety


def test_safety_adds_the_sae_clocks_panel_for_investigators_only(app):
    assert safety.SAE_CLOCKS_PANEL in panels_for("investigator")
    for role in ("coordinator", "monitor", "data_manager", "sponsor_viewer"):
        assert safety.SAE_CLOCKS_PANEL not in panels_for(role)


def test_adding_a_panel_again_replaces_it(app):
    count = len(panels_for("investigator"))
    again = DashboardPanel(safety.SAE_CLOCKS_PANEL.key, frozenset({"investigator"}),
                  safety.SAE_CLOCKS_PANEL.template, safety.running_sae_clocks)
    add_panel(again)
    try:
        assert len(panels_for("investigator")) == count
    finally:
        add_panel(safety.SAE_CLOCKS_PANEL)
