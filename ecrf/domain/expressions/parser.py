"""Precedence-climbing parser producing an Expression (see nodes.py).

Precedence, loosest first: or, and, not, comparison (= == != <> < <= > >= in, not in),
+ -, * /, unary minus, calls and atoms. Comparisons do not chain.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from .errors import ExpressionSyntaxError
from .lexer import Kind, Token, tokenize
from .nodes import (
    And,
    Arithmetic,
    Call,
    Comparison,
    Expression,
    Literal,
    Membership,
    Negate,
    Node,
    Not,
    Or,
    Reference,
)

MAX_LENGTH = 2000
# Bounds recursion in the parser, checker and evaluator so hostile input cannot exhaust the
# Python stack: a nesting level costs at most six parser frames.
MAX_DEPTH = 50

_COMPARISONS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=",
                ">": ">", ">=": ">="}
_KEYWORD_LITERALS = {"true": True, "false": False, "null": None}

# Binding levels of infix operators, loosest first; prefix 'not' sits between AND and
# COMPARE, unary minus above MUL.
_OR, _AND, _NOT, _COMPARE, _ADD, _MUL, _UNARY = range(1, 8)
_INFIX_LEVELS = {"or": _OR, "and": _AND, "in": _COMPARE, "not": _COMPARE,
                 "+": _ADD, "-": _ADD, "*": _MUL, "/": _MUL,
                 **{op: _COMPARE for op in _COMPARISONS}}


def parse(source: str) -> Expression:
    """Parse ``source``; raises ExpressionSyntaxError pointing at the offending character."""
    if not isinstance(source, str):
        raise TypeError(f"an expression must be a str, not {type(source).__name__}")
    if len(source) > MAX_LENGTH:
        raise ExpressionSyntaxError(
            f"the expression is too long ({len(source)} characters; the limit is {MAX_LENGTH})",
            source, None)
    parser = _Parser(source, tokenize(source))
    root = parser.parse()
    return Expression(source, frozenset(parser.references), frozenset(parser.functions), root)


class _Parser:
    def __init__(self, source: str, tokens: list[Token]):
        self.source = source
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.references: set[tuple[str, ...]] = set()
        self.functions: set[str] = set()

    # -- helpers --------------------------------------------------------------------------

    @property
    def peek(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at_operator(self, *ops: str) -> bool:
        token = self.tokens[self.index]
        return token.kind is Kind.OPERATOR and token.value in ops

    def at_keyword(self, word: str, offset: int = 0) -> bool:
        token = self.tokens[min(self.index + offset, len(self.tokens) - 1)]
        return token.kind is Kind.KEYWORD and token.value == word

    def error(self, message: str, position: int | None) -> ExpressionSyntaxError:
        return ExpressionSyntaxError(message, self.source, position)

    def where(self, position: int) -> str:
        line = self.source.count("\n", 0, position) + 1
        column = position - (self.source.rfind("\n", 0, position) + 1) + 1
        return f"column {column}" if "\n" not in self.source else f"line {line}, column {column}"

    def enter(self, position: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"the expression is nested too deeply (more than {MAX_DEPTH} "
                             "levels of parentheses, calls or prefixes)", position)

    def infix_level(self, token: Token) -> int:
        if token.kind is Kind.OPERATOR or token.kind is Kind.KEYWORD:
            return _INFIX_LEVELS.get(token.value, 0)  # type: ignore[arg-type]
        return 0

    def at_comparison(self) -> bool:
        if self.infix_level(self.peek) != _COMPARE:
            return False
        return not self.at_keyword("not") or self.at_keyword("in", 1)

    # -- grammar (precedence climbing: few stack frames per nesting level) -------------------

    def parse(self) -> Node:
        if self.peek.kind is Kind.END:
            raise self.error("the expression is empty", 0)
        node = self.expression()
        token = self.peek
        if token.kind is not Kind.END:
            if self.at_operator(")"):
                raise self.error("unexpected ')' without a matching '('", token.position)
            raise self.error(f"expected an operator or the end of the expression, found "
                             f"{token.describe()}", token.position)
        return node

    def expression(self, min_level: int = _OR) -> Node:
        """Operators binding at least as tightly as ``min_level``, around a prefix term."""
        left = self.prefix(min_level)
        while True:
            level = self.infix_level(self.peek)
            if level < min_level or level == 0:
                return left
            if level == _COMPARE:
                left = self.comparison(left)
                if self.at_comparison():
                    raise self.error("comparisons cannot be chained; combine them with 'and' "
                                     "(for example: 1 <= X and X <= 5)", self.peek.position)
            elif level == _OR or level == _AND:
                left = self.logical(left, level)
            else:
                left = self.arithmetic(left, level)

    def prefix(self, min_level: int) -> Node:
        token = self.peek
        if token.kind is Kind.KEYWORD and token.value == "not" and min_level <= _NOT:
            self.advance()
            self.enter(token.position)
            operand = self.expression(_NOT)
            self.depth -= 1
            return Not(operand, token.position)
        if self.at_operator("-"):
            self.advance()
            self.enter(token.position)
            operand = self.expression(_UNARY)
            self.depth -= 1
            value = operand.value if isinstance(operand, Literal) else None
            if type(value) is int:
                return Literal(-value, token.position)
            if type(value) is Decimal:
                # copy_negate is exact; unary minus would round to the thread's precision.
                return Literal(value.copy_negate(), token.position)
            return Negate(operand, token.position)
        return self.primary()

    def logical(self, left: Node, level: int) -> Node:
        word = "or" if level == _OR else "and"
        operands = [left]
        while self.at_keyword(word):
            self.advance()
            operands.append(self.expression(level + 1))
        return (Or if level == _OR else And)(tuple(operands), left.position)

    def arithmetic(self, left: Node, level: int) -> Node:
        ops = ("+", "-") if level == _ADD else ("*", "/")
        operands, operators, positions = [left], [], []
        while self.at_operator(*ops):
            token = self.advance()
            operators.append(token.value)
            positions.append(token.position)
            operands.append(self.expression(level + 1))
        return Arithmetic(tuple(operands), tuple(operators), tuple(positions), left.position)

    def comparison(self, left: Node) -> Node:
        token = self.advance()
        if token.kind is Kind.OPERATOR:
            right = self.expression(_ADD)
            return Comparison(_COMPARISONS[token.value], left, right, token.position)
        if token.value == "in":
            return Membership(left, self.option_list(token), False, token.position)
        if not self.at_keyword("in"):
            found = self.peek
            raise self.error(f"expected 'in' after 'not', found {found.describe()}",
                             found.position)
        self.advance()
        return Membership(left, self.option_list(token), True, token.position)

    def option_list(self, keyword: Token) -> tuple[Node, ...]:
        opening = self.peek
        if not self.at_operator("("):
            raise self.error(f"expected '(' after '{keyword.text}' (write: X in (\"A\", \"B\")), "
                             f"found {opening.describe()}", opening.position)
        self.advance()
        if self.at_operator(")"):
            raise self.error(f"the list after '{keyword.text}' is empty", self.peek.position)
        what = f"the list after '{keyword.text}'"
        self.enter(opening.position)
        options = self.sequence(
            lambda: f"expected ')' to close {what} (opened at {self.where(opening.position)})",
            lambda count: f"expected ',' or ')' in {what}")
        self.depth -= 1
        return options

    def sequence(self, unclosed: Callable[[], str],
                 unseparated: Callable[[int], str]) -> tuple[Node, ...]:
        """Comma-separated expressions up to and including the closing ')'."""
        values = [self.expression()]
        while self.at_operator(","):
            self.advance()
            values.append(self.expression())
        if not self.at_operator(")"):
            found = self.peek
            if found.kind is Kind.END:
                raise self.error(f"{unclosed()}, found the end of the expression",
                                 found.position)
            raise self.error(f"{unseparated(len(values))}, found {found.describe()}",
                             found.position)
        self.advance()
        return tuple(values)

    def primary(self) -> Node:
        token = self.peek
        kind = token.kind
        if kind is Kind.NUMBER or kind is Kind.STRING:
            self.advance()
            return Literal(token.value, token.position)
        if kind is Kind.KEYWORD and token.value in _KEYWORD_LITERALS:
            self.advance()
            return Literal(_KEYWORD_LITERALS[token.value], token.position)
        if kind is Kind.NAME:
            self.advance()
            if self.at_operator("("):
                return self.call(token)
            self.references.add(token.value)  # type: ignore[arg-type]
            return Reference(token.value, token.position)  # type: ignore[arg-type]
        if self.at_operator("("):
            self.advance()
            self.enter(token.position)
            node = self.expression()
            self.depth -= 1
            if not self.at_operator(")"):
                found = self.peek
                if found.kind is Kind.END:
                    message = (f"expected ')' to close the '(' at {self.where(token.position)}"
                               ", found the end of the expression")
                else:
                    message = f"expected ')' or an operator, found {found.describe()}"
                raise self.error(message, found.position)
            self.advance()
            return node
        raise self.error(self.expected_value(token), token.position)

    def expected_value(self, found: Token) -> str:
        if self.index == 0:
            return f"expected a value, found {found.describe()}"
        previous = self.tokens[self.index - 1]
        after = previous.describe() if previous.kind is not Kind.STRING else "the text"
        return f"expected a value after {after}, found {found.describe()}"

    def call(self, name_token: Token) -> Node:
        parts = name_token.value
        if len(parts) > 1:  # type: ignore[arg-type]
            raise self.error(f"'{name_token.text}' is not a function: function names have no "
                             "dots", name_token.position)
        name = parts[0].lower()  # type: ignore[index]
        opening = self.advance()
        arguments: tuple[Node, ...] = ()
        if self.at_operator(")"):
            self.advance()
        else:
            self.enter(opening.position)
            arguments = self.sequence(
                lambda: f"expected ')' after the arguments of {name}",
                lambda count: f"expected ',' or ')' after argument {count} of {name}")
            self.depth -= 1
        self.functions.add(name)
        return Call(name, arguments, name_token.position)
