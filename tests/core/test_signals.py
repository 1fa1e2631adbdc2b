"""Every reaction to data capture is connected once the app exists, in a fixed order."""

from __future__ import annotations

from ecrf import create_app
from ecrf.allocation import strata as allocation_strata
from ecrf.capture import status as capture_status
from ecrf.core import signals
from ecrf.core.signals import FormChange
from ecrf.review import handlers as review_handlers
from ecrf.review import strata as review_strata
from ecrf.safety import handlers as safety_handlers


def test_the_app_connects_locks_sdv_signatures_queries_grading_and_safety(app):
    assert signals.receivers_of(signals.form_changing) == [review_handlers.refuse_locked]
    saved = signals.receivers_of(signals.form_saved)
    assert saved == [capture_status.on_form_saved, review_handlers.reset_sdv, review_handlers.break_signatures,
                     review_handlers.link_corrections, review_handlers.sync_automatic_queries,
                     review_strata.query_misstratification, safety_handlers.grade_labs,
                     safety_handlers.review_adverse_events,
                     allocation_strata.record_misstratification]


def test_a_second_app_connects_nothing_twice(app):
    before = signals.receivers_of(signals.form_saved)
    create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": "sqlite://"})
    assert signals.receivers_of(signals.form_saved) == before


def test_receivers_run_in_connection_order_and_a_refusal_stops_the_rest():
    signal = signals._OrderedSignal("test-order")
    calls = []

    def first(change):
        calls.append("first")

    def refuse(change):
        calls.append("refuse")
        raise PermissionError("locked")

    def last(change):
        calls.append("last")

    signals.connect(signal, last)
    signal.disconnect(last)
    signals.connect(signal, first, refuse, last)
    change = FormChange(None, None, None, "E", 1, "F", None)  # type: ignore[arg-type]
    try:
        signal.send(change)
    except PermissionError:
        pass
    assert calls == ["first", "refuse"]
    assert signals.receivers_of(signal) == [first, refuse, last]
