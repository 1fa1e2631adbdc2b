"""Server-rendered SVG charts of blood counts (matplotlib, Agg-free SVG backend).

Pure functions from numbers to SVG text, for the web pages and the PDF casebook alike.
No fonts are fetched (matplotlib's bundled DejaVu Sans, text kept as <text> elements) and
nothing global is left changed. Text given by users (subject keys, labels) is shown
literally: matplotlib escapes it for XML, and mathtext is disabled by escaping ``$``.

Every reference line carries an SVG id so that tests and style sheets can find it:
``threshold-<panel>-<value>``, ``infusion-day``, ``transfusions-<product>``, ``median-anc``.

Each SVG is drawn once per content: a chart is looked up by the hash of what it is drawn
from (the chart function, every number and label given, which carry the language, the
style settings, matplotlib's version and this module's code) in an in-process LRU, then
in an on-disk cache shared by the workers (``instance/cache/plots/<hash>.svg``, written
atomically; ``PLOT_CACHE_DIR`` to move it, empty to keep charts in memory only). Pages
wait on matplotlib only when the data changed.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from statistics import median

import matplotlib

matplotlib.use("Agg")  # never a GUI backend on a server

from matplotlib import rc_context  # noqa: E402
from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

Number = int | float | Decimal
_LOCK = threading.Lock()
_RC = {"svg.fonttype": "none", "svg.hashsalt": "ecrf", "font.family": "DejaVu Sans",
       "font.size": 9, "text.usetex": False}
ANC_FLOOR = 0.01  # log axis: values at or below zero are drawn here
COLOURS = {"anc": "#1f5fa8", "plt": "#a8431f", "hgb": "#2b7a3d", "median": "#000000",
           "threshold": "#7a7a7a", "infusion": "#6a3d9a"}


@dataclass(frozen=True)
class Threshold:
    value: Number
    label: str


@dataclass(frozen=True)
class ChartPanel:
    key: str  # anc | plt | hgb
    title: str
    unit: str
    values: Mapping[int, Number]
    thresholds: Sequence[Threshold] = ()
    log: bool = False


def _text(value: object) -> str:
    return str(value).replace("$", r"\$")


def _number_id(value: Number) -> str:
    return format(Decimal(str(value)).normalize(), "f")


log = logging.getLogger(__name__)
MEMORY_ENTRIES = 128
_MEMORY: OrderedDict[str, str] = OrderedDict()
_MEMORY_LOCK = threading.Lock()
# What was drawn and found, since the process started (for tests and benches).
STATS = {"renders": 0, "memory_hits": 0, "disk_hits": 0}


@functools.cache
def _style_key() -> str:
    """What a chart's look depends on besides its data: settings, colours, matplotlib's
    version and the drawing code itself (a change to any draws every chart anew)."""
    code = Path(__file__).read_bytes()
    return hashlib.sha256(repr((sorted(_RC.items()), sorted(COLOURS.items()), CURVE_COLOURS,
                                ANC_FLOOR, matplotlib.__version__)).encode() + code
                          ).hexdigest()


def chart_key(name: str, args: tuple, kwargs: dict) -> str:
    """The content hash of one chart: its function, its data and labels, and the style."""
    material = repr((name, args, sorted(kwargs.items()), _style_key()))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def _cache_dir() -> Path | None:
    try:
        from flask import current_app

        configured = current_app.config.get("PLOT_CACHE_DIR", None)
        if configured is not None:
            return Path(configured) if configured else None
        return Path(current_app.instance_path) / "cache" / "plots"
    except RuntimeError:  # outside an application: memory only
        return None


def _remember(key: str, svg: str) -> None:
    with _MEMORY_LOCK:
        _MEMORY[key] = svg
        _MEMORY.move_to_end(key)
        while len(_MEMORY) > MEMORY_ENTRIES:
            _MEMORY.popitem(last=False)


def _read_disk(folder: Path | None, key: str) -> str | None:
    if folder is None:
        return None
    try:
        return (folder / f"{key}.svg").read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _write_disk(folder: Path | None, key: str, svg: str) -> None:
    """Write the chart whole or not at all: a temporary file renamed into place, so a
    worker reading it at the same moment sees the old state or the complete file."""
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(svg.encode("utf-8"))
            os.replace(partial, folder / f"{key}.svg")
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
    except OSError:  # a read-only or full disk: the chart is still shown
        log.warning("could not keep chart %s in %s", key, folder, exc_info=True)


def clear_memory_cache() -> None:
    with _MEMORY_LOCK:
        _MEMORY.clear()


def _drawing(function):
    """Run a chart function with ecrf's settings (rcParams are process-wide, so one chart
    at a time and the settings restored afterwards), once per content: the SVG is kept in
    memory and on disk under the content hash of the call (``chart_key``)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        key = chart_key(function.__name__, args, kwargs)
        with _MEMORY_LOCK:
            found = _MEMORY.get(key)
            if found is not None:
                _MEMORY.move_to_end(key)
                STATS["memory_hits"] += 1
                return found
        folder = _cache_dir()
        found = _read_disk(folder, key)
        if found is not None:
            STATS["disk_hits"] += 1
            _remember(key, found)
            return found
        with _LOCK, rc_context(_RC):
            svg = function(*args, **kwargs)
            STATS["renders"] += 1
        _remember(key, svg)
        _write_disk(folder, key, svg)
        return svg

    return wrapper


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    FigureCanvasSVG(fig)
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _plot_series(ax, values: Mapping[int, Number], colour: str, floor: float | None, **kw):
    """A measured series; consecutive measurement days are joined, gaps are left open."""
    days = sorted(values)
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    for index, run in enumerate(runs):
        ys = [max(float(values[d]), floor) if floor else float(values[d]) for d in run]
        ax.plot(run, ys, color=colour, marker="o", markersize=2.5, linewidth=1.2,
                label=kw.get("label") if index == 0 else None)


