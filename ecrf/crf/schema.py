"""JSON Schemas (draft 2020-12) of the three kinds of study file, and readable errors.

The schemas fix structure, types and vocabularies; ``additionalProperties: false``
everywhere turns a misspelt attribute (``requried: true``) into an error instead of a
silently ignored line. Everything that needs more than one node at a time (references,
ranges, expressions) is left to ``check``.
"""

from __future__ import annotations

import difflib
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from ecrf.domain.subject_status import SubjectStatus

from .problems import PathParts, Problem, format_path
from .sources import SURVIVAL_BY
from .yaml_lines import Document

OID_PATTERN = r"^[A-Z][A-Z0-9_]{0,31}$"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
ITEM_REF_PATTERN = r"^[A-Z][A-Z0-9_]{0,31}\.[A-Z][A-Z0-9_]{0,31}$"
# The same shape as an item reference, spelt differently so its error names a group.
GROUP_REF_PATTERN = r"^[A-Z][A-Z0-9_]{0,31}[.][A-Z][A-Z0-9_]{0,31}$"
SDTM_PATTERN = r"^[A-Z]{2}\.[A-Z0-9]{1,8}$"
DOMAIN_PATTERN = r"^[A-Z]{2}$"

# Who writes an item declared ``system:``: the randomization service (its number and date),
# the dose-escalation assignment (the subject's level), enrolment (the enrolment date).
SYSTEM_SOURCES = ("randomization", "dose_level", "enrolment")
ITEM_TYPES = ("text", "integer", "decimal", "date", "partial_date", "time", "datetime",
              "single_choice", "multiple_choice", "yes_no", "calculated")
RESULT_TYPES = ("text", "integer", "decimal", "date", "datetime", "time", "boolean")
PARAMETER_TYPES = ("integer", "decimal", "text", "date", "boolean")
EVENT_KINDS = ("scheduled", "repeating", "unscheduled", "log")
LAB_TESTS = ("NEUT", "PLAT", "WBC", "LYM", "HGB", "ALT", "AST", "BILI", "CREAT")
DESIGNS = ("3+3", "boin")
GROUP_LAYOUTS = ("stack", "grid")

_PATTERN_NAMES = {
    OID_PATTERN: "an OID (upper-case letters, digits and _, starting with a letter, "
                 "at most 32 characters)",
    NAME_PATTERN: "a name (lower-case letters, digits and _, starting with a letter, "
                  "at most 32 characters)",
    LANGUAGE_PATTERN: "a language code such as fr or zh-Hans",
    ITEM_REF_PATTERN: "an item reference FORM.ITEM",
    GROUP_REF_PATTERN: "a group reference FORM.GROUP",
    SDTM_PATTERN: "an SDTM annotation DOMAIN.VARIABLE such as AE.AESTDTC",
    DOMAIN_PATTERN: "a two-letter SDTM domain such as AE",
}

_TEXT = {"type": "string", "minLength": 1}
_LABELS = {
    "type": "object",
    "propertyNames": {"pattern": LANGUAGE_PATTERN},
    "additionalProperties": _TEXT,
}


def _obj(required: list[str], /, **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties,
            "additionalProperties": False}


def _array(items: dict[str, Any], min_items: int = 1) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": min_items}


_DEFS: dict[str, Any] = {
    "oid": {"type": "string", "pattern": OID_PATTERN},
    "name": {"type": "string", "pattern": NAME_PATTERN},
    "item_ref": {"type": "string", "pattern": ITEM_REF_PATTERN},
    "group_ref": {"type": "string", "pattern": GROUP_REF_PATTERN},
    "expression": _TEXT,
    "period": _TEXT,
    "text": _TEXT,
    "labels": _LABELS,
    "codelist_item": _obj(
        ["code", "label"],
        code={"type": ["string", "integer"], "minLength": 1},
        label=_TEXT, labels=_LABELS,
    ),
    "codelist": _array({"$ref": "#/$defs/codelist_item"}),
    "codelists": {
        "type": "object",
        "propertyNames": {"pattern": OID_PATTERN},
        "additionalProperties": {"$ref": "#/$defs/codelist"},
    },
    "range": {
        "type": "object",
        "properties": {"min": {"type": "number"}, "max": {"type": "number"}},
        "additionalProperties": False,
        "minProperties": 1,
    },
}

_REF = {name: {"$ref": f"#/$defs/{name}"} for name in _DEFS}

