"""Writers of SAS transport (XPORT version 5) and SPSS system (.sav) files.

Both formats are written here rather than through pyreadstat's writers, which take only
pandas or polars data frames (not dependencies of ecrf); pyreadstat reads the files back
in the tests. A dataset is a list of ``Column``: name, label, kind and values.

- XPORT v5 (SAS TS-140, what the FDA accepts): 80-byte records, names of at most 8
  characters, labels of 40, numbers as IBM 370 doubles, character values of at most 200
  bytes (longer text is split over several variables, see ``split_long``). Names and
  labels are ASCII (``ascii_label`` declares the rule; the full label stays in the data
  dictionary, define.xml and Dataset-JSON); character values are UTF-8, which is ASCII
  unchanged, so a study whose data are ASCII gives a pure ASCII file and non-ASCII text
  is kept whole rather than transliterated (a reader is told ``encoding="utf-8"``).
- SPSS: an uncompressed little-endian system file with UTF-8 text, long variable names
  (record 7.13), variable labels, value labels (record types 3 and 4 for strings of at
  most 8 bytes, the long string value labels record 7.21 beyond) and date formats;
  strings of at most 255 bytes.

Dates are numbers in each package's own epoch (SAS: days or seconds since 1960-01-01;
SPSS: seconds since 1582-10-14) with a date format, so both show them as dates.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SAS_EPOCH = dt.datetime(1960, 1, 1)
SPSS_EPOCH = dt.datetime(1582, 10, 14)
XPT_TEXT_MAX = 200
SAV_TEXT_MAX = 255


@dataclass
class Column:
    name: str  # XPT: at most 8 characters; SAV: the long name
    label: str
    kind: str  # num | date | datetime | time | char
    values: list = field(default_factory=list)
    # code -> label of a coded variable (SPSS value labels; ignored by XPORT)
    value_labels: dict = field(default_factory=dict)
    # Dataset-JSON: "integer" for a number that is one (default "double")
    data_type: str | None = None
    # XPORT: the label to use when ``label`` has no ASCII form (an English translation)
    english: str = ""


# --- ASCII labels ------------------------------------------------------------------------------
# XPORT v5 is an ASCII format: a label is transliterated by this rule, then cut at 40
# characters. Symbols with a conventional ASCII spelling are spelled out; accented
# letters lose their accents (Unicode NFKD, combining marks dropped, so é -> e, ² -> 2);
# a label still holding a character with no ASCII form (Chinese, Cyrillic...) is replaced
# whole by the first fallback that has one: the item's English translation (``labels:
# {en: ...}`` in the forms) if the study gives one, else the variable's name.

ASCII_SPELLINGS = {
    "≥": ">=", "≤": "<=", "≠": "!=", "±": "+/-", "µ": "u", "μ": "u", "°": "deg",
    "×": "x", "÷": "/", "–": "-", "—": "-", "‑": "-", "−": "-", "‘": "'", "’": "'",
    "“": '"', "”": '"', "«": '"', "»": '"', "…": "...", "•": "-", "\u00a0": " ",
    "\u202f": " ", "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o",
    "Ø": "O", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "→": "->", "←": "<-",
}
XPT_LABEL_MAX = 40


def ascii_text(text: str) -> str | None:
    """``text`` spelt in ASCII by the rule above, or None when part of it has no ASCII form."""
    spelt = "".join(ASCII_SPELLINGS.get(char, char) for char in text)
    decomposed = unicodedata.normalize("NFKD", spelt)
    result = "".join(c for c in decomposed if not unicodedata.combining(c))
    result = "".join(ASCII_SPELLINGS.get(char, char) for char in result)
    return result if result.isascii() else None


def ascii_label(text: str, *fallbacks: str, limit: int = XPT_LABEL_MAX) -> str:
    """The XPORT label of ``text``: ASCII, at most ``limit`` characters; when ``text`` has
    no ASCII form, the first of ``fallbacks`` that has one."""
    for candidate in (text, *(f for f in fallbacks if f)):
        spelt = ascii_text(candidate)
        if spelt is not None:
            return spelt[:limit].rstrip()
    return ""


def labels_of(text: str, *fallbacks: str) -> tuple[str, str]:
    """(XPORT label, full label): what a file carries and what define.xml describes."""
    return ascii_label(text, *fallbacks), text


def text_bytes(value) -> bytes:
    return b"" if value is None else str(value).encode("utf-8")


def cut_utf8(text: str, limit: int) -> bytes:
    """``text`` in UTF-8, at most ``limit`` bytes, never cut inside a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore").encode("utf-8")


