"""Hematologic recovery endpoints after chemotherapy (UCMSC-Exo secondary endpoints).

All days are study days relative to chemotherapy day 1: ``day = (date - chemo_day1).days + 1``,
so the first day of chemotherapy is day 1 and there is no day 0 in the follow-up window.
The observation window is days 1..``horizon_day`` inclusive; anything outside it is ignored
(episodes are clipped to it).

Conventions that the endpoints depend on:

* "N consecutive days" means N consecutive *calendar* days, each with a measurement at or
  above the threshold. A day without a measurement breaks the run, because the protocol
  counts days, not samples: an unmeasured day cannot be shown to be recovered.
* Recovery is the first qualifying run that starts after the nadir day. A later fall below
  the threshold does not undo it; it is reported as a secondary drop.
* A count that never falls below the recovery threshold has nothing to recover from:
  its status is ``NOT_APPLICABLE``, neither recovered nor censored.
* A recovery run not completed by the horizon is censored, even if it would complete later.
* Transfusion look-back: a run starting on day d qualifies only if no transfusion of the
  relevant product was given on days d-L .. d-1 (L = look-back). A transfusion on day d
  itself is not in the look-back: the count of day d is taken to be drawn before it.
  With ``transfusion_free_whole_run`` every day of the run needs its own clean look-back.
  Transfusions before day 1 are not counted as events but do sit in the look-back.
* Severe thrombocytopenia and severe anemia end with the same kind of run (consecutive
  days at or above the recovery level after the nadir, transfusion-free look-back); the
  time to recovery is the first day of that run minus the first day below the threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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
    fn_anc: Decimal = Decimal("1.0")
    fn_temp_single: Decimal = Decimal("38.3")
    fn_temp_single_inclusive: bool = False

    def __post_init__(self) -> None:
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
    #: First day of the first run of ``anc_consecutive`` days with ANC >= ``anc_recovery``
    #: after the nadir; None unless recovered.
    neutrophil_recovery_day: int | None
    #: ``neutrophil_recovery_status`` is RECOVERED.
    neutrophil_recovered: bool
    #: Below the threshold and not recovered by the horizon.
    neutrophil_censored: bool
    #: ANC measured below the recovery threshold again after the recovery day.
    anc_secondary_drop: bool

    #: As ``neutrophil_recovery_status``, for platelets.
    platelet_recovery_status: RecoveryStatus
    #: First day of the first run of ``plt_consecutive`` days with PLT >= ``plt_recovery``
    #: after the nadir, with no platelet transfusion in the look-back before the run.
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

    #: At least one day of anti-infective therapy within the window.
    anti_infective_used: bool
    #: Distinct days in the window with anti-infective therapy.
    anti_infective_days: int


def compute_endpoints(
    counts: Iterable[CountRecord],
    transfusions: Iterable[Transfusion] = (),
    infections: Iterable[Episode] = (),
    bleedings: Iterable[Episode] = (),
    fn_episodes: Iterable[Episode] | None = None,
    anti_infective_days: Iterable[int] = (),
    params: RecoveryParameters = RecoveryParameters(),  # noqa: B008 - frozen, so sharing is safe
) -> SubjectEndpoints:
    """Compute one subject's endpoints.

    ``fn_episodes`` None means: derive febrile neutropenia from the counts (a day is FN when
    ANC < ``fn_anc`` and tmax is above ``fn_temp_single``; consecutive FN days form one
    episode). Only the single-temperature criterion can be derived from a daily maximum;
    fever sustained over an hour must be reported as episodes. ``anti_infective_days`` are
    the study days on which an anti-infective agent was given.

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

    whole_run = params.transfusion_free_whole_run
    neutrophil = _recovery(anc, anc_nadir_day, _Run(params.anc_recovery, params.anc_consecutive))
    platelet = _recovery(plt, plt_nadir_day, _Run(
        params.plt_recovery, params.plt_consecutive, plt_transfusion_days,
        params.plt_transfusion_lookback_days, whole_run))
    severe_plt = _severe(plt, plt_nadir_day, params.severe_thrombocytopenia, _Run(
        _default(params.severe_thrombocytopenia_recovery, params.severe_thrombocytopenia),
        params.plt_consecutive, plt_transfusion_days, params.plt_transfusion_lookback_days,
        whole_run))
    severe_hgb = _severe(hgb, hgb_nadir_day, params.severe_anemia, _Run(
        _default(params.severe_anemia_recovery, params.severe_anemia),
        params.hgb_consecutive, rbc_transfusion_days, params.red_cell_transfusion_lookback_days,
        whole_run))

    if fn_episodes is None:
        fn_derived = True
        fn_evaluable = any(r.anc is not None and r.tmax is not None for r in in_window)
        fn_list = _clip_episodes(_derive_fn_episodes(in_window, params), horizon)
    else:
        fn_derived = False
        fn_evaluable = True
        fn_list = _clip_episodes(fn_episodes, horizon)
    infection_list = _clip_episodes(infections, horizon)
    bleeding_list = _clip_episodes(bleedings, horizon)

    plt_count = sum(1 for t in window_transfusions if t.product == "platelets")
    rbc_count = sum(1 for t in window_transfusions if t.product == "red_cells")
    anti_days = {d for d in anti_infective_days if 1 <= d <= horizon}

    return SubjectEndpoints(
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
        anti_infective_used=bool(anti_days),
        anti_infective_days=len(anti_days),
    )


@dataclass(frozen=True)
class _Run:
    """A recovery rule: ``length`` consecutive days at or above ``threshold``, with no
    transfusion on the ``lookback`` days before the first day (or before every day)."""

    threshold: Decimal
    length: int
    transfusion_days: frozenset[int] = frozenset()
    lookback: int = 0
    whole_run: bool = False

    def _transfused_before(self, day: int) -> bool:
        return any(day - self.lookback <= t <= day - 1 for t in self.transfusion_days)

    def first_start(self, series: Mapping[int, Decimal], after_day: int) -> int | None:
        for start in sorted(d for d in series if d > after_day):
            run = range(start, start + self.length)
            if any(day not in series or series[day] < self.threshold for day in run):
                continue
            checked = run if self.whole_run else (start,)
            if self.lookback and any(self._transfused_before(d) for d in checked):
                continue
            return start
        return None


@dataclass(frozen=True)
class _Recovery:
    status: RecoveryStatus
    day: int | None


@dataclass(frozen=True)
class _Severe:
    days: int
    first_day: int | None
    recovery_day: int | None

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
        return _Recovery(RecoveryStatus.NOT_EVALUABLE, None)
    if series[nadir_day] >= rule.threshold:
        return _Recovery(RecoveryStatus.NOT_APPLICABLE, None)
    day = rule.first_start(series, nadir_day)
    if day is None:
        return _Recovery(RecoveryStatus.CENSORED, None)
    return _Recovery(RecoveryStatus.RECOVERED, day)


def _severe(series: Mapping[int, Decimal], nadir_day: int | None, threshold: Decimal,
            rule: _Run) -> _Severe:
    below = sorted(d for d, v in series.items() if v < threshold)
    if not below or nadir_day is None:
        return _Severe(0, None, None)
    return _Severe(len(below), below[0], rule.first_start(series, nadir_day))


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
