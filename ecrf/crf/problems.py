"""Problems found in a study definition, each pinned to a file, a line and a path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PathParts = tuple[str | int, ...]


def format_path(parts: Sequence[str | int]) -> str:
    """``("groups", 0, "items", 3, "show_if")`` -> ``groups[0].items[3].show_if``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a study definition.

    ``line`` and ``column`` are 1-based; ``column`` is only known for problems inside a
    one-line expression and is also spelled out in the message, so the text form stays the
    ``file:line: path: message`` that editors and CI logs understand.
    """

    file: str
    line: int | None
    path: str
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    @property
    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.file, self.line or 0, self.column or 0, self.path, self.message)


def sorted_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Report order: study.yaml, codelists.yaml, then CRFs; by line inside a file."""
    rank = {"study.yaml": 0, "codelists.yaml": 1}

    def key(p: Problem) -> tuple[int, tuple[str, int, int, str, str]]:
        return (rank.get(p.file, 2), p.sort_key)

    unique = dict.fromkeys(problems)
    return sorted(unique, key=key)


class StudyDefinitionError(Exception):
    """A study folder (or stored content) that is not a valid study definition."""

    def __init__(self, problems: Sequence[Problem], source: str = "study definition") -> None:
        self.problems = list(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: {count} {noun}\n{lines}")


class UnknownOidError(LookupError):
    """An OID (form, event, item, code list, ...) that the study does not define."""

    def __init__(self, kind: str, oid: str) -> None:
        self.kind = kind
        self.oid = oid
        super().__init__(f"unknown {kind} {oid!r}")
