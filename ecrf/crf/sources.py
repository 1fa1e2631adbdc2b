"""Where safety reads its data: the ``recovery_endpoints`` and
``adverse_events`` blocks of study.yaml, as immutable parts of the ``StudyDefinition``.

Built from checked content only: every OID here exists in the group it is read from and
has a type the service can read (``check_sources``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CountsSource:
    """The daily blood counts: one row per measurement day of a repeating group. Every
    item is an OID of that group; the optional ones may be None."""

    form: str
    group: str
    date: str
    anc: str
    platelets: str
    hemoglobin: str
    wbc: str | None = None
    max_temperature: str | None = None
    platelet_transfusion: str | None = None  # yes/no: a platelet transfusion that day
    red_cell_transfusion: str | None = None  # yes/no: a red-cell transfusion that day

    @property
    def items(self) -> tuple[str, ...]:
        return tuple(i for i in (self.date, self.anc, self.platelets, self.hemoglobin,
                                 self.wbc, self.max_temperature, self.platelet_transfusion,
                                 self.red_cell_transfusion) if i)


@dataclass(frozen=True)
class EpisodeSource:
    """Episodes of one kind: one row each of a repeating group. ``any_episode`` is a
    yes/no item of the same form outside that group ("any episode?"): once answered, the
    recorded rows are the complete list."""

    form: str
    group: str
    start: str
    end: str | None = None
    ongoing: str | None = None  # yes/no: still going at the end of the observation
    any_episode: str | None = None

    @property
    def items(self) -> tuple[str, ...]:
        return tuple(i for i in (self.start, self.end, self.ongoing, self.any_episode) if i)


EPISODE_KINDS = ("febrile_neutropenia", "infection", "bleeding", "anti_infective")


@dataclass(frozen=True)
class RecoveryEndpointsDef:
    """Where the haematological recovery endpoints read their data (``recovery_endpoints``)."""

    day1_anchor: str  # day 1 of the day series
    counts: CountsSource
    febrile_neutropenia: EpisodeSource | None = None
    infection: EpisodeSource | None = None
    bleeding: EpisodeSource | None = None
    anti_infective: EpisodeSource | None = None

    def episodes(self) -> dict[str, EpisodeSource]:
        """Declared episode sources by kind (see ``EPISODE_KINDS``)."""
        found = {kind: getattr(self, kind) for kind in EPISODE_KINDS}
        return {kind: source for kind, source in found.items() if source is not None}


SERIOUSNESS_CRITERIA = ("death", "life_threatening", "hospitalisation", "disability",
                        "congenital_anomaly", "important_medical_event")


@dataclass(frozen=True)
class AdverseEventsDef:
    """The AE log (``adverse_events``): a repeating group and the role of its items.
    Every item is an OID of that group; the optional ones may be None or empty."""

    form: str
    group: str
    term: str
    onset: str
    grade: str
    serious: str
    end: str | None = None
    criteria: Mapping[str, str] = field(default_factory=dict)  # SERIOUSNESS_CRITERIA -> item
    outcome: str | None = None
    expectedness: str | None = None  # codes EXPECTED / UNEXPECTED
    awareness: str | None = None  # datetime the investigator became aware of the SAE
    sponsor_report: str | None = None  # datetime the SAE was reported to the sponsor
    causality: Mapping[str, str] = field(default_factory=dict)  # study drug -> item
    susar_drugs: tuple[str, ...] = ()  # drugs whose relatedness makes a SUSAR; () = all
    sponsor_causality: str | None = None  # the sponsor's opinion, never the investigator's
    death_date: str | None = None

    @property
    def items(self) -> tuple[str, ...]:
        single = (self.term, self.onset, self.grade, self.serious, self.end, self.outcome,
                  self.expectedness, self.awareness, self.sponsor_report,
                  self.sponsor_causality, self.death_date)
        found = [*single, *self.criteria.values(), *self.causality.values()]
        return tuple(dict.fromkeys(i for i in found if i))


SURVIVAL_BY = ("arm",)


@dataclass(frozen=True)
class SurvivalDef:
    """A time-to-event endpoint (``survival``), overall survival in DEXAML-03: time from
    the ``origin`` anchor to the ``event`` anchor, or censored at the last date the subject
    was known free of the event. Anchors are names of ``anchors`` (or ``enrolment``); the
    ``last_known_alive`` items are (form, item) pairs of date items; ``cutoff`` names a
    date parameter (administrative censoring at the data cut-off)."""

    name: str
    origin: str
    event: str
    last_known_alive: tuple[tuple[str, str], ...] = ()
    censor_at: tuple[str, ...] = ()  # anchors that end follow-up without the event
    cutoff: str | None = None  # a date parameter; None: every recorded date counts
    by: str | None = "arm"  # the comparison groups (arms); None: pooled only
    landmarks: tuple[int, ...] = (12, 24)  # months at which survival is reported
    at_risk_every: int = 6  # months between the numbers-at-risk columns


@dataclass(frozen=True)
class LabAnalyte:
    """One item the laboratory feeds: the codes (LOINC or the laboratory's own) that carry
    it, and the factor that converts a result in each accepted unit to the item's unit
    (the item's own unit is always accepted with factor 1). Units are compared exactly,
    case included (G/L is 10^9/L, g/L grams per litre), after removing spaces and
    writing the micro sign as u."""

    item: str
    codes: tuple[str, ...]
    units: Mapping[str, str] = field(default_factory=dict)  # unit -> factor (decimal text)


@dataclass(frozen=True)
class LabsDef:
    """Laboratory results imported from hospital files (``labs``): they go to the rows
    of ``form``.``group`` dated by its ``date`` item, in an occurrence of one of
    ``events`` whose window holds the collection date. ``identifier`` optionally names a
    text item (FORM.ITEM) holding the hospital's patient number, matched besides the
    subject key."""

    form: str
    group: str
    date: str
    events: tuple[str, ...]
    analytes: tuple[LabAnalyte, ...]
    identifier: tuple[str, str] | None = None

    def analyte_for(self, code: str) -> LabAnalyte | None:
        for analyte in self.analytes:
            if code in analyte.codes:
                return analyte
        return None


def lab_unit_key(unit: str) -> str:
    """A unit as compared by the laboratory import: spaces removed, the micro sign (µ, μ)
    written u; case is kept (G/L is not g/L)."""
    return "".join(unit.split()).replace("µ", "u").replace("μ", "u")
