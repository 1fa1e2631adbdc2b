"""The live server's calendar, moved forward as the walk's story moves on.

A randomization is dated the day it is done, so a randomized trial can only be walked
through its treatment and follow-up if days pass between the visits. The live server runs
in this process: the walk shifts its two clocks (``ecrf.core.base.utcnow`` and
``ecrf.capture.schedule_data.local_today``, which every "now" and "today" of the app comes
from) by whole days, wherever they were imported. Sessions and passwords must not expire
on the way (``WALK_CONFIG``). The story ends on the real today, offset zero.
"""

from __future__ import annotations

import datetime as dt
import sys

import ecrf.capture.schedule_data as schedule_data
import ecrf.core.base as base

WALK_CONFIG = {"SESSION_IDLE_MINUTES": 10 ** 7, "SESSION_ABSOLUTE_HOURS": 10 ** 6,
               "PASSWORD_MAX_AGE_DAYS": 0}


class ServerClock:
    """Days added to the server's clocks; ``timezone`` is the walk's site's."""

    def __init__(self, monkeypatch, timezone: str = "UTC") -> None:
        self.offset = dt.timedelta(0)
        real_utcnow, real_local_today = base.utcnow, schedule_data.local_today

        def utcnow() -> dt.datetime:
            return real_utcnow() + self.offset

        def local_today(timezone: str | None) -> dt.date:
            return real_local_today(timezone) + self.offset

        self._real_today = lambda: real_local_today(timezone)
        swaps = {id(real_utcnow): utcnow, id(real_local_today): local_today}
        for name, module in list(sys.modules.items()):
            if not (name == "ecrf" or name.startswith(("ecrf.", "tests.browser.walk"))):
                continue
            for attr, value in list(vars(module).items()):
                if id(value) in swaps and callable(value):
                    monkeypatch.setattr(module, attr, swaps[id(value)])

    def today(self) -> dt.date:
        return self._real_today() + self.offset

    def real_today(self) -> dt.date:
        return self._real_today()

    def travel(self, day: dt.date) -> None:
        """Make ``day`` the server's today (never beyond the real today)."""
        real = self._real_today()
        if day > real:
            raise ValueError(f"the walk cannot travel to {day}, after the real today {real}")
        self.offset = day - real

    def back_to_now(self) -> None:
        self.offset = dt.timedelta(0)
