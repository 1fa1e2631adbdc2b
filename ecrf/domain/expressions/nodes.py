"""Abstract syntax tree of a parsed expression: small immutable nodes.

Every node records ``position``, the 0-based offset in the source that an error about
the node should point at (the operator for operations, the name for references and calls).
Chains of the same precedence level (``a + b - c``, ``a and b and c``) are single n-ary
nodes, which keeps the tree shallow however long the chain is.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Literal:
    value: object
    position: int


@dataclass(frozen=True, slots=True)
class Reference:
    parts: tuple[str, ...]
    position: int

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Node
    position: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    position: int


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]
    position: int


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]
    position: int


@dataclass(frozen=True, slots=True)
class Arithmetic:
    """``operands[0] op[0] operands[1] op[1] operands[2] ...`` evaluated left to right."""

    operands: tuple[Node, ...]
    operators: tuple[str, ...]
    positions: tuple[int, ...]  # of each operator
    position: int


@dataclass(frozen=True, slots=True)
class Comparison:
    operator: str  # normalized: = != < <= > >=
    left: Node
    right: Node
    position: int


@dataclass(frozen=True, slots=True)
class Membership:
    """``operand in (options...)``, or ``not in`` when negated."""

    operand: Node
    options: tuple[Node, ...]
    negated: bool
    position: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str  # lower-cased: function names are case-insensitive like keywords
    arguments: tuple[Node, ...]
    position: int


Node = Literal | Reference | Negate | Not | And | Or | Arithmetic | Comparison | Membership | Call


def start_of(node: Node) -> int:
    """Offset of the first character of the node's text."""
    while True:
        if isinstance(node, And | Or | Arithmetic):
            node = node.operands[0]
        elif isinstance(node, Comparison):
            node = node.left
        elif isinstance(node, Membership):
            node = node.operand
        else:
            return node.position


@dataclass(frozen=True)
class Expression:
    """A parsed expression: parse once, check once, evaluate many times."""

    source: str
    references: frozenset[tuple[str, ...]]
    functions: frozenset[str]
    root: Node = field(repr=False, compare=False)

    def __str__(self) -> str:
        return self.source
