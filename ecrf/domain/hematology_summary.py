"""Per-dose-level summary of the hematologic recovery endpoints.

Three kinds of row:

* incidence: ``events`` of ``n`` evaluable subjects, with a percentage (1 dp, half up);
* time: time-to-event in days over the subjects at risk (``n``); median and range over the
  ``events`` subjects who reached it, ``censored`` = at risk but not reached by the horizon;
* duration: days with the condition; median and range over the ``events`` subjects who had
  it, out of ``n`` evaluable.

Evaluability: count-based endpoints need the count measured in the window; febrile
neutropenia needs ``fn_evaluable``; infection, bleeding, transfusion and anti-infective
endpoints treat every subject passed in as evaluable (the caller decides who that is).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from ecrf.domain.hematology import RecoveryStatus, SubjectEndpoints

TOTAL_GROUP = "All"


class SummaryGroupError(ValueError):
    def __init__(self, subject: str, group: str | None = None) -> None:
        if group is None:
            message = f"subject {subject!r} has no dose level group"
        else:
            message = f"subject {subject!r} is in group {group!r}, reserved for the total"
        super().__init__(message)
        self.subject = subject
        self.group = group


class EndpointKind(StrEnum):
    INCIDENCE = "incidence"
    TIME = "time"
    DURATION = "duration"


@dataclass(frozen=True)
class SummaryRow:
    group: str
    endpoint: str
    #: Evaluable subjects (incidence, duration) or subjects at risk (time).
    n: int
    #: Subjects with the event (incidence, duration) or who reached it (time).
    events: int
    #: 100 * events / n to 1 dp for incidence rows; None otherwise or when n == 0.
    percent: Decimal | None
    #: Median and range over the subjects counted in ``events`` (time, duration rows).
    median: Decimal | None
    minimum: Decimal | None
    maximum: Decimal | None
    #: Time rows: subjects at risk who did not reach the event by the horizon.
    censored: int | None = None
    kind: EndpointKind = EndpointKind.INCIDENCE


Predicate = Callable[[SubjectEndpoints], bool]
Value = Callable[[SubjectEndpoints], int | None]


@dataclass(frozen=True)
class _Endpoint:
    name: str
    kind: EndpointKind
    evaluable: Predicate
    event: Predicate
    value: Value | None = None


def _always(_: SubjectEndpoints) -> bool:
    return True


def _at_risk(status: Callable[[SubjectEndpoints], RecoveryStatus]) -> Predicate:
    return lambda s: status(s) in (RecoveryStatus.RECOVERED, RecoveryStatus.CENSORED)


ENDPOINTS: tuple[_Endpoint, ...] = (
    _Endpoint("febrile_neutropenia", EndpointKind.INCIDENCE,
              lambda s: s.fn_evaluable, lambda s: s.febrile_neutropenia),
    _Endpoint("febrile_neutropenia_duration", EndpointKind.DURATION,
              lambda s: s.fn_evaluable, lambda s: s.febrile_neutropenia,
              lambda s: s.fn_duration_days),
    _Endpoint("infection", EndpointKind.INCIDENCE, _always, lambda s: s.infection),
    _Endpoint("infection_duration", EndpointKind.DURATION, _always, lambda s: s.infection,
              lambda s: s.infection_duration_days),
    _Endpoint("bleeding", EndpointKind.INCIDENCE, _always, lambda s: s.bleeding),
    _Endpoint("bleeding_duration", EndpointKind.DURATION, _always, lambda s: s.bleeding,
              lambda s: s.bleeding_duration_days),
    _Endpoint("any_transfusion", EndpointKind.INCIDENCE, _always, lambda s: s.any_transfusion),
    _Endpoint("platelet_transfusion", EndpointKind.INCIDENCE, _always,
              lambda s: s.platelet_transfusions > 0),
    _Endpoint("red_cell_transfusion", EndpointKind.INCIDENCE, _always,
              lambda s: s.red_cell_transfusions > 0),
    _Endpoint("anti_infective_use", EndpointKind.INCIDENCE, _always,
              lambda s: s.anti_infective_used),
    _Endpoint("time_to_neutrophil_recovery", EndpointKind.TIME,
              _at_risk(lambda s: s.neutrophil_recovery_status),
              lambda s: s.neutrophil_recovered, lambda s: s.neutrophil_recovery_day),
    _Endpoint("time_to_platelet_recovery", EndpointKind.TIME,
              _at_risk(lambda s: s.platelet_recovery_status),
              lambda s: s.platelet_recovered, lambda s: s.platelet_recovery_day),
    _Endpoint("severe_thrombocytopenia", EndpointKind.INCIDENCE,
              lambda s: s.plt_nadir is not None, lambda s: s.severe_thrombocytopenia),
    _Endpoint("time_to_severe_thrombocytopenia_recovery", EndpointKind.TIME,
              lambda s: s.severe_thrombocytopenia,
              lambda s: s.time_to_severe_thrombocytopenia_recovery is not None,
              lambda s: s.time_to_severe_thrombocytopenia_recovery),
    _Endpoint("severe_anemia", EndpointKind.INCIDENCE,
              lambda s: s.hgb_nadir is not None, lambda s: s.severe_anemia),
    _Endpoint("time_to_severe_anemia_recovery", EndpointKind.TIME,
              lambda s: s.severe_anemia,
              lambda s: s.time_to_severe_anemia_recovery is not None,
              lambda s: s.time_to_severe_anemia_recovery),
)

ENDPOINT_NAMES: tuple[str, ...] = tuple(e.name for e in ENDPOINTS)


def median(values: Sequence[int | Decimal]) -> Decimal | None:
    """Median; the mean of the two middle values for an even count."""
    if not values:
        return None
    ordered = sorted(Decimal(v) for v in values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percent(events: int, n: int) -> Decimal | None:
    if n == 0:
        return None
    return (Decimal(100 * events) / Decimal(n)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def _row(group: str, endpoint: _Endpoint, subjects: Sequence[SubjectEndpoints]) -> SummaryRow:
    evaluable = [s for s in subjects if endpoint.evaluable(s)]
    with_event = [s for s in evaluable if endpoint.event(s)]
    n, events = len(evaluable), len(with_event)
    if endpoint.kind is EndpointKind.INCIDENCE or endpoint.value is None:
        return SummaryRow(group, endpoint.name, n, events, percent(events, n),
                          None, None, None, kind=endpoint.kind)
    values = [v for v in (endpoint.value(s) for s in with_event) if v is not None]
    return SummaryRow(
        group, endpoint.name, n, events, None,
        median(values),
        Decimal(min(values)) if values else None,
        Decimal(max(values)) if values else None,
        censored=n - events if endpoint.kind is EndpointKind.TIME else None,
        kind=endpoint.kind,
    )


def summarize(
    subjects: Mapping[str, SubjectEndpoints],
    groups: Mapping[str, str],
    *,
    include_total: bool = True,
) -> list[SummaryRow]:
    """Rows per group (in order of first appearance in ``groups``), endpoints in
    ``ENDPOINT_NAMES`` order, then the same rows over all subjects as group ``"All"``.

    ``groups`` maps subject -> dose level label; every subject must have one.
    """
    members: dict[str, list[SubjectEndpoints]] = {}
    for label in groups.values():
        members.setdefault(label, [])
    for subject_id, endpoints in subjects.items():
        label = groups.get(subject_id)
        if label is None:
            raise SummaryGroupError(subject_id)
        if include_total and label == TOTAL_GROUP:
            raise SummaryGroupError(subject_id, label)
        members[label].append(endpoints)
    if include_total:
        members[TOTAL_GROUP] = list(subjects.values())
    return [_row(label, endpoint, group_subjects)
            for label, group_subjects in members.items()
            for endpoint in ENDPOINTS]


CSV_COLUMNS = ("group", "endpoint", "kind", "n", "events", "percent", "censored",
               "median", "minimum", "maximum")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        # Fixed-point so that e.g. 20 never prints as 2E+1.
        return format(value, "f")
    return str(value)


def summary_csv(rows: Sequence[SummaryRow]) -> str:
    """RFC 4180 CSV (CRLF line ends) with a header row; empty cells for absent values."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(getattr(row, column)) for column in CSV_COLUMNS])
    return buffer.getvalue()
