"""Stratified permuted-block randomization lists (pure part).

A list holds, for every stratum, slots numbered 1..n. Each stratum is made of consecutive
blocks whose size is drawn at random from the allowed block sizes; every complete block
holds the arms exactly in their ratio, in random order. Assignment takes the lowest unused
slot of the subject's stratum; locking against concurrent requests belongs to the database
layer.

Stratum keys are ``factor=level`` pairs joined by ``|`` with factors sorted by name, so
the key does not depend on the order factors are listed in. A trial without
stratification has the single stratum ``""`` (:data:`UNSTRATIFIED`).

Reproducibility: each stratum's generator is seeded from SHA-256 of (seed, stratum), so a
list is identical across processes and Python versions, and adding a stratum leaves the
other strata untouched. Only ``Random.random()`` is drawn from, because it is the one
output Python guarantees to keep stable for a given seed; ``choice``/``shuffle`` are not.
An integer seed and its decimal string give the same list (the seed is recorded as text).

Row numbers in validation problems are spreadsheet rows: the header is row 1, so the first
data row is row 2.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

UNSTRATIFIED = ""
_RESERVED = "|="


@dataclass(frozen=True)
class Arm:
    code: str
    ratio: int


@dataclass(frozen=True)
class Slot:
    stratum: str
    sequence: int
    arm: str
    block: int  # 0 when an imported list does not say
    block_size: int  # 0 when an imported list does not say


class RandomizationError(Exception):
    """Base class for randomization errors."""


class ArmError(RandomizationError):
    def __init__(self, detail: str, value: object) -> None:
        super().__init__(f"invalid arms: {detail} ({value!r})")
        self.value = value


class StratumError(RandomizationError):
    def __init__(self, detail: str, value: object) -> None:
        super().__init__(f"{detail}: {value!r}")
        self.value = value


class BlockSizeError(RandomizationError):
    def __init__(self, size: object, ratio_sum: int) -> None:
        super().__init__(
            f"block size {size!r} is not a positive multiple of the sum of arm ratios "
            f"({ratio_sum})"
        )
        self.size = size


class ListValidationError(RandomizationError):
    """A randomization list failed validation; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = "; ".join(self.problems[:5])
        more = f"; and {len(self.problems) - 5} more" if len(self.problems) > 5 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the randomization list: "
                         f"{shown}{more}")


class ListExhaustedError(RandomizationError):
    def __init__(self, stratum: str | None) -> None:
        super().__init__(f"randomization list exhausted for stratum {stratum!r}")
        self.stratum = stratum


# --- strata -------------------------------------------------------------------------


def _check_token(value: str, what: str) -> str:
    if not value or any(ch in value for ch in _RESERVED):
        raise StratumError(f"{what} must be non-empty and contain neither '|' nor '='", value)
    return value


def stratum_key(values: Mapping[str, str], factors: Sequence[str]) -> str:
    """Stable key of the stratum given by ``values`` (extra entries are ignored)."""
    parts = []
    for factor in sorted(set(factors)):
        _check_token(factor, "stratification factor name")
        raw = values.get(factor)
        level = "" if raw is None else str(raw).strip()
        if not level:
            raise StratumError("missing value for stratification factor", factor)
        parts.append(f"{factor}={_check_token(level, f'level of factor {factor!r}')}")
    return "|".join(parts)


def all_strata(factor_levels: Mapping[str, Sequence[str]]) -> list[str]:
    """Every stratum key: factors sorted by name, levels in the order given."""
    names = sorted(factor_levels)
    for name in names:
        levels = list(factor_levels[name])
        if not levels:
            raise StratumError("stratification factor has no levels", name)
        if len(set(levels)) != len(levels):
            raise StratumError(f"factor {name!r} lists a level twice", levels)
    combos = itertools.product(*(factor_levels[name] for name in names))
    return [stratum_key(dict(zip(names, combo, strict=True)), names) for combo in combos]


# --- generation -----------------------------------------------------------------------


def _check_arms(arms: Sequence[Arm]) -> list[Arm]:
    arms = list(arms)
    if len(arms) < 2:
        raise ArmError("at least two arms are needed", [a.code for a in arms])
    codes = [a.code for a in arms]
    if len(set(codes)) != len(codes) or not all(codes):
        raise ArmError("arm codes must be non-empty and unique", codes)
    for arm in arms:
        if isinstance(arm.ratio, bool) or not isinstance(arm.ratio, int) or arm.ratio < 1:
            raise ArmError(f"ratio of arm {arm.code!r} must be a positive integer", arm.ratio)
    return arms


