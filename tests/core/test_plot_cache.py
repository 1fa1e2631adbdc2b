"""Charts drawn once per content: the same data is served from memory or from the disk
cache shared by the workers, byte for byte; changed data, labels or style draw anew."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ecrf.core import plots
from ecrf.core.plots import (
    ChartPanel,
    SurvivalCurve,
    Threshold,
    dose_level_anc_svg,
    kaplan_meier_svg,
    subject_counts_svg,
)
from tests.core.test_plots import panels


@pytest.fixture
def cache(app, tmp_path):
    """An empty disk cache for the app and an empty memory; yields the folder."""
    folder = tmp_path / "plots"
    app.config["PLOT_CACHE_DIR"] = str(folder)
    plots.clear_memory_cache()
    yield folder
    plots.clear_memory_cache()


def renders() -> int:
    return plots.STATS["renders"]


def counts(**change):
    options = {"horizon": 42, "infusion_day": 7, "transfusions": [(3, "platelets")],
               "title": "S-001", **change}
    return subject_counts_svg(panels(), **options)


def test_the_same_data_is_drawn_once(cache):
    before = renders()
    first = counts()
    assert renders() == before + 1
    [stored] = cache.glob("*.svg")
    assert stored.read_bytes() == first.encode()
    assert counts() == first and renders() == before + 1  # from memory
    plots.clear_memory_cache()  # another worker: the disk cache
    disk = plots.STATS["disk_hits"]
    assert counts() == first and renders() == before + 1
    assert plots.STATS["disk_hits"] == disk + 1
    assert list(cache.glob("*.tmp")) == []


@pytest.mark.parametrize("change", [
    {"horizon": 28}, {"infusion_day": 8}, {"transfusions": [(3, "red_cells")]},
    {"title": "S-002"}])
def test_changed_data_is_drawn_again(cache, change):
    first = counts()
    before = renders()
    again = counts(**change)
    assert renders() == before + 1 and again != first
    assert len(list(cache.glob("*.svg"))) == 2


def test_a_changed_value_or_label_is_a_new_chart(cache):
    base = panels()
    first = subject_counts_svg(base, title="S")
    before = renders()
    changed = [ChartPanel(p.key, p.title, p.unit, {**p.values, 9: Decimal("1.5")},
                          p.thresholds, p.log) if p.key == "anc" else p for p in base]
    subject_counts_svg(changed, title="S")
    french = [ChartPanel(p.key, "PNN" if p.key == "anc" else p.title, p.unit, p.values,
                         p.thresholds, p.log) for p in base]
    subject_counts_svg(french, title="S")
    assert renders() == before + 2
    assert subject_counts_svg(panels(), title="S") == first and renders() == before + 2


def test_each_kind_of_chart_is_cached(cache):
    curves = [SurvivalCurve("Arm A", [(3.0, 0.8)], [5.0], [10, 8], short="A")]
    calls = [lambda: dose_level_anc_svg({"S-1": {1: 2, 2: 0.3}},
                                        threshold=Threshold(0.5, "0.5")),
             lambda: kaplan_meier_svg(curves, at_risk_times=[0, 6])]
    before = renders()
    drawn = [call() for call in calls]
    assert [call() for call in calls] == drawn and renders() == before + 2


def test_memory_only_when_the_disk_cache_is_off(app, tmp_path):
    app.config["PLOT_CACHE_DIR"] = ""
    plots.clear_memory_cache()
    before = renders()
    counts(title="memory")
    counts(title="memory")
    assert renders() == before + 1 and not (tmp_path / "plots").exists()


def test_an_unwritable_cache_still_draws(app, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    app.config["PLOT_CACHE_DIR"] = str(blocker / "plots")
    plots.clear_memory_cache()
    assert counts(title="unwritable").startswith("<?xml")


def test_the_memory_keeps_the_most_recent_charts(cache, monkeypatch):
    monkeypatch.setattr(plots, "MEMORY_ENTRIES", 2)
    app_folder = cache
    for title in ("a", "b", "c"):
        counts(title=title)
    assert len(plots._MEMORY) == 2
    for stored in app_folder.glob("*.svg"):
        stored.unlink()
    before = renders()
    counts(title="c")
    counts(title="a")
    assert renders() == before + 1  # c from memory, a (the oldest) drawn again
