"""Tokenizer: turns expression text into a list of tokens, each with its offset."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from .errors import ExpressionSyntaxError

KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})

# Longest first, so that "<=" is not read as "<" followed by "=".
_OPERATORS = ("<=", ">=", "<>", "!=", "==", "=", "<", ">", "+", "-", "*", "/", "(", ")", ",")

# Characters people carry over from other languages, with what to write instead.
_HINTS = {
    "&": "; use 'and'",
    "|": "; use 'or'",
    "!": "; use 'not', or '!=' for 'not equal'",
    "_": "; names must start with a letter",
    "[": "; lists are written in parentheses: x in (\"A\", \"B\")",
    "{": "; lists are written in parentheses: x in (\"A\", \"B\")",
    "`": "; quote text with ' or \"",
}

_ESCAPES = {"\\": "\\", '"': '"', "'": "'"}
_WHITESPACE = frozenset(" \t\r\n")


class Kind(enum.Enum):
    NUMBER = "number"
    STRING = "string"
    NAME = "name"
    KEYWORD = "keyword"
    OPERATOR = "operator"
    END = "end"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    value: object  # int/Decimal, str, tuple of name parts, lower-case keyword, operator text
    text: str  # as written in the source
    position: int

    def describe(self) -> str:
        if self.kind is Kind.END:
            return "the end of the expression"
        if self.kind is Kind.NAME:
            return f"name '{self.text}'"
        if self.kind is Kind.NUMBER:
            return f"number {self.text}"
        if self.kind is Kind.STRING:
            shown = self.text if len(self.text) <= 30 else self.text[:27] + "..."
            return f"text {shown}"
        return f"'{self.text}'"


def _is_letter(ch: str) -> bool:
    # ASCII only: look-alike letters from other scripts would make names ambiguous.
    return ch.isascii() and ch.isalpha()


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _is_name_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


class _Lexer:
    def __init__(self, source: str):
        self.source = source
        self.length = len(source)

    def error(self, message: str, position: int) -> ExpressionSyntaxError:
        return ExpressionSyntaxError(message, self.source, position)

    def tokens(self) -> list[Token]:
        src, n = self.source, self.length
        out: list[Token] = []
        i = 0
        while i < n:
            ch = src[i]
            if ch in _WHITESPACE:
                i += 1
            elif _is_digit(ch):
                i = self.number(i, out)
            elif _is_letter(ch):
                i = self.name(i, out)
            elif ch in "\"'":
                i = self.string(i, out)
            else:
                i = self.operator(i, out)
        out.append(Token(Kind.END, None, "", n))
        return out

    def number(self, start: int, out: list[Token]) -> int:
        src, n = self.source, self.length
        i = start
        while i < n and _is_digit(src[i]):
            i += 1
        value: int | Decimal
        if i < n and src[i] == ".":
            if i + 1 >= n or not _is_digit(src[i + 1]):
                raise self.error("expected digits after the decimal point", i + 1)
            i += 1
            while i < n and _is_digit(src[i]):
                i += 1
            value = Decimal(src[start:i])
        else:
            value = int(src[start:i])
        if i < n and (_is_name_char(src[i]) or src[i] == "."):
            raise self.error(f"unexpected '{src[i]}' right after the number {src[start:i]}", i)
        out.append(Token(Kind.NUMBER, value, src[start:i], start))
        return i

    def name(self, start: int, out: list[Token]) -> int:
        src, n = self.source, self.length
        parts: list[str] = []
        i = start
        while True:
            part_start = i
            while i < n and _is_name_char(src[i]):
                i += 1
            part = src[part_start:i]
            if parts and part.lower() in KEYWORDS:
                raise self.error(f"'{part}' is a keyword and cannot be part of a name",
                                 part_start)
            parts.append(part)
            if i < n and src[i] == ".":
                if i + 1 >= n or not _is_letter(src[i + 1]):
                    raise self.error(f"expected a name after '{src[start:i]}.'", i + 1)
                i += 1
                continue
            break
        text = src[start:i]
        if len(parts) == 1 and parts[0].lower() in KEYWORDS:
            out.append(Token(Kind.KEYWORD, parts[0].lower(), text, start))
        else:
            if parts[0].lower() in KEYWORDS:
                raise self.error(f"'{parts[0]}' is a keyword and cannot be part of a name",
                                 start)
            out.append(Token(Kind.NAME, tuple(parts), text, start))
        return i

    def string(self, start: int, out: list[Token]) -> int:
        src, n = self.source, self.length
        quote = src[start]
        chars: list[str] = []
        i = start + 1
        while True:
            if i >= n:
                raise self.error(f"unterminated text: no closing {quote} for the {quote} here",
                                 start)
            ch = src[i]
            if ch == quote:
                break
            if ch == "\\":
                if i + 1 >= n:
                    raise self.error(
                        f"unterminated text: no closing {quote} for the {quote} here", start)
                escaped = _ESCAPES.get(src[i + 1])
                if escaped is None:
                    raise self.error(
                        f"unsupported escape '\\{src[i + 1]}' in text; only \\\\, \\\" and "
                        "\\' are allowed", i)
                chars.append(escaped)
                i += 2
                continue
            chars.append(ch)
            i += 1
        out.append(Token(Kind.STRING, "".join(chars), src[start:i + 1], start))
        return i + 1

    def operator(self, start: int, out: list[Token]) -> int:
        src = self.source
        for op in _OPERATORS:
            if src.startswith(op, start):
                out.append(Token(Kind.OPERATOR, op, op, start))
                return start + len(op)
        ch = src[start]
        if ch == "." and start + 1 < len(src) and _is_digit(src[start + 1]):
            raise self.error("a decimal needs a digit before the point (write 0.5)", start)
        shown = ch if ch.isprintable() else repr(ch)[1:-1]
        raise self.error(f"unexpected character '{shown}'{_HINTS.get(ch, '')}", start)


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens, ending with an END token; raises ExpressionSyntaxError."""
    return _Lexer(source).tokens()