def _check_block_sizes(block_sizes: Iterable[int], arms: Sequence[Arm]) -> tuple[int, ...]:
    ratio_sum = sum(a.ratio for a in arms)
    sizes = tuple(block_sizes)
    if not sizes:
        raise BlockSizeError(sizes, ratio_sum)
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % ratio_sum:
            raise BlockSizeError(size, ratio_sum)
    # Sorted so that (4, 2) and (2, 4) draw the same list from the same seed.
    return tuple(sorted(set(sizes)))


def _stratum_rng(seed: int | str, stratum: str) -> random.Random:
    material = f"ecrf-randomization\x1f{seed}\x1f{stratum}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(material).digest(), "big"))


def _below(rng: random.Random, n: int) -> int:
    # The bias of flooring a 53-bit float is below 2**-48 for the tiny n used here.
    return int(rng.random() * n)


def _block(rng: random.Random, arms: Sequence[Arm], size: int) -> list[str]:
    per_unit = size // sum(a.ratio for a in arms)
    cells = [a.code for a in arms for _ in range(a.ratio * per_unit)]
    for i in range(len(cells) - 1, 0, -1):
        j = _below(rng, i + 1)
        cells[i], cells[j] = cells[j], cells[i]
    return cells


def generate_list(
    arms: Sequence[Arm],
    factor_levels: Mapping[str, Sequence[str]],
    *,
    block_sizes: Sequence[int] = (2, 4, 6),
    slots_per_stratum: int,
    seed: int | str,
) -> list[Slot]:
    """Whole blocks per stratum until at least ``slots_per_stratum`` slots exist."""
    arms = _check_arms(arms)
    sizes = _check_block_sizes(block_sizes, arms)
    if isinstance(slots_per_stratum, bool) or not isinstance(slots_per_stratum, int) \
            or slots_per_stratum < 1:
        raise RandomizationError(f"slots_per_stratum must be a positive integer: "
                                 f"{slots_per_stratum!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | str) or seed == "":
        raise RandomizationError(f"seed must be an integer or a non-empty string: {seed!r}")
    slots: list[Slot] = []
    for stratum in all_strata(factor_levels):
        rng = _stratum_rng(seed, stratum)
        sequence = block = 0
        while sequence < slots_per_stratum:
            block += 1
            size = sizes[_below(rng, len(sizes))]
            for code in _block(rng, arms, size):
                sequence += 1
                slots.append(Slot(stratum, sequence, code, block, size))
    return slots


# --- import and validation ------------------------------------------------------------


def parse_csv(text: str) -> list[dict[str, str]]:
    """Rows of a CSV list keyed by lower-cased header names (BOM, ``;`` and tab tolerated)."""
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise ListValidationError(["the file is empty"])
    first_line = text.lstrip("\r\n").splitlines()[0]
    delimiter = max(",;\t", key=first_line.count)
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise ListValidationError([f"the file is not readable as CSV: {exc}"]) from exc
    while records and not any(cell.strip() for cell in records[-1]):
        records.pop()
    header = [cell.strip().lower() for cell in records[0]]
    problems = []
    if "sequence" not in header or "arm" not in header:
        problems.append(f"row 1: missing header; it must name at least the columns "
                        f"'sequence' and 'arm' (found {records[0]!r})")
    if not all(header):
        problems.append("row 1: a header column has no name")
    duplicates = sorted(name for name, n in Counter(header).items() if n > 1 and name)
    if duplicates:
        problems.append(f"row 1: duplicate column(s) {', '.join(duplicates)}")
    rows = []
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            problems.append(f"row {number}: blank row")
        elif len(record) != len(header):
            problems.append(f"row {number}: {len(record)} fields but the header has "
                            f"{len(header)}")
        else:
            rows.append(dict(zip(header, record, strict=True)))
    if not problems and not rows:
        problems.append("the file has a header but no rows")
    if problems:
        raise ListValidationError(problems)
    return rows


@dataclass
class _Row:
    number: int
    stratum: str | None
    sequence: int | None
    arm: str | None
    block: int | None
    size: int | None


def _int_cell(row: Mapping[str, str], column: str, here: list[str]) -> int | None:
    raw = row.get(column, "")
    try:
        value = int(raw)
    except ValueError:
        here.append(f"{column} {raw!r} is not a whole number")
        return None
    if value < 1:
        here.append(f"{column} {value} must be 1 or more")
        return None
    return value


def _row_stratum(row: Mapping[str, str], factor_levels: Mapping[str, Sequence[str]],
                 here: list[str]) -> str | None:
    if not factor_levels:
        return UNSTRATIFIED
    if "stratum" in row:
        pairs = [part.partition("=") for part in row["stratum"].split("|")]
        values = {name.strip(): level.strip() for name, _, level in pairs}
        unknown = sorted(set(values) - set(factor_levels))
        if unknown or len(pairs) != len(values):
            here.append(f"unknown stratum {row['stratum']!r}")
            return None
    else:
        values = {name: row.get(name.lower(), "") for name in factor_levels}
    bad = False
    for name in sorted(factor_levels):
        level = values.get(name, "")
        if level not in factor_levels[name]:
            here.append(f"unknown level {level!r} of factor {name!r}")
            bad = True
    return None if bad else stratum_key(values, list(factor_levels))


def _rows_text(numbers: Iterable[int]) -> str:
    numbers = sorted(numbers)
    if len(numbers) == 1:
        return f"row {numbers[0]}"
    if len(numbers) == 2:
        return f"rows {numbers[0]} and {numbers[1]}"
    if numbers[-1] - numbers[0] == len(numbers) - 1:
        return f"rows {numbers[0]}-{numbers[-1]}"
    return "rows " + ", ".join(map(str, numbers))


def _ranges(numbers: Sequence[int]) -> str:
    runs = []
    for _, group in itertools.groupby(enumerate(numbers), key=lambda p: p[1] - p[0]):
        run = [n for _, n in group]
        runs.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ", ".join(runs)


def _ratio_text(arms: Sequence[Arm]) -> str:
    return ":".join(str(a.ratio) for a in arms)


def _sequence_problems(stratum: str, rows: list[_Row]) -> list[str]:
    problems = []
    by_sequence: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        if row.sequence is not None:
            by_sequence[row.sequence].append(row.number)
    for sequence, numbers in sorted(by_sequence.items()):
        if len(numbers) > 1:
            problems.append(f"{_rows_text(numbers)}: duplicate sequence {sequence} in "
                            f"stratum {stratum!r}")
    if by_sequence:
        missing = sorted(set(range(1, max(by_sequence) + 1)) - set(by_sequence))
        if missing:
            problems.append(f"stratum {stratum!r}: sequence {_ranges(missing)} missing "
                            f"(sequences must run from 1 without gaps)")
    return problems


def _block_problems(stratum: str, rows: list[_Row], arms: Sequence[Arm],
                    allowed: tuple[int, ...] | None) -> list[str]:
    ratio_sum = sum(a.ratio for a in arms)
    blocks: dict[int, list[_Row]] = defaultdict(list)
    for row in rows:
        if row.block is not None and row.sequence is not None:
            blocks[row.block].append(row)
    problems = []
    last = max(blocks, key=lambda b: max(r.sequence or 0 for r in blocks[b]), default=None)
    for block, members in sorted(blocks.items()):
        where = f"{_rows_text(r.number for r in members)}: stratum {stratum!r} block {block}"
        sequences = sorted(r.sequence or 0 for r in members)
        if sequences != list(range(sequences[0], sequences[0] + len(sequences))):
            problems.append(f"{where} is not consecutive (sequences {_ranges(sequences)})")
        declared = {r.size for r in members if r.size is not None}
        if len(declared) > 1:
            problems.append(f"{where}: rows disagree on block size ({sorted(declared)})")
            continue
        size = next(iter(declared)) if declared else len(members)
        if size % ratio_sum:
            if declared or block != last:
                problems.append(f"{where}: block size {size} cannot hold the arms in ratio "
                                f"{_ratio_text(arms)}")
            continue  # an undeclared final block may simply be truncated
        if len(members) > size:
            problems.append(f"{where} has {len(members)} rows but block size {size}")
            continue
        complete = len(members) == size
        if not complete and block != last:
            problems.append(f"{where} has {len(members)} rows but block size {size} "
                            f"(incomplete block inside the list)")
            continue
        if allowed is not None and size not in allowed:
            problems.append(f"{where}: block size {size} not among {list(allowed)}")
        if any(r.arm is None for r in members):
            continue  # its unknown arm is already reported
        counts = Counter(r.arm for r in members)
        expected = {a.code: a.ratio * size // ratio_sum for a in arms}
        if any(counts[code] > n or (complete and counts[code] != n)
               for code, n in expected.items()):
            found = ", ".join(f"{a.code} {counts[a.code]}" for a in arms)
            wanted = ", ".join(f"{a.code} {expected[a.code]}" for a in arms)
            problems.append(f"{where} is out of ratio: {found}; a block of {size} holds "
                            f"{wanted}")
    return problems


def validate_list(
    rows: Sequence[Mapping[str, str]],
    arms: Sequence[Arm],
    factor_levels: Mapping[str, Sequence[str]],
    block_sizes: Sequence[int] | None = None,
) -> list[Slot]:
    """Check an externally generated list and return its slots, or report every problem.

    Columns: ``stratum`` (a key; factor order free) or one column per factor, ``sequence``,
    ``arm``, optionally ``block`` and ``block_size``. A final block of a stratum may be
    incomplete, but never holds more of an arm than its ratio allows.
    """
    arms = _check_arms(arms)
    allowed = None if block_sizes is None else _check_block_sizes(block_sizes, arms)
    codes = [a.code for a in arms]
    strata = all_strata(factor_levels)
    cleaned = [{str(k).strip().lower(): "" if v is None else str(v).strip()
                for k, v in row.items() if k is not None} for row in rows]
    if not cleaned:
        raise ListValidationError(["the list has no rows"])
    columns = set().union(*cleaned)
    missing = [c for c in ("sequence", "arm") if c not in columns]
    if factor_levels and "stratum" not in columns:
        missing += [f for f in sorted(factor_levels) if f.lower() not in columns]
    if missing:
        raise ListValidationError([f"missing column(s): {', '.join(missing)}"])
    has_block, has_size = "block" in columns, "block_size" in columns

    problems: list[str] = []
    parsed: list[_Row] = []
    for number, row in enumerate(cleaned, start=2):
        here: list[str] = []
        stratum = _row_stratum(row, factor_levels, here)
        sequence = _int_cell(row, "sequence", here)
        arm = row.get("arm", "")
        if arm not in codes:
            here.append(f"unknown arm {arm!r} (expected one of {', '.join(codes)})")
        block = _int_cell(row, "block", here) if has_block else None
        size = _int_cell(row, "block_size", here) if has_size and row.get("block_size") \
            else None
        problems.extend(f"row {number}: {p}" for p in here)
        parsed.append(_Row(number, stratum, sequence, arm if arm in codes else None,
                           block, size))

    by_stratum: dict[str, list[_Row]] = defaultdict(list)
    for row in parsed:
        if row.stratum is not None:
            by_stratum[row.stratum].append(row)
    for stratum in strata:
        members = by_stratum.get(stratum)
        if not members:
            problems.append(f"stratum {stratum!r} has no rows")
            continue
        problems.extend(_sequence_problems(stratum, members))
        if has_block:
            problems.extend(_block_problems(stratum, members, arms, allowed))
    if problems:
        raise ListValidationError(problems)

    block_counts = Counter((r.stratum, r.block) for r in parsed)
    order = {stratum: i for i, stratum in enumerate(strata)}
    return sorted(
        (Slot(r.stratum or "", r.sequence or 0, r.arm or "", r.block or 0,
              r.size or (block_counts[r.stratum, r.block] if has_block else 0))
         for r in parsed),
        key=lambda s: (order[s.stratum], s.sequence),
    )


# --- use --------------------------------------------------------------------------------


def balance_report(slots: Iterable[Slot], arms: Sequence[Arm] = ()) -> dict[str, dict[str, int]]:
    """Allocations per stratum and arm; ``arms`` adds zero counts for arms never drawn."""
    report: dict[str, dict[str, int]] = {}
    for slot in slots:
        counts = report.setdefault(slot.stratum, {a.code: 0 for a in arms})
        counts[slot.arm] = counts.get(slot.arm, 0) + 1
    return report


def max_imbalance(slots: Iterable[Slot]) -> int:
    """Largest gap between the most and least allocated arm over every prefix of every
    stratum, counting all arms that occur in ``slots``. Meaningful for equal ratios."""
    slots = list(slots)
    codes = {s.arm for s in slots}
    worst = 0
    by_stratum: dict[str, list[Slot]] = defaultdict(list)
    for slot in slots:
        by_stratum[slot.stratum].append(slot)
    for members in by_stratum.values():
        counts = dict.fromkeys(codes, 0)
        for slot in sorted(members, key=lambda s: s.sequence):
            counts[slot.arm] += 1
            worst = max(worst, max(counts.values()) - min(counts.values()))
    return worst


def next_slot(slots_of_stratum: Iterable[Slot], used_sequences: Iterable[int], *,
              stratum: str | None = None) -> Slot:
    """The unused slot with the lowest sequence number of one stratum."""
    slots = sorted(slots_of_stratum, key=lambda s: s.sequence)
    strata = {s.stratum for s in slots}
    if len(strata) > 1:
        raise RandomizationError(f"next_slot needs the slots of one stratum, got "
                                 f"{sorted(strata)}")
    name = strata.pop() if strata else stratum
    used = set(used_sequences)
    for slot in slots:
        if slot.sequence not in used:
            return slot
    raise ListExhaustedError(name)