_EVENT = _obj(
    ["oid", "name", "kind", "forms"],
    oid=_REF["oid"], name=_TEXT, labels=_LABELS, description=_TEXT,
    kind={"enum": list(EVENT_KINDS)},
    anchor=_REF["name"],
    offset=_REF["period"],
    window={"anyOf": [
        _REF["period"],
        _obj(["before", "after"], before=_REF["period"], after=_REF["period"]),
    ]},
    repeat=_obj(
        ["every"],
        every=_REF["period"],
        count={"type": "integer", "minimum": 1},
        until=_REF["expression"],
        **{"from": {"enum": ["planned", "actual"]}},
    ),
    condition=_REF["expression"],
    stop_at=_array(_REF["name"]),
    forms=_array(_REF["oid"]),
    date_item=_REF["item_ref"],
)

# Items of a recovery_endpoints or adverse_events group are named by their bare OID.
_EPISODE = _obj(["group", "start"], group=_REF["group_ref"], start=_REF["oid"],
                end=_REF["oid"], ongoing=_REF["oid"], any_episode=_REF["oid"])

_RECOVERY_ENDPOINTS = _obj(
    ["day1_anchor", "counts"],
    day1_anchor=_REF["name"],
    counts=_obj(
        ["group", "date", "anc", "platelets", "hemoglobin"],
        group=_REF["group_ref"], date=_REF["oid"], anc=_REF["oid"],
        platelets=_REF["oid"], hemoglobin=_REF["oid"], wbc=_REF["oid"],
        max_temperature=_REF["oid"], platelet_transfusion=_REF["oid"],
        red_cell_transfusion=_REF["oid"],
    ),
    episodes=_obj(
        [],
        febrile_neutropenia=_EPISODE, infection=_EPISODE, bleeding=_EPISODE, anti_infective=_EPISODE,
    ),
)

_ADVERSE_EVENTS = _obj(
    ["group", "term", "onset", "grade", "serious"],
    group=_REF["group_ref"], term=_REF["oid"], onset=_REF["oid"], end=_REF["oid"],
    grade=_REF["oid"], serious=_REF["oid"],
    criteria={**_obj([], death=_REF["oid"], life_threatening=_REF["oid"],
                     hospitalisation=_REF["oid"], disability=_REF["oid"],
                     congenital_anomaly=_REF["oid"], important_medical_event=_REF["oid"]),
              "minProperties": 1},
    outcome=_REF["oid"], expectedness=_REF["oid"], awareness=_REF["oid"],
    sponsor_report=_REF["oid"],
    causality={"type": "object", "propertyNames": {"pattern": OID_PATTERN},
               "additionalProperties": _REF["oid"], "minProperties": 1},
    susar_drugs={**_array(_REF["oid"]), "uniqueItems": True},
    sponsor_causality=_REF["oid"], death_date=_REF["oid"],
)

