"""Hematologic recovery endpoints, computed on demand from the data the study's
``recovery_endpoints`` block names.

``study_endpoints`` reads the stored values (a fixed number of statements whatever the
number of subjects: the subjects, then their values in one statement) and runs the pure
engines ``ecrf.domain.hematology`` and ``hematology_summary``, so the endpoints always
follow the data. The pages read them through ``kept_study_endpoints``, which keeps each
result until the audit chain moves (any audited change does): a view with no data change
since the last one costs one statement and no computation.

Where the data comes from (forms/README.md, ``recovery_endpoints``): day 1 of the day
series is the ``day1_anchor``; one row per measurement day of the ``counts`` group gives
the date, ANC, platelets, haemoglobin and, when declared, white cells, the day's highest
temperature and whether platelets or red cells were transfused that day; the optional
``episodes`` groups give febrile neutropenia, infection, bleeding and anti-infective
episodes (start, end, ongoing at the end of the observation; each day of each
anti-infective course counts). The infusion day marked on the charts is the dose
escalation's ``dlt_anchor``. A study without the block has no recovery endpoints.

Febrile neutropenia is taken from the recorded episodes once the block's ``any_episode``
question is answered or an episode is recorded, otherwise derived from the daily ANC and
maximum temperature. Parameters (``horizon_day``, ``anc_recovery``, ``anc_recovery_days``,
``plt_recovery``, ``plt_recovery_days``, ``plt_transfusion_lookback_days``,
``severe_thrombocytopenia_plt``, ``severe_anemia_hgb``, ``fn_criteria``, ``fn_anc_max``,
``fn_temp_single``; optionally ``hgb_recovery_days``, ``rbc_transfusion_lookback_days``,
``transfusion_free_whole_run``, ``recovery_run``) come from the study's latest version, with
the engine's defaults for those it lacks. Subjects are grouped by dose level (by arm in a
study without escalation).

Evaluability of the episode endpoints (infection, bleeding, anti-infective use): a subject's
episodes are "reported" when the episode form's ``any_episode`` question is answered or an
episode is recorded; for a form without that question, also when the subject has a blood
count record in days 1..horizon (followed up, so no episode row means none). Otherwise, and
for a kind of episode the study does not record at all, the endpoint is not evaluable for
the subject: unknown is not no. Transfusions are recorded on the count rows, so the
transfusion endpoints need a count record in the window (the engine's rule).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field, replace
from decimal import Decimal

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ecrf.capture import GroupRow, ItemValue, Subject
from ecrf.crf import StudyDefinition
from ecrf.crf.definition import EpisodeSource, ItemKey, RecoveryEndpointsDef
from ecrf.crf.scope import BUILTIN_ANCHOR
from ecrf.domain.hematology import (
    CountRecord,
    Episode,
    HematologyError,
    RecoveryParameters,
    SubjectEndpoints,
    Transfusion,
    compute_endpoints,
    endpoint_rules,
    recovery_rule,
)
from ecrf.domain.hematology_summary import (
    ENDPOINT_NAMES,
    SUBJECT_ENDPOINT_NAMES,
    SubjectStatus,
    SummaryRow,
    rows_csv,
    subject_values,
    summarize,
    summary_csv,
)
from ecrf.safety.support import KeptResults
from ecrf.studies import Site, Study, definition_for, latest_version

UNASSIGNED = "Not assigned"
# An ongoing anti-infective course counts every day up to here (past any horizon).
_OPEN_END = 400
_BLANK = (None, None, None)


class EndpointsError(ValueError):
    """The study cannot give recovery endpoints; the message says why."""


def _decimal(value: object, fallback: Decimal) -> Decimal:
    if value is None or isinstance(value, bool):
        return fallback
    return Decimal(str(value))


def recovery_parameters(definition: StudyDefinition) -> RecoveryParameters:
    """The engine's parameters from the study's (defaults where the study has none)."""
    base = RecoveryParameters()
    values = definition.parameter_values()

    def get(name: str, fallback):
        value = values.get(name)
        if value is None:
            return fallback
        if isinstance(fallback, Decimal):
            return _decimal(value, fallback)
        if isinstance(fallback, bool):
            return bool(value)
        return int(value)

    idsa = str(values.get("fn_criteria") or "CTCAE").strip().upper() == "IDSA"
    try:
        return _parameters(values, base, get, idsa)
    except (HematologyError, ValueError, ArithmeticError) as exc:
        raise EndpointsError(f"invalid recovery parameter in the study definition: {exc}"
                             ) from None


def _parameters(values, base: RecoveryParameters, get, idsa: bool) -> RecoveryParameters:
    run = values.get("recovery_run")
    return RecoveryParameters(
        horizon_day=get("horizon_day", base.horizon_day),
        anc_recovery=get("anc_recovery", base.anc_recovery),
        anc_consecutive=get("anc_recovery_days", base.anc_consecutive),
        plt_recovery=get("plt_recovery", base.plt_recovery),
        plt_consecutive=get("plt_recovery_days", base.plt_consecutive),
        plt_transfusion_lookback_days=get("plt_transfusion_lookback_days",
                                          base.plt_transfusion_lookback_days),
        severe_thrombocytopenia=get("severe_thrombocytopenia_plt",
                                    base.severe_thrombocytopenia),
        severe_anemia=get("severe_anemia_hgb", base.severe_anemia),
        hgb_consecutive=get("hgb_recovery_days", base.hgb_consecutive),
        red_cell_transfusion_lookback_days=get("rbc_transfusion_lookback_days",
                                               base.red_cell_transfusion_lookback_days),
        transfusion_free_whole_run=get("transfusion_free_whole_run",
                                       base.transfusion_free_whole_run),
        fn_anc=get("fn_anc_max", Decimal("0.5") if idsa else base.fn_anc),
        fn_temp_single=get("fn_temp_single", base.fn_temp_single),
        fn_temp_single_inclusive=idsa,
        recovery_run=base.recovery_run if run is None else str(run).strip(),
    )


@dataclass
class SubjectSeries:
    """One subject's inputs to the engine, as study days from chemotherapy day 1."""

    subject_id: int
    subject_key: str
    site_code: str
    group: str
    enrolled_on: dt.date | None = None  # the built-in anchor ``enrolment``
    day1: dt.date | None = None
    infusion_day: int | None = None
    counts: list[CountRecord] = field(default_factory=list)
    transfusions: list[Transfusion] = field(default_factory=list)
    fn: list[Episode] | None = None
    infections: list[Episode] = field(default_factory=list)
    bleedings: list[Episode] = field(default_factory=list)
    anti_infective_days: set[int] = field(default_factory=set)
    #: Episode kinds reported for this subject (``any_episode`` answered or an episode
    #: recorded) and kinds whose form has no ``any_episode`` question.
    reported: set[str] = field(default_factory=set)
    unasked: set[str] = field(default_factory=set)
    problem: str | None = None

    def day(self, on: dt.date) -> int:
        assert self.day1 is not None
        return (on - self.day1).days + 1


