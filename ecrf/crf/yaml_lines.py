"""YAML loading that remembers where every value came from.

PyYAML's ``safe_load`` forgets line numbers and silently keeps the last of two duplicate
keys. A study definition must do neither: every problem names its line, and a duplicated
key (two ``oid:`` in one item after a copy-paste) is an error, not a silent override. So
the file is composed into nodes with the safe loader and turned into plain Python values
by hand, recording the position of each node under its path.

A study file is also untrusted input: it is refused before it is parsed when it is larger
than ``MAX_FILE_BYTES``, an alias chain that would expand it beyond ``MAX_VALUES`` values
(the "billion laughs") or nesting deeper than ``MAX_DEPTH`` stops the parse at once, and
every reading or parsing error (bad bytes, NUL and other control characters, syntax) is a
problem naming the file, line and column, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .problems import PathParts, Problem, format_path

# Timestamps stay as written: a date is text in the canonical content (JSON has no dates),
# and YAML would otherwise turn "2024-03-15" into a date object but "2024-3-15" into text.
_TEXT_TAGS = frozenset({"tag:yaml.org,2002:timestamp"})
_MERGE_TAG = "tag:yaml.org,2002:merge"

# The largest shipped file is about 30 KB and 1,100 values, nested 8 deep: these limits
# leave room for any real study and stop a hostile file in well under a second.
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_VALUES = 100_000
MAX_ALIASES = 1_000
MAX_DEPTH = 64


class _LimitError(yaml.MarkedYAMLError):
    """A file beyond one of the limits above, at the node where it was seen."""


class _Loader(yaml.SafeLoader):
    """The safe loader, measuring while it composes the node graph: the number of aliases,
    the depth, and how many values each node stands for once its aliases are expanded (an
    alias is the very node of its anchor, so this is known as soon as the alias is read)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.aliases = 0
        self.depth = 0
        self.sizes: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        mark = self.peek_event().start_mark
        alias = self.check_event(AliasEvent)
        if alias:
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _LimitError(problem=f"more than {MAX_ALIASES:,} aliases (*name)",
                                  problem_mark=mark)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _LimitError(problem=f"nested more than {MAX_DEPTH} levels deep",
                                  problem_mark=mark)
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if not alias:
            self.sizes[id(node)] = self._size(node, mark)
        elif id(node) not in self.sizes:  # its anchor is still being composed
            raise _LimitError(problem="an alias (*name) refers to a node that contains it",
                              problem_mark=mark)
        return node

    def _size(self, node: Node, mark: yaml.Mark) -> int:
        if isinstance(node, ScalarNode):
            return 1
        children = node.value if isinstance(node, SequenceNode) else \
            [child for pair in node.value for child in pair]
        size = 1
        for child in children:
            size += self.sizes[id(child)]
        if size > MAX_VALUES:
            raise _LimitError(problem=f"the file expands to more than {MAX_VALUES:,} values "
                                      "(each alias *name repeats everything its anchor holds)",
                              problem_mark=mark)
        return size


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


def read_yaml_file(path: Path, file: str) -> tuple[Document | None, list[Problem]]:
    """Read and parse one YAML file: too large, not UTF-8 or not YAML are problems."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, [_too_large(file, size)]
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(file, None, "", f"cannot read: {exc.strerror}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [Problem(file, line, "", f"not UTF-8 text ({exc.reason} at byte "
                                              f"{exc.start + 1}, column {column})", column)]
    return load_yaml(text, file)


def _too_large(file: str, size: int) -> Problem:
    return Problem(file, None, "", f"the file is {size / 1024 / 1024:.1f} MB; a study file "
                                   f"may be at most {MAX_FILE_BYTES // 1024 // 1024} MB")


def load_yaml(text: str, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse one YAML file; returns the document (None if unreadable) and its problems."""
    if len(text) > MAX_FILE_BYTES:
        return None, [_too_large(file, len(text.encode("utf-8", "surrogatepass")))]
    doc = Document(file, None, source_lines=text.splitlines())
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None, [Problem(file, None, "", "the file is empty")]
        builder = _Builder(loader, doc)
        doc.data = builder.build(node, ())
    except _LimitError as exc:
        return None, [_limit_problem(file, exc)]
    except yaml.reader.ReaderError as exc:
        return None, [_reader_problem(file, text, exc)]
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_problem(file, exc)]
    except yaml.YAMLError as exc:
        return None, [Problem(file, None, "", f"invalid YAML: {exc}")]
    except RecursionError:
        return None, [Problem(file, None, "", "invalid YAML: nested too deeply")]
    loader.dispose()
    return doc, builder.problems


def _limit_problem(file: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return Problem(file, line, "", f"refused: {exc.problem}", column)


def _reader_problem(file: str, text: str, exc: yaml.reader.ReaderError) -> Problem:
    """A character YAML does not allow (NUL, other control characters, a lone surrogate)."""
    position = exc.position
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    character = exc.character if isinstance(exc.character, int) else ord(exc.character)
    name = " (NUL)" if character == 0 else ""
    return Problem(file, line, "", f"invalid YAML: character U+{character:04X}{name} at "
                                   f"column {column} is not allowed in YAML text", column)


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
