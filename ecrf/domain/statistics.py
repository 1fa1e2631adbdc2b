"""Small descriptive statistics for endpoint tables, on SciPy's estimators.

* ``proportion``: events of n with a two-sided exact (Clopper-Pearson) confidence interval,
  from the beta distribution's quantiles (``scipy.stats.beta.ppf``). Percentages are rounded
  half up to one decimal; the interval bounds are rounded outwards, so a printed interval
  always contains the exact one.
* ``kaplan_meier``: the product-limit estimate of the survival function for right-censored
  times (``scipy.stats.ecdf`` on ``CensoredData``), with the numbers at risk. The median is
  the smallest time at which the estimate is at or below 0.5 (None while it stays above:
  "not reached"). Its 95 % interval follows Brookmeyer and Crowley on SciPy's pointwise
  log-log interval: the lower bound is the first time the lower pointwise bound falls to
  0.5 or below, the upper bound the first time the upper pointwise bound does (None when
  it never does: "not reached").

Times are in any unit the caller chooses (days for the endpoints, months for survival); a
time of 0 is allowed (an event on the day of the origin).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

CONFIDENCE = 0.95


class StatisticsError(ValueError):
    """Impossible input to an estimator (negative counts or times, mismatched lengths)."""


@dataclass(frozen=True)
class Proportion:
    events: int
    n: int
    #: 100 * events / n to one decimal (half up); None when n == 0.
    percent: Decimal | None
    #: Exact two-sided interval in percent, one decimal, rounded outwards; None when n == 0.
    ci_low: Decimal | None
    ci_high: Decimal | None

    def text(self) -> str:
        """``3/10 (30.0 %; 95 % CI 6.6-65.3)``; ``0/0`` without a percentage."""
        if self.percent is None:
            return f"{self.events}/{self.n}"
        return (f"{self.events}/{self.n} ({self.percent} %; 95 % CI "
                f"{self.ci_low}-{self.ci_high})")


def _round(value: float, rounding: str) -> Decimal:
    # Nine places first, so float noise (97.50000000000001) does not move a bound outwards.
    exact = Decimal(repr(value)).quantize(Decimal("1e-9"), ROUND_HALF_UP)
    return exact.quantize(Decimal("0.1"), rounding)


def proportion(events: int, n: int, confidence: float = CONFIDENCE) -> Proportion:
    """``events`` of ``n`` with its exact (Clopper-Pearson) confidence interval."""
    if n < 0 or events < 0 or events > n:
        raise StatisticsError(f"impossible proportion {events}/{n}")
    if n == 0:
        return Proportion(events, n, None, None, None)
    from scipy.stats import beta

    # Clopper-Pearson as beta quantiles (what binomtest(...).proportion_ci(method="exact")
    # computes by root finding, at a fraction of the cost).
    tail = (1 - confidence) / 2
    low_value = 0.0 if events == 0 else float(beta.ppf(tail, events, n - events + 1))
    high_value = 1.0 if events == n else float(beta.ppf(1 - tail, events + 1, n - events))
    percent = (Decimal(100 * events) / Decimal(n)).quantize(Decimal("0.1"), ROUND_HALF_UP)
    low = _round(100 * low_value, ROUND_FLOOR)
    high = _round(100 * high_value, ROUND_CEILING)
    return Proportion(events, n, percent, max(low, Decimal("0.0")), min(high, Decimal("100.0")))


@dataclass(frozen=True)
class KaplanMeier:
    """A Kaplan-Meier estimate: the survival function as steps, with numbers at risk."""

    n: int
    events: int
    censored: int
    #: (time, survival just after time), one per distinct event time, ascending.
    steps: tuple[tuple[float, float], ...]
    #: (time, lower, upper) pointwise 95 % interval at each step (log-log).
    bounds: tuple[tuple[float, float, float], ...]
    #: Times of censored observations (for the tick marks on a plot).
    censor_times: tuple[float, ...]
    median: float | None
    median_low: float | None
    median_high: float | None
    _times: tuple[float, ...] = ()

    def survival_at(self, time: float) -> float:
        """S(time): the estimate just after ``time`` (1.0 before the first event)."""
        value = 1.0
        for at, survival in self.steps:
            if at > time:
                break
            value = survival
        return value

    def at_risk(self, time: float) -> int:
        """Subjects still under observation at ``time`` (time >= ``time``)."""
        return sum(1 for t in self._times if t >= time)


def kaplan_meier(times: Sequence[float], events: Sequence[bool],
                 confidence: float = CONFIDENCE) -> KaplanMeier:
    """The product-limit estimate for ``times`` (event when ``events[i]``, else censored)."""
    if len(times) != len(events):
        raise StatisticsError(f"{len(times)} times but {len(events)} event flags")
    values = [float(t) for t in times]
    if any(math.isnan(t) or t < 0 for t in values):
        raise StatisticsError("times must be non-negative numbers")
    observed = [t for t, e in zip(values, events, strict=True) if e]
    censored = [t for t, e in zip(values, events, strict=True) if not e]
    n = len(values)
    if not observed:
        return KaplanMeier(n, 0, len(censored), (), (), tuple(sorted(censored)), None, None,
                           None, tuple(values))
    from scipy import stats

    result = stats.ecdf(stats.CensoredData(uncensored=observed, right=censored))
    sf = result.sf
    event_times = sorted(set(observed))
    # One vectorised evaluation per curve: the estimate just after each event time.
    steps = tuple(zip(event_times, (float(v) for v in sf.evaluate(event_times)), strict=True))
    bounds: tuple[tuple[float, float, float], ...] = ()
    lows: list[float] = []
    highs: list[float] = []
    try:
        with warnings.catch_warnings():
            # Undefined where S is 0 or 1: those points get NaN and are skipped below.
            warnings.simplefilter("ignore", RuntimeWarning)
            interval = sf.confidence_interval(confidence_level=confidence, method="log-log")
        lows = [float(v) for v in interval.low.evaluate(event_times)]
        highs = [float(v) for v in interval.high.evaluate(event_times)]
        bounds = tuple(zip(event_times, lows, highs, strict=True))
    except (ValueError, FloatingPointError):  # pragma: no cover - degenerate samples
        pass

    def first_at_or_below_half(series: Sequence[float]) -> float | None:
        for t, s in zip(event_times, series, strict=True):
            if not math.isnan(s) and s <= 0.5:
                return t
        return None

    median = first_at_or_below_half([s for _, s in steps])
    median_low = first_at_or_below_half(lows) if lows else None
    median_high = first_at_or_below_half(highs) if highs else None
    return KaplanMeier(n, len(observed), len(censored), steps, bounds,
                       tuple(sorted(censored)), median, median_low, median_high,
                       tuple(values))
