"""Time compute_schedule for one DEXAML-03-like subject four years into the study.

Run: .venv/bin/python bench/schedule_bench.py [runs]

Two subjects are timed: one on azacitidine who progressed after a year (cycles stop, then
follow-up), and a worst case still on azacitidine cycles four years in (about 50 cycles).
Prints mean and 95th percentile in microseconds per subject.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import date, timedelta

from ecrf.domain.dates import Period, add_months
from ecrf.domain.schedule import (
    EventKind,
    EventRule,
    RecordedOccurrence,
    RepeatRule,
    ScheduleDefinition,
    StopRule,
    SubjectScheduleData,
    Window,
    compute_schedule,
)

INTENSIVE = 'SALVAGE.SALVTYPE = "INTENSIVE"'
AZACITIDINE = 'SALVAGE.SALVTYPE = "AZA"'
PROGRESSED = "not is_blank(anchor.progression)"


def _p(text: str) -> Period:
    return Period.parse(text)


def _window(before: str, after: str) -> Window:
    return Window(_p(before), _p(after))


def dexaml_definition() -> ScheduleDefinition:
    scheduled, repeating = EventKind.SCHEDULED, EventKind.REPEATING
    events = (
        EventRule("SCREEN", "Screening", scheduled, anchor="enrolment",
                  window=_window("0d", "28d"), forms=("ELIG", "CONSENT", "DEMOG")),
        EventRule("RAND", "Randomization", scheduled, anchor="randomization",
                  window=_window("0d", "3d"), forms=("RAND", "SALVAGE")),
        EventRule("INT_CYCLE", "Intensive cycle", repeating, anchor="c1d1",
                  window=_window("0d", "14d"), repeat=RepeatRule(_p("42d"), count=4),
                  condition=INTENSIVE, forms=("CHEMO", "DEX_ADMIN")),
        EventRule("AZA_CYCLE", "Azacitidine cycle", repeating, anchor="c1d1",
                  window=_window("0d", "7d"),
                  repeat=RepeatRule(_p("28d"), until=PROGRESSED, from_actual=True),
                  condition=AZACITIDINE, stop_at=("progression",),
                  forms=("AZA_ADMIN", "DEX_ADMIN")),
        EventRule("AZA_EVAL", "Response evaluation after 3 cycles", scheduled, anchor="c1d1",
                  offset=_p("84d"), window=_window("7d", "14d"), condition=AZACITIDINE,
                  forms=("MARROW", "RESPONSE")),
        EventRule("EOT", "End of treatment", scheduled, anchor="eot",
                  window=_window("0d", "30d"), forms=("EOT",)),
        EventRule("FU_EARLY", "Follow-up (years 1-2)", repeating, anchor="eot",
                  offset=_p("3m"), window=Window.around(_p("14d")),
                  repeat=RepeatRule(_p("3m"), count=8), forms=("FU", "SURV")),
        EventRule("FU_LATE", "Follow-up (after year 2)", repeating, anchor="eot",
                  offset=_p("30m"), window=Window.around(_p("1m")),
                  repeat=RepeatRule(_p("6m")), forms=("FU", "SURV")),
        EventRule("UNSCHED", "Unscheduled visit", EventKind.UNSCHEDULED, forms=("HEMATO",)),
        EventRule("AE_LOG", "Adverse events", EventKind.LOG, forms=("AE",)),
    )
    return ScheduleDefinition(events, StopRule(("death", "withdrawal", "lost_to_follow_up")))


def _occurrences(oid: str, dates: list[date]) -> list[RecordedOccurrence]:
    return [RecordedOccurrence(oid, k, d, "done") for k, d in enumerate(dates, start=1)]


def progressed_subject() -> tuple[SubjectScheduleData, date]:
    randomized = date(2021, 3, 1)
    c1d1 = date(2021, 3, 8)
    cycles = []
    start = c1d1
    for k in range(13):
        cycles.append(start)
        start += timedelta(days=28 + (7 if k % 4 == 3 else 0))  # some cycles delayed
    progression = cycles[-1] + timedelta(days=20)
    eot = progression + timedelta(days=5)
    fu = [add_months(eot, 3 * k) + timedelta(days=k % 3) for k in range(1, 9)]
    late = [add_months(eot, 30)]
    anchors = {"enrolment": date(2021, 2, 15), "consent": date(2021, 2, 15),
               "randomization": randomized, "c1d1": c1d1, "progression": progression,
               "eot": eot}
    occurrences = [
        RecordedOccurrence("SCREEN", 1, date(2021, 2, 20), "done"),
        RecordedOccurrence("RAND", 1, randomized, "done"),
        RecordedOccurrence("AZA_EVAL", 1, c1d1 + timedelta(days=86), "done"),
        RecordedOccurrence("EOT", 1, eot, "done"),
        RecordedOccurrence("AE_LOG", 1, date(2021, 2, 20), "in_progress"),
        *_occurrences("AZA_CYCLE", cycles),
        *_occurrences("FU_EARLY", fu),
        *_occurrences("FU_LATE", late),
        *_occurrences("UNSCHED", [date(2021, 5, 2), date(2021, 9, 14), date(2023, 1, 9)]),
    ]
    truths = {AZACITIDINE, PROGRESSED}
    subject = SubjectScheduleData(anchors, occurrences, study_end=add_months(randomized, 60),
                                  evaluate=lambda source: source in truths)
    return subject, add_months(randomized, 48)


def still_treated_subject() -> tuple[SubjectScheduleData, date]:
    randomized = date(2021, 3, 1)
    c1d1 = date(2021, 3, 8)
    cycles = [c1d1 + timedelta(days=29 * k) for k in range(50)]
    anchors = {"enrolment": date(2021, 2, 15), "randomization": randomized, "c1d1": c1d1}
    occurrences = [
        RecordedOccurrence("SCREEN", 1, date(2021, 2, 20), "done"),
        RecordedOccurrence("RAND", 1, randomized, "done"),
        *_occurrences("AZA_CYCLE", cycles),
    ]
    truths = {AZACITIDINE}
    subject = SubjectScheduleData(anchors, occurrences, study_end=add_months(randomized, 60),
                                  evaluate=lambda source: source in truths)
    return subject, add_months(randomized, 48)


def _time(definition: ScheduleDefinition, subject: SubjectScheduleData, on: date,
          runs: int) -> tuple[float, float, int]:
    rows = len(compute_schedule(definition, subject, on))
    for _ in range(min(runs, 200)):
        compute_schedule(definition, subject, on)
    samples = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        compute_schedule(definition, subject, on)
        samples.append((time.perf_counter_ns() - started) / 1000)
    samples.sort()
    return statistics.fmean(samples), samples[int(0.95 * (len(samples) - 1))], rows


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    definition = dexaml_definition()
    for label, (subject, on) in (("progressed, in follow-up", progressed_subject()),
                                 ("still on azacitidine", still_treated_subject())):
        mean, p95, rows = _time(definition, subject, on, runs)
        print(f"{label:<26} rows={rows:3d} runs={runs} mean={mean:8.1f} us  p95={p95:8.1f} us")


if __name__ == "__main__":
    main()
