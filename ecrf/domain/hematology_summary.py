"""Per-dose-level summary of the hematologic recovery endpoints, and the per-subject table.

Three kinds of summary row:

* incidence: ``events`` of ``n`` evaluable subjects, with a percentage (1 dp, half up) and
  its exact (Clopper-Pearson) 95 % interval (``ecrf.domain.statistics.proportion``);
* time: time to the event in days over the ``n`` subjects at risk, by Kaplan-Meier
  (``ecrf.domain.statistics.kaplan_meier``): a subject at risk who has not reached it by
  the horizon is censored at the horizon (for the severe-cytopenia recoveries: at the
  horizon minus the first day below the threshold). The median is the Kaplan-Meier median
  with its 95 % interval (None = not reached); the range is over the observed times;
* duration: days with the condition; median and range over the ``events`` subjects who had
  it, out of ``n`` evaluable.

Evaluability: one rule per endpoint, declared with it in ``ENDPOINTS`` as the data it needs
(``Needs``). A subject without that data in the window is not evaluable for the endpoint:
it is left out of ``n`` and counted in ``not_evaluable``, and its per-subject row says why.

* ANC, PLT, HGB: at least one value of that count on days 1..horizon;
* count rows (transfusion endpoints): at least one blood count record in the window, since
  transfusions are recorded on the count records (or a transfusion in the window);
* febrile neutropenia: episodes reported (the form's any-episode question answered, or
  episodes recorded), or else at least one day with both ANC and a maximum temperature to
  derive it from;
* infection, bleeding, anti-infective use: reported by the caller. The service
  (``ecrf.safety.endpoints``) reports them when the form's any-episode question is answered
  or an episode is recorded; for a form without that question, when the subject has a
  blood count record in the window (followed up, so a missing episode row means none).

Time endpoints additionally need the subject at risk (below the threshold in the window);
a subject who never was is evaluable but "not applicable".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from ecrf.domain.hematology import RecoveryStatus, SubjectEndpoints
from ecrf.domain.statistics import kaplan_meier, proportion

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


class Needs(StrEnum):
    """The data an endpoint needs for a subject to be evaluable."""

    ANC = "anc"
    PLT = "plt"
    HGB = "hgb"
    COUNT_ROWS = "count_rows"
    FEBRILE_NEUTROPENIA = "febrile_neutropenia"
    INFECTION = "infection"
    BLEEDING = "bleeding"
    ANTI_INFECTIVE = "anti_infective"

    def met(self, s: SubjectEndpoints) -> bool:
        return _NEEDS[self][0](s)

    def reason(self, horizon: int) -> str:
        return _NEEDS[self][1].format(h=horizon)


_NEEDS: dict[Needs, tuple[Callable[[SubjectEndpoints], bool], str]] = {
    Needs.ANC: (lambda s: s.anc_nadir is not None, "no ANC value on days 1-{h}"),
    Needs.PLT: (lambda s: s.plt_nadir is not None, "no platelet count on days 1-{h}"),
    Needs.HGB: (lambda s: s.hgb_nadir is not None, "no haemoglobin value on days 1-{h}"),
    Needs.COUNT_ROWS: (lambda s: s.transfusions_evaluable,
                       "no blood count record on days 1-{h} (transfusions are recorded on "
                       "them)"),
    Needs.FEBRILE_NEUTROPENIA: (lambda s: s.fn_evaluable,
                                "febrile neutropenia not reported and no day 1-{h} with both "
                                "ANC and temperature"),
    Needs.INFECTION: (lambda s: s.infection_evaluable, "infections not reported for days 1-{h}"),
    Needs.BLEEDING: (lambda s: s.bleeding_evaluable, "bleeding not reported for days 1-{h}"),
    Needs.ANTI_INFECTIVE: (lambda s: s.anti_infective_evaluable,
                           "anti-infective therapy not reported for days 1-{h}"),
}


@dataclass(frozen=True)
class SummaryRow:
    group: str
    endpoint: str
    #: Evaluable subjects (incidence, duration) or evaluable subjects at risk (time).
    n: int
    #: Subjects with the event (incidence, duration) or who reached it (time).
    events: int
    #: 100 * events / n to 1 dp for incidence rows; None otherwise or when n == 0.
    percent: Decimal | None
    #: Time rows: the Kaplan-Meier median; duration rows: the median over ``events``.
    median: Decimal | None
    #: Range of the observed times (time rows) or durations (duration rows).
    minimum: Decimal | None
    maximum: Decimal | None
    #: Time rows: subjects at risk who did not reach the event by the horizon.
    censored: int | None = None
    kind: EndpointKind = EndpointKind.INCIDENCE
    #: Incidence rows: exact 95 % interval of ``percent`` (percent, 1 dp, rounded outwards).
    ci_low: Decimal | None = None
    ci_high: Decimal | None = None
    #: Time rows: 95 % interval of the Kaplan-Meier median (None: not reached).
    median_low: Decimal | None = None
    median_high: Decimal | None = None
    #: Subjects of the group not evaluable for this endpoint (left out of ``n``).
    not_evaluable: int = 0

    def median_text(self) -> str:
        """A time row's Kaplan-Meier median with its interval: ``12 (95 % CI 10-NR)``;
        ``not reached``; ``8 (95 % CI not estimable)`` when the estimate falls to 0 at the
        median (the pointwise interval, and so the median's lower bound, is undefined)."""
        median = "not reached" if self.median is None else _cell(self.median)
        if self.median_low is not None:
            return f"{median} (95 % CI {_cell(self.median_low)}-{_or_nr(self.median_high)})"
        if self.median is not None:
            return f"{median} (95 % CI not estimable)"
        return median

    def text(self) -> str:
        """The row in words: ``3/4 (75.0 %; 95 % CI 19.4-99.4)`` for an incidence,
        ``n 4 at risk, 3 events, 1 censored; KM median 12 (95 % CI 10-NR); range 10-15``
        for a time, ``2/4 with the event; median 3; range 2-4`` for a duration."""
        suffix = f"; {self.not_evaluable} not evaluable" if self.not_evaluable else ""
        if self.kind == EndpointKind.INCIDENCE:
            if self.percent is None:
                return f"{self.events}/{self.n}{suffix}"
            return (f"{self.events}/{self.n} ({self.percent} %; 95 % CI "
                    f"{self.ci_low}-{self.ci_high}){suffix}")
        span = (f"; range {_cell(self.minimum)}-{_cell(self.maximum)}"
                if self.minimum is not None else "")
        if self.kind == EndpointKind.TIME:
            if self.n == 0:
                return f"n 0 at risk{suffix}"
            return (f"n {self.n} at risk, {self.events} event{_s(self.events)}, "
                    f"{self.censored} censored; KM median {self.median_text()}{span}{suffix}")
        median = "" if self.median is None else f"; median {_cell(self.median)}"
        return f"{self.events}/{self.n} with the event{median}{span}{suffix}"


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _or_nr(value: Decimal | None) -> str:
    return "NR" if value is None else _cell(value)


Predicate = Callable[[SubjectEndpoints], bool]
Value = Callable[[SubjectEndpoints], int | None]


@dataclass(frozen=True)
class _Endpoint:
    name: str
    kind: EndpointKind
    #: The data a subject needs to be evaluable (see the module docstring).
    needs: Needs
    event: Predicate
    #: Time rows: the time of an event; duration rows: the days with the condition.
    value: Value | None = None
    #: Time rows: whether an evaluable subject is at risk (else "not applicable").
    at_risk: Predicate | None = None
    #: Time rows: the censoring time of a subject at risk without the event.
    censored_at: Value | None = None
    #: Per-subject rows: the study day shown (the recovery day of a time endpoint).
    day: Value | None = None


def _status_at_risk(status: Callable[[SubjectEndpoints], RecoveryStatus]) -> Predicate:
    return lambda s: status(s) in (RecoveryStatus.RECOVERED, RecoveryStatus.CENSORED)


def _horizon(s: SubjectEndpoints) -> int:
    return s.horizon_day


def _severe_censoring(first: Callable[[SubjectEndpoints], int | None]) -> Value:
    def censored_at(s: SubjectEndpoints) -> int | None:
        day = first(s)
        return None if day is None else s.horizon_day - day
    return censored_at


ENDPOINTS: tuple[_Endpoint, ...] = (
    _Endpoint("febrile_neutropenia", EndpointKind.INCIDENCE, Needs.FEBRILE_NEUTROPENIA,
              lambda s: s.febrile_neutropenia),
    _Endpoint("febrile_neutropenia_duration", EndpointKind.DURATION, Needs.FEBRILE_NEUTROPENIA,
              lambda s: s.febrile_neutropenia, lambda s: s.fn_duration_days),
    _Endpoint("infection", EndpointKind.INCIDENCE, Needs.INFECTION, lambda s: s.infection),
    _Endpoint("infection_duration", EndpointKind.DURATION, Needs.INFECTION,
              lambda s: s.infection, lambda s: s.infection_duration_days),
    _Endpoint("bleeding", EndpointKind.INCIDENCE, Needs.BLEEDING, lambda s: s.bleeding),
    _Endpoint("bleeding_duration", EndpointKind.DURATION, Needs.BLEEDING,
              lambda s: s.bleeding, lambda s: s.bleeding_duration_days),
    _Endpoint("any_transfusion", EndpointKind.INCIDENCE, Needs.COUNT_ROWS,
              lambda s: s.any_transfusion),
    _Endpoint("platelet_transfusion", EndpointKind.INCIDENCE, Needs.COUNT_ROWS,
              lambda s: s.platelet_transfusions > 0),
    _Endpoint("red_cell_transfusion", EndpointKind.INCIDENCE, Needs.COUNT_ROWS,
              lambda s: s.red_cell_transfusions > 0),
    _Endpoint("anti_infective_use", EndpointKind.INCIDENCE, Needs.ANTI_INFECTIVE,
              lambda s: s.anti_infective_used),
    _Endpoint("time_to_neutrophil_recovery", EndpointKind.TIME, Needs.ANC,
              lambda s: s.neutrophil_recovered, lambda s: s.neutrophil_recovery_day,
              _status_at_risk(lambda s: s.neutrophil_recovery_status), _horizon,
              lambda s: s.neutrophil_recovery_day),
    _Endpoint("time_to_platelet_recovery", EndpointKind.TIME, Needs.PLT,
              lambda s: s.platelet_recovered, lambda s: s.platelet_recovery_day,
              _status_at_risk(lambda s: s.platelet_recovery_status), _horizon,
              lambda s: s.platelet_recovery_day),
    _Endpoint("severe_thrombocytopenia", EndpointKind.INCIDENCE, Needs.PLT,
              lambda s: s.severe_thrombocytopenia,
              day=lambda s: s.severe_thrombocytopenia_first_day),
    _Endpoint("time_to_severe_thrombocytopenia_recovery", EndpointKind.TIME, Needs.PLT,
              lambda s: s.time_to_severe_thrombocytopenia_recovery is not None,
              lambda s: s.time_to_severe_thrombocytopenia_recovery,
              lambda s: s.severe_thrombocytopenia,
              _severe_censoring(lambda s: s.severe_thrombocytopenia_first_day),
              lambda s: s.severe_thrombocytopenia_recovery_day),
    _Endpoint("severe_anemia", EndpointKind.INCIDENCE, Needs.HGB,
              lambda s: s.severe_anemia, day=lambda s: s.severe_anemia_first_day),
    _Endpoint("time_to_severe_anemia_recovery", EndpointKind.TIME, Needs.HGB,
              lambda s: s.time_to_severe_anemia_recovery is not None,
              lambda s: s.time_to_severe_anemia_recovery,
              lambda s: s.severe_anemia,
              _severe_censoring(lambda s: s.severe_anemia_first_day),
              lambda s: s.severe_anemia_recovery_day),
)

ENDPOINT_NAMES: tuple[str, ...] = tuple(e.name for e in ENDPOINTS)
ENDPOINT_NEEDS: dict[str, Needs] = {e.name: e.needs for e in ENDPOINTS}


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


def _time(value: float | None) -> Decimal | None:
    if value is None:
        return None
    return Decimal(repr(float(value))).normalize() if value != int(value) else Decimal(int(value))


def _row(group: str, endpoint: _Endpoint, subjects: Sequence[SubjectEndpoints]) -> SummaryRow:
    evaluable = [s for s in subjects if endpoint.needs.met(s)]
    not_evaluable = len(subjects) - len(evaluable)
    if endpoint.kind is EndpointKind.INCIDENCE:
        with_event = [s for s in evaluable if endpoint.event(s)]
        share = proportion(len(with_event), len(evaluable))
        return SummaryRow(group, endpoint.name, share.n, share.events, share.percent,
                          None, None, None, kind=endpoint.kind, ci_low=share.ci_low,
                          ci_high=share.ci_high, not_evaluable=not_evaluable)
    assert endpoint.value is not None
    if endpoint.kind is EndpointKind.DURATION:
        with_event = [s for s in evaluable if endpoint.event(s)]
        values = [v for v in (endpoint.value(s) for s in with_event) if v is not None]
        return SummaryRow(
            group, endpoint.name, len(evaluable), len(with_event), None, median(values),
            Decimal(min(values)) if values else None, Decimal(max(values)) if values else None,
            kind=endpoint.kind, not_evaluable=not_evaluable)
    assert endpoint.at_risk is not None and endpoint.censored_at is not None
    at_risk = [s for s in evaluable if endpoint.at_risk(s)]
    times: list[int] = []
    flags: list[bool] = []
    for s in at_risk:
        event = endpoint.event(s)
        time = endpoint.value(s) if event else endpoint.censored_at(s)
        if time is None:  # pragma: no cover - at risk always has one or the other
            continue
        times.append(time)
        flags.append(event)
    observed = [t for t, e in zip(times, flags, strict=True) if e]
    estimate = kaplan_meier(times, flags)
    return SummaryRow(
        group, endpoint.name, len(at_risk), estimate.events, None, _time(estimate.median),
        Decimal(min(observed)) if observed else None,
        Decimal(max(observed)) if observed else None,
        censored=estimate.censored, kind=endpoint.kind,
        median_low=_time(estimate.median_low), median_high=_time(estimate.median_high),
        not_evaluable=not_evaluable)


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


# --- per subject -------------------------------------------------------------------------


class SubjectStatus(StrEnum):
    """A subject's standing on one endpoint."""

    EVENT = "event"
    NO_EVENT = "no_event"
    CENSORED = "censored"
    NOT_APPLICABLE = "not_applicable"
    NOT_EVALUABLE = "not_evaluable"
    #: A nadir: the lowest value, observed.
    OBSERVED = "observed"


@dataclass(frozen=True)
class SubjectValue:
    """One subject's value of one endpoint (JSON-friendly: str, int, bool, None).

    ``value``: the recovery day or time to recovery of an event (time rows), the censoring
    time of a censored subject, the days with the condition (duration rows), ``yes``/``no``
    (incidence rows) or the nadir; None when not evaluable or not applicable. ``day``: the
    study day behind the value (recovery day, first day below the threshold, nadir day).
    ``rule``: the endpoint's rule, followed for an event by its evidence (``, first day 22
    (days 22, 25, 27)``).
    """

    endpoint: str
    status: str
    value: str | None
    day: int | None
    rule: str
    evaluable: bool
    reason: str | None


NADIRS: tuple[tuple[str, Needs, str, str], ...] = (
    ("anc_nadir", Needs.ANC, "anc_nadir", "anc_nadir_day"),
    ("plt_nadir", Needs.PLT, "plt_nadir", "plt_nadir_day"),
    ("hgb_nadir", Needs.HGB, "hgb_nadir", "hgb_nadir_day"),
)
SUBJECT_ENDPOINT_NAMES: tuple[str, ...] = tuple(n[0] for n in NADIRS) + ENDPOINT_NAMES


def _days_text(days: Sequence[int]) -> str:
    return ", ".join(str(d) for d in days)


def _with_evidence(endpoint: _Endpoint, s: SubjectEndpoints, rule: str,
                   run_rule: str | None) -> str:
    days = s.evidence.get(endpoint.name, ())
    if not days:
        return rule
    if endpoint.kind is EndpointKind.TIME and run_rule:
        # "ANC >= 0.5 on 3 consecutive measurements, first day 22 (days 22, 25, 27)"
        text = f"{run_rule}, first day {days[0]} (days {_days_text(days)})"
        assert endpoint.value is not None
        time = endpoint.value(s)
        if time is not None and time != days[0]:
            text += f"; first day below on day {days[0] - time}: {time} days"
        return text
    return f"{rule}; days {_days_text(days)}"


def subject_values(s: SubjectEndpoints, rules: Mapping[str, str],
                   run_rules: Mapping[str, str] | None = None) -> list[SubjectValue]:
    """One row per endpoint (``SUBJECT_ENDPOINT_NAMES`` order) for one subject.

    ``rules`` are the texts of ``hematology.endpoint_rules``; ``run_rules`` the run rules
    alone of the recovery endpoints (``hematology.recovery_rule``), quoted with the
    evidence of an event."""
    run_rules = run_rules or {}
    rows: list[SubjectValue] = []
    for name, needs, value_field, day_field in NADIRS:
        if not needs.met(s):
            rows.append(SubjectValue(name, SubjectStatus.NOT_EVALUABLE.value, None, None,
                                     rules[name], False, needs.reason(s.horizon_day)))
            continue
        rows.append(SubjectValue(name, SubjectStatus.OBSERVED.value,
                                 _cell(getattr(s, value_field)), getattr(s, day_field),
                                 rules[name], True, None))
    for endpoint in ENDPOINTS:
        rule = rules[endpoint.name]
        if not endpoint.needs.met(s):
            rows.append(SubjectValue(endpoint.name, SubjectStatus.NOT_EVALUABLE.value, None,
                                     None, rule, False, endpoint.needs.reason(s.horizon_day)))
            continue
        event = endpoint.event(s)
        day = endpoint.day(s) if endpoint.day is not None else None
        text = (_with_evidence(endpoint, s, rule, run_rules.get(endpoint.name)) if event
                else rule)
        if endpoint.kind is EndpointKind.INCIDENCE:
            status = SubjectStatus.EVENT if event else SubjectStatus.NO_EVENT
            rows.append(SubjectValue(endpoint.name, status.value, "yes" if event else "no",
                                     day if event else None, text, True, None))
        elif endpoint.kind is EndpointKind.DURATION:
            assert endpoint.value is not None
            status = SubjectStatus.EVENT if event else SubjectStatus.NO_EVENT
            rows.append(SubjectValue(endpoint.name, status.value, str(endpoint.value(s) or 0),
                                     None, text, True, None))
        else:
            assert endpoint.at_risk and endpoint.value and endpoint.censored_at
            if not endpoint.at_risk(s):
                rows.append(SubjectValue(endpoint.name, SubjectStatus.NOT_APPLICABLE.value,
                                         None, None, rule, True, None))
            elif event:
                rows.append(SubjectValue(endpoint.name, SubjectStatus.EVENT.value,
                                         _cell(endpoint.value(s)), day, text, True, None))
            else:
                rows.append(SubjectValue(endpoint.name, SubjectStatus.CENSORED.value,
                                         _cell(endpoint.censored_at(s)), None, rule, True, None))
    return rows


CSV_COLUMNS = ("group", "endpoint", "kind", "n", "not_evaluable", "events", "percent",
               "ci_low", "ci_high", "censored", "median", "median_low", "median_high",
               "minimum", "maximum")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        # Fixed-point so that e.g. 20 never prints as 2E+1.
        return format(value, "f")
    return str(value)


def rows_csv(columns: Sequence[str], rows: Sequence[object]) -> str:
    """RFC 4180 CSV (CRLF line ends) of the ``columns`` attributes of ``rows``, with a header
    row; empty cells for absent values, booleans as ``yes``/``no``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(getattr(row, column)) for column in columns])
    return buffer.getvalue()


def summary_csv(rows: Sequence[SummaryRow]) -> str:
    """The summary rows as CSV (``CSV_COLUMNS``); ci_* are percent, median_* days."""
    return rows_csv(CSV_COLUMNS, rows)
