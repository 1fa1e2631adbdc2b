"""Expressions over partial dates, evaluated without imputing anything.

The expression language knows full dates only. An expression that reads an incomplete
partial date (``2024``, ``2024-03``) is evaluated at both ends of each such date's possible
range; the answer is used only if every reading agrees, and is ``UNDECIDED`` otherwise
(``"2024-03" >= "2024-03-15"`` could go either way). A complete partial date is its date.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable

from ecrf.domain.dates import PartialDate
from ecrf.domain.expressions import compile_cached, evaluate

MAX_PARTIAL_COMBINATIONS = 4  # incomplete partial dates explored per expression


class _Undecided:
    def __repr__(self) -> str:
        return "UNDECIDED"


UNDECIDED = _Undecided()


def evaluate_partial(source: str, resolve: Callable[[tuple[str, ...]], object],
                     today: dt.date) -> object:
    """Evaluate with partial dates read at both ends of their range; UNDECIDED if the
    readings disagree. Complete partial dates are plain dates."""
    expr = compile_cached(source)
    first = _PartialResolver(resolve, {})
    value = evaluate(expr, first, today=today)
    if not first.touched:
        return value
    names = list(dict.fromkeys(first.touched))[:MAX_PARTIAL_COMBINATIONS]
    for sides in itertools.product((False, True), repeat=len(names)):
        if not any(sides):
            continue
        other = evaluate(expr, _PartialResolver(resolve, dict(zip(names, sides, strict=True))),
                         today=today)
        if other != value:
            return UNDECIDED
    return value


class _PartialResolver:
    __slots__ = ("resolve", "latest", "touched")

    def __init__(self, resolve: Callable[[tuple[str, ...]], object], latest: dict):
        self.resolve = resolve
        self.latest = latest
        self.touched: list[tuple[str, ...]] = []

    def __call__(self, parts: tuple[str, ...]) -> object:
        value = self.resolve(parts)
        if type(value) is PartialDate:
            if value.is_complete:
                return value.to_date()
            if parts not in self.latest:
                self.touched.append(parts)
            return value.latest() if self.latest.get(parts) else value.earliest()
        return value
