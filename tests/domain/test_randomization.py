import csv
import io
import os
import subprocess
import sys
from collections import Counter, defaultdict

import pytest

from ecrf.domain.randomization import (
    UNSTRATIFIED,
    Arm,
    ArmError,
    BlockSizeError,
    ListExhaustedError,
    ListValidationError,
    RandomizationError,
    Slot,
    StratumError,
    all_strata,
    balance_report,
    generate_list,
    max_imbalance,
    next_slot,
    parse_csv,
    stratum_key,
    validate_list,
)

ARMS = [Arm("DEX", 1), Arm("CTL", 1)]
FACTORS = {"salvage": ["intensive", "azacitidine"], "status": ["relapse", "refractory"]}
S1 = "salvage=intensive|status=relapse"
S2 = "salvage=intensive|status=refractory"
S3 = "salvage=azacitidine|status=relapse"
S4 = "salvage=azacitidine|status=refractory"


def _blocks(slots):
    blocks = defaultdict(list)
    for slot in slots:
        blocks[slot.stratum, slot.block].append(slot)
    return blocks


def _to_csv(slots, *, factor_columns=False, delimiter=","):
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    head = ["salvage", "status"] if factor_columns else ["stratum"]
    writer.writerow([*head, "sequence", "arm", "block", "block_size"])
    for s in slots:
        strat = [p.split("=")[1] for p in s.stratum.split("|")] if factor_columns \
            else [s.stratum]
        writer.writerow([*strat, s.sequence, s.arm, s.block, s.block_size])
    return out.getvalue()


# --- strata -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "factors", "key"),
    [
        ({"status": "relapse", "salvage": "intensive"}, ["status", "salvage"], S1),
        ({"status": "relapse", "salvage": "intensive"}, ["salvage", "status"], S1),
        ({"status": " relapse ", "salvage": "intensive", "site": "01"}, ["status", "salvage"],
         S1),
        ({"salvage": "azacitidine"}, ["salvage"], "salvage=azacitidine"),
        ({"anything": "x"}, [], UNSTRATIFIED),
    ],
)
def test_stratum_key_is_stable(values, factors, key):
    assert stratum_key(values, factors) == key


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"salvage": "intensive"}, "'status'"),
        ({"salvage": "intensive", "status": ""}, "'status'"),
        ({"salvage": "intensive", "status": "  "}, "'status'"),
        ({"salvage": "intensive", "status": None}, "'status'"),
        ({"salvage": "a|b", "status": "relapse"}, "'a|b'"),
        ({"salvage": "a=b", "status": "relapse"}, "'a=b'"),
    ],
)
def test_stratum_key_errors_name_the_factor_or_value(values, fragment):
    with pytest.raises(StratumError, match=fragment.replace("|", r"\|")):
        stratum_key(values, ["salvage", "status"])


def test_all_strata():
    assert all_strata(FACTORS) == [S1, S2, S3, S4]
    assert all_strata({}) == [UNSTRATIFIED]
    assert all_strata({"b": ["1"], "a": ["x", "y"]}) == ["a=x|b=1", "a=y|b=1"]
    assert len(all_strata({"a": "123", "b": "xy", "c": "pqrs"})) == 24
    with pytest.raises(StratumError, match="'salvage'"):
        all_strata({"salvage": []})
    with pytest.raises(StratumError, match="twice"):
        all_strata({"salvage": ["a", "a"]})


# --- generation -------------------------------------------------------------------------


def test_generated_list_is_reproducible():
    first = generate_list(ARMS, FACTORS, slots_per_stratum=40, seed=7)
    assert generate_list(ARMS, FACTORS, slots_per_stratum=40, seed=7) == first
    assert generate_list(ARMS, FACTORS, slots_per_stratum=40, seed="7") == first
    # block sizes given in another order draw the same list
    assert generate_list(ARMS, FACTORS, block_sizes=(6, 2, 4), slots_per_stratum=40,
                         seed=7) == first


def test_pinned_list_guards_against_algorithm_drift():
    slots = generate_list(ARMS, FACTORS, slots_per_stratum=20, seed=20240115)
    s1 = [s for s in slots if s.stratum == S1]
    assert "".join(s.arm[0] for s in s1) == "DCCDCDCDDCCDCDDCCDDCCDDC"
    assert [size for (_, _), size in sorted({(s.stratum, s.block): s.block_size
                                              for s in s1}.items())] == [6, 2, 6, 2, 2, 6]
    weighted = generate_list([Arm("A", 2), Arm("B", 1)], {}, block_sizes=(3, 6),
                             slots_per_stratum=12, seed="abc")
    assert "".join(s.arm for s in weighted) == "ABAABABBAAAA"


