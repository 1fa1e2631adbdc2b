"""The importer's last steps: make the content a valid study (removing, and listing, what
cannot stand in ecrf), then turn it into YAML files and prove them with ``check_study``."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ecrf.crf import (
    SOURCE_MAP_FILE,
    Problem,
    StudyDefinitionError,
    check_study,
    definition_from_content,
)
from ecrf.outputs.odm.importer.support import Notes, OdmImportError

_STUDY_ORDER = ("format", "study", "languages", "parameters", "arms", "anchors", "stop",
                "events", "randomization", "dose_escalation")
# Optional attributes that may be removed when they cannot stand (listed in the notes).
_REMOVABLE = frozenset({
    "show_if", "required_if", "condition", "until", "range", "soft_range", "unit", "precision",
    "length", "sdtm", "lab", "date_item", "stop_at", "stop", "randomization",
    "dose_escalation", "critical", "min_rows", "max_rows", "sdtm_domain", "labels",
    "help_labels", "title_labels", "message_labels", "study_end",
})
_CALCULATED_AS = {"text": "text", "integer": "integer", "decimal": "decimal", "date": "date",
                  "datetime": "datetime", "time": "time", "boolean": "yes_no"}
_MAX_ROUNDS = 50


def study_yaml_order(study: dict[str, Any]) -> dict[str, Any]:
    ordered = {key: study[key] for key in _STUDY_ORDER if key in study}
    ordered.update({k: v for k, v in study.items() if k not in ordered})
    return ordered


def _parts(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for token in re.finditer(r"([^.\[\]]+)|\[(\d+)\]", path):
        parts.append(int(token.group(2)) if token.group(2) is not None else token.group(1))
    return parts


def _document(content: dict[str, Any], file: str) -> Any:
    if file == "study.yaml":
        return content["study"]
    if file == "codelists.yaml":
        return {"codelists": content["codelists"]}
    if file.startswith("crfs/") and file.endswith(".yaml"):
        return content["crfs"].get(file[5:-5])
    return None


def _fix(content: dict[str, Any], problem: Problem, notes: Notes) -> bool:
    doc = _document(content, problem.file)
    parts = _parts(problem.path)
    if doc is None or not parts:
        return False
    nodes = [doc]
    for part in parts:
        try:
            nodes.append(nodes[-1][part])
        except (KeyError, IndexError, TypeError):
            break
    where = f"{problem.file} {problem.path}"
    # An edit check that cannot stand is removed whole.
    if len(parts) >= 2 and parts[0] == "checks" and isinstance(parts[1], int) \
            and len(nodes) > 2:
        removed = nodes[1].pop(parts[1])
        notes.add(where, f"{problem.message}: edit check {removed.get('oid')} removed")
        return True
    for depth in range(min(len(parts), len(nodes) - 1) - 1, -1, -1):
        key, parent = parts[depth], nodes[depth]
        if not isinstance(parent, dict):
            continue
        if key == "expression" and parent.get("type") == "calculated":
            parent["type"] = _CALCULATED_AS[parent.pop("result_type", "text") or "text"]
            parent.pop("expression")
            if parent["type"] != "decimal":
                parent.pop("precision", None)
            if parent["type"] not in ("integer", "decimal"):
                for attr in ("unit", "range", "soft_range", "lab"):
                    parent.pop(attr, None)
            notes.add(where, f"{problem.message}: imported as a plain {parent['type']} item")
            return True
        if key == "anchor" and parent.get("anchor") != "enrolment":
            parent["anchor"] = "enrolment"
            notes.add(where, f"{problem.message}: anchored at enrolment instead")
            return True
        if key in _REMOVABLE and key in parent:
            parent.pop(key)
            notes.add(where, f"{problem.message}: removed")
            return True
        if depth >= 1 and parts[depth - 1] in ("anchors", "parameters") and key in parent:
            parent.pop(key)
            notes.add(where, f"{problem.message}: removed")
            return True
    return False


def repair(content: dict[str, Any], notes: Notes) -> dict[str, Any]:
    """Remove what keeps the content from being a valid study, one problem at a time."""
    for _ in range(_MAX_ROUNDS):
        try:
            definition_from_content(content)
            return content
        except StudyDefinitionError as exc:
            problems = exc.problems
        if not any(_fix(content, problem, notes) for problem in problems):
            break
    raise OdmImportError("the imported study is not valid and cannot be repaired "
                         "automatically:\n" + "\n".join(f"  {p}" for p in problems))


# Keys in the order forms/README.md writes them; others keep their place after these.
_KEY_ORDER = ("format", "oid", "code", "name", "label", "labels", "title", "title_labels",
              "protocol_id", "sponsor", "protocol_version", "kind", "type", "anchor", "offset",
              "window", "before", "after", "repeat", "every", "count", "until", "from",
              "condition", "stop_at", "date_item", "forms", "description")


class _Dumper(yaml.SafeDumper):
    """Block style for structure; flow style for lists of scalars and small leaf mappings
    (labels, ranges, windows, code list entries)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _dict(dumper: yaml.SafeDumper, value: dict) -> yaml.MappingNode:
    rank = {key: i for i, key in enumerate(_KEY_ORDER)}
    ordered = sorted(value.items(), key=lambda kv: rank.get(kv[0], len(rank)))
    flow = all(_scalar(v) for v in value.values()) and "oid" not in value
    return dumper.represent_mapping("tag:yaml.org,2002:map", ordered, flow_style=flow)


def _list(dumper: yaml.SafeDumper, value: list) -> yaml.SequenceNode:
    flow = all(_scalar(v) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(dict, _dict)
_Dumper.add_representer(list, _list)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)


def to_files(content: dict[str, Any], header: list[str]) -> dict[str, str]:
    comment = "".join(f"# {' '.join(line.split())}\n" for line in header)
    files = {"study.yaml": comment + _dump(content["study"])}
    if content["codelists"]:
        files["codelists.yaml"] = _dump({"codelists": content["codelists"]})
    for oid, crf in sorted(content["crfs"].items()):
        files[f"crfs/{oid}.yaml"] = _dump(crf)
    if content.get("source_map"):
        files[SOURCE_MAP_FILE] = (
            "# Source OID -> ecrf OID: how `ecrf import odm` reads data of the system this\n"
            "# study was imported from (see ecrf/crf/source_map.py).\n"
            + _dump({"source_map": content["source_map"]}))
    return files


def verify_files(files: dict[str, str]) -> None:
    """The written folder must pass the same checks as a hand-written one."""
    with tempfile.TemporaryDirectory(prefix="ecrf-import-") as tmp:
        folder = Path(tmp)
        (folder / "crfs").mkdir()
        for relative, text in files.items():
            (folder / relative).write_text(text, encoding="utf-8")
        problems = check_study(folder)
    if problems:
        raise OdmImportError("the imported study does not pass `ecrf study check`:\n"
                             + "\n".join(f"  {p}" for p in problems))