@dataclass
class SubjectResult:
    series: SubjectSeries
    endpoints: SubjectEndpoints | None


@dataclass(frozen=True)
class SubjectEndpointRow:
    """One subject's value of one endpoint; every field a str, int, bool or None.

    ``status``: event, no_event, censored, not_applicable, not_evaluable or observed (a
    nadir). ``value``: the recovery day or time of an event, the censoring time (time
    endpoints), the days (durations), yes/no (incidences) or the nadir. ``day``: the study
    day behind it. ``rule``: the endpoint's rule with, for an event, the days that show it.
    ``reason``: why the subject is not evaluable (None when evaluable).
    """

    subject_key: str
    site_code: str
    group: str
    endpoint: str
    status: str
    value: str | None
    day: int | None
    rule: str
    evaluable: bool
    reason: str | None


SUBJECT_CSV_COLUMNS = ("subject_key", "site_code", "group", "endpoint", "status", "value",
                       "day", "rule", "evaluable", "reason")


@dataclass
class StudyEndpoints:
    study: Study
    definition: StudyDefinition
    params: RecoveryParameters
    groups: list[str]
    subjects: list[SubjectResult]
    summary: list[SummaryRow]

    @property
    def excluded(self) -> list[SubjectResult]:
        return [s for s in self.subjects if s.endpoints is None]

    @property
    def rules(self) -> dict[str, str]:
        """Every endpoint's rule in words, from the study's parameters."""
        return endpoint_rules(self.params)

    def csv(self) -> str:
        return summary_csv(self.summary)

    def subject_rows(self) -> list[SubjectEndpointRow]:
        """One row per subject and endpoint (``SUBJECT_ENDPOINT_NAMES`` order), subjects in
        key order; a subject without endpoints (day 1 not recorded, inconsistent counts) is
        not evaluable for every endpoint, with the reason."""
        rules = self.rules
        runs = {name: text for name in ENDPOINT_NAMES
                if (text := recovery_rule(self.params, name)) is not None}
        rows: list[SubjectEndpointRow] = []
        for result in self.subjects:
            series = result.series
            head = (series.subject_key, series.site_code, series.group)
            if result.endpoints is None:
                reason = series.problem or "no endpoints"
                rows.extend(SubjectEndpointRow(*head, name, SubjectStatus.NOT_EVALUABLE.value,
                                               None, None, rules[name], False, reason)
                            for name in SUBJECT_ENDPOINT_NAMES)
                continue
            rows.extend(SubjectEndpointRow(*head, v.endpoint, v.status, v.value, v.day, v.rule,
                                           v.evaluable, v.reason)
                        for v in subject_values(result.endpoints, rules, runs))
        return rows

    def subjects_csv(self) -> str:
        """``subject_rows`` as CSV (``SUBJECT_CSV_COLUMNS``; evaluable as yes/no)."""
        return rows_csv(SUBJECT_CSV_COLUMNS, self.subject_rows())