def _chunks(text: str, limit: int) -> list[bytes]:
    """UTF-8 pieces of at most ``limit`` bytes, never cutting a character."""
    pieces, current = [], b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(current) + len(encoded) > limit:
            pieces.append(current)
            current = b""
        current += encoded
    pieces.append(current)
    return pieces


def split_long(columns: Sequence[Column], limit: int, allocate) -> list[Column]:
    """Text longer than ``limit`` bytes continues in extra variables named by ``allocate``
    (the SDTM convention: AETERM, then AETERM1...), labelled "(continued)"."""
    result: list[Column] = []
    for column in columns:
        if column.kind != "char":
            result.append(column)
            continue
        widest = max((len(text_bytes(v)) for v in column.values), default=0)
        if widest <= limit:
            result.append(column)
            continue
        parts = [_chunks(str(v), limit) if v is not None else [] for v in column.values]
        count = max(len(p) for p in parts)
        for index in range(count):
            name = column.name if index == 0 else allocate(column.name, index)
            label = column.label if index == 0 else f"{column.label} (continued {index})"
            result.append(Column(name, label, "char", [
                p[index].decode("utf-8") if index < len(p) else None for p in parts]))
    return result


# --- SAS XPORT v5 ----------------------------------------------------------------------------

def ibm_double(value: float) -> bytes:
    """An IEEE double as an IBM System/370 double (what XPORT stores)."""
    if value == 0:
        return b"\0" * 8
    sign = 0x80 if value < 0 else 0
    mantissa, exponent = math.frexp(abs(value))  # abs(value) = mantissa * 2**exponent
    hexponent = (exponent + 3) // 4
    fraction = int(round(mantissa * 2 ** (56 - (4 * hexponent - exponent))))
    if fraction >= 1 << 56:
        fraction >>= 4
        hexponent += 1
    biased = hexponent + 64
    if biased > 127:
        raise ValueError(f"{value!r} is too large for a SAS transport file")
    if biased < 0:
        return b"\0" * 8
    return bytes([sign | biased]) + fraction.to_bytes(7, "big")


MISSING_IBM = b"." + b"\0" * 7


def _sas_number(kind: str, value) -> float | None:
    if value is None:
        return None
    if kind == "date":
        return float((value - SAS_EPOCH.date()).days)
    if kind == "datetime":
        naive = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
        return (naive - SAS_EPOCH).total_seconds()
    if kind == "time":
        return float(value.hour * 3600 + value.minute * 60 + value.second)
    return float(value)


_XPT_FORMATS = {"date": ("DATE", 9), "datetime": ("DATETIME", 20), "time": ("TIME", 8)}


def _header(name: str, tail: str = "000000000000000000000000000000") -> bytes:
    text = f"HEADER RECORD*******{name:<8}HEADER RECORD!!!!!!!{tail}  "
    assert len(text) == 80, text
    return text.encode("ascii")


def _pad(data: bytes, size: int, filler: bytes = b" ") -> bytes:
    return data + filler * (-len(data) % size)


def _fixed(text: str, size: int) -> bytes:
    return cut_utf8(text, size).ljust(size, b" ")


