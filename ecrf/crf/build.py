"""Turning validated content into the immutable ``StudyDefinition``.

Only ever called on content that passed every check, so shapes are trusted here.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from ecrf.domain.dates import Period
from ecrf.domain.schedule import (
    EventKind,
    EventRule,
    RepeatRule,
    ScheduleDefinition,
    StopRule,
    Window,
)
from ecrf.domain.subject_status import StatusRule, SubjectStatus, TaskRule, TaskTrigger

from .definition import (
    EPISODE_KINDS,
    NY,
    AdverseEventsDef,
    Arm,
    CheckDef,
    CodeList,
    CodeListItem,
    CountsSource,
    DoseLevel,
    EpisodeSource,
    EscalationDef,
    EscalationDesign,
    FormDef,
    GroupDef,
    GroupLayout,
    ItemDef,
    ItemKey,
    ItemType,
    LabAnalyte,
    LabsDef,
    LabSpec,
    Parameter,
    ParameterType,
    ParameterValue,
    PlannedDays,
    RandomizationDef,
    Range,
    RecoveryEndpointsDef,
    Severity,
    StratumDef,
    StudyDefinition,
    SurvivalDef,
)
from .source_map import SourceMap, parse_source_map

_ZERO = Period(0, "d")


def _decimal(value: Any) -> Decimal | None:
    # Through str so that 0.3 read from YAML is Decimal("0.3"), not the binary float.
    return None if value is None else Decimal(str(value))


def _key(ref: str | None) -> ItemKey | None:
    if ref is None:
        return None
    form, item = ref.split(".")
    return form, item


def _codelist(oid: str, entries: list[dict[str, Any]]) -> CodeList:
    return CodeList(oid, tuple(
        CodeListItem(str(e["code"]), e["label"], dict(e.get("labels", {}))) for e in entries
    ))


def _parameter(name: str, spec: dict[str, Any]) -> Parameter:
    kind = ParameterType(spec["type"])
    raw = spec.get("default")
    value: ParameterValue = raw
    if raw is not None:
        if kind is ParameterType.DECIMAL:
            value = _decimal(raw)
        elif kind is ParameterType.DATE:
            value = date.fromisoformat(raw)
    return Parameter(name, kind, value, spec.get("unit"), spec.get("description"))


def _range(spec: dict[str, Any] | None) -> Range | None:
    if spec is None:
        return None
    return Range(_decimal(spec.get("min")), _decimal(spec.get("max")))


def _lab_value(value: Any) -> str | None:
    # A number is a valid expression too; keep one representation for the evaluator.
    return None if value is None else str(value)


def _item(form: str, group: dict[str, Any], spec: dict[str, Any]) -> ItemDef:
    lab = spec.get("lab")
    choices = spec.get("choices")
    return ItemDef(
        oid=spec["oid"], label=spec["label"], type=ItemType(spec["type"]), form=form,
        group=group["oid"], repeating=bool(group.get("repeating", False)),
        labels=dict(spec.get("labels", {})),
        codelist=spec.get("codelist"),
        choices=_codelist(f"{form}.{spec['oid']}", choices) if choices else None,
        unit=spec.get("unit"), precision=spec.get("precision"),
        range=_range(spec.get("range")), soft_range=_range(spec.get("soft_range")),
        length=spec.get("length"),
        required=bool(spec.get("required", False)), required_if=spec.get("required_if"),
        show_if=spec.get("show_if"),
        expression=spec.get("expression"), result_type=spec.get("result_type"),
        help=spec.get("help"), help_labels=dict(spec.get("help_labels", {})),
        sdtm=spec.get("sdtm"), critical=bool(spec.get("critical", False)),
        system=spec.get("system"),
        lab=LabSpec(lab["test"], lab.get("unit") or spec["unit"], _lab_value(lab.get("lln")),
                    _lab_value(lab.get("uln"))) if lab else None,
    )


def _form(data: dict[str, Any]) -> FormDef:
    oid = data["oid"]
    groups = tuple(
        GroupDef(
            oid=g["oid"], items=tuple(_item(oid, g, i) for i in g["items"]),
            label=g.get("label"), labels=dict(g.get("labels", {})),
            repeating=bool(g.get("repeating", False)),
            min_rows=g.get("min_rows"), max_rows=g.get("max_rows"),
            layout=GroupLayout(g.get("layout", "stack")), row_label=g.get("row_label"),
            planned_days=PlannedDays(**g["planned_days"]) if "planned_days" in g else None,
        )
        for g in data["groups"]
    )
    checks = tuple(
        CheckDef(c["oid"], c["expression"], c["message"], Severity(c.get("severity", "error")),
                 dict(c.get("message_labels", {})), c.get("group"))
        for c in data.get("checks", [])
    )
    return FormDef(oid, data["name"], groups, dict(data.get("labels", {})),
                   data.get("description"), data.get("sdtm_domain"), checks)


def _window(spec: Any) -> Window:
    if spec is None:
        return Window(_ZERO, _ZERO)
    if isinstance(spec, str):
        return Window.around(Period.parse(spec))
    return Window(Period.parse(spec["before"]), Period.parse(spec["after"]))


def _event(spec: dict[str, Any]) -> EventRule:
    repeat = spec.get("repeat")
    return EventRule(
        oid=spec["oid"], name=spec["name"], kind=EventKind(spec["kind"]),
        anchor=spec.get("anchor"),
        offset=Period.parse(spec["offset"]) if "offset" in spec else _ZERO,
        window=_window(spec.get("window")),
        repeat=RepeatRule(
            every=Period.parse(repeat["every"]), count=repeat.get("count"),
            until=repeat.get("until"), from_actual=repeat.get("from") == "actual",
        ) if repeat else None,
        condition=spec.get("condition"),
        stop_at=tuple(spec.get("stop_at", ())),
        forms=tuple(spec["forms"]),
    )


def _randomization(spec: dict[str, Any] | None) -> RandomizationDef | None:
    if spec is None:
        return None
    strata = tuple(StratumDef(s["name"], *s["item"].split(".")) for s in spec.get("strata", []))
    return RandomizationDef(tuple(spec["block_sizes"]), strata, _key(spec.get("eligibility")),
                            _key(spec.get("date_item")), _key(spec.get("number_item")))


def _escalation(spec: dict[str, Any] | None) -> EscalationDef | None:
    if spec is None:
        return None
    levels = tuple(DoseLevel(lv["level"], lv["label"], lv.get("dose"),
                             dict(lv.get("labels", {}))) for lv in spec["levels"])
    return EscalationDef(
        design=EscalationDesign(spec["design"]), dlt_window=Period.parse(spec["dlt_window"]),
        dlt_anchor=spec["dlt_anchor"], levels=levels,
        target_dlt_rate=_decimal(spec.get("target_dlt_rate")),
        start_level=spec.get("start_level", 1), cohort_size=spec.get("cohort_size", 3),
        max_subjects=spec.get("max_subjects"),
        dlt_item=_key(spec.get("dlt_item")), full_dose_item=_key(spec.get("full_dose_item")),
        evaluable_item=_key(spec.get("evaluable_item")),
        dlt_drug=spec.get("dlt_drug"),
    )


def _survival(spec: dict[str, Any] | None) -> SurvivalDef | None:
    if spec is None:
        return None
    return SurvivalDef(
        name=spec.get("name", "Overall survival"), origin=spec["origin"], event=spec["event"],
        last_known_alive=tuple(_key(ref) for ref in spec.get("last_known_alive", ())),
        censor_at=tuple(spec.get("censor_at", ())), cutoff=spec.get("cutoff"),
        by=spec.get("by", "arm"), landmarks=tuple(spec.get("landmarks", (12, 24))),
        at_risk_every=int(spec.get("at_risk_every", 6)))


def _labs(spec: dict[str, Any] | None) -> LabsDef | None:
    if spec is None:
        return None
    form, group = spec["group"].split(".")
    identifier = spec.get("identifier")
    return LabsDef(
        form=form, group=group, date=spec["date"], events=tuple(spec["events"]),
        analytes=tuple(LabAnalyte(a["item"], tuple(str(c) for c in a["codes"]),
                                  {str(u): str(f) for u, f in a.get("units", {}).items()})
                       for a in spec["analytes"]),
        identifier=_key(identifier) if identifier else None)


def _recovery(spec: dict[str, Any] | None) -> RecoveryEndpointsDef | None:
    if spec is None:
        return None
    counts = dict(spec["counts"])
    form, group = counts.pop("group").split(".")
    episodes = {}
    for kind, source in spec.get("episodes", {}).items():
        source = dict(source)
        episode_form, episode_group = source.pop("group").split(".")
        episodes[kind] = EpisodeSource(episode_form, episode_group, **source)
    assert set(episodes) <= set(EPISODE_KINDS), "validated by the schema"
    return RecoveryEndpointsDef(spec["day1_anchor"], CountsSource(form, group, **counts),
                                **episodes)


def _adverse_events(spec: dict[str, Any] | None) -> AdverseEventsDef | None:
    if spec is None:
        return None
    fields = dict(spec)
    form, group = fields.pop("group").split(".")
    return AdverseEventsDef(
        form, group, **{**fields, "criteria": dict(fields.get("criteria", {})),
                        "causality": dict(fields.get("causality", {})),
                        "susar_drugs": tuple(fields.get("susar_drugs", ()))})


def _status_rules(specs: list[dict[str, Any]] | None) -> tuple[StatusRule, ...]:
    return tuple(StatusRule(SubjectStatus(s["status"]), s["when"]) for s in specs or ())


def _tasks(specs: list[dict[str, Any]] | None) -> tuple[TaskRule, ...]:
    return tuple(
        TaskRule(oid=s["oid"], name=s["name"], event=s["event"], form=s["form"],
                 due_after=Period.parse(s["due_after"]),
                 triggers=tuple(TaskTrigger(t["from"], t.get("when")) for t in s["triggers"]),
                 labels=dict(s.get("labels", {})))
        for s in specs or ())


def build_definition(content: dict[str, Any]) -> StudyDefinition:
    study = content["study"]
    identity = study["study"]
    codelists = {"NY": NY}
    declared = dict(content.get("codelists") or {})
    for crf in content["crfs"].values():
        declared.update(crf.get("codelists", {}))
    for oid, entries in sorted(declared.items()):
        codelists[oid] = _codelist(oid, entries)
    stop = study.get("stop", {})
    return StudyDefinition(
        oid=identity["oid"], name=identity["name"],
        schedule=ScheduleDefinition(
            tuple(_event(e) for e in study["events"]),
            StopRule(tuple(a if isinstance(a, str) else a["anchor"]
                           for a in stop.get("anchors", ())),
                     tuple((a["anchor"], a["when"]) for a in stop.get("anchors", ())
                           if isinstance(a, dict))),
        ),
        forms={oid: _form(data) for oid, data in sorted(content["crfs"].items())},
        codelists=codelists,
        anchors={name: _key(ref) for name, ref in study.get("anchors", {}).items()},
        title=identity.get("title"), protocol_id=identity.get("protocol_id"),
        sponsor=identity.get("sponsor"), protocol_version=identity.get("protocol_version"),
        labels=dict(identity.get("labels", {})),
        languages=tuple(dict.fromkeys(["en", *study.get("languages", [])])),
        parameters={name: _parameter(name, spec)
                    for name, spec in study.get("parameters", {}).items()},
        arms=tuple(Arm(a["code"], a["name"], int(a.get("ratio", 1)), dict(a.get("labels", {})),
                       a.get("description")) for a in study.get("arms", [])),
        study_end=stop.get("study_end"),
        event_date_items={e["oid"]: _key(e["date_item"]) for e in study["events"]
                          if "date_item" in e},
        randomization=_randomization(study.get("randomization")),
        dose_escalation=_escalation(study.get("dose_escalation")),
        recovery_endpoints=_recovery(study.get("recovery_endpoints")),
        adverse_events=_adverse_events(study.get("adverse_events")),
        survival=_survival(study.get("survival")),
        labs=_labs(study.get("labs")),
        status_rules=_status_rules(study.get("status")),
        tasks=_tasks(study.get("tasks")),
        event_labels={e["oid"]: dict(e.get("labels", {})) for e in study["events"]},
        source_map=(parse_source_map({"source_map": content["source_map"]})[0]
                    if content.get("source_map") is not None else SourceMap()),
    )