def has_counts(definition: StudyDefinition) -> bool:
    """Whether the study declares its recovery endpoints (and so records daily counts)."""
    return definition.recovery_endpoints is not None


def _group_labels(definition: StudyDefinition) -> tuple[dict, list[str]]:
    esc = definition.dose_escalation
    if esc is not None:
        labels = {lv.level: lv.label for lv in sorted(esc.levels, key=lambda lv: lv.level)}
        return labels, list(labels.values())
    labels = {arm.code: arm.name for arm in definition.arms}
    return labels, list(labels.values())


def study_series(session: Session, study: Study, site_ids: set[int] | None,
                 definition: StudyDefinition, *, subject_id: int | None = None
                 ) -> list[SubjectSeries]:
    """Every subject's series at the given sites, in three statements."""
    spec = definition.recovery_endpoints
    if spec is None:
        return []
    stmt = (select(Subject.id, Subject.subject_key, Subject.dose_level, Subject.arm, Site.code,
                   Subject.enrolled_on)
            .join(Site, Site.id == Subject.site_id).where(Subject.study_id == study.id)
            .order_by(Subject.subject_key))
    if site_ids is not None:
        stmt = stmt.where(Subject.site_id.in_(site_ids or {-1}))
    if subject_id is not None:
        stmt = stmt.where(Subject.id == subject_id)
    labels, _ = _group_labels(definition)
    escalation = definition.dose_escalation is not None
    series = {}
    for sid, key, level, arm, code, enrolled in session.execute(stmt):
        group = labels.get(level if escalation else arm) or (
            UNASSIGNED if escalation or labels else "All subjects")
        series[sid] = SubjectSeries(sid, key, code, group, enrolled)
    if not series:
        return []
    sources = _Sources.of(definition, spec)
    rows = _load_rows(session, study, sources, list(series),
                      subject_id is not None or len(series) <= 500)
    for sid, found in series.items():
        _build(found, sources, rows.get(sid, {}))
    return list(series.values())


@dataclass(frozen=True)
class _Sources:
    """The declared sources resolved against the definition, for one computation."""

    spec: RecoveryEndpointsDef
    day1: ItemKey | None  # None: the enrolment date
    infusion: ItemKey | None
    episodes: dict[str, EpisodeSource]
    # (form, group) of each any_episode question, by episode kind
    questions: dict[str, tuple[str, str]]

    @classmethod
    def of(cls, definition: StudyDefinition, spec: RecoveryEndpointsDef) -> _Sources:
        esc = definition.dose_escalation
        infusion = definition.anchors.get(esc.dlt_anchor) if esc is not None else None
        episodes = spec.episodes()
        questions = {kind: (source.form, definition.item(source.form, source.any_episode).group)
                     for kind, source in episodes.items() if source.any_episode}
        return cls(spec, definition.anchors.get(spec.day1_anchor), infusion, episodes,
                   questions)

    def keys(self) -> set[ItemKey]:
        """Every (form, item) read."""
        counts = self.spec.counts
        found = {(counts.form, item) for item in counts.items}
        found |= {(s.form, item) for s in self.episodes.values() for item in s.items}
        return found | {k for k in (self.day1, self.infusion) if k is not None}