def write_xpt(path: Path, dataset: str, label: str, columns: Sequence[Column],
              created: dt.datetime) -> None:
    """One dataset in a SAS XPORT version 5 file."""
    stamp = created.astimezone(dt.UTC).strftime("%d%b%y:%H:%M:%S").upper().encode("ascii")
    rows = len(columns[0].values) if columns else 0
    widths = [8 if c.kind != "char" else max(1, max((len(text_bytes(v)) for v in c.values),
                                                    default=1)) for c in columns]
    out = bytearray()
    out += _header("LIBRARY")
    out += b"SAS     SAS     SASLIB  9.4     " + _fixed("Linux", 8) + b" " * 24 + stamp
    out += stamp + b" " * 64
    out += _header("MEMBER", "000000000000000001600000000140")
    out += _header("DSCRPTR")
    out += b"SAS     " + _fixed(dataset, 8) + b"SASDATA 9.4     " + _fixed("Linux", 8) \
        + b" " * 24 + stamp
    out += stamp + b" " * 16 + _fixed(ascii_label(label, dataset), 40) + _fixed("", 8)
    out += _header("NAMESTR", f"000000{len(columns):04d}00000000000000000000")
    namestrs = bytearray()
    position = 0
    for index, (column, width) in enumerate(zip(columns, widths, strict=True), start=1):
        form, form_len = _XPT_FORMATS.get(column.kind, ("", 0))
        namestrs += struct.pack(">hhhh", 2 if column.kind == "char" else 1, 0, width, index)
        namestrs += _fixed(column.name, 8) + _fixed(ascii_label(column.label, column.english,
                                                         column.name), 40)
        namestrs += _fixed(form, 8)
        namestrs += struct.pack(">hhh", form_len, 0, 0) + b"\0\0" + _fixed("", 8)
        namestrs += struct.pack(">hhl", 0, 0, position) + b"\0" * 52
        position += width
    out += _pad(bytes(namestrs), 80)
    out += _header("OBS")
    data = bytearray()
    for row in range(rows):
        for column, width in zip(columns, widths, strict=True):
            value = column.values[row]
            if column.kind == "char":
                data += text_bytes(value).ljust(width, b" ")
            else:
                number = _sas_number(column.kind, value)
                data += MISSING_IBM if number is None else ibm_double(number)
    out += _pad(bytes(data), 80)
    path.write_bytes(bytes(out))


# --- SPSS .sav -------------------------------------------------------------------------------

_SAV_FORMATS = {"date": (20, 11, 0), "datetime": (22, 20, 0), "time": (21, 8, 0)}
SYSMIS = -1.7976931348623157e308


def _sav_number(kind: str, value) -> float | None:
    if value is None:
        return None
    if kind == "date":
        return (dt.datetime.combine(value, dt.time()) - SPSS_EPOCH).total_seconds()
    if kind == "datetime":
        naive = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
        return (naive - SPSS_EPOCH).total_seconds()
    if kind == "time":
        return float(value.hour * 3600 + value.minute * 60 + value.second)
    return float(value)


def _short_names(names: Sequence[str]) -> list[str]:
    taken: set[str] = set()
    shorts = []
    for name in names:
        base = "".join(c for c in name.upper() if c.isalnum() or c == "_")[:8] or "V"
        if not base[0].isalpha():
            base = ("V" + base)[:8]
        short, n = base, 1
        while short in taken:
            suffix = str(n)
            short, n = base[:8 - len(suffix)] + suffix, n + 1
        taken.add(short)
        shorts.append(short)
    return shorts


