"""One subject's time to event for a survival endpoint (overall survival), from dates.

Pure: the caller reads the dates (``ecrf.safety.survival``) and the Kaplan-Meier estimate
is ``ecrf.domain.statistics.kaplan_meier``. The rules (forms/README.md, ``survival``):

* no origin date, or an origin after the cut-off: not in the analysis;
* a death before the origin: a data problem, not in the analysis (never a negative time);
* a death on or before the cut-off (any death without a cut-off): the event, at
  death - origin days (0 for a death on the origin day);
* otherwise censored at the latest date known alive or censoring date on or after the
  origin (the origin itself when there is none: day 0), capped at the cut-off. The reason
  is the censoring anchor whose date is that last contact, else ``alive`` (or
  ``no_follow_up`` at day 0); ``cutoff`` when the cut-off caps it;
* a date known alive after the death date is a data problem; the death still counts;
* a death after a censoring date (loss to follow-up, withdrawal) still counts and is
  listed for review.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DAYS_PER_MONTH = 30.4375  # 365.25 / 12

EVENT = "event"
ALIVE = "alive"
NO_FOLLOW_UP = "no_follow_up"
CUTOFF = "cutoff"

REASON_LABELS = {EVENT: "event", ALIVE: "alive at last contact",
                 NO_FOLLOW_UP: "no follow-up after the origin",
                 CUTOFF: "alive at the analysis cut-off"}


def months(days: int) -> float:
    return days / DAYS_PER_MONTH


@dataclass(frozen=True)
class SurvivalTime:
    """A subject's observation: ``included`` False leaves the subject out of the analysis
    (``excluded_because`` says why)."""

    included: bool
    days: int | None = None
    event: bool = False
    end: dt.date | None = None  # the event date or the censoring date
    reason: str = ""  # EVENT, ALIVE, NO_FOLLOW_UP, CUTOFF or a censoring anchor's name
    excluded_because: str = ""
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def months(self) -> float | None:
        return None if self.days is None else months(self.days)


def survival_time(origin: dt.date | None, death: dt.date | None,
                  known_alive: Iterable[dt.date] = (),
                  censor_dates: Mapping[str, dt.date | None] | None = None,
                  cutoff: dt.date | None = None) -> SurvivalTime:
    """The time from ``origin`` to ``death`` or to the last contact (see the module)."""
    censors = {name: day for name, day in (censor_dates or {}).items() if day is not None}
    alive = [day for day in known_alive if day is not None]
    problems: list[str] = []
    if origin is None:
        return SurvivalTime(False, excluded_because="no origin date")
    if cutoff is not None and origin > cutoff:
        return SurvivalTime(False, excluded_because=f"origin {origin} after the cut-off "
                                                    f"{cutoff}")
    if death is not None and death < origin:
        return SurvivalTime(False, excluded_because="death before the origin",
                            problems=(f"death date {death} is before the origin {origin}",))
    if death is not None:
        later = sorted(day for day in alive if day > death)
        if later:
            problems.append(f"known alive on {later[-1]}, after the death date {death}")
        for name, day in sorted(censors.items()):
            if day < death:
                problems.append(f"death on {death} after the {name.replace('_', ' ')} date "
                                f"{day}: counted as the event")
    if death is not None and (cutoff is None or death <= cutoff):
        return SurvivalTime(True, (death - origin).days, True, death, EVENT,
                            problems=tuple(problems))
    contacts = [(day, ALIVE) for day in alive if day >= origin]
    contacts += [(day, name) for name, day in censors.items() if day >= origin]
    if cutoff is not None and (death is not None
                               or any(day >= cutoff for day, _ in contacts)):
        return SurvivalTime(True, (cutoff - origin).days, False, cutoff, CUTOFF,
                            problems=tuple(problems))
    if not contacts:
        return SurvivalTime(True, 0, False, origin, NO_FOLLOW_UP, problems=tuple(problems))
    last = max(day for day, _ in contacts)
    # A censoring anchor on the last contact day names the reason (loss to follow-up).
    named = sorted(name for day, name in contacts if day == last and name != ALIVE)
    reason = named[0] if named else ALIVE
    return SurvivalTime(True, (last - origin).days, False, last, reason,
                        problems=tuple(problems))