def _load_rows(session: Session, study: Study, sources: _Sources, subject_ids: list[int],
               by_id: bool):
    """(subject -> (form, group, form instance, row) -> item -> (text, number, date))."""
    keys = sources.keys()
    stmt = (select(ItemValue.subject_id, ItemValue.form_oid, ItemValue.group_oid,
                   ItemValue.form_instance_id, ItemValue.row, ItemValue.item_oid,
                   ItemValue.value, ItemValue.value_number, ItemValue.value_date)
            .outerjoin(GroupRow, and_(GroupRow.form_instance_id == ItemValue.form_instance_id,
                                      GroupRow.group_oid == ItemValue.group_oid,
                                      GroupRow.row == ItemValue.row))
            .where(ItemValue.form_oid.in_(sorted({f for f, _ in keys})),
                   ItemValue.item_oid.in_(sorted({i for _, i in keys})),
                   ItemValue.value.is_not(None), GroupRow.removed_at.is_(None)))
    if by_id:
        stmt = stmt.where(ItemValue.subject_id.in_(subject_ids))
    else:
        stmt = stmt.join(Subject, Subject.id == ItemValue.subject_id).where(
            Subject.study_id == study.id)
    wanted = set(subject_ids)
    rows: dict[int, dict] = defaultdict(lambda: defaultdict(dict))
    for sid, form, group, fi, row, item, text, number, day in session.execute(stmt):
        if sid in wanted and (form, item) in keys:
            rows[sid][(form, group, fi, row)][item] = (text, number, day)
    return rows


def _build(series: SubjectSeries, sources: _Sources, rows: dict) -> None:
    def anchor_day(key: ItemKey | None) -> dt.date | None:
        days = [values[key[1]][2] for (form, _, _, _), values in rows.items()
                if key and form == key[0] and key[1] in values and values[key[1]][2]]
        return min(days) if days else None

    spec = sources.spec
    series.day1 = anchor_day(sources.day1) if sources.day1 is not None else (
        series.enrolled_on if spec.day1_anchor == BUILTIN_ANCHOR else None)
    if series.day1 is None:
        series.problem = f"day 1 (anchor {spec.day1_anchor}) is not recorded"
        return
    infusion = anchor_day(sources.infusion)
    series.infusion_day = series.day(infusion) if infusion else None
    counts = (spec.counts.form, spec.counts.group)
    answered: set[str] = set()
    found: dict[str, list[Episode]] = defaultdict(list)
    for (form, group, _fi, _row), values in sorted(rows.items(), key=lambda kv: kv[0]):
        if (form, group) == counts:
            _count_row(series, spec, values)
        for kind, source in sources.episodes.items():
            if sources.questions.get(kind) == (form, group) and source.any_episode in values:
                answered.add(kind)
            if (source.form, source.group) == (form, group):
                episode = _episode(series, source, values)
                if episode is not None:
                    found[kind].append(episode)
    series.infections = found["infection"]
    series.bleedings = found["bleeding"]
    for course in found["anti_infective"]:
        last = course.end_day if course.end_day is not None else _OPEN_END
        series.anti_infective_days |= set(range(course.start_day, last + 1))
    for kind, source in sources.episodes.items():
        if kind in answered or found[kind]:
            series.reported.add(kind)
        if not source.any_episode:
            series.unasked.add(kind)
    series.fn = found["febrile_neutropenia"] if "febrile_neutropenia" in series.reported else None


