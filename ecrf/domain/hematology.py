"""Hematologic recovery endpoints after chemotherapy (UCMSC-Exo secondary endpoints).

All days are study days relative to chemotherapy day 1: ``day = (date - chemo_day1).days + 1``,
so the first day of chemotherapy is day 1 and there is no day 0 in the follow-up window.
The observation window is days 1..``horizon_day`` inclusive; anything outside it is ignored
(episodes are clipped to it).

Conventions that the endpoints depend on:

* "N consecutive" means, by default (``recovery_run="measurements"``), N consecutive
  *measurements* of that count: the count's measurement days in day order, N in a row, all
  at or above the threshold. A day without a measurement of that count (no record, or a
  record without that value) neither breaks nor extends the run, so a subject counted every
  2-4 days after discharge recovers on the first of N such measurements. The recovery day
  is the first day of the run. With ``recovery_run="calendar_days"`` the N days must be
  consecutive calendar days, each measured at or above the threshold, and an unmeasured day
  breaks the run (the rule of protocols that count days, not samples).
* Recovery is the first qualifying run that starts after the nadir day. A later fall below
  the threshold does not undo it; it is reported as a secondary drop.
* A count that never falls below the recovery threshold has nothing to recover from:
  its status is ``NOT_APPLICABLE``, neither recovered nor censored.
* A recovery run not completed by the horizon is censored, even if it would complete later:
  all N measurements (or days) of the run must lie in the window.
* Transfusion look-back: a run qualifies only if no transfusion of the relevant product was
  given on days d-L .. d-1 (L = look-back) for d = the first day of the run; with
  ``transfusion_free_whole_run`` for every measurement day d of the run. A transfusion on
  day d itself is not in day d's look-back: the count of day d is taken to be drawn before
  it. It is in the look-back of every later measurement of the run up to day d+L, so under
  the whole-run rule a transfusion on a run day, or on an unmeasured day between two
  measurements of the run, disqualifies the run whenever a later measurement of the run is
  at most L days after it. Transfusions before day 1 are not counted as events but do sit
  in the look-back.
* Severe thrombocytopenia and severe anemia end with the same kind of run (consecutive
  measurements at or above the recovery level after the nadir, transfusion-free
  look-back); the time to recovery is the first day of that run minus the first day below
  the threshold.
* Every endpoint has a rule text built from the parameters (``endpoint_rules``) and each
  subject carries the days that show it (``SubjectEndpoints.evidence``: the days of the
  recovery run, the days below a severe threshold, the transfusion days).
* Data that decides evaluability is reported with the endpoints: whether any blood count
  record lies in the window (transfusions are recorded on the count records), and whether
  infection, bleeding and anti-infective data were reported at all (the caller passes None
  for "not reported": unknown is not no). ``ecrf.domain.hematology_summary`` applies one
  evaluability rule per endpoint on these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import Literal

TransfusionProduct = Literal["platelets", "red_cells"]
TRANSFUSION_PRODUCTS: frozenset[str] = frozenset({"platelets", "red_cells"})


class HematologyError(ValueError):
    """Base class for invalid input to the recovery endpoints."""


class DuplicateCountDayError(HematologyError):
    def __init__(self, day: int) -> None:
        super().__init__(f"more than one blood count record for day {day}")
        self.day = day


class CountValueError(HematologyError):
    def __init__(self, field: str, value: object, day: int) -> None:
        super().__init__(
            f"blood count {field}={value!r} on day {day} must be a non-negative Decimal or None"
        )
        self.field = field
        self.value = value
        self.day = day


class TransfusionProductError(HematologyError):
    def __init__(self, product: object) -> None:
        super().__init__(f"unknown transfusion product {product!r}; expected one of "
                         f"{sorted(TRANSFUSION_PRODUCTS)}")
        self.product = product


class EpisodeError(HematologyError):
    def __init__(self, start_day: int, end_day: int) -> None:
        super().__init__(f"episode ends on day {end_day}, before its start on day {start_day}")
        self.start_day = start_day
        self.end_day = end_day


class RecoveryParameterError(HematologyError):
    def __init__(self, name: str, value: object) -> None:
        super().__init__(f"invalid recovery parameter {name}={value!r}")
        self.name = name
        self.value = value


@dataclass(frozen=True)
class CountRecord:
    """One day's blood counts. ANC, PLT, WBC in 10^9/L; HGB in g/L; tmax (max temp) in C."""

    day: int
    anc: Decimal | None
    plt: Decimal | None
    hgb: Decimal | None
    wbc: Decimal | None = None
    tmax: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("anc", "plt", "hgb", "wbc"):
            value = getattr(self, name)
            # Floats would let binary rounding move a value across a threshold.
            if value is not None and (not isinstance(value, Decimal) or value < 0):
                raise CountValueError(name, value, self.day)
        if self.tmax is not None and not isinstance(self.tmax, Decimal):
            raise CountValueError("tmax", self.tmax, self.day)