def test_list_is_identical_in_another_process_with_another_hash_seed():
    code = (
        "from ecrf.domain.randomization import Arm, generate_list\n"
        "f = {'salvage': ['intensive', 'azacitidine'], 'status': ['relapse', 'refractory']}\n"
        "s = generate_list([Arm('DEX', 1), Arm('CTL', 1)], f, slots_per_stratum=30, seed=99)\n"
        "print(''.join(x.arm[0] + str(x.block_size) for x in s))\n"
    )
    expected = "".join(s.arm[0] + str(s.block_size)
                       for s in generate_list(ARMS, FACTORS, slots_per_stratum=30, seed=99))
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                text=True, check=True)
        assert result.stdout.strip() == expected


def test_different_seeds_differ():
    lists = {
        "".join(s.arm[0] for s in generate_list(ARMS, FACTORS, slots_per_stratum=30,
                                                 seed=seed))
        for seed in (1, 2, 3, "trial-A", "trial-B")
    }
    assert len(lists) == 5


def test_strata_are_isolated():
    small = generate_list(ARMS, {"salvage": ["intensive"]}, slots_per_stratum=30, seed=5)
    larger = generate_list(ARMS, {"salvage": ["intensive", "azacitidine", "other"]},
                           slots_per_stratum=30, seed=5)
    assert [s for s in larger if s.stratum == "salvage=intensive"] == small
    # strata of one list are not copies of each other
    by_stratum = defaultdict(str)
    for s in larger:
        by_stratum[s.stratum] += s.arm[0]
    assert len(set(by_stratum.values())) == 3


