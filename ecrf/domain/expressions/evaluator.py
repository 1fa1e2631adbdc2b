"""Evaluation of a parsed expression over values supplied by a resolver.

Blank values are None and propagate (three-valued logic): arithmetic, comparisons and
``in`` with a None operand give None; ``and``/``or`` follow Kleene's tables; division by
zero gives None. The evaluator walks the tree with a dispatch table keyed on node class,
which keeps a typical condition in the low microseconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from ecrf.domain.dates import PartialDate

from .errors import ExpressionEvaluationError, ExpressionTypeError, ValueProblem
from .functions import FUNCTIONS
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
    start_of,
)
from .operations import arithmetic, compare, negate
from .valuetypes import describe, normalize

Resolver = Callable[[tuple[str, ...]], object]

# Values a resolver returns that need no conversion; anything else goes through normalize.
_READY = frozenset({type(None), bool, int, dt.date, dt.datetime, dt.time})


class _Context:
    __slots__ = ("resolve", "today", "source")

    def __init__(self, resolve: Resolver, today: dt.date, source: str):
        self.resolve = resolve
        self.today = today
        self.source = source

    def error(self, problem: ValueProblem | str, position: int) -> ExpressionEvaluationError:
        return ExpressionEvaluationError(str(problem), self.source, position)


def evaluate(expr: Expression, resolve: Resolver, *, today: dt.date) -> object:
    """Value of the expression: None, bool, int, Decimal, str, date, datetime, time or a
    frozenset of codes. ``today`` is the evaluation date used by today()."""
    if type(today) is not dt.date:
        raise TypeError(f"today must be a datetime.date, not {type(today).__name__}")
    root = expr.root
    return _EVAL[type(root)](root, _Context(resolve, today, expr.source))


def evaluate_condition(expr: Expression, resolve: Resolver, *, today: dt.date) -> bool:
    """True only if the condition is definitely true: unknown (None) counts as False."""
    value = evaluate(expr, resolve, today=today)
    if value is None or value is False:
        return False
    if value is True:
        return True
    raise ExpressionEvaluationError(f"a condition must give true or false, got "
                                    f"{describe(value)}", expr.source, start_of(expr.root))


def _literal(node: Literal, ctx: _Context) -> object:
    return node.value


def _reference(node: Reference, ctx: _Context) -> object:
    value = ctx.resolve(node.parts)
    if type(value) in _READY:
        return value
    try:
        return normalize(value)
    except ValueProblem as problem:
        raise ctx.error(f"'{node.dotted}': {problem}", node.position) from None


def _negate(node: Negate, ctx: _Context) -> object:
    operand = node.operand
    value = _EVAL[type(operand)](operand, ctx)
    if value is None:
        return None
    try:
        return negate(value)
    except ValueProblem as problem:
        raise ctx.error(problem, node.position) from None


def _truth(value: object, word: str, node: Node, ctx: _Context) -> bool | None:
    if value is None or value is True or value is False:
        return value  # type: ignore[return-value]
    raise ctx.error(f"'{word}' needs true/false values, got {describe(value)}", start_of(node))


def _not(node: Not, ctx: _Context) -> object:
    operand = node.operand
    value = _truth(_EVAL[type(operand)](operand, ctx), "not", operand, ctx)
    return None if value is None else not value


def _and(node: And, ctx: _Context) -> object:
    result: bool | None = True
    for operand in node.operands:
        value = _EVAL[type(operand)](operand, ctx)
        if value is False:
            return False
        if value is None:
            result = None
        elif value is not True:
            _truth(value, "and", operand, ctx)
    return result


def _or(node: Or, ctx: _Context) -> object:
    result: bool | None = False
    for operand in node.operands:
        value = _EVAL[type(operand)](operand, ctx)
        if value is True:
            return True
        if value is None:
            result = None
        elif value is not False:
            _truth(value, "or", operand, ctx)
    return result


def _arithmetic(node: Arithmetic, ctx: _Context) -> object:
    operands = node.operands
    first = operands[0]
    result = _EVAL[type(first)](first, ctx)
    for index, op in enumerate(node.operators, 1):
        if result is None:
            return None
        operand = operands[index]
        value = _EVAL[type(operand)](operand, ctx)
        if value is None:
            return None
        try:
            result = arithmetic(op, result, value)
        except ValueProblem as problem:
            raise ctx.error(problem, node.positions[index - 1]) from None
    return result


def _comparison(node: Comparison, ctx: _Context) -> object:
    left, right = node.left, node.right
    a = _EVAL[type(left)](left, ctx)
    if a is None:
        return None
    b = _EVAL[type(right)](right, ctx)
    if b is None:
        return None
    try:
        return compare(node.operator, a, b)
    except ValueProblem as problem:
        raise ctx.error(problem, node.position) from None


def _membership(node: Membership, ctx: _Context) -> object:
    operand = node.operand
    value = _EVAL[type(operand)](operand, ctx)
    if value is None:
        return None
    found: bool | None = False
    for option in node.options:
        candidate = _EVAL[type(option)](option, ctx)
        if candidate is None:
            # Like SQL: no match against a list holding an unknown is itself unknown.
            found = None
            continue
        try:
            if compare("=", value, candidate):
                found = True
                break
        except ValueProblem as problem:
            raise ctx.error(problem, start_of(option)) from None
    if found is None:
        return None
    return found is not node.negated


def _call(node: Call, ctx: _Context) -> object:
    spec = FUNCTIONS.get(node.name)
    if spec is None:
        raise ExpressionTypeError(f"unknown function '{node.name}'", ctx.source, node.position)
    arguments = node.arguments
    problem = spec.arity_problem(len(arguments))
    if problem:
        raise ExpressionTypeError(problem, ctx.source, node.position)
    values = []
    has_null = False
    for index, argument in enumerate(arguments):
        value = _EVAL[type(argument)](argument, ctx)
        if value is None:
            has_null = True
        elif type(value) is PartialDate and spec.propagates_null:
            # Functions on dates need the exact day; an incomplete date makes them unknown.
            has_null = True
        else:
            try:
                value = spec.param(index).accept_value(value)
            except ValueProblem as bad:
                raise ctx.error(f"argument {index + 1} of {spec.name}() {bad}",
                                start_of(argument)) from None
        values.append(value)
    if has_null and spec.propagates_null:
        return None
    try:
        return spec.implementation(values, ctx.today)
    except ValueProblem as bad:
        raise ctx.error(f"{spec.name}(): {bad}", node.position) from None


_EVAL: dict[type, Callable[[Node, _Context], object]] = {  # type: ignore[dict-item]
    Literal: _literal,
    Reference: _reference,
    Negate: _negate,
    Not: _not,
    And: _and,
    Or: _or,
    Arithmetic: _arithmetic,
    Comparison: _comparison,
    Membership: _membership,
    Call: _call,
}
