"""Adverse-event rules: seriousness, causality, consistency checks and reporting clocks.

Pure functions over a plain dataclass, so the same rules serve the form's edit checks, the
API and the data-manager listings. Dates may be partial (ISO 8601 truncated on the right);
a comparison only fires when the answer holds for every day the partial dates could mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Literal

from ecrf.domain.dates import PartialDate, PartialDateError

PartialDateLike = str | date | PartialDate

__all__ = [
    "AdverseEvent", "Causality", "ClockError", "ClockStatus", "DEFAULT_RELATED", "Finding",
    "Outcome", "PartialDateError", "SeriousnessCriterion", "causality_summary",
    "certainly_before", "check_consistency", "date_bounds", "is_related", "sae_clock_status",
    "sae_report_due", "susar_due", "susar_followup_due",
]


class ClockError(ValueError):
    """A reporting-clock input that cannot be placed on the UTC time line."""


class Causality(StrEnum):
    UNRELATED = "unrelated"
    UNLIKELY = "unlikely"
    POSSIBLE = "possible"
    PROBABLE = "probable"
    DEFINITE = "definite"


DEFAULT_RELATED: frozenset[Causality] = frozenset(
    {Causality.POSSIBLE, Causality.PROBABLE, Causality.DEFINITE}
)


class SeriousnessCriterion(StrEnum):
    DEATH = "AESDTH"
    LIFE_THREATENING = "AESLIFE"
    HOSPITALISATION = "AESHOSP"
    DISABILITY = "AESDISAB"
    CONGENITAL_ANOMALY = "AESCONG"
    IMPORTANT_MEDICAL_EVENT = "AESMIE"


class Outcome(StrEnum):
    """CDISC controlled terminology OUT (SDTM AEOUT submission values)."""

    RECOVERED = "RECOVERED/RESOLVED"
    RECOVERING = "RECOVERING/RESOLVING"
    NOT_RECOVERED = "NOT RECOVERED/NOT RESOLVED"
    RECOVERED_WITH_SEQUELAE = "RECOVERED/RESOLVED WITH SEQUELAE"
    FATAL = "FATAL"
    UNKNOWN = "UNKNOWN"


_ONGOING = frozenset({Outcome.NOT_RECOVERED, Outcome.RECOVERING})


def is_related(causality: Causality | str | None,
               related: frozenset[Causality] = DEFAULT_RELATED) -> bool:
    """Whether an investigator causality counts as related under the study's definition."""
    if causality is None:
        return False
    return Causality(causality) in related


@dataclass
class AdverseEvent:
    term: str
    onset: PartialDateLike | None = None
    resolution: PartialDateLike | None = None
    grade: int | None = None
    serious: bool | None = None
    criteria: set[SeriousnessCriterion] = field(default_factory=set)
    causality: dict[str, Causality] = field(default_factory=dict)
    outcome: Outcome | None = None
    death_date: PartialDateLike | None = None
    expected: bool | None = None
    action_taken: str | None = None

    def related_drugs(self, related: frozenset[Causality] = DEFAULT_RELATED) -> list[str]:
        return sorted(drug for drug, c in self.causality.items() if is_related(c, related))


# --- Partial dates -----------------------------------------------------------------------


def date_bounds(value: PartialDateLike) -> tuple[date, date]:
    """Earliest and latest day a full or partial ISO 8601 date can stand for."""
    if isinstance(value, datetime):
        return value.date(), value.date()
    if isinstance(value, date):
        return value, value
    if isinstance(value, PartialDate):
        return value.earliest(), value.latest()
    if not isinstance(value, str):
        raise PartialDateError(f"date {value!r} is neither a date nor an ISO 8601 string")
    text = value.strip()
    # A date-time such as AESTDTC '2024-03-15T10:30' compares by its day.
    if len(text) > 10 and text[10] == "T":
        text = text[:10]
    parsed = PartialDate.parse(text)
    return parsed.earliest(), parsed.latest()


def certainly_before(a: PartialDateLike, b: PartialDateLike) -> bool:
    """True only if every day ``a`` may mean lies before every day ``b`` may mean."""
    return date_bounds(a)[1] < date_bounds(b)[0]


# --- Consistency -------------------------------------------------------------------------

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    fields: tuple[str, ...]


