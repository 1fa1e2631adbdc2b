"""Safe expression language for study definitions.

Show-if conditions, conditional requirements, calculated items, edit checks and schedule
conditions are written by data managers in this small language. It is tokenized, parsed
and evaluated by this package alone; user text never reaches Python's eval machinery.

Typical use::

    expr = compile_cached('AGE >= 18 and SEX in ("F", "M")')
    check(expr, type_of, expected=ValueType.BOOLEAN)   # when the study is loaded
    evaluate_condition(expr, resolve, today=date.today())  # on every form render

References are tuples of name parts (``DEMOG.AGE`` -> ``("DEMOG", "AGE")``) whose meaning
is decided by the caller's ``type_of`` and ``resolve`` callbacks. Blank values are None
and propagate (three-valued logic); see evaluator.py.
"""

from __future__ import annotations

from functools import lru_cache

from .checker import check
from .errors import (
    ExpressionError,
    ExpressionEvaluationError,
    ExpressionSyntaxError,
    ExpressionTypeError,
)
from .evaluator import evaluate, evaluate_condition
from .functions import FUNCTIONS, FunctionSpec, Param, add_months, completed_years
from .nodes import Expression
from .parser import MAX_DEPTH, MAX_LENGTH, parse
from .valuetypes import ValueType, is_blank

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Expression",
    "ExpressionError",
    "ExpressionEvaluationError",
    "ExpressionSyntaxError",
    "ExpressionTypeError",
    "FunctionSpec",
    "Param",
    "ValueType",
    "add_months",
    "check",
    "compile_cached",
    "completed_years",
    "evaluate",
    "evaluate_condition",
    "is_blank",
    "parse",
]


@lru_cache(maxsize=4096)
def compile_cached(source: str) -> Expression:
    """parse() with a cache, for hot paths that see the same few hundred expressions."""
    return parse(source)
