"""CSV cells that a spreadsheet shows as they were typed."""

from __future__ import annotations

import re

_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?")


def csv_cell(value: object) -> str:
    """The text of a CSV cell; blank for None. A spreadsheet would run a cell starting like
    a formula (``=``, ``+``, ``-``, ``@``...): typed text gets a leading apostrophe so it
    stays text, numbers stay numbers."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.fullmatch(text):
        return "'" + text
    return text
