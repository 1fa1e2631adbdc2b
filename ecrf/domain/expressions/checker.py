"""Static type check of a parsed expression against the types of the items it references."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from .errors import ExpressionTypeError, SignatureMismatch
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
from .valuetypes import NUMERIC_TYPES, UNKNOWN_TYPES, ValueType, family, numeric_join

T = ValueType
TypeOf = Callable[[tuple[str, ...]], "ValueType | None"]

_BOOLEAN_OK = frozenset({T.BOOLEAN, T.ANY, T.NULL})
# What an "any" operand could be in arithmetic; other types never are valid there.
_ARITHMETIC_CANDIDATES = (T.INTEGER, T.DECIMAL, T.DATE, T.DATETIME)
_LITERAL_TYPES = {type(None): T.NULL, bool: T.BOOLEAN, int: T.INTEGER, str: T.TEXT}


def check(expr: Expression, type_of: TypeOf, *, expected: ValueType | None = None) -> ValueType:
    """Type of the expression's result; raises ExpressionTypeError on the first problem.

    ``type_of`` gives the type of a reference, or None if there is no such item. With
    ``expected`` (e.g. BOOLEAN for a show-if condition) the result must be of that family.
    """
    result = _Checker(expr.source, type_of).visit(expr.root)
    if expected is not None and expected is not T.ANY and result not in UNKNOWN_TYPES \
            and family(result) != family(expected):
        raise ExpressionTypeError(f"expected {expected.label} but the expression gives "
                                  f"{result.label}", expr.source, start_of(expr.root))
    return result


def arithmetic_type(op: str, left: ValueType, right: ValueType) -> ValueType | str:
    """Result type of ``left op right``, or the reason the combination is invalid."""
    lefts = _ARITHMETIC_CANDIDATES if left in UNKNOWN_TYPES else (left,)
    rights = _ARITHMETIC_CANDIDATES if right in UNKNOWN_TYPES else (right,)
    results = {r for a in lefts for b in rights
               if isinstance(r := _concrete_arithmetic(op, a, b), ValueType)}
    if not results:
        return _concrete_arithmetic(op, left, right) if len(lefts) == len(rights) == 1 \
            else f"cannot apply '{op}' to {left.label} and {right.label}"
    if len(results) == 1:
        return results.pop()
    if results <= NUMERIC_TYPES:
        return T.NUMBER
    return T.ANY


def _concrete_arithmetic(op: str, left: ValueType, right: ValueType) -> ValueType | str:
    if left in NUMERIC_TYPES and right in NUMERIC_TYPES:
        return T.DECIMAL if op == "/" else numeric_join(left, right)
    whole = (T.INTEGER, T.NUMBER)
    if op in "+-" and left is T.DATE and right in whole:
        return T.DATE
    if op == "+" and right is T.DATE and left in whole:
        return T.DATE
    if op == "-" and left is right is T.DATE:
        return T.INTEGER
    if op == "-" and left is right is T.DATETIME:
        return T.DECIMAL
    if (op in "+-" and left is T.DATE and right is T.DECIMAL) \
            or (op == "+" and left is T.DECIMAL and right is T.DATE):
        return "days added to or subtracted from a date must be a whole number, got decimal"
    if op == "+" and left is right is T.DATE:
        return "cannot add two dates; subtract them (or use days_between) to count days"
    if op == "-" and {left, right} == {T.DATE, T.DATETIME}:
        return "cannot subtract a date and a date-time; use days_between(a, b)"
    return f"cannot apply '{op}' to {left.label} and {right.label}"


class _Checker:
    def __init__(self, source: str, type_of: TypeOf):
        self.source = source
        self.type_of = type_of

    def error(self, message: str, position: int) -> ExpressionTypeError:
        return ExpressionTypeError(message, self.source, position)

    def visit(self, node: Node) -> ValueType:
        return _VISITORS[type(node)](self, node)

    def literal(self, node: Literal) -> ValueType:
        return _LITERAL_TYPES.get(type(node.value), T.DECIMAL)

    def reference(self, node: Reference) -> ValueType:
        found = self.type_of(node.parts)
        if found is None:
            raise self.error(f"unknown item '{node.dotted}'", node.position)
        if not isinstance(found, ValueType):
            raise TypeError(f"type_of({node.parts!r}) returned {found!r}, not a ValueType")
        return found

    def negate(self, node: Negate) -> ValueType:
        operand = self.visit(node.operand)
        if operand in NUMERIC_TYPES:
            return operand
        if operand in UNKNOWN_TYPES:
            return T.NUMBER
        raise self.error(f"'-' needs a number, got {operand.label}", node.position)

    def not_(self, node: Not) -> ValueType:
        operand = self.visit(node.operand)
        if operand not in _BOOLEAN_OK:
            raise self.error(f"'not' needs a true/false value, got {operand.label}",
                             node.position)
        return T.BOOLEAN

    def logical(self, node: And | Or) -> ValueType:
        word = "and" if isinstance(node, And) else "or"
        for operand in node.operands:
            operand_type = self.visit(operand)
            if operand_type not in _BOOLEAN_OK:
                raise self.error(f"'{word}' needs true/false values on both sides, got "
                                 f"{operand_type.label}", start_of(operand))
        return T.BOOLEAN

    def arithmetic(self, node: Arithmetic) -> ValueType:
        result = self.visit(node.operands[0])
        for op, position, operand in zip(node.operators, node.positions, node.operands[1:],
                                         strict=True):
            outcome = arithmetic_type(op, result, self.visit(operand))
            if isinstance(outcome, str):
                raise self.error(outcome, position)
            result = outcome
        return result

    def comparable(self, op: str, left: Node, right: Node, position: int) -> None:
        left_type, right_type = self.visit(left), self.visit(right)
        for side, side_type in ((left, left_type), (right, right_type)):
            if side_type is T.NULL:
                raise self.error(f"comparing with null with '{op}' always gives an unknown "
                                 "result; use is_blank(X) or not is_blank(X)", start_of(side))
            if isinstance(side, Literal) and side.value == "":
                raise self.error("blank answers are null, so comparing with \"\" never "
                                 "matches; use is_blank(X) or not is_blank(X)", side.position)
        if T.MULTI in (left_type, right_type):
            raise self.error(f"a multi-choice value cannot be compared with '{op}'; use "
                             "contains(X, \"CODE\")", position)
        if T.ANY in (left_type, right_type):
            return
        if family(left_type) != family(right_type):
            raise self.error(f"cannot compare {left_type.label} with {right_type.label}",
                             position)
        if left_type is T.BOOLEAN and op not in ("=", "!="):
            raise self.error(f"true/false values can only be compared with '=' or '!=', "
                             f"not '{op}'", position)

    def comparison(self, node: Comparison) -> ValueType:
        self.comparable(node.operator, node.left, node.right, node.position)
        return T.BOOLEAN

    def membership(self, node: Membership) -> ValueType:
        for option in node.options:
            self.comparable("in", node.operand, option, start_of(option))
        return T.BOOLEAN

    def call(self, node: Call) -> ValueType:
        spec = FUNCTIONS.get(node.name)
        if spec is None:
            close = difflib.get_close_matches(node.name, FUNCTIONS, n=1)
            hint = f"; did you mean {close[0]}()?" if close else ""
            raise self.error(f"unknown function '{node.name}'{hint}", node.position)
        problem = spec.arity_problem(len(node.arguments))
        if problem:
            raise self.error(problem, node.position)
        arg_types = []
        for index, argument in enumerate(node.arguments):
            arg_type = self.visit(argument)
            param = spec.param(index)
            if not param.accepts_type(arg_type):
                raise self.error(f"argument {index + 1} of {spec.name}() must be "
                                 f"{param.label}, got {arg_type.label}{param.hint}",
                                 start_of(argument))
            if param.literal_problem is not None and isinstance(argument, Literal):
                literal_problem = param.literal_problem(argument.value)
                if literal_problem:
                    raise self.error(literal_problem, argument.position)
            arg_types.append(arg_type)
        try:
            return spec.result_type(arg_types)
        except SignatureMismatch as mismatch:
            raise self.error(str(mismatch), node.position) from None


_VISITORS: dict[type, Callable[[_Checker, Node], ValueType]] = {
    Literal: _Checker.literal,
    Reference: _Checker.reference,
    Negate: _Checker.negate,
    Not: _Checker.not_,
    And: _Checker.logical,
    Or: _Checker.logical,
    Arithmetic: _Checker.arithmetic,
    Comparison: _Checker.comparison,
    Membership: _Checker.membership,
    Call: _Checker.call,
}