@_drawing
def subject_counts_svg(panels: Sequence[ChartPanel], *, horizon: int = 42,
                       infusion_day: int | None = None,
                       transfusions: Sequence[tuple[int, str]] = (),
                       title: str = "") -> str:
    """Stacked panels (ANC, platelets, haemoglobin) sharing a day axis from day 1 to the
    horizon, with threshold lines, transfusion markers and the infusion day."""
    fig = Figure(figsize=(7.5, 2.2 * max(len(panels), 1) + 0.6))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        floor = ANC_FLOOR if panel.log else None
        if panel.log:
            ax.set_yscale("log")
        _plot_series(ax, panel.values, COLOURS.get(panel.key, "#333333"), floor)
        for index, threshold in enumerate(panel.thresholds):
            line = ax.axhline(float(threshold.value), color=COLOURS["threshold"],
                              linestyle="--", linewidth=0.9)
            line.set_gid(f"threshold-{panel.key}-{_number_id(threshold.value)}")
            # Neighbouring lines (20 and 25) would overlap their labels: alternate sides.
            right = index % 2 == 0
            ax.annotate(_text(threshold.label), xy=(1 if right else 0, float(threshold.value)),
                        xycoords=("axes fraction", "data"), xytext=(-2 if right else 2, 2),
                        textcoords="offset points", ha="right" if right else "left",
                        va="bottom", fontsize=7, color=COLOURS["threshold"])
        product = {"plt": "platelets", "hgb": "red_cells"}.get(panel.key)
        marked = sorted({day for day, kind in transfusions if kind == product})
        if product and marked:
            bottom = ax.get_ylim()[0]
            points = ax.scatter(marked, [bottom] * len(marked), marker="^", s=28,
                                color=COLOURS.get(panel.key), clip_on=False, zorder=3,
                                label="transfusion")
            points.set_gid(f"transfusions-{product}")
        if infusion_day is not None:
            line = ax.axvline(infusion_day, color=COLOURS["infusion"], linewidth=1)
            line.set_gid("infusion-day" if ax is axes[0] else f"infusion-day-{panel.key}")
        ax.set_ylabel(_text(f"{panel.title}\n({panel.unit})"))
        ax.grid(True, axis="x", linewidth=0.3, alpha=0.5)
    axes[-1].set_xlim(0.5, horizon + 0.5)
    axes[-1].set_xlabel("Day from chemotherapy day 1")
    ticks = [1] + list(range(7, horizon + 1, 7))
    axes[-1].set_xticks(ticks)
    if infusion_day is not None:
        axes[0].annotate("infusion", xy=(infusion_day, 1), xycoords=("data", "axes fraction"),
                         xytext=(2, -10), textcoords="offset points", fontsize=7,
                         color=COLOURS["infusion"])
    if title:
        fig.suptitle(_text(title))
    fig.tight_layout()
    return _svg(fig)