def _record7(subtype: int, size: int, payload: bytes) -> bytes:
    return struct.pack("<iiii", 7, subtype, size, len(payload) // size) + payload


SAV_VALUE_LABEL_MAX = 120  # bytes, as SPSS writes them


def _value_label_text(label: str) -> bytes:
    return cut_utf8(label, SAV_VALUE_LABEL_MAX)


def _value_labels(columns: Sequence[Column], widths: Sequence[int],
                  slots: Sequence[int]) -> bytes:
    """Record types 3 and 4: the value labels of numbers and of strings of <= 8 bytes."""
    out = bytearray()
    index = 1  # dictionary index of the variable (1-based, counting continuation slots)
    for column, width, slot in zip(columns, widths, slots, strict=True):
        if column.value_labels and width <= 8:
            out += struct.pack("<ii", 3, len(column.value_labels))
            for value, label in column.value_labels.items():
                raw = struct.pack("<d", float(value)) if width == 0 \
                    else text_bytes(value).ljust(8, b" ")
                text = _value_label_text(label)
                out += raw + _pad(bytes([len(text)]) + text, 8)
            out += struct.pack("<iii", 4, 1, index)
        index += slot
    return bytes(out)


def _long_string_labels(columns: Sequence[Column], widths: Sequence[int]) -> bytes:
    """Record 7.21: the value labels of strings wider than 8 bytes (by long name)."""
    payload = bytearray()
    for column, width in zip(columns, widths, strict=True):
        if not column.value_labels or width <= 8:
            continue
        name = column.name.encode("utf-8")
        payload += struct.pack("<i", len(name)) + name
        payload += struct.pack("<ii", width, len(column.value_labels))
        for value, label in column.value_labels.items():
            raw = text_bytes(value)[:width].ljust(width, b" ")
            text = _value_label_text(label)
            payload += struct.pack("<i", width) + raw + struct.pack("<i", len(text)) + text
    return _record7(21, 1, bytes(payload)) if payload else b""


def write_sav(path: Path, label: str, columns: Sequence[Column], created: dt.datetime) -> None:
    """One dataset in an uncompressed SPSS system file (UTF-8)."""
    rows = len(columns[0].values) if columns else 0
    # A coded string is as wide as its longest code too, so every value label fits.
    widths = [0 if c.kind != "char" else min(SAV_TEXT_MAX, max(1, max(
        (len(text_bytes(v)) for v in [*c.values, *c.value_labels]), default=1)))
        for c in columns]
    slots = [1 if w == 0 else (w + 7) // 8 for w in widths]
    shorts = _short_names([c.name for c in columns])
    when = created.astimezone(dt.UTC)
    out = bytearray(b"$FL2")
    out += _fixed("@(#) IBM SPSS STATISTICS DATA FILE - ecrf", 60)
    out += struct.pack("<iiiiid", 2, sum(slots), 0, 0, rows, 100.0)
    out += when.strftime("%d %b %y").encode("ascii") + when.strftime("%H:%M:%S").encode("ascii")
    out += _fixed(label, 64) + b"\0\0\0"
    for column, width, short in zip(columns, widths, shorts, strict=True):
        if width:
            fmt = (1 << 16) | (min(width, 255) << 8)
        else:
            kind, w, d = _SAV_FORMATS.get(column.kind, (5, 12, 4))
            fmt = (kind << 16) | (w << 8) | d
        text = cut_utf8(column.label, 255)
        out += struct.pack("<iiiiii", 2, width, 1 if text else 0, 0, fmt, fmt)
        out += _fixed(short, 8)
        if text:
            out += struct.pack("<i", len(text)) + _pad(text, 4)
        for _extra in range((width + 7) // 8 - 1 if width else 0):
            out += struct.pack("<iiiiii", 2, -1, 0, 0, 0, 0) + b" " * 8
    out += _value_labels(columns, widths, slots)
    out += _record7(3, 4, struct.pack("<8i", 20, 0, 0, -1, 1, 1, 2, 65001))
    out += _record7(4, 8, struct.pack("<3d", SYSMIS, 1.7976931348623157e308,
                                       -1.7976931348623155e308))
    longs = "\t".join(f"{s}={c.name}" for s, c in zip(shorts, columns, strict=True))
    out += _record7(13, 1, longs.encode("utf-8"))
    out += _long_string_labels(columns, widths)
    out += _record7(20, 1, b"UTF-8")
    out += struct.pack("<ii", 999, 0)
    for row in range(rows):
        for column, width in zip(columns, widths, strict=True):
            value = column.values[row]
            if width:
                out += _pad(text_bytes(value), 8).ljust((width + 7) // 8 * 8, b" ")
            else:
                number = _sav_number(column.kind, value)
                out += struct.pack("<d", SYSMIS if number is None else number)
    path.write_bytes(bytes(out))