@dataclass(frozen=True)
class Transfusion:
    day: int
    product: TransfusionProduct

    def __post_init__(self) -> None:
        if self.product not in TRANSFUSION_PRODUCTS:
            raise TransfusionProductError(self.product)


@dataclass(frozen=True)
class Episode:
    """An infection, bleeding or febrile neutropenia episode; ``end_day`` None = ongoing."""

    start_day: int
    end_day: int | None

    def __post_init__(self) -> None:
        if self.end_day is not None and self.end_day < self.start_day:
            raise EpisodeError(self.start_day, self.end_day)


class RecoveryRun(StrEnum):
    """What "N consecutive" counts in a recovery run (see the module docstring)."""

    MEASUREMENTS = "measurements"
    CALENDAR_DAYS = "calendar_days"


RECOVERY_RUNS: tuple[str, ...] = tuple(r.value for r in RecoveryRun)


@dataclass(frozen=True)
class RecoveryParameters:
    """Study parameters; defaults from the UCMSC-Exo protocol and CTCAE v5.0.

    For IDSA febrile neutropenia use ``fn_anc=Decimal("0.5")`` and
    ``fn_temp_single_inclusive=True`` (a single temperature >= 38.3 C).
    """

    horizon_day: int = 42
    anc_recovery: Decimal = Decimal("0.5")
    anc_consecutive: int = 3
    plt_recovery: Decimal = Decimal("20")
    plt_consecutive: int = 3
    plt_transfusion_lookback_days: int = 7
    severe_thrombocytopenia: Decimal = Decimal("25")
    #: PLT level that ends severe thrombocytopenia; None = the severe threshold itself.
    severe_thrombocytopenia_recovery: Decimal | None = None
    severe_anemia: Decimal = Decimal("60")
    #: HGB level (g/L) that ends severe anemia; None = the severe threshold itself.
    severe_anemia_recovery: Decimal | None = None
    hgb_consecutive: int = 3
    red_cell_transfusion_lookback_days: int = 7
    transfusion_free_whole_run: bool = False
    #: "measurements" (default): N consecutive measurements of the count; "calendar_days":
    #: N consecutive calendar days, an unmeasured day breaking the run.
    recovery_run: RecoveryRun = RecoveryRun.MEASUREMENTS
    fn_anc: Decimal = Decimal("1.0")
    fn_temp_single: Decimal = Decimal("38.3")
    fn_temp_single_inclusive: bool = False

    def __post_init__(self) -> None:
        if self.recovery_run not in RECOVERY_RUNS:
            raise RecoveryParameterError("recovery_run", self.recovery_run)
        object.__setattr__(self, "recovery_run", RecoveryRun(self.recovery_run))
        if not isinstance(self.transfusion_free_whole_run, bool):
            raise RecoveryParameterError("transfusion_free_whole_run",
                                         self.transfusion_free_whole_run)
        for name in ("horizon_day", "anc_consecutive", "plt_consecutive", "hgb_consecutive"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise RecoveryParameterError(name, value)
        for name in ("plt_transfusion_lookback_days", "red_cell_transfusion_lookback_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise RecoveryParameterError(name, value)
        for name in ("anc_recovery", "plt_recovery", "severe_thrombocytopenia",
                     "severe_thrombocytopenia_recovery", "severe_anemia",
                     "severe_anemia_recovery", "fn_anc", "fn_temp_single"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Decimal):
                raise RecoveryParameterError(name, value)


class RecoveryStatus(StrEnum):
    RECOVERED = "recovered"
    #: Fell below the threshold and no qualifying run was completed by the horizon.
    CENSORED = "censored"
    #: Never measured below the threshold in the window: nothing to recover from.
    NOT_APPLICABLE = "not_applicable"
    #: No measurement of this count in the window.
    NOT_EVALUABLE = "not_evaluable"


@dataclass(frozen=True)
class SubjectEndpoints:
    """Per-subject recovery endpoints over days 1..horizon (see the module docstring)."""

    #: Last day of the window (``RecoveryParameters.horizon_day``); censored times end here.
    horizon_day: int
    #: At least one blood count record (with or without values) in the window.
    count_rows: bool

    #: Lowest ANC in the window (10^9/L); None without any ANC value.
    anc_nadir: Decimal | None
    #: Day of ``anc_nadir``; the earliest such day on ties.
    anc_nadir_day: int | None
    #: Lowest PLT in the window (10^9/L).
    plt_nadir: Decimal | None
    #: Day of ``plt_nadir``; the earliest on ties.
    plt_nadir_day: int | None
    #: Lowest HGB in the window (g/L).
    hgb_nadir: Decimal | None
    #: Day of ``hgb_nadir``; the earliest on ties.
    hgb_nadir_day: int | None

    #: Recovered, censored, not applicable (never < threshold) or not evaluable (no ANC).
    neutrophil_recovery_status: RecoveryStatus
    #: First day of the first run of ``anc_consecutive`` measurements (or calendar days)
    #: with ANC >= ``anc_recovery`` after the nadir; None unless recovered.
    neutrophil_recovery_day: int | None
    #: ``neutrophil_recovery_status`` is RECOVERED.
    neutrophil_recovered: bool
    #: Below the threshold and not recovered by the horizon.
    neutrophil_censored: bool
    #: ANC measured below the recovery threshold again after the recovery day.
    anc_secondary_drop: bool

    #: As ``neutrophil_recovery_status``, for platelets.
    platelet_recovery_status: RecoveryStatus
    #: First day of the first run of ``plt_consecutive`` measurements (or calendar days)
    #: with PLT >= ``plt_recovery`` after the nadir, with no platelet transfusion in the
    #: look-back before the run (before each of its days with ``transfusion_free_whole_run``).
    platelet_recovery_day: int | None
    #: ``platelet_recovery_status`` is RECOVERED.
    platelet_recovered: bool
    #: Below the threshold and not recovered by the horizon.
    platelet_censored: bool
    #: PLT measured below the recovery threshold again after the recovery day.
    plt_secondary_drop: bool

    #: Any measured PLT below ``severe_thrombocytopenia``.
    severe_thrombocytopenia: bool
    #: Number of measured days with PLT below that threshold.
    severe_thrombocytopenia_days: int
    #: First measured day below it.
    severe_thrombocytopenia_first_day: int | None
    #: First day of a transfusion-free run at or above the severe-thrombocytopenia recovery
    #: level after the PLT nadir.
    severe_thrombocytopenia_recovery_day: int | None
    #: Recovery day - first day below; None if never below or not recovered (censored).
    time_to_severe_thrombocytopenia_recovery: int | None

    #: Any measured HGB below ``severe_anemia``.
    severe_anemia: bool
    #: Number of measured days with HGB below that threshold.
    severe_anemia_days: int
    #: First measured day below it.
    severe_anemia_first_day: int | None
    #: First day of a red-cell-transfusion-free run at or above the recovery level after the
    #: HGB nadir.
    severe_anemia_recovery_day: int | None
    #: Recovery day - first day below; None if never below or not recovered (censored).
    time_to_severe_anemia_recovery: int | None

    #: False when FN was to be derived from counts and no day had both ANC and tmax.
    fn_evaluable: bool
    #: True when the episodes were derived from daily ANC and tmax, False when reported.
    fn_derived: bool
    #: At least one FN episode in the window.
    febrile_neutropenia: bool
    #: FN episodes clipped to the window (an ongoing episode ends at the horizon).
    fn_episodes: tuple[Episode, ...]
    #: Distinct days in the window covered by an FN episode.
    fn_duration_days: int

    #: At least one infection episode overlaps the window.
    infection: bool
    #: Number of infection episodes overlapping the window.
    infection_episodes: int
    #: Distinct days in the window covered by an infection episode (overlaps count once).
    infection_duration_days: int

    #: At least one bleeding episode overlaps the window.
    bleeding: bool
    #: Number of bleeding episodes overlapping the window.
    bleeding_episodes: int
    #: Distinct days in the window covered by a bleeding episode.
    bleeding_duration_days: int

    #: Platelet transfusions given within the window.
    platelet_transfusions: int
    #: Red-cell transfusions given within the window.
    red_cell_transfusions: int
    #: At least one transfusion of either product within the window.
    any_transfusion: bool
    #: Transfusion data exists: a count record (transfusions are recorded on them) or a
    #: transfusion in the window.
    transfusions_evaluable: bool

    #: Infection data was reported (the caller passed a list, possibly empty, not None).
    infection_evaluable: bool
    #: Bleeding data was reported.
    bleeding_evaluable: bool
    #: Anti-infective data was reported.
    anti_infective_evaluable: bool

    #: At least one day of anti-infective therapy within the window.
    anti_infective_used: bool
    #: Distinct days in the window with anti-infective therapy.
    anti_infective_days: int

    #: The days behind each endpoint, by endpoint name (``endpoint_rules`` keys): the
    #: measurement days of the recovery run, the days below a severe threshold, the
    #: transfusion days. Endpoints without an event have no entry.
    evidence: Mapping[str, tuple[int, ...]]


def compute_endpoints(
    counts: Iterable[CountRecord],
    transfusions: Iterable[Transfusion] = (),
    infections: Iterable[Episode] | None = (),
    bleedings: Iterable[Episode] | None = (),
    fn_episodes: Iterable[Episode] | None = None,
    anti_infective_days: Iterable[int] | None = (),
    params: RecoveryParameters = RecoveryParameters(),  # noqa: B008 - frozen, so sharing is safe
) -> SubjectEndpoints:
    """Compute one subject's endpoints.

    ``fn_episodes`` None means: derive febrile neutropenia from the counts (a day is FN when
    ANC < ``fn_anc`` and tmax is above ``fn_temp_single``; consecutive FN days form one
    episode). Only the single-temperature criterion can be derived from a daily maximum;
    fever sustained over an hour must be reported as episodes. ``anti_infective_days`` are
    the study days on which an anti-infective agent was given. ``infections``,
    ``bleedings`` and ``anti_infective_days`` None mean "not reported": the endpoint is not
    evaluable for this subject (an empty sequence means reported, none).

    Raises ``DuplicateCountDayError`` when two count records share a day, even outside the
    window: a duplicate means the caller merged data wrongly, wherever it falls.
    """
    horizon = params.horizon_day
    counts = tuple(counts)
    transfusions = tuple(transfusions)
    seen: set[int] = set()
    for record in counts:
        if record.day in seen:
            raise DuplicateCountDayError(record.day)
        seen.add(record.day)
    in_window = sorted((r for r in counts if 1 <= r.day <= horizon), key=lambda r: r.day)

    anc = {r.day: r.anc for r in in_window if r.anc is not None}
    plt = {r.day: r.plt for r in in_window if r.plt is not None}
    hgb = {r.day: r.hgb for r in in_window if r.hgb is not None}

    window_transfusions = [t for t in transfusions if 1 <= t.day <= horizon]
    # Transfusions before day 1 are not counted as events but still sit in a look-back that
    # reaches back before day 1.
    plt_transfusion_days = frozenset(t.day for t in transfusions if t.product == "platelets")
    rbc_transfusion_days = frozenset(t.day for t in transfusions if t.product == "red_cells")

    anc_nadir, anc_nadir_day = _nadir(anc)
    plt_nadir, plt_nadir_day = _nadir(plt)
    hgb_nadir, hgb_nadir_day = _nadir(hgb)

    rules = _rules(params)
    neutrophil = _recovery(anc, anc_nadir_day, rules.neutrophil)
    platelet = _recovery(plt, plt_nadir_day, rules.platelet.using(plt_transfusion_days))
    severe_plt = _severe(plt, plt_nadir_day, params.severe_thrombocytopenia,
                         rules.severe_platelet.using(plt_transfusion_days))
    severe_hgb = _severe(hgb, hgb_nadir_day, params.severe_anemia,
                         rules.severe_hemoglobin.using(rbc_transfusion_days))

    if fn_episodes is None:
        fn_derived = True
        fn_evaluable = any(r.anc is not None and r.tmax is not None for r in in_window)
        fn_list = _clip_episodes(_derive_fn_episodes(in_window, params), horizon)
    else:
        fn_derived = False
        fn_evaluable = True
        fn_list = _clip_episodes(fn_episodes, horizon)
    infection_list = _clip_episodes(infections or (), horizon)
    bleeding_list = _clip_episodes(bleedings or (), horizon)

    plt_days = sorted(t.day for t in window_transfusions if t.product == "platelets")
    rbc_days = sorted(t.day for t in window_transfusions if t.product == "red_cells")
    plt_count, rbc_count = len(plt_days), len(rbc_days)
    anti_days = {d for d in (anti_infective_days or ()) if 1 <= d <= horizon}
    evidence = {
        "time_to_neutrophil_recovery": neutrophil.run,
        "time_to_platelet_recovery": platelet.run,
        "severe_thrombocytopenia": severe_plt.below,
        "time_to_severe_thrombocytopenia_recovery": severe_plt.run,
        "severe_anemia": severe_hgb.below,
        "time_to_severe_anemia_recovery": severe_hgb.run,
        "platelet_transfusion": tuple(plt_days),
        "red_cell_transfusion": tuple(rbc_days),
        "any_transfusion": tuple(sorted(set(plt_days) | set(rbc_days))),
    }

    return SubjectEndpoints(
        horizon_day=horizon,
        count_rows=bool(in_window),
        anc_nadir=anc_nadir,
        anc_nadir_day=anc_nadir_day,
        plt_nadir=plt_nadir,
        plt_nadir_day=plt_nadir_day,
        hgb_nadir=hgb_nadir,
        hgb_nadir_day=hgb_nadir_day,
        neutrophil_recovery_status=neutrophil.status,
        neutrophil_recovery_day=neutrophil.day,
        neutrophil_recovered=neutrophil.status is RecoveryStatus.RECOVERED,
        neutrophil_censored=neutrophil.status is RecoveryStatus.CENSORED,
        anc_secondary_drop=_drops_after(anc, neutrophil.day, params.anc_recovery),
        platelet_recovery_status=platelet.status,
        platelet_recovery_day=platelet.day,
        platelet_recovered=platelet.status is RecoveryStatus.RECOVERED,
        platelet_censored=platelet.status is RecoveryStatus.CENSORED,
        plt_secondary_drop=_drops_after(plt, platelet.day, params.plt_recovery),
        severe_thrombocytopenia=severe_plt.first_day is not None,
        severe_thrombocytopenia_days=severe_plt.days,
        severe_thrombocytopenia_first_day=severe_plt.first_day,
        severe_thrombocytopenia_recovery_day=severe_plt.recovery_day,
        time_to_severe_thrombocytopenia_recovery=severe_plt.time_to_recovery,
        severe_anemia=severe_hgb.first_day is not None,
        severe_anemia_days=severe_hgb.days,
        severe_anemia_first_day=severe_hgb.first_day,
        severe_anemia_recovery_day=severe_hgb.recovery_day,
        time_to_severe_anemia_recovery=severe_hgb.time_to_recovery,
        fn_evaluable=fn_evaluable,
        fn_derived=fn_derived,
        febrile_neutropenia=bool(fn_list),
        fn_episodes=tuple(Episode(start, end) for start, end in fn_list),
        fn_duration_days=_covered_days(fn_list),
        infection=bool(infection_list),
        infection_episodes=len(infection_list),
        infection_duration_days=_covered_days(infection_list),
        bleeding=bool(bleeding_list),
        bleeding_episodes=len(bleeding_list),
        bleeding_duration_days=_covered_days(bleeding_list),
        platelet_transfusions=plt_count,
        red_cell_transfusions=rbc_count,
        any_transfusion=(plt_count + rbc_count) > 0,
        transfusions_evaluable=bool(in_window) or bool(window_transfusions),
        infection_evaluable=infections is not None,
        bleeding_evaluable=bleedings is not None,
        anti_infective_evaluable=anti_infective_days is not None,
        anti_infective_used=bool(anti_days),
        anti_infective_days=len(anti_days),
        evidence={name: days for name, days in evidence.items() if days},
    )


@dataclass(frozen=True)
class _Run:
    """A recovery rule: ``length`` consecutive measurements (or calendar days) at or above
    ``threshold``, with no transfusion on the ``lookback`` days before the first day (or
    before every day of the run)."""

    count: str
    threshold: Decimal
    length: int
    calendar_days: bool = False
    product: str = ""
    lookback: int = 0
    whole_run: bool = False
    transfusion_days: frozenset[int] = frozenset()

    def using(self, transfusion_days: frozenset[int]) -> _Run:
        return replace(self, transfusion_days=transfusion_days)

    def text(self) -> str:
        """``PLT >= 20 on 3 consecutive measurements with no platelet transfusion in the 7
        days before any of them``."""
        unit = "days" if self.calendar_days else "measurements"
        if self.length == 1:
            unit = unit[:-1]
            text = f"{self.count} >= {_number(self.threshold)} on 1 {unit}"
        else:
            text = f"{self.count} >= {_number(self.threshold)} on {self.length} consecutive {unit}"
        if self.lookback and self.product:
            which = "any of them" if self.whole_run and self.length > 1 else (
                "it" if self.length == 1 else "the first of them")
            days = "day" if self.lookback == 1 else f"{self.lookback} days"
            text += f" with no {self.product} transfusion in the {days} before {which}"
        return text

    def _transfused_before(self, day: int) -> bool:
        return any(day - self.lookback <= t <= day - 1 for t in self.transfusion_days)

    def first_run(self, series: Mapping[int, Decimal], after_day: int
                  ) -> tuple[int, ...] | None:
        """The days of the first qualifying run starting after ``after_day``."""
        measured = sorted(d for d in series if d > after_day)
        for index, start in enumerate(measured):
            if self.calendar_days:
                run = tuple(range(start, start + self.length))
            else:
                run = tuple(measured[index:index + self.length])
                if len(run) < self.length:
                    return None  # the horizon comes before the run is complete
            if any(day not in series or series[day] < self.threshold for day in run):
                continue
            checked = run if self.whole_run else (start,)
            if self.lookback and any(self._transfused_before(d) for d in checked):
                continue
            return run
        return None


@dataclass(frozen=True)
class _Rules:
    neutrophil: _Run
    platelet: _Run
    severe_platelet: _Run
    severe_hemoglobin: _Run


def _rules(params: RecoveryParameters) -> _Rules:
    calendar = params.recovery_run is RecoveryRun.CALENDAR_DAYS
    whole = params.transfusion_free_whole_run
    return _Rules(
        neutrophil=_Run("ANC", params.anc_recovery, params.anc_consecutive, calendar),
        platelet=_Run("PLT", params.plt_recovery, params.plt_consecutive, calendar,
                      "platelet", params.plt_transfusion_lookback_days, whole),
        severe_platelet=_Run(
            "PLT", _default(params.severe_thrombocytopenia_recovery,
                            params.severe_thrombocytopenia),
            params.plt_consecutive, calendar, "platelet", params.plt_transfusion_lookback_days,
            whole),
        severe_hemoglobin=_Run(
            "HGB", _default(params.severe_anemia_recovery, params.severe_anemia),
            params.hgb_consecutive, calendar, "red-cell",
            params.red_cell_transfusion_lookback_days, whole),
    )


def _number(value: Decimal) -> str:
    return format(value, "f")


def endpoint_rules(params: RecoveryParameters = RecoveryParameters()  # noqa: B008 - frozen
                   ) -> dict[str, str]:
    """The rule of every endpoint in words, from the parameters, by endpoint name (the
    names of ``hematology_summary.ENDPOINTS`` and the three nadirs)."""
    rules = _rules(params)
    h = params.horizon_day
    window = f"days 1-{h}"
    fn_op = ">=" if params.fn_temp_single_inclusive else ">"
    fn = (f"ANC < {_number(params.fn_anc)} with a temperature {fn_op} "
          f"{_number(params.fn_temp_single)} C on the same day (from the daily counts), or "
          f"reported febrile neutropenia episodes, {window}")
    sev_plt = f"PLT < {_number(params.severe_thrombocytopenia)}"
    sev_hgb = f"HGB < {_number(params.severe_anemia)} g/L"
    return {
        "anc_nadir": f"lowest ANC on {window}",
        "plt_nadir": f"lowest PLT on {window}",
        "hgb_nadir": f"lowest HGB on {window}",
        "febrile_neutropenia": fn,
        "febrile_neutropenia_duration": f"days with febrile neutropenia ({fn})",
        "infection": f"an infection episode on {window}",
        "infection_duration": f"days with an infection episode, {window}",
        "bleeding": f"a bleeding episode on {window}",
        "bleeding_duration": f"days with a bleeding episode, {window}",
        "any_transfusion": f"a platelet or red-cell transfusion on {window}",
        "platelet_transfusion": f"a platelet transfusion on {window}",
        "red_cell_transfusion": f"a red-cell transfusion on {window}",
        "anti_infective_use": f"anti-infective therapy on any of {window}",
        "time_to_neutrophil_recovery": f"{rules.neutrophil.text()}, after the nadir; "
                                       f"censored at day {h}",
        "time_to_platelet_recovery": f"{rules.platelet.text()}, after the nadir; "
                                     f"censored at day {h}",
        "severe_thrombocytopenia": f"{sev_plt} on any measurement, {window}",
        "time_to_severe_thrombocytopenia_recovery": (
            f"from the first day with {sev_plt} to the first of {rules.severe_platelet.text()}, "
            f"after the nadir; censored at day {h}"),
        "severe_anemia": f"{sev_hgb} on any measurement, {window}",
        "time_to_severe_anemia_recovery": (
            f"from the first day with {sev_hgb} to the first of "
            f"{rules.severe_hemoglobin.text()}, after the nadir; censored at day {h}"),
    }


def recovery_rule(params: RecoveryParameters, endpoint: str) -> str | None:
    """The run rule alone (``ANC >= 0.5 on 3 consecutive measurements``) of a recovery
    endpoint; None for other endpoints."""
    rules = _rules(params)
    run = {"time_to_neutrophil_recovery": rules.neutrophil,
           "time_to_platelet_recovery": rules.platelet,
           "time_to_severe_thrombocytopenia_recovery": rules.severe_platelet,
           "time_to_severe_anemia_recovery": rules.severe_hemoglobin}.get(endpoint)
    return run.text() if run is not None else None


@dataclass(frozen=True)
class _Recovery:
    status: RecoveryStatus
    run: tuple[int, ...] = ()

    @property
    def day(self) -> int | None:
        return self.run[0] if self.run else None


@dataclass(frozen=True)
class _Severe:
    below: tuple[int, ...]
    run: tuple[int, ...]

    @property
    def days(self) -> int:
        return len(self.below)

    @property
    def first_day(self) -> int | None:
        return self.below[0] if self.below else None

    @property
    def recovery_day(self) -> int | None:
        return self.run[0] if self.run else None

    @property
    def time_to_recovery(self) -> int | None:
        if self.first_day is None or self.recovery_day is None:
            return None
        return self.recovery_day - self.first_day


def _default(value: Decimal | None, fallback: Decimal) -> Decimal:
    return fallback if value is None else value


def _nadir(series: Mapping[int, Decimal]) -> tuple[Decimal | None, int | None]:
    if not series:
        return None, None
    # Ordering by (value, day) breaks ties on the earliest day.
    day, value = min(series.items(), key=lambda item: (item[1], item[0]))
    return value, day


def _recovery(series: Mapping[int, Decimal], nadir_day: int | None, rule: _Run) -> _Recovery:
    if nadir_day is None:
        return _Recovery(RecoveryStatus.NOT_EVALUABLE)
    if series[nadir_day] >= rule.threshold:
        return _Recovery(RecoveryStatus.NOT_APPLICABLE)
    run = rule.first_run(series, nadir_day)
    if run is None:
        return _Recovery(RecoveryStatus.CENSORED)
    return _Recovery(RecoveryStatus.RECOVERED, run)


def _severe(series: Mapping[int, Decimal], nadir_day: int | None, threshold: Decimal,
            rule: _Run) -> _Severe:
    below = tuple(sorted(d for d, v in series.items() if v < threshold))
    if not below or nadir_day is None:
        return _Severe((), ())
    return _Severe(below, rule.first_run(series, nadir_day) or ())


def _drops_after(series: Mapping[int, Decimal], day: int | None, threshold: Decimal) -> bool:
    if day is None:
        return False
    return any(d > day and v < threshold for d, v in series.items())


def _is_fn_day(record: CountRecord, params: RecoveryParameters) -> bool:
    if record.anc is None or record.tmax is None or record.anc >= params.fn_anc:
        return False
    if params.fn_temp_single_inclusive:
        return record.tmax >= params.fn_temp_single
    return record.tmax > params.fn_temp_single


def _derive_fn_episodes(records: Sequence[CountRecord], params: RecoveryParameters) -> list[Episode]:
    episodes: list[Episode] = []
    start: int | None = None
    previous: int | None = None
    for record in records:
        if not _is_fn_day(record, params):
            continue
        if start is None or previous is None or record.day != previous + 1:
            if start is not None and previous is not None:
                episodes.append(Episode(start, previous))
            start = record.day
        previous = record.day
    if start is not None and previous is not None:
        episodes.append(Episode(start, previous))
    return episodes


def _clip_episodes(episodes: Iterable[Episode], horizon: int) -> list[tuple[int, int]]:
    """Episodes as (start, end) within days 1..horizon; ongoing ones end at the horizon."""
    clipped = []
    for episode in episodes:
        end = horizon if episode.end_day is None else min(episode.end_day, horizon)
        start = max(episode.start_day, 1)
        if start <= end:
            clipped.append((start, end))
    return sorted(clipped)


def _covered_days(episodes: Iterable[tuple[int, int]]) -> int:
    days: set[int] = set()
    for start, end in episodes:
        days.update(range(start, end + 1))
    return len(days)