def _episode(series: SubjectSeries, source: EpisodeSource, values: dict) -> Episode | None:
    start = values.get(source.start, _BLANK)[2]
    if start is None:
        return None
    end = values.get(source.end, _BLANK)[2] if source.end else None
    ongoing = bool(source.ongoing) and values.get(source.ongoing, _BLANK)[0] == "Y"
    return Episode(series.day(start), None if ongoing or end is None
                   else max(series.day(end), series.day(start)))


def _count_row(series: SubjectSeries, spec: RecoveryEndpointsDef, values: dict) -> None:
    counts = spec.counts
    day = values.get(counts.date, _BLANK)[2]
    if day is None:
        return
    number = series.day(day)

    def dec(item: str | None) -> Decimal | None:
        # The canonical text keeps the entered precision (the numeric shadow has 10 places).
        found = values.get(item) if item else None
        return Decimal(found[0]) if found and found[1] is not None else None

    try:
        series.counts.append(CountRecord(number, dec(counts.anc), dec(counts.platelets),
                                         dec(counts.hemoglobin), dec(counts.wbc),
                                         dec(counts.max_temperature)))
    except HematologyError as exc:
        series.problem = str(exc)
    for item, product in ((counts.platelet_transfusion, "platelets"),
                          (counts.red_cell_transfusion, "red_cells")):
        if item and values.get(item, _BLANK)[0] == "Y":
            series.transfusions.append(Transfusion(number, product))


def _reported(series: SubjectSeries, kind: str, counted: bool) -> bool:
    return kind in series.reported or (kind in series.unasked and counted)


def compute(series: SubjectSeries, params: RecoveryParameters) -> SubjectEndpoints | None:
    if series.problem is not None and series.day1 is None:
        return None
    counted = any(1 <= c.day <= params.horizon_day for c in series.counts)
    try:
        return compute_endpoints(
            series.counts, series.transfusions,
            series.infections if _reported(series, "infection", counted) else None,
            series.bleedings if _reported(series, "bleeding", counted) else None,
            series.fn,
            sorted(series.anti_infective_days)
            if _reported(series, "anti_infective", counted) else None,
            params)
    except HematologyError as exc:
        series.problem = str(exc)
        return None


def study_endpoints(session: Session, study: Study, site_ids: set[int] | None, *,
                    subject_id: int | None = None) -> StudyEndpoints:
    """Per-subject endpoints and the per-group summary, computed now from stored data
    (of one subject only with ``subject_id``: its values, and a summary of it alone)."""
    version = latest_version(session, study)
    if version is None:
        raise EndpointsError(f"{study.name} has no loaded study definition")
    definition = definition_for(version)
    if definition.recovery_endpoints is None:
        raise EndpointsError(f"{study.name} has no recovery endpoints: its study definition "
                             f"declares no recovery_endpoints block (see forms/README.md)")
    params = recovery_parameters(definition)
    results = []
    for series in study_series(session, study, site_ids, definition, subject_id=subject_id):
        results.append(SubjectResult(series, compute(series, params)))
    computed = {r.series.subject_key: r.endpoints for r in results if r.endpoints is not None}
    _, order = _group_labels(definition)
    present = {r.series.group for r in results if r.endpoints is not None}
    groups = [g for g in order if g in present] + sorted(present - set(order))
    labels = {r.series.subject_key: r.series.group for r in results if r.endpoints}
    ordered = dict(sorted(labels.items(), key=lambda kv: groups.index(kv[1])))
    summary = summarize(computed, ordered) if computed else []
    return StudyEndpoints(study, definition, params, groups, results, summary)


_KEPT: KeptResults[StudyEndpoints] = KeptResults()


def kept_study_endpoints(session: Session, study: Study, site_ids: set[int] | None
                         ) -> StudyEndpoints:
    """``study_endpoints`` at the given sites computed once per state of the data: kept
    (per process, ``KeptResults``) until the audit chain moves. Errors are not kept."""
    kept = _KEPT.get(session, (study.id, None if site_ids is None else frozenset(site_ids)),
                     lambda: study_endpoints(session, study, site_ids))
    return replace(kept, study=study)


def subject_series(session: Session, subject: Subject) -> SubjectSeries:
    """One subject's series (for the plot), under the subject's own definition."""
    definition = definition_for(subject.study_version)
    found = study_series(session, subject.study, None, definition, subject_id=subject.id)
    return found[0]