# Codes are LOINC or the laboratory's own; units map to a factor (a number, or its text).
_LABS = _obj(
    ["group", "date", "events", "analytes"],
    group=_REF["group_ref"], date=_REF["oid"], identifier=_REF["item_ref"],
    events={**_array(_REF["oid"]), "uniqueItems": True},
    analytes=_array(_obj(
        ["item", "codes"],
        item=_REF["oid"],
        codes={**_array({"type": ["string", "integer"]}), "uniqueItems": True},
        units={"type": "object", "propertyNames": {"minLength": 1},
               "additionalProperties": {"anyOf": [
                   {"type": "number", "exclusiveMinimum": 0},
                   {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"}]}},
    )),
)

_SURVIVAL = _obj(
    ["origin", "event", "last_known_alive"],
    name=_TEXT, origin=_REF["name"], event=_REF["name"],
    last_known_alive={**_array(_REF["item_ref"]), "uniqueItems": True},
    censor_at={**_array(_REF["name"]), "uniqueItems": True},
    cutoff=_REF["name"],
    by={"enum": list(SURVIVAL_BY)},
    landmarks={**_array({"type": "integer", "minimum": 1}), "uniqueItems": True},
    at_risk_every={"type": "integer", "minimum": 1},
)

STUDY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": _DEFS,
    **_obj(
        ["format", "study", "events"],
        format={"const": 1},
        study=_obj(
            ["oid", "name"],
            oid=_REF["oid"], name=_TEXT, labels=_LABELS, title=_TEXT, title_labels=_LABELS,
            protocol_id=_TEXT, sponsor=_TEXT, protocol_version=_TEXT, description=_TEXT,
        ),
        languages={**_array({"type": "string", "pattern": LANGUAGE_PATTERN}),
                   "uniqueItems": True},
        parameters={
            "type": "object",
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": _obj(
                ["type"],
                type={"enum": list(PARAMETER_TYPES)},
                default={"type": ["string", "number", "boolean", "null"]},
                unit=_TEXT, description=_TEXT,
            ),
        },
        arms=_array(_obj(
            ["code", "name"],
            code=_REF["oid"], name=_TEXT, labels=_LABELS, description=_TEXT,
            ratio={"type": "integer"},
        )),
        anchors={
            "type": "object",
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": _REF["item_ref"],
        },
        stop=_obj([], anchors=_array({"anyOf": [
            _REF["name"], _obj(["anchor", "when"], anchor=_REF["name"], when=_REF["expression"]),
        ]}), study_end=_REF["expression"]),
        status=_array(_obj(["status", "when"], status={"enum": list(SubjectStatus)},
                           when=_REF["expression"], description=_TEXT)),
        tasks=_array(_obj(
            ["oid", "name", "event", "form", "due_after", "triggers"],
            oid=_REF["oid"], name=_TEXT, labels=_LABELS, description=_TEXT,
            event=_REF["oid"], form=_REF["oid"], due_after=_REF["period"],
            triggers=_array(_obj(["from"], when=_REF["expression"],
                                 **{"from": _REF["expression"]})),
        )),
        events=_array(_EVENT),
        randomization=_obj(
            ["block_sizes"],
            block_sizes=_array({"type": "integer", "minimum": 1}),
            strata=_array(_obj(["name", "item"], name=_REF["name"], item=_REF["item_ref"]), 0),
            eligibility=_REF["item_ref"],
            date_item=_REF["item_ref"],
            number_item=_REF["item_ref"],
        ),
        dose_escalation=_obj(
            ["design", "dlt_window", "dlt_anchor", "levels"],
            design={"enum": list(DESIGNS)},
            target_dlt_rate={"type": "number"},
            dlt_window=_REF["period"],
            dlt_anchor=_REF["name"],
            dlt_item=_REF["item_ref"],
            full_dose_item=_REF["item_ref"],
            evaluable_item=_REF["item_ref"],
            dlt_drug=_REF["oid"],
            start_level={"type": "integer"},
            cohort_size={"type": "integer", "minimum": 1},
            max_subjects={"type": "integer", "minimum": 1},
            levels=_array(_obj(
                ["level", "label"],
                level={"type": "integer"}, label=_TEXT, labels=_LABELS, dose=_TEXT,
            )),
        ),
        recovery_endpoints=_RECOVERY_ENDPOINTS,
        adverse_events=_ADVERSE_EVENTS,
        survival=_SURVIVAL,
        labs=_LABS,
    ),
}

CODELISTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": _DEFS,
    **_obj(["codelists"], codelists=_REF["codelists"]),
}

_ITEM = _obj(
    ["oid", "label", "type"],
    oid=_REF["oid"], label=_TEXT, labels=_LABELS,
    type={"enum": list(ITEM_TYPES)},
    codelist=_REF["oid"],
    choices=_REF["codelist"],
    unit=_TEXT,
    precision={"type": "integer", "minimum": 0},
    range=_REF["range"],
    soft_range=_REF["range"],
    length={"type": "integer", "minimum": 1},
    required={"type": "boolean"},
    required_if=_REF["expression"],
    show_if=_REF["expression"],
    expression=_REF["expression"],
    result_type={"enum": list(RESULT_TYPES)},
    help=_TEXT, help_labels=_LABELS,
    sdtm={"type": "string", "pattern": SDTM_PATTERN},
    critical={"type": "boolean"},
    system={"enum": list(SYSTEM_SOURCES)},
    lab=_obj(
        ["test"],
        test={"enum": list(LAB_TESTS)},
        unit=_TEXT,
        lln={"type": ["number", "string"], "minLength": 1},
        uln={"type": ["number", "string"], "minLength": 1},
    ),
)

CRF_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": _DEFS,
    **_obj(
        ["oid", "name", "groups"],
        oid=_REF["oid"], name=_TEXT, labels=_LABELS, description=_TEXT,
        sdtm_domain={"type": "string", "pattern": DOMAIN_PATTERN},
        codelists=_REF["codelists"],
        groups=_array(_obj(
            ["oid", "items"],
            oid=_REF["oid"], label=_TEXT, labels=_LABELS,
            repeating={"type": "boolean"},
            min_rows={"type": "integer", "minimum": 0},
            max_rows={"type": "integer", "minimum": 1},
            layout={"enum": list(GROUP_LAYOUTS)},
            row_label=_REF["oid"],
            planned_days=_obj(
                ["date", "anchor", "first", "last"],
                date=_REF["oid"], anchor=_REF["name"],
                first={"type": "integer", "minimum": 1},
                last={"type": "integer", "minimum": 1},
            ),
            items=_array(_ITEM),
        )),
        checks=_array(_obj(
            ["oid", "expression", "message"],
            oid=_REF["oid"], expression=_REF["expression"],
            severity={"enum": ["error", "warning"]},
            message=_TEXT, message_labels=_LABELS,
            group=_REF["oid"],
        ), 0),
    ),
}