@_drawing
def dose_level_anc_svg(curves: Mapping[str, Mapping[int, Number]], *, horizon: int = 42,
                       threshold: Threshold | None = None, title: str = "") -> str:
    """Every subject's ANC curve of one dose level (thin lines) with the daily median (over
    the subjects measured that day), on a log axis."""
    fig = Figure(figsize=(7.5, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    ax.set_yscale("log")
    for name in sorted(curves):
        values = curves[name]
        days = sorted(values)
        line, = ax.plot(days, [max(float(values[d]), ANC_FLOOR) for d in days],
                        color=COLOURS["anc"], alpha=0.45, linewidth=0.9)
        line.set_gid(f"subject-{len(ax.lines)}")
    by_day: dict[int, list[float]] = {}
    for values in curves.values():
        for day, value in values.items():
            by_day.setdefault(day, []).append(max(float(value), ANC_FLOOR))
    if by_day:
        days = sorted(by_day)
        line, = ax.plot(days, [median(by_day[d]) for d in days], color=COLOURS["median"],
                        linewidth=2, label="median")
        line.set_gid("median-anc")
        ax.legend(loc="upper right", fontsize=7)
    if threshold is not None:
        line = ax.axhline(float(threshold.value), color=COLOURS["threshold"], linestyle="--",
                          linewidth=0.9)
        line.set_gid(f"threshold-anc-{_number_id(threshold.value)}")
        ax.annotate(_text(threshold.label), xy=(1, float(threshold.value)),
                    xycoords=("axes fraction", "data"), xytext=(-2, 2),
                    textcoords="offset points", ha="right", fontsize=7,
                    color=COLOURS["threshold"])
    ax.set_xlim(0.5, horizon + 0.5)
    ax.set_xticks([1] + list(range(7, horizon + 1, 7)))
    ax.set_xlabel("Day from chemotherapy day 1")
    ax.set_ylabel("ANC (10^9/L)")
    if title:
        ax.set_title(_text(title))
    fig.tight_layout()
    return _svg(fig)


# --- Kaplan-Meier -------------------------------------------------------------------------------

CURVE_COLOURS = ("#1f5fa8", "#a8431f", "#2b7a3d", "#6a3d9a", "#b8860b", "#17becf")


@dataclass(frozen=True)
class SurvivalCurve:
    """One Kaplan-Meier curve: its steps (time, survival just after), the censored times
    (tick marks) and the numbers at risk at each of the plot's ``at_risk_times``."""

    label: str
    steps: Sequence[tuple[float, float]]
    censor_times: Sequence[float]
    at_risk: Sequence[int]
    pooled: bool = False
    short: str = ""  # the row label of the numbers-at-risk table (the arm code)


def _survival_at(steps: Sequence[tuple[float, float]], time: float) -> float:
    value = 1.0
    for at, survival in steps:
        if at > time:
            break
        value = survival
    return value


@_drawing
def kaplan_meier_svg(curves: Sequence[SurvivalCurve], *, at_risk_times: Sequence[float],
                     x_label: str = "Months from randomisation",
                     y_label: str = "Survival probability", at_risk_title: str = "Number at risk",
                     title: str = "") -> str:
    """Step curves (each group, the pooled one dashed in black) with censoring ticks, and
    the numbers at risk per curve in a table under the time axis, aligned with it."""
    rows = max(len(curves), 1)
    fig = Figure(figsize=(7.5, 3.4 + 0.22 * rows + 0.6))
    grid = fig.add_gridspec(2, 1, height_ratios=[3.4, 0.22 * rows + 0.3], hspace=0.42)
    ax = fig.add_subplot(grid[0])
    table = fig.add_subplot(grid[1], sharex=ax)
    end = max([*at_risk_times, 1.0])
    colours = iter(CURVE_COLOURS)
    styles = []
    for index, curve in enumerate(curves):
        colour = "#000000" if curve.pooled else next(colours, "#555555")
        styles.append(colour)
        last = max([0.0, *(t for t, _ in curve.steps), *curve.censor_times])
        xs = [0.0] + [float(t) for t, _ in curve.steps] + [last]
        ys = [1.0] + [float(s) for _, s in curve.steps]
        ys.append(ys[-1])
        name = f"{curve.short}: {curve.label}" if curve.short and not curve.pooled \
            else curve.label
        line, = ax.step(xs, ys, where="post", color=colour,
                        linewidth=1.1 if curve.pooled else 1.6,
                        linestyle="--" if curve.pooled else "-", label=_text(name),
                        zorder=2 if curve.pooled else 3)
        line.set_gid(f"km-curve-{index}")
        if curve.censor_times:
            ticks = ax.scatter([float(t) for t in curve.censor_times],
                               [_survival_at(curve.steps, t) for t in curve.censor_times],
                               marker="|", s=40 if curve.pooled else 70,
                               linewidths=0.9 if curve.pooled else 1.4, color=colour,
                               zorder=2 if curve.pooled else 4)
            ticks.set_gid(f"km-censored-{index}")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlim(-0.02 * end, end * 1.02)
    ax.set_xticks(list(at_risk_times))
    ax.set_ylabel(_text(y_label))
    ax.set_xlabel(_text(x_label))
    ax.grid(True, linewidth=0.3, alpha=0.5)
    if curves:
        ax.legend(loc="lower left", fontsize=7, frameon=False)
    if title:
        ax.set_title(_text(title))
    # The numbers at risk: one row per curve, under its time on the axis above.
    table.set_ylim(rows - 0.5, -0.7)
    table.set_yticks(range(len(curves)))
    table.set_yticklabels([_text(c.short or c.label) for c in curves], fontsize=7)
    for tick, colour in zip(table.get_yticklabels(), styles, strict=True):
        tick.set_color(colour)
    table.tick_params(axis="both", length=0, labelbottom=False)
    for side in ("top", "right", "bottom", "left"):
        table.spines[side].set_visible(False)
    table.set_title(_text(at_risk_title), fontsize=8, loc="left")
    for row, curve in enumerate(curves):
        for time, count in zip(at_risk_times, curve.at_risk, strict=False):
            cell = table.text(float(time), row, str(count), ha="center", va="center",
                              fontsize=7, color=styles[row])
            cell.set_gid(f"at-risk-{row}-{_number_id(time)}")
    fig.subplots_adjust(left=0.1, right=0.97, top=0.93 if title else 0.97, bottom=0.04)
    return _svg(fig)
