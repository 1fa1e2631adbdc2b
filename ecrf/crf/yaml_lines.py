"""YAML loading that remembers where every value came from.

PyYAML's ``safe_load`` forgets line numbers and silently keeps the last of two duplicate
keys. A study definition must do neither: every problem names its line, and a duplicated
key (two ``oid:`` in one item after a copy-paste) is an error, not a silent override. So
the file is composed into nodes with the safe loader and turned into plain Python values
by hand, recording the position of each node under its path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .problems import PathParts, Problem, format_path

# Timestamps stay as written: a date is text in the canonical content (JSON has no dates),
# and YAML would otherwise turn "2024-03-15" into a date object but "2024-3-15" into text.
_TEXT_TAGS = frozenset({"tag:yaml.org,2002:timestamp"})
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class NodeInfo:
    """Position of a node: 1-based line and column of its first character."""

    line: int
    column: int
    end_line: int
    style: str | None = None  # None (plain), "'", '"', "|" or ">" for scalars


@dataclass
class Document:
    """One YAML file as plain data, with the position of every value and key."""

    file: str
    data: Any
    values: dict[PathParts, NodeInfo] = field(default_factory=dict)
    keys: dict[PathParts, int] = field(default_factory=dict)
    source_lines: list[str] = field(default_factory=list)

    @classmethod
    def from_data(cls, file: str, data: Any) -> Document:
        """A document rebuilt from stored content: same checks, no positions."""
        return cls(file, data)

    def line(self, path: PathParts) -> int | None:
        """Line of the value at ``path``, or of its nearest ancestor that exists."""
        parts = tuple(path)
        while True:
            if parts in self.keys:
                return self.keys[parts]
            if parts in self.values:
                return self.values[parts].line
            if not parts:
                return None
            parts = parts[:-1]

    def locate(self, path: PathParts, offset: int | None) -> tuple[int | None, int | None]:
        """(line, column) of character ``offset`` of the scalar at ``path``.

        Exact for one-line plain or quoted scalars and for literal blocks (``|``); other
        multi-line scalars are folded by YAML, so only their first line is given.
        """
        info = self.values.get(tuple(path))
        if info is None or offset is None:
            return self.line(path), None
        if info.style == "|":
            first = info.line  # content starts on the line after the "|" indicator
            text_lines = self.source_lines[first:]
            indent = _indent(text_lines[0]) if text_lines else 0
            before = self._scalar_text(path)[:offset]
            line = first + 1 + before.count("\n")
            return line, indent + len(before) - (before.rfind("\n") + 1) + 1
        if info.style == ">" or info.end_line != info.line:
            return info.line, None
        column = info.column + offset
        if info.style == "'":
            # Each quote inside a single-quoted scalar is written twice in the file.
            column += 1 + self._scalar_text(path)[:offset].count("'")
        elif info.style == '"':
            column += 1
        return info.line, column

    def _scalar_text(self, path: PathParts) -> str:
        value: Any = self.data
        for part in path:
            value = value[part]
        return value if isinstance(value, str) else ""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, doc: Document) -> None:
        self.loader = loader
        self.doc = doc
        self.problems: list[Problem] = []

    def problem(self, line: int | None, path: PathParts, message: str) -> None:
        self.problems.append(Problem(self.doc.file, line, format_path(path), message))

    def build(self, node: Node, path: PathParts) -> Any:
        start, end = node.start_mark, node.end_mark
        # A block scalar's end mark sits after its trailing newline; the style tells it apart.
        style = node.style if isinstance(node, ScalarNode) else None
        self.doc.values[path] = NodeInfo(start.line + 1, start.column + 1, end.line + 1, style)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        if node.tag in _TEXT_TAGS:
            return node.value
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self.problem(start.line + 1, path, f"unsupported YAML value: {exc.problem}")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            # JSON, and so the stored content, has no NaN or infinity.
            self.problem(start.line + 1, path, f"{node.value!r} is not a finite number")
            return None
        return value

    def _mapping(self, node: MappingNode, path: PathParts) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                self.problem(line, path, "merge keys (<<) are not supported; write the keys out")
                continue
            key = self.build(key_node, (*path, "<key>"))
            self.doc.values.pop((*path, "<key>"), None)
            if not isinstance(key, str):
                hint = " (YAML reads yes/no/on/off as true/false: quote it)" \
                    if isinstance(key, bool) else ""
                self.problem(line, path, f"key {key_node.value!r} must be text{hint}")
                continue
            if key in result:
                self.problem(line, (*path, key),
                             f"duplicate key {key!r} (first at line {first_line[key]})")
                continue
            first_line[key] = line
            self.doc.keys[(*path, key)] = line
            result[key] = self.build(value_node, (*path, key))
        return result


def load_yaml(text: str, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse one YAML file; returns the document (None if unreadable) and its problems."""
    doc = Document(file, None, source_lines=text.splitlines())
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_problem(file, exc)]
    except yaml.YAMLError as exc:
        return None, [Problem(file, None, "", f"invalid YAML: {exc}")]
    if node is None:
        return None, [Problem(file, None, "", "the file is empty")]
    builder = _Builder(loader, doc)
    doc.data = builder.build(node, ())
    loader.dispose()
    return doc, builder.problems


def _syntax_problem(file: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    parts = [p for p in (exc.context, exc.problem) if p]
    message = "invalid YAML: " + (", ".join(parts) if parts else "syntax error")
    if exc.context_mark is not None and exc.problem_mark is not None and \
            exc.context_mark.line != exc.problem_mark.line:
        message += f" (started at line {exc.context_mark.line + 1})"
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return Problem(file, line, "", message, column)