for _schema in (STUDY_SCHEMA, CODELISTS_SCHEMA, CRF_SCHEMA):
    Draft202012Validator.check_schema(_schema)

_VALIDATORS = {
    "study": Draft202012Validator(STUDY_SCHEMA),
    "codelists": Draft202012Validator(CODELISTS_SCHEMA),
    "crf": Draft202012Validator(CRF_SCHEMA),
}


def schema_problems(doc: Document, kind: str) -> list[Problem]:
    """Structural problems of ``doc``, a ``study``, ``codelists`` or ``crf`` file."""
    problems = []
    for error in _VALIDATORS[kind].iter_errors(doc.data):
        for path, message in _translate(error):
            problems.append(Problem(doc.file, doc.line(path), format_path(path), message))
    return problems


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


_TYPE_NAMES = {"string": "text", "integer": "an integer", "number": "a number",
               "boolean": "true or false", "object": "a mapping", "array": "a list",
               "null": "null"}


def _expected(types: str | list[str]) -> str:
    names = [types] if isinstance(types, str) else list(types)
    return " or ".join(_TYPE_NAMES.get(n, n) for n in names)


def _hint(expected: str | list[str], value: Any) -> str:
    wants_text = "string" in ([expected] if isinstance(expected, str) else expected)
    if wants_text and isinstance(value, bool):
        return " (YAML reads yes/no/on/off as true/false: quote it)"
    if wants_text and isinstance(value, int | float):
        return " (quote it)"
    return ""


def _suggest(word: Any, choices: list[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _translate(error: ValidationError) -> list[tuple[PathParts, str]]:
    path: PathParts = tuple(error.absolute_path)
    kind = error.validator
    value = error.instance
    if "propertyNames" in error.relative_schema_path:
        wanted = _PATTERN_NAMES.get(error.validator_value, "a valid name")
        return [((*path, value), f"{value!r} is not {wanted}")]
    if kind == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        extras = [k for k in value if k not in known]
        return [((*path, k), f"unknown attribute '{k}'{_suggest(k, known)}") for k in extras]
    if kind == "required":
        missing = [k for k in error.validator_value if k not in value]
        return [(path, f"missing required attribute '{k}'") for k in missing]
    if kind == "type":
        return [(path, f"expected {_expected(error.validator_value)}, got "
                       f"{_describe(value)}{_hint(error.validator_value, value)}")]
    if kind == "enum":
        options = [str(o) for o in error.validator_value]
        return [(path, f"{value!r} is not one of: {', '.join(options)}"
                       f"{_suggest(value, options)}")]
    if kind == "const":
        return [(path, f"must be {error.validator_value!r}, got {_describe(value)}")]
    if kind == "pattern":
        return [(path, f"{value!r} is not "
                       f"{_PATTERN_NAMES.get(error.validator_value, 'in the expected form')}")]
    if kind in ("minItems", "minLength", "minProperties"):
        return [(path, "must not be empty")]
    if kind == "minimum":
        return [(path, f"must be at least {error.validator_value}, got {value}")]
    if kind == "uniqueItems":
        return [(path, "has duplicate entries")]
    if kind in ("anyOf", "oneOf"):
        return _translate_alternatives(error)
    return [(path, error.message)]


def _translate_alternatives(error: ValidationError) -> list[tuple[PathParts, str]]:
    # Prefer the alternative whose type fits the value: its error says what is wrong inside
    # it. If no alternative fits, list the shapes that would.
    fitting = [e for e in error.context if not (e.validator == "type" and not e.relative_path)]
    if fitting:
        branch = fitting[0].relative_schema_path[0]
        return [found for e in fitting if e.relative_schema_path[0] == branch
                for found in _translate(e)]
    shapes = []
    for sub in error.validator_value:
        target = sub
        if "$ref" in sub:
            target = _DEFS[sub["$ref"].rsplit("/", 1)[1]]
        shapes.append(_expected(target.get("type", "value")))
    return [(tuple(error.absolute_path),
             f"expected {' or '.join(dict.fromkeys(shapes))}, got {_describe(error.instance)}")]
