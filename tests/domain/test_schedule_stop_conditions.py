"""A stop anchor with a condition stops the schedule only when the condition holds (a
consent withdrawal that still allows survival follow-up does not stop follow-up)."""

from datetime import date

import pytest

from ecrf.domain.schedule import (
    EventKind,
    EventStatus,
    ScheduleDefinition,
    StopRule,
    compute_schedule,
)

from .test_schedule import event, subject

FU = event("FU", kind="repeating", anchor="eot", offset="3m", every="3m", count=4,
           before="14d", after="14d")
STOP = StopRule(("death", "withdrawal"), (("withdrawal", "scope_all"),))


@pytest.mark.parametrize(("anchors", "true", "applicable"), [
    # withdrawal refusing all follow-up: contacts planned after it are not expected
    # (the one before it is missed)
    ({"eot": date(2025, 1, 1), "withdrawal": date(2025, 5, 1)}, ("scope_all",), 1),
    # withdrawal that keeps survival follow-up: every contact still applies
    ({"eot": date(2025, 1, 1), "withdrawal": date(2025, 5, 1)}, (), 4),
    # the unconditional anchor stops whatever the conditions say
    ({"eot": date(2025, 1, 1), "death": date(2025, 5, 1)}, (), 1),
    ({"eot": date(2025, 1, 1)}, ("scope_all",), 4),
])
def test_conditional_stop_anchor(anchors, true, applicable):
    rows = compute_schedule(ScheduleDefinition((FU,), STOP), subject(anchors, true=true),
                            date(2026, 2, 1))
    assert FU.kind is EventKind.REPEATING
    assert sum(r.status not in (EventStatus.NOT_APPLICABLE, EventStatus.NOT_EXPECTED)
               for r in rows) == applicable
