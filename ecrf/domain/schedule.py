"""Visit schedule engine: which events a subject is expected to have, when, and their status.

``compute_schedule(definition, subject, on)`` is pure: the same definition, subject data and
date always give the same list, so correcting an anchor date moves every dependent planned
date the next time it is called; nothing is stored. Rows are ordered by planned date (the
actual date for rows without one), then definition order, then occurrence number.

Kinds
    scheduled   one occurrence: planned = anchor + offset.
    repeating   occurrence k (1-based): planned = anchor + offset + (k-1) * every, applied
                as one step from the anchor so month ends never drift (31 Jan + 1m each:
                31 Jan, 29 Feb, 31 Mar, 30 Apr). Offset and interval are summed per unit
                (months with months, days with days), months applied first. With
                ``from_actual`` the reference moves to each occurrence recorded as done or
                in progress with an actual date: the next one is planned from that date, the
                later ones count whole steps from it (a cycle delayed by toxicity shifts the
                following cycles).
    unscheduled no expected occurrence; each recorded occurrence is listed with no planned
                date or window (done, in progress as due, declared not done as missed).
    log         nothing is listed: a log is open for the whole study, not a visit.

Window: [planned - before, planned + after]; both bounds inclusive.

Which occurrences are listed
    An event whose anchor is not recorded is not expected yet: only its recorded
    occurrences are listed (no planned date, note naming the missing anchor).
    Repeats list every recorded occurrence, every occurrence whose planned date is on or
    before the horizon (``on`` or the latest recorded actual date, whichever is later) or
    whose window has opened by ``on``, and then exactly one more: never more than needed.
    ``count`` caps the occurrences generated (recorded ones beyond it are still listed).
    When ``until`` evaluates true, no occurrence beyond the last recorded one is listed.

Status of a recorded occurrence
    done, actual date in the window (or no date)  -> done
    done, actual date outside the window          -> done_out_of_window
    not_done (declared not done)                  -> missed (not_applicable when the
                                                     condition is false, not_expected when
                                                     planned after a stop)
    in_progress                                   -> due while the window has not closed,
                                                     then overdue; it stays open for data
                                                     entry even after a stop.

Status of an expected occurrence with no record
    condition false           -> not_applicable (only occurrence 1 of a repeat is listed)
    planned after the stop    -> not_expected ("planned after death on 2025-03-02")
    stop reached by ``on``    -> missed (planned on or before the stop, so its window
                                 had opened by then, and never done)
    (the planned date, not the window opening, is compared with the stop, and strictly:
    a visit planned the day after death is not expected, even if its window opened a few
    days before; one planned on the day of death was missed. Before ``on`` reaches the
    stop date, the statuses below still apply)
    on < window start         -> upcoming
    within the window         -> due
    after the window end      -> overdue

``not_expected`` differs from ``not_applicable``: the event applies to the subject, but the
subject's participation ended before it was planned. Neither is ever missed, due or overdue.

Stops: the subject's stop date is the earliest of the recorded ``StopRule.anchors`` and
``study_end``; an event's ``stop_at`` anchors add to it for that event only. A count-limited
repeat lists its occurrences planned after the stop as not_expected; an open-ended repeat
is not generated past the stop at all (no occurrence planned after it).

Definitions are validated when built: impossible rules raise ``ScheduleError`` naming the
value. Recorded occurrences of an unknown event, a repeat number given twice, or a repeat
number other than 1 for a non-repeating event are also a ``ScheduleError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from ecrf.domain.dates import Period, shift


class EventState(StrEnum):
    """What is recorded of an event: started, done, or declared not done."""

    IN_PROGRESS = "in_progress"
    DONE = "done"
    NOT_DONE = "not_done"


DONE_STATE = EventState.DONE
IN_PROGRESS_STATE = EventState.IN_PROGRESS
NOT_DONE_STATE = EventState.NOT_DONE
RECORDED_STATES = frozenset(EventState)


class ScheduleError(ValueError):
    """An impossible schedule definition or inconsistent recorded schedule data."""


class EventKind(StrEnum):
    SCHEDULED = "scheduled"
    REPEATING = "repeating"
    UNSCHEDULED = "unscheduled"
    LOG = "log"


class EventStatus(StrEnum):
    UPCOMING = "upcoming"
    DUE = "due"
    OVERDUE = "overdue"
    DONE = "done"
    DONE_OUT_OF_WINDOW = "done_out_of_window"
    MISSED = "missed"
    NOT_EXPECTED = "not_expected"
    NOT_APPLICABLE = "not_applicable"


_ZERO = Period(0, "d")


@dataclass(frozen=True)
class Window:
    before: Period
    after: Period

    def __post_init__(self) -> None:
        for side in ("before", "after"):
            value = getattr(self, side)
            if not isinstance(value, Period):
                raise ScheduleError(f"window {side} must be a period, got {value!r}")
            if value.is_negative:
                raise ScheduleError(f"window {side} must not be negative, got {value}")

    @classmethod
    def around(cls, width: Period) -> Window:
        """The same width on both sides (``window: 3d`` means +/- 3 days)."""
        return cls(width, width)


@dataclass(frozen=True)
class RepeatRule:
    every: Period
    count: int | None = None
    until: str | None = None
    from_actual: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.every, Period):
            raise ScheduleError(f"repeat interval must be a period, got {self.every!r}")
        if self.every.amount <= 0:
            raise ScheduleError(f"repeat interval must be positive, got {self.every}")
        if self.count is not None and (
            isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1
        ):
            raise ScheduleError(f"repeat count must be an integer of at least 1, got {self.count!r}")


@dataclass(frozen=True)
class EventRule:
    oid: str
    name: str
    kind: EventKind
    anchor: str | None = None
    offset: Period = _ZERO
    window: Window = Window(_ZERO, _ZERO)
    repeat: RepeatRule | None = None
    condition: str | None = None
    stop_at: tuple[str, ...] = ()
    forms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", EventKind(self.kind))
        except ValueError:
            raise ScheduleError(f"event {self.oid}: unknown kind {self.kind!r}") from None
        object.__setattr__(self, "stop_at", tuple(self.stop_at))
        object.__setattr__(self, "forms", tuple(self.forms))
        planned = self.kind in (EventKind.SCHEDULED, EventKind.REPEATING)
        if planned and not self.anchor:
            raise ScheduleError(f"event {self.oid}: a {self.kind} event needs an anchor")
        if not planned and self.anchor is not None:
            raise ScheduleError(
                f"event {self.oid}: a {self.kind} event takes no anchor, got {self.anchor!r}"
            )
        if self.kind is EventKind.REPEATING and self.repeat is None:
            raise ScheduleError(f"event {self.oid}: a repeating event needs a repeat rule")
        if self.kind is not EventKind.REPEATING and self.repeat is not None:
            raise ScheduleError(
                f"event {self.oid}: repeat given for a {self.kind} event: {self.repeat!r}"
            )
        if not isinstance(self.offset, Period):
            raise ScheduleError(f"event {self.oid}: offset must be a period, got {self.offset!r}")


@dataclass(frozen=True)
class StopRule:
    anchors: tuple[str, ...] = ()
    # (anchor, condition): the anchor stops the schedule only when its condition holds
    # (a consent withdrawal that still allows survival follow-up does not stop it).
    conditions: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "anchors", tuple(self.anchors))
        object.__setattr__(self, "conditions", tuple(self.conditions))


@dataclass(frozen=True)
class ScheduleDefinition:
    events: tuple[EventRule, ...]
    stop: StopRule = StopRule()

    def __post_init__(self) -> None:
        object.__setattr__(self, "events", tuple(self.events))
        seen: set[str] = set()
        for rule in self.events:
            if rule.oid in seen:
                raise ScheduleError(f"event OID defined twice: {rule.oid}")
            seen.add(rule.oid)


@dataclass(frozen=True)
class RecordedOccurrence:
    event_oid: str
    repeat: int
    actual_date: date | None
    state: str

    def __post_init__(self) -> None:
        if isinstance(self.repeat, bool) or not isinstance(self.repeat, int) or self.repeat < 1:
            raise ScheduleError(
                f"occurrence of {self.event_oid}: repeat must be 1 or more, got {self.repeat!r}"
            )
        if self.state not in RECORDED_STATES:
            raise ScheduleError(
                f"occurrence {self.event_oid}#{self.repeat}: unknown state {self.state!r}"
            )


@dataclass(frozen=True)
class SubjectScheduleData:
    anchors: Mapping[str, date]
    occurrences: Sequence[RecordedOccurrence] = ()
    study_end: date | None = None
    evaluate: Callable[[str], bool] = field(default=lambda source: True)


@dataclass(frozen=True)
class ExpectedEvent:
    event_oid: str
    name: str
    repeat: int
    planned: date | None
    window_start: date | None
    window_end: date | None
    status: EventStatus
    actual_date: date | None
    note: str


@dataclass(frozen=True)
class _Stop:
    on: date
    label: str

    def __str__(self) -> str:
        return f"{self.label} on {self.on}"


def compute_schedule(
    definition: ScheduleDefinition, subject: SubjectScheduleData, on: date
) -> list[ExpectedEvent]:
    recorded = _group_recorded(definition, subject.occurrences)
    conditions = dict(definition.stop.conditions)
    names = [name for name in definition.stop.anchors
             if name not in conditions or subject.evaluate(conditions[name])]
    subject_stop = _earliest_stop(names, subject.anchors, subject.study_end)
    keyed: list[tuple[date, int, int, ExpectedEvent]] = []
    for index, rule in enumerate(definition.events):
        if rule.kind is EventKind.LOG:
            continue
        occurrences = recorded.get(rule.oid, {})
        if rule.kind is EventKind.UNSCHEDULED:
            rows = [_unplanned_row(rule, occ, "unscheduled") for occ in _in_order(occurrences)]
        else:
            rows = _planned_rows(rule, subject, on, subject_stop, occurrences)
        for row in rows:
            sort_date = row.planned or row.actual_date or date.max
            keyed.append((sort_date, index, row.repeat, row))
    keyed.sort(key=lambda item: item[:3])
    return [item[3] for item in keyed]


def _group_recorded(
    definition: ScheduleDefinition, occurrences: Sequence[RecordedOccurrence]
) -> dict[str, dict[int, RecordedOccurrence]]:
    kinds = {rule.oid: rule.kind for rule in definition.events}
    grouped: dict[str, dict[int, RecordedOccurrence]] = {}
    for occ in occurrences:
        kind = kinds.get(occ.event_oid)
        if kind is None:
            raise ScheduleError(f"occurrence of an event not in the definition: {occ.event_oid}")
        if kind in (EventKind.SCHEDULED, EventKind.LOG) and occ.repeat != 1:
            raise ScheduleError(
                f"{kind} event {occ.event_oid} has a single occurrence, got repeat {occ.repeat}"
            )
        per_event = grouped.setdefault(occ.event_oid, {})
        if occ.repeat in per_event:
            raise ScheduleError(f"occurrence {occ.event_oid}#{occ.repeat} recorded twice")
        per_event[occ.repeat] = occ
    return grouped


def _in_order(occurrences: Mapping[int, RecordedOccurrence]) -> list[RecordedOccurrence]:
    return [occurrences[k] for k in sorted(occurrences)]


def _earliest_stop(
    names: Sequence[str], anchors: Mapping[str, date], study_end: date | None
) -> _Stop | None:
    candidates = [_Stop(anchors[name], name.replace("_", " ")) for name in names if name in anchors]
    if study_end is not None:
        candidates.append(_Stop(study_end, "study end"))
    # min() keeps the first of equal dates, so a recorded anchor wins over the study end.
    return min(candidates, key=lambda stop: stop.on, default=None)


def _unplanned_row(rule: EventRule, occ: RecordedOccurrence, context: str) -> ExpectedEvent:
    when = occ.actual_date.isoformat() if occ.actual_date else "date not recorded"
    if occ.state == DONE_STATE:
        status, note = EventStatus.DONE, f"{context}; done {when}"
    elif occ.state == IN_PROGRESS_STATE:
        status, note = EventStatus.DUE, f"{context}; in progress since {when}"
    else:
        status, note = EventStatus.MISSED, f"{context}; declared not done"
    return ExpectedEvent(rule.oid, rule.name, occ.repeat, None, None, None, status,
                         occ.actual_date, note)


def _planned_rows(rule: EventRule, subject: SubjectScheduleData, on: date,
                  subject_stop: _Stop | None, recorded: Mapping[int, RecordedOccurrence],
                  ) -> list[ExpectedEvent]:
    assert rule.anchor is not None  # EventRule guarantees it for planned kinds
    anchor_date = subject.anchors.get(rule.anchor)
    if anchor_date is None:
        context = f"anchor {rule.anchor} not recorded"
        return [_unplanned_row(rule, occ, context) for occ in _in_order(recorded)]
    applicable = rule.condition is None or bool(subject.evaluate(rule.condition))
    stop = _earliest_stop(rule.stop_at, subject.anchors, None)
    if subject_stop is not None and (stop is None or subject_stop.on <= stop.on):
        stop = subject_stop
    rows = []
    for k, planned in _occurrences(rule, anchor_date, subject, on, stop, applicable, recorded):
        start, end = _window(rule, planned)
        after_stop = stop if stop is not None and planned > stop.on else None
        occ = recorded.get(k)
        if occ is None:
            status, note = _expected_status(rule, applicable, stop, after_stop, on, start, end)
            actual = None
        else:
            status, note = _recorded_status(rule, applicable, after_stop, on, start, end, occ)
            actual = occ.actual_date
        rows.append(ExpectedEvent(rule.oid, rule.name, k, planned, start, end, status, actual,
                                  note))
    return rows


def _occurrences(rule: EventRule, anchor_date: date, subject: SubjectScheduleData, on: date,
                 stop: _Stop | None, applicable: bool,
                 recorded: Mapping[int, RecordedOccurrence]) -> Iterator[tuple[int, date]]:
    """Occurrence numbers and planned dates, generated lazily up to the horizon."""
    repeat = rule.repeat
    if repeat is None:
        yield 1, rule.offset.add_to(anchor_date)
        return
    last_recorded = max(recorded, default=0)
    horizon = max([on, *(occ.actual_date for occ in recorded.values() if occ.actual_date)])
    # Evaluated lazily: a condition-false event never needs its until expression.
    until_reached: bool | None = None
    ref_date = anchor_date
    ref_months = rule.offset.months
    ref_days = rule.offset.days
    ref_k = 1
    k = 1
    while True:
        steps = k - ref_k
        planned = shift(ref_date, months=ref_months + repeat.every.months * steps,
                        days=ref_days + repeat.every.days * steps)
        if k > last_recorded:
            if not applicable and k > 1:
                return
            if repeat.count is not None and k > repeat.count:
                return
            start = _window(rule, planned)[0]
            if repeat.count is None and stop is not None and planned > stop.on:
                return
            if repeat.until is not None and applicable:
                if until_reached is None:
                    until_reached = bool(subject.evaluate(repeat.until))
                if until_reached:
                    return
            yield k, planned
            if planned > horizon and start > on:
                return  # the one occurrence beyond the horizon
        else:
            yield k, planned
        occ = recorded.get(k)
        if (repeat.from_actual and occ is not None and occ.actual_date is not None
                and occ.state != NOT_DONE_STATE):
            ref_date, ref_months, ref_days, ref_k = occ.actual_date, 0, 0, k
        k += 1


def _window(rule: EventRule, planned: date) -> tuple[date, date]:
    before, after = rule.window.before, rule.window.after
    return (shift(planned, months=-before.months, days=-before.days),
            shift(planned, months=after.months, days=after.days))


def _expected_status(rule: EventRule, applicable: bool, stop: _Stop | None,
                     after_stop: _Stop | None, on: date, start: date, end: date,
                     ) -> tuple[EventStatus, str]:
    if not applicable:
        return EventStatus.NOT_APPLICABLE, f"condition not met: {rule.condition}"
    if after_stop is not None:
        return EventStatus.NOT_EXPECTED, f"planned after {after_stop}"
    if stop is not None and on >= stop.on:
        return EventStatus.MISSED, f"not done before {stop} (window opened {start})"
    if on < start:
        return EventStatus.UPCOMING, f"window opens {start}"
    if on <= end:
        return EventStatus.DUE, f"window closes {end}"
    return EventStatus.OVERDUE, f"window closed {end}"


def _recorded_status(rule: EventRule, applicable: bool, after_stop: _Stop | None, on: date,
                     start: date, end: date, occ: RecordedOccurrence,
                     ) -> tuple[EventStatus, str]:
    actual = occ.actual_date
    if occ.state == DONE_STATE:
        if actual is None:
            status, note = EventStatus.DONE, "done; date not recorded"
        elif actual < start:
            status = EventStatus.DONE_OUT_OF_WINDOW
            note = f"done {actual}, {_days((start - actual).days)} before the window opened {start}"
        elif actual > end:
            status = EventStatus.DONE_OUT_OF_WINDOW
            note = f"done {actual}, {_days((actual - end).days)} after the window closed {end}"
        else:
            status, note = EventStatus.DONE, f"done {actual}"
    elif occ.state == IN_PROGRESS_STATE:
        if on <= end:
            status, note = EventStatus.DUE, f"in progress; window closes {end}"
        else:
            status, note = EventStatus.OVERDUE, f"in progress; window closed {end}"
    else:
        status, note = EventStatus.MISSED, "declared not done"
    if occ.state == NOT_DONE_STATE and not applicable:
        # Declaring not done what was never expected is not a missed visit.
        status = EventStatus.NOT_APPLICABLE
    elif occ.state == NOT_DONE_STATE and after_stop is not None:
        status = EventStatus.NOT_EXPECTED
    if not applicable:
        note += f"; condition not met: {rule.condition}"
    elif after_stop is not None:
        note += f"; planned after {after_stop}"
    repeat = rule.repeat
    if repeat is not None and repeat.count is not None and occ.repeat > repeat.count:
        note += f"; beyond the {repeat.count} planned occurrences"
    return status, note


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"
