"""What each source of a system-written item says it holds (the rest is tested through
the app in tests/allocation/test_system_values.py)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from ecrf.capture.system_values import system_value


def test_each_source_says_what_the_item_holds():
    subject = SimpleNamespace(dose_level=2, enrolled_on=dt.date(2026, 3, 1))
    assert system_value("dose_level", subject, "1") == "2"
    assert system_value("enrolment", subject, None) == "2026-03-01"
    assert system_value("randomization", subject, "R000008") == "R000008"
    assert system_value("dose_level", SimpleNamespace(dose_level=None), None) is None