@pytest.mark.parametrize("seed", [1, 2, 3, 42, "DEXAML-03"])
@pytest.mark.parametrize("slots_per_stratum", [1, 2, 7, 50])
def test_every_stratum_is_whole_balanced_blocks(seed, slots_per_stratum):
    slots = generate_list(ARMS, FACTORS, slots_per_stratum=slots_per_stratum, seed=seed)
    assert {s.stratum for s in slots} == set(all_strata(FACTORS))
    for stratum in all_strata(FACTORS):
        mine = [s for s in slots if s.stratum == stratum]
        assert [s.sequence for s in mine] == list(range(1, len(mine) + 1))
        assert slots_per_stratum <= len(mine) < slots_per_stratum + 6
        assert [s.block for s in mine] == sorted(s.block for s in mine)
    for (_, _), members in _blocks(slots).items():
        size = members[0].block_size
        assert size in (2, 4, 6)
        assert len(members) == size and {m.block_size for m in members} == {size}
        assert Counter(m.arm for m in members) == {"DEX": size // 2, "CTL": size // 2}
    report = balance_report(slots)
    assert all(counts["DEX"] == counts["CTL"] for counts in report.values())
    assert max_imbalance(slots) <= 3


def test_block_sizes_vary():
    slots = generate_list(ARMS, {}, slots_per_stratum=200, seed=11)
    sizes = Counter(members[0].block_size for members in _blocks(slots).values())
    assert set(sizes) == {2, 4, 6}


@pytest.mark.parametrize(("block_sizes", "bound"), [((2,), 1), ((2, 4), 2), ((4,), 2),
                                                     ((2, 4, 6), 3)])
def test_max_imbalance_bounded_by_half_the_largest_block(block_sizes, bound):
    worst = max(max_imbalance(generate_list(ARMS, FACTORS, block_sizes=block_sizes,
                                            slots_per_stratum=60, seed=seed))
                for seed in range(30))
    assert worst == bound


def test_two_to_one_ratio():
    arms = [Arm("A", 2), Arm("B", 1)]
    slots = generate_list(arms, FACTORS, block_sizes=(3, 6), slots_per_stratum=31, seed=3)
    for members in _blocks(slots).values():
        size = members[0].block_size
        assert Counter(m.arm for m in members) == {"A": 2 * size // 3, "B": size // 3}
    for counts in balance_report(slots).values():
        assert counts["A"] == 2 * counts["B"]


@pytest.mark.parametrize(
    ("arms", "block_sizes", "error", "fragment"),
    [
        (ARMS, (3,), BlockSizeError, "block size 3"),
        (ARMS, (2, 5), BlockSizeError, "block size 5"),
        (ARMS, (0,), BlockSizeError, "block size 0"),
        (ARMS, (-2,), BlockSizeError, "block size -2"),
        (ARMS, (), BlockSizeError, r"block size \(\)"),
        (ARMS, (2.0,), BlockSizeError, "block size 2.0"),
        ([Arm("A", 2), Arm("B", 1)], (2, 4), BlockSizeError, r"block size 2 .*\(3\)"),
        ([Arm("A", 2), Arm("B", 1)], (3, 4), BlockSizeError, "block size 4"),
        ([Arm("A", 1)], (2,), ArmError, "two arms"),
        ([Arm("A", 1), Arm("A", 1)], (2,), ArmError, "unique"),
        ([Arm("", 1), Arm("B", 1)], (2,), ArmError, "unique"),
        ([Arm("A", 0), Arm("B", 1)], (2,), ArmError, "'A'"),
        ([Arm("A", 1), Arm("B", True)], (2,), ArmError, "'B'"),
    ],
)
def test_invalid_design_rejected(arms, block_sizes, error, fragment):
    with pytest.raises(error, match=fragment):
        generate_list(arms, FACTORS, block_sizes=block_sizes, slots_per_stratum=10, seed=1)


@pytest.mark.parametrize(
    ("slots_per_stratum", "seed", "fragment"),
    [(0, 1, "slots_per_stratum"), (-1, 1, "slots_per_stratum"), (True, 1, "slots_per_stratum"),
     (10, "", "seed"), (10, True, "seed"), (10, 1.5, "seed"), (10, None, "seed")],
)
def test_invalid_generation_parameters(slots_per_stratum, seed, fragment):
    with pytest.raises(RandomizationError, match=fragment):
        generate_list(ARMS, FACTORS, slots_per_stratum=slots_per_stratum, seed=seed)


# --- parse_csv ----------------------------------------------------------------------------


def test_parse_csv_tolerates_bom_case_spaces_and_trailing_blank_lines():
    text = "\ufeffStratum , Sequence,ARM\r\nsalvage=intensive|status=relapse,1,DEX\r\n\r\n\n"
    assert parse_csv(text) == [{"stratum": S1, "sequence": "1", "arm": "DEX"}]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_parse_csv_delimiters(delimiter):
    slots = generate_list(ARMS, FACTORS, slots_per_stratum=4, seed=1)
    rows = parse_csv(_to_csv(slots, delimiter=delimiter))
    assert validate_list(rows, ARMS, FACTORS) == slots


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("", ["the file is empty"]),
        ("\ufeff  \n\n", ["the file is empty"]),
        ("stratum,sequence,arm\n", ["header but no rows"]),
        (f"{S1},1,DEX\n{S1},2,CTL\n", ["row 1: missing header"]),
        ("sequence,arm,arm\n1,A,B\n", ["row 1: duplicate column(s) arm"]),
        ("sequence,arm,\n1,A,x\n", ["row 1: a header column has no name"]),
        ("sequence,arm\n1,DEX\n2\n3,CTL,9\n", ["row 3: 1 fields but the header has 2",
                                                "row 4: 3 fields but the header has 2"]),
        ("sequence,arm\n1,DEX\n\n3,CTL\n", ["row 3: blank row"]),
    ],
)
def test_parse_csv_errors(text, fragments):
    with pytest.raises(ListValidationError) as info:
        parse_csv(text)
    assert len(info.value.problems) == len(fragments)
    for problem, fragment in zip(info.value.problems, fragments, strict=True):
        assert fragment in problem


# --- validate_list ------------------------------------------------------------------------


@pytest.mark.parametrize("factor_columns", [False, True])
def test_generated_list_round_trips(factor_columns):
    slots = generate_list(ARMS, FACTORS, slots_per_stratum=24, seed="round-trip")
    rows = parse_csv(_to_csv(slots, factor_columns=factor_columns))
    assert validate_list(rows, ARMS, FACTORS, block_sizes=(2, 4, 6)) == slots


