"""Errors raised while parsing, checking or evaluating an expression.

Every error carries the expression source and a 0-based character offset so that the
study checker can translate it into a ``file:line`` message. For the usual one-line
expression the offset is the 0-based column; ``line`` and ``column`` give the 1-based
location for multi-line (folded YAML) expressions.
"""

from __future__ import annotations


class ExpressionError(Exception):
    """Base class: something is wrong with an expression or with its evaluation."""

    def __init__(self, message: str, source: str | None = None, position: int | None = None):
        self.message = message
        self.source = source
        self.position = position
        super().__init__(self._render())

    @property
    def line(self) -> int | None:
        if self.position is None or self.source is None:
            return None
        return self.source.count("\n", 0, self.position) + 1

    @property
    def column(self) -> int | None:
        if self.position is None or self.source is None:
            return None
        return self.position - (self.source.rfind("\n", 0, self.position) + 1) + 1

    def _render(self) -> str:
        if self.position is None or self.source is None:
            return self.message
        return f"line {self.line}, column {self.column}: {self.message}"

    def __reduce__(self):
        # The rendered text is not a valid constructor argument, so pickle the parts.
        return (self.__class__, (self.message, self.source, self.position))


class ExpressionSyntaxError(ExpressionError):
    """The text is not a well-formed expression (or is too long or too deeply nested)."""


class ExpressionTypeError(ExpressionError):
    """Unknown reference or function, wrong number of arguments, or mismatched types."""


class ExpressionEvaluationError(ExpressionError):
    """A value met at run time cannot be used, e.g. a resolver returned an unsupported type."""


class ValueProblem(Exception):
    """Internal: raised by value operations without knowing where in the source they are.

    The evaluator catches it and re-raises an ExpressionEvaluationError with the position
    of the node being evaluated.
    """


class SignatureMismatch(Exception):
    """Internal: a function's arguments do not fit together (e.g. min(date, number))."""