def check_consistency(ae: AdverseEvent, *,
                      consent_date: PartialDateLike | None = None) -> list[Finding]:
    """Edit checks across the fields of one AE record; empty when consistent."""
    findings: list[Finding] = []

    def add(code: str, severity: Severity, message: str, *fields: str) -> None:
        findings.append(Finding(code, severity, message, fields))

    if ae.grade is not None and (isinstance(ae.grade, bool) or ae.grade not in range(1, 6)):
        add("grade_invalid", "error", f"grade {ae.grade!r} is not a CTCAE grade 1-5", "grade")

    criteria = set(ae.criteria)
    if ae.serious is True and not criteria:
        add("serious_without_criterion", "error",
            "serious is yes but no seriousness criterion is ticked", "serious", "criteria")
    elif ae.serious is False and criteria:
        add("criterion_without_serious", "error",
            "a seriousness criterion is ticked but serious is no", "serious", "criteria")
    elif ae.serious is None and criteria:
        add("serious_not_answered", "error",
            "a seriousness criterion is ticked but serious is not answered",
            "serious", "criteria")

    fatal = ae.outcome == Outcome.FATAL
    if ae.grade == 5:
        if not fatal:
            add("grade5_not_fatal", "error", "grade 5 (death) requires outcome FATAL",
                "grade", "outcome")
        if SeriousnessCriterion.DEATH not in criteria:
            add("grade5_without_death_criterion", "error",
                "grade 5 (death) requires the seriousness criterion 'results in death'",
                "grade", "criteria")
    elif fatal and ae.grade is not None:
        add("fatal_not_grade5", "warning",
            f"outcome FATAL with grade {ae.grade}: a death related to the AE is grade 5",
            "grade", "outcome")
    if fatal and ae.grade != 5 and SeriousnessCriterion.DEATH not in criteria:
        add("fatal_without_death_criterion", "error",
            "outcome FATAL requires the seriousness criterion 'results in death'",
            "outcome", "criteria")
    if SeriousnessCriterion.DEATH in criteria and not fatal and ae.grade != 5:
        add("death_criterion_not_fatal", "warning",
            "seriousness criterion 'results in death' is ticked but the outcome is not FATAL",
            "criteria", "outcome")
    if (ae.grade == 5 or fatal) and ae.death_date is None:
        add("death_date_missing", "error",
            "a fatal AE (grade 5 or outcome FATAL) needs the date of death",
            "death_date", "grade" if ae.grade == 5 else "outcome")

    if ae.resolution is not None and ae.outcome in _ONGOING:
        add("resolution_while_ongoing", "warning",
            f"a resolution date is given but the outcome is {ae.outcome}",
            "resolution", "outcome")

    dates = {"onset": ae.onset, "resolution": ae.resolution, "death_date": ae.death_date,
             "consent_date": consent_date}
    valid: dict[str, PartialDateLike] = {}
    for name, value in dates.items():
        if value is None:
            continue
        try:
            date_bounds(value)
        except PartialDateError as exc:
            add("date_invalid", "error", str(exc), name)
        else:
            valid[name] = value

    def order(earlier: str, later: str, code: str, message: str) -> None:
        if earlier in valid and later in valid and certainly_before(valid[later], valid[earlier]):
            fields = tuple(f for f in (earlier, later) if f != "consent_date")
            add(code, "error", f"{message} ({valid[later]} < {valid[earlier]})", *fields)

    order("onset", "resolution", "resolution_before_onset", "resolution is before onset")
    order("consent_date", "onset", "onset_before_consent", "onset is before informed consent")
    order("onset", "death_date", "death_before_onset", "date of death is before onset")
    return findings


# --- Reporting clocks --------------------------------------------------------------------

SAE_REPORT_WINDOW = timedelta(hours=24)
SUSAR_FATAL_DAYS = 7
SUSAR_OTHER_DAYS = 15
SUSAR_FOLLOWUP_DAYS = 8

ClockState = Literal["due", "overdue", "submitted_in_time", "submitted_late"]


@dataclass(frozen=True)
class ClockStatus:
    state: ClockState
    due_at: datetime
    # Time left while open; negative once overdue; None after submission.
    remaining: timedelta | None


def _utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise ClockError(f"{name} {moment!r} is not a datetime")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ClockError(f"{name} {moment.isoformat()} is naive; give a timezone-aware UTC time")
    return moment.astimezone(UTC)


def sae_report_due(awareness: datetime) -> datetime:
    """The investigator's SAE report is due 24 hours after awareness."""
    return _utc(awareness, "awareness") + SAE_REPORT_WINDOW


def sae_clock_status(awareness: datetime, submitted_at: datetime | None,
                     now: datetime) -> ClockStatus:
    """Where the 24-hour SAE clock stands; the due instant itself is still in time."""
    due_at = sae_report_due(awareness)
    now_utc = _utc(now, "now")
    if submitted_at is not None:
        submitted = _utc(submitted_at, "submitted_at")
        state: ClockState = "submitted_in_time" if submitted <= due_at else "submitted_late"
        return ClockStatus(state, due_at, None)
    remaining = due_at - now_utc
    return ClockStatus("due" if remaining >= timedelta(0) else "overdue", due_at, remaining)


def _day(value: date, name: str) -> date:
    if isinstance(value, datetime):
        return _utc(value, name).date()
    if not isinstance(value, date):
        raise ClockError(f"{name} {value!r} is not a date")
    return value


def susar_due(awareness_date: date, fatal_or_life_threatening: bool) -> date:
    """Expedited SUSAR deadline in calendar days, the awareness date being day 0."""
    days = SUSAR_FATAL_DAYS if fatal_or_life_threatening else SUSAR_OTHER_DAYS
    return _day(awareness_date, "awareness_date") + timedelta(days=days)


def susar_followup_due(awareness_date: date, *,
                       initial_report_date: date | None = None) -> date:
    """Follow-up of a fatal or life-threatening SUSAR: 8 days after the 7-day report.

    Counted from the initial report when its date is known, else from its 7-day deadline.
    """
    base = (_day(initial_report_date, "initial_report_date") if initial_report_date
            else susar_due(awareness_date, True))
    return base + timedelta(days=SUSAR_FOLLOWUP_DAYS)


def causality_summary(causality: Mapping[str, Causality],
                      related: frozenset[Causality] = DEFAULT_RELATED) -> dict[str, bool]:
    """Per study drug: related or not, for listings and SUSAR triage."""
    return {drug: is_related(c, related) for drug, c in sorted(causality.items())}