def test_stratum_column_in_any_factor_order_and_without_block_columns():
    rows = [
        {"stratum": "status=relapse|salvage=intensive", "sequence": "2", "arm": "CTL"},
        {"stratum": "salvage=intensive|status=relapse", "sequence": "1", "arm": "DEX"},
    ]
    assert validate_list(rows, ARMS, {"salvage": ["intensive"], "status": ["relapse"]}) == [
        Slot(S1, 1, "DEX", 0, 0),
        Slot(S1, 2, "CTL", 0, 0),
    ]


def test_unstratified_list_needs_no_stratum_column():
    rows = [{"sequence": "1", "arm": "CTL", "block": "1"},
            {"sequence": "2", "arm": "DEX", "block": "1"}]
    assert validate_list(rows, ARMS, {}) == [Slot("", 1, "CTL", 1, 2), Slot("", 2, "DEX", 1, 2)]


BAD_LIST = """stratum,sequence,arm,block,block_size
salvage=intensive|status=relapse,1,DEX,1,2
salvage=intensive|status=relapse,2,PLACEBO,1,2
salvage=intensive|status=relapse,3,DEX,2,4
salvage=intensive|status=relapse,3,CTL,2,4
salvage=intensive|status=relapse,5,DEX,2,4
salvage=intensive|status=relapse,6,DEX,2,4
salvage=intensive|status=relapse,7,CTL,3,2
salvage=intensive|status=relapse,8,CTL,3,2
salvage=intensive|status=relapse,9,DEX,4,2
salvage=intensive|status=relapse,10,DEX,4,2
salvage=intensive|status=refractory,one,DEX,1,2
salvage=intensive|status=refractory,2,CTL,x,2
salvage=aza|status=relapse,1,DEX,1,2
salvage=azacitidine|status=relapse,1,DEX,1,2
salvage=azacitidine|status=relapse,2,CTL,1,2
salvage=azacitidine|status=relapse,3,DEX,2,6
salvage=azacitidine|status=relapse,4,CTL,2,6
"""


def test_validation_reports_every_problem_with_row_numbers():
    with pytest.raises(ListValidationError) as info:
        validate_list(parse_csv(BAD_LIST), ARMS, FACTORS, block_sizes=(2, 4))
    problems = info.value.problems
    expected = [
        "row 3: unknown arm 'PLACEBO' (expected one of DEX, CTL)",
        "row 12: sequence 'one' is not a whole number",
        "row 13: block 'x' is not a whole number",
        "row 14: unknown level 'aza' of factor 'salvage'",
        "rows 4 and 5: duplicate sequence 3 in stratum 'salvage=intensive|status=relapse'",
        "stratum 'salvage=intensive|status=relapse': sequence 4 missing",
        "rows 4-7: stratum 'salvage=intensive|status=relapse' block 2 is not consecutive",
        "rows 4-7: stratum 'salvage=intensive|status=relapse' block 2 is out of ratio: "
        "DEX 3, CTL 1; a block of 4 holds DEX 2, CTL 2",
        "rows 8 and 9: stratum 'salvage=intensive|status=relapse' block 3 is out of ratio: "
        "DEX 0, CTL 2",
        "rows 10 and 11: stratum 'salvage=intensive|status=relapse' block 4 is out of ratio: "
        "DEX 2, CTL 0",
        "stratum 'salvage=intensive|status=refractory': sequence 1 missing",
        "rows 17 and 18: stratum 'salvage=azacitidine|status=relapse' block 2: block size 6 "
        "not among [2, 4]",
        "stratum 'salvage=azacitidine|status=refractory' has no rows",
    ]
    assert len(problems) == len(expected), problems
    for fragment in expected:
        assert any(fragment in problem for problem in problems), fragment
    assert "13 problem(s)" in str(info.value)
    # block 1 at rows 2-3 holds a PLACEBO row: that is reported once, as an unknown arm
    assert not any(f"'{S1}' block 1{end}" in p for p in problems for end in " :")


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        # a final block may be incomplete, but not over an arm's share
        ([("1", "DEX", "1", "4"), ("2", "DEX", "1", "4")], None),
        ([("1", "DEX", "1", "4"), ("2", "DEX", "1", "4"), ("3", "DEX", "1", "4")],
         "rows 2-4: stratum '' block 1 is out of ratio: DEX 3, CTL 0"),
        # an incomplete block followed by another block
        ([("1", "DEX", "1", "4"), ("2", "CTL", "1", "4"), ("3", "DEX", "2", "2"),
          ("4", "CTL", "2", "2")], "block 1 has 2 rows but block size 4 (incomplete"),
        ([("1", "DEX", "1", "2"), ("2", "CTL", "1", "2"), ("3", "DEX", "1", "2")],
         "block 1 has 3 rows but block size 2"),
        ([("1", "DEX", "1", "3"), ("2", "CTL", "1", "3"), ("3", "DEX", "1", "3")],
         "block size 3 cannot hold the arms in ratio 1:1"),
        ([("1", "DEX", "1", "2"), ("2", "CTL", "1", "4")],
         "rows disagree on block size ([2, 4])"),
        ([("1", "DEX", "1", "2"), ("2", "CTL", "1", "2"), ("0", "DEX", "2", "2")],
         "row 4: sequence 0 must be 1 or more"),
    ],
)
def test_block_rules(rows, fragment):
    dicts = [dict(zip(("sequence", "arm", "block", "block_size"), r, strict=True))
             for r in rows]
    if fragment is None:
        assert [s.arm for s in validate_list(dicts, ARMS, {})] == ["DEX", "DEX"]
        return
    with pytest.raises(ListValidationError) as info:
        validate_list(dicts, ARMS, {})
    assert any(fragment in p for p in info.value.problems), info.value.problems


def test_undeclared_block_sizes_are_inferred():
    def rows(*arms):
        return [{"sequence": str(i), "arm": a, "block": str(1 + (i - 1) // 2)}
                for i, a in enumerate(arms, start=1)]

    # the final block of an undeclared size may be truncated
    assert len(validate_list(rows("DEX", "CTL", "DEX"), ARMS, {})) == 3
    with pytest.raises(ListValidationError, match="block 1 is out of ratio: DEX 2, CTL 0"):
        validate_list(rows("DEX", "DEX", "CTL"), ARMS, {})


def test_missing_columns_reported_together():
    with pytest.raises(ListValidationError) as info:
        validate_list([{"salvage": "intensive", "seq": "1"}], ARMS, FACTORS)
    assert info.value.problems == ["missing column(s): sequence, arm, status"]
    with pytest.raises(ListValidationError, match="no rows"):
        validate_list([], ARMS, FACTORS)


# --- balance and next slot ----------------------------------------------------------------


def test_balance_report_and_max_imbalance():
    slots = [Slot("s", 1, "DEX", 1, 6), Slot("s", 2, "DEX", 1, 6), Slot("s", 3, "DEX", 1, 6),
             Slot("s", 4, "CTL", 1, 6), Slot("t", 1, "CTL", 1, 2)]
    assert balance_report(slots) == {"s": {"DEX": 3, "CTL": 1}, "t": {"CTL": 1}}
    assert balance_report(slots, ARMS) == {"s": {"DEX": 3, "CTL": 1},
                                           "t": {"DEX": 0, "CTL": 1}}
    assert max_imbalance(slots) == 3
    assert max_imbalance(list(reversed(slots))) == 3  # prefixes follow sequence order
    assert max_imbalance([]) == 0


STRATUM = [Slot(S1, n, "DEX" if n % 2 else "CTL", 1 + (n - 1) // 2, 2) for n in range(1, 7)]


@pytest.mark.parametrize(
    ("used", "expected"),
    [(set(), 1), ({1}, 2), ({1, 2}, 3), ({1, 3}, 2), ({2, 3, 4}, 1), ({1, 2, 3, 4, 5}, 6),
     ({1, 2, 99}, 3)],
)
def test_next_slot_takes_the_lowest_unused(used, expected):
    assert next_slot(STRATUM, used).sequence == expected
    assert next_slot(list(reversed(STRATUM)), used).sequence == expected


def test_next_slot_exhausted_names_the_stratum():
    with pytest.raises(ListExhaustedError, match="salvage=intensive") as info:
        next_slot(STRATUM, range(1, 7))
    assert info.value.stratum == S1
    with pytest.raises(ListExhaustedError, match="'salvage=azacitidine'"):
        next_slot([], [], stratum="salvage=azacitidine")


def test_next_slot_refuses_mixed_strata():
    with pytest.raises(RandomizationError, match="one stratum"):
        next_slot([*STRATUM, Slot(S2, 1, "DEX", 1, 2)], set())
