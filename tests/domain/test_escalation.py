import itertools
from decimal import Decimal
from fractions import Fraction

import pytest

from ecrf.domain.escalation import (
    Action,
    EscalationError,
    LevelState,
    Proposal,
    boin_boundaries,
    boin_decision,
    boin_eliminated,
    boin_posterior_exceeds,
    boin_select_mtd,
    three_plus_three,
    three_plus_three_mtd,
)

E, X, D, S = Action.ESCALATE, Action.EXPAND, Action.DE_ESCALATE, Action.STAY
ENROL, MTD, NOMTD = Action.ENROL, Action.DECLARE_MTD, Action.STOP_NO_MTD


def ladder(*specs: str, first: int = 1) -> list[LevelState]:
    """"d/e" = d DLTs in e evaluable (treated = e); "d/e/t" adds treated; "-" untried."""
    states = []
    for i, spec in enumerate(specs, start=first):
        parts = [0, 0] if spec == "-" else [int(p) for p in spec.split("/")]
        dlts, evaluable = parts[0], parts[1]
        treated = parts[2] if len(parts) > 2 else evaluable
        states.append(LevelState(i, treated, evaluable, dlts))
    return states


# --- 3+3 --------------------------------------------------------------------------------

THREE_PLUS_THREE = [
    # levels, current, action, proposed level, mtd
    # first cohort at level 1
    (("-", "-", "-"), 1, ENROL, 1, None),
    (("0/1", "-", "-"), 1, ENROL, 1, None),
    (("0/2", "-", "-"), 1, ENROL, 1, None),
    (("1/2", "-", "-"), 1, ENROL, 1, None),
    (("0/3", "-", "-"), 1, E, 2, None),
    (("1/3", "-", "-"), 1, X, 1, None),
    (("1/4", "-", "-"), 1, ENROL, 1, None),
    (("1/5", "-", "-"), 1, ENROL, 1, None),
    (("1/6", "-", "-"), 1, E, 2, None),
    (("0/6", "-", "-"), 1, E, 2, None),
    (("0/4", "-", "-"), 1, E, 2, None),
    # level 1 toxic: no MTD, whatever the cohort size
    (("2/2", "-", "-"), 1, NOMTD, None, None),
    (("2/3", "-", "-"), 1, NOMTD, None, None),
    (("3/3", "-", "-"), 1, NOMTD, None, None),
    (("2/6", "-", "-"), 1, NOMTD, None, None),
    (("2/5", "-", "-"), 1, NOMTD, None, None),
    # middle level
    (("0/3", "0/3", "-"), 2, E, 3, None),
    (("0/3", "1/3", "-"), 2, X, 2, None),
    (("0/3", "1/6", "-"), 2, E, 3, None),
    (("0/3", "0/2", "-"), 2, ENROL, 2, None),
    # MTD exceeded at level 2: the lower level needs 6
    (("0/3", "2/3", "-"), 2, X, 1, None),
    (("0/3", "2/6", "-"), 2, X, 1, None),
    (("0/3", "3/3", "-"), 2, X, 1, None),
    (("0/3", "2/2", "-"), 2, X, 1, None),
    (("0/4", "2/3", "-"), 2, D, 1, None),
    (("0/5", "2/3", "-"), 2, D, 1, None),
    (("0/6", "2/3", "-"), 2, MTD, 1, 1),
    (("1/6", "2/3", "-"), 2, MTD, 1, 1),
    (("1/6", "2/6", "-"), 2, MTD, 1, 1),
    (("0/6", "3/3", "-"), 2, MTD, 1, 1),
    # back at the lower level while the level above is toxic: fill to 6, then MTD
    (("0/3", "2/3", "-"), 1, X, 1, None),
    (("1/3", "2/3", "-"), 1, X, 1, None),
    (("0/4", "2/3", "-"), 1, ENROL, 1, None),
    (("1/5", "2/3", "-"), 1, ENROL, 1, None),
    (("0/6", "2/3", "-"), 1, MTD, 1, 1),
    (("1/6", "2/3", "-"), 1, MTD, 1, 1),
    (("0/2", "2/3", "-"), 1, ENROL, 1, None),
    # the lower level itself fails during its expansion
    (("2/6", "2/3", "-"), 1, NOMTD, None, None),
    (("2/4", "2/3", "-"), 1, NOMTD, None, None),
    # top level: never escalate past it; 0/3 needs 6 before it can be the MTD
    (("0/3", "0/3", "0/3"), 3, X, 3, None),
    (("0/3", "0/3", "1/3"), 3, X, 3, None),
    (("0/3", "0/3", "0/4"), 3, ENROL, 3, None),
    (("0/3", "0/3", "0/5"), 3, ENROL, 3, None),
    (("0/3", "0/3", "0/6"), 3, MTD, 3, 3),
    (("0/3", "0/3", "1/6"), 3, MTD, 3, 3),
    (("0/3", "0/3", "0/2"), 3, ENROL, 3, None),
    (("0/3", "0/3", "2/3"), 3, X, 2, None),
    (("0/3", "0/3", "2/6"), 3, X, 2, None),
    (("0/3", "1/6", "2/3"), 3, MTD, 2, 2),
    (("0/3", "0/6", "3/6"), 3, MTD, 2, 2),
    # a single-level design
    (("0/3",), 1, X, 1, None),
    (("1/6",), 1, MTD, 1, 1),
    (("2/3",), 1, NOMTD, None, None),
    # never escalate into a level shown toxic
    (("0/6", "2/3", "-"), 1, MTD, 1, 1),
    (("0/3", "0/6", "2/6"), 2, MTD, 2, 2),
    # current above a toxic level (inconsistent history): go below the toxic level
    (("0/3", "2/3", "0/3"), 3, X, 1, None),
    (("0/6", "2/3", "0/3"), 3, MTD, 1, 1),
]


@pytest.mark.parametrize(("specs", "current", "action", "level", "mtd"), THREE_PLUS_THREE)
def test_three_plus_three_table(specs, current, action, level, mtd):
    levels = ladder(*specs)
    proposal = three_plus_three(levels, current)
    assert (proposal.action, proposal.level, proposal.mtd) == (action, level, mtd)
    if action is MTD:
        assert three_plus_three_mtd(levels) == mtd


@pytest.mark.parametrize(
    ("specs", "current", "fragments"),
    [
        (("0/3", "1/3", "-"), 2, ["1 DLT in 3 evaluable subjects at level 2: expand to 6"]),
        (("0/3", "-", "-"), 1, ["0 DLTs in 3 evaluable subjects at level 1", "escalate to level 2"]),
        (("0/3", "1/6", "-"), 2, ["1 DLT in 6 evaluable subjects at level 2", "level 3"]),
        (("0/3", "2/3", "-"), 2, ["2 DLTs in 3 evaluable subjects at level 2", "MTD exceeded",
                                  "0 DLTs in 3 evaluable subjects at level 1",
                                  "expand level 1 to 6"]),
        (("1/6", "2/3", "-"), 2, ["MTD is level 1", "1 DLT in 6 evaluable"]),
        (("3/3", "-", "-"), 1, ["3 DLTs in 3 evaluable subjects at level 1", "no MTD"]),
        (("0/3", "0/3", "0/3"), 3, ["level 3 is the top level", "expand to 6"]),
        (("0/3", "0/3", "1/6"), 3, ["level 3 is the top level", "MTD is level 3"]),
        (("0/1/2", "-", "-"), 1, ["0 DLTs in 1 evaluable subject", "1 more treated",
                                  "keep enrolling", "replace non-evaluable"]),
        (("0/3", "2/3", "-"), 1, ["level 2 was shown toxic (2 DLTs in 3", "expand to 6"]),
    ],
)
def test_three_plus_three_reason_cites_counts(specs, current, fragments):
    reason = three_plus_three(ladder(*specs), current).reason
    for fragment in fragments:
        assert fragment in reason


@pytest.mark.parametrize(
    ("treated", "evaluable", "dlts", "action"),
    [
        (3, 2, 0, ENROL),  # one not evaluable: replace before deciding
        (5, 2, 1, ENROL),
        (6, 3, 0, E),  # extra non-evaluable subjects change nothing
        (4, 3, 1, X),
        (9, 6, 1, E),
        (8, 5, 1, ENROL),
    ],
)
def test_three_plus_three_counts_only_evaluable(treated, evaluable, dlts, action):
    levels = [LevelState(1, treated, evaluable, dlts), LevelState(2, 0, 0, 0)]
    assert three_plus_three(levels, 1).action is action


def test_level_labels_and_non_consecutive_numbers():
    levels = [
        LevelState(-1, 3, 3, 0, "0.5e8 particles"),
        LevelState(1, 3, 3, 2, "1e8 particles"),
        LevelState(2, 0, 0, 0, "2e8 particles"),
    ]
    proposal = three_plus_three(levels, 1)
    assert (proposal.action, proposal.level) == (X, -1)
    assert "level 1 (1e8 particles)" in proposal.reason
    assert "level -1 (0.5e8 particles)" in proposal.reason
    # the input order does not matter
    assert three_plus_three(list(reversed(levels)), 1) == proposal


@pytest.mark.parametrize(
    ("specs", "mtd"),
    [
        (("-", "-", "-"), None),
        (("0/3", "-", "-"), None),
        (("0/6", "-", "-"), None),  # level 2 not yet shown toxic
        (("0/6", "2/3", "-"), 1),
        (("1/6", "2/6", "-"), 1),
        (("0/3", "2/3", "-"), None),  # level 1 needs 6
        (("0/5", "2/3", "-"), None),
        (("2/3", "-", "-"), None),
        (("0/3", "0/3", "0/3"), None),  # top at 0/3 needs expansion
        (("0/3", "0/3", "0/6"), 3),
        (("0/3", "0/3", "1/6"), 3),
        (("0/3", "1/6", "1/6"), 3),
        (("0/3", "0/3", "2/6"), None),
        (("0/3", "0/6", "2/6"), 2),
        (("0/3", "0/7", "2/6"), 2),
        (("0/6", "1/6", "0/6"), 3),
    ],
)
def test_three_plus_three_mtd_table(specs, mtd):
    assert three_plus_three_mtd(ladder(*specs)) == mtd


def _all_histories():
    cells = [(d, e) for e in range(0, 7) for d in range(0, min(e, 3) + 1)]
    for first, second in itertools.product(cells, repeat=2):
        yield [LevelState(1, first[1], first[1], first[0]),
               LevelState(2, second[1], second[1], second[0]),
               LevelState(3, 0, 0, 0)]


def test_three_plus_three_invariants_over_every_small_history():
    checked = 0
    for levels in _all_histories():
        by_level = {s.level: s for s in levels}
        for current in (1, 2):
            proposal = three_plus_three(levels, current)
            checked += 1
            assert proposal.reason and any(ch.isdigit() for ch in proposal.reason)
            if proposal.action is Action.STOP_NO_MTD:
                assert proposal.level is None and by_level[1].dlts >= 2
                continue
            assert proposal.level in by_level
            target = by_level[proposal.level]
            # no proposal ever sends a subject to, or declares, a level shown toxic
            assert target.dlts < 2
            assert all(s.dlts < 2 for s in levels if s.level < proposal.level)
            if proposal.action is Action.ESCALATE:
                assert proposal.level == current + 1
            if proposal.action is Action.DECLARE_MTD:
                assert proposal.mtd == proposal.level == three_plus_three_mtd(levels)
                assert target.evaluable >= 6
            else:
                assert proposal.mtd is None
    assert checked == 2 * 22**2


def _simulate(outcomes: dict[int, list[bool]], top: int) -> tuple[Proposal, int]:
    """Run a 3+3 trial where outcomes[level] lists each next subject's DLT."""
    states = {lv: [0, 0] for lv in range(1, top + 1)}
    current, enrolled = 1, 0
    for _ in range(100):
        levels = [LevelState(lv, e, e, d) for lv, (d, e) in states.items()]
        proposal = three_plus_three(levels, current)
        if proposal.action in (Action.DECLARE_MTD, Action.STOP_NO_MTD):
            return proposal, enrolled
        current = proposal.level
        # whole cohorts of 3, as a site would enrol them
        needed = 3 - states[current][1] % 3
        for _ in range(needed):
            dlt = outcomes[current].pop(0)
            states[current][0] += dlt
            states[current][1] += 1
            enrolled += 1
    raise AssertionError("the trial did not finish")


def test_simulated_trial_finds_the_mtd():
    outcomes = {
        1: [False] * 6,
        2: [False, True, False, False, False, False],  # 1/3, then 1/6
        3: [True, False, True],  # 2/3: toxic
    }
    proposal, enrolled = _simulate(outcomes, 3)
    assert (proposal.action, proposal.mtd) == (Action.DECLARE_MTD, 2)
    assert enrolled == 3 + 6 + 3


def test_simulated_trial_with_safe_top_level_expands_it():
    outcomes = {lv: [False] * 6 for lv in (1, 2, 3)}
    proposal, enrolled = _simulate(outcomes, 3)
    assert (proposal.action, proposal.mtd) == (Action.DECLARE_MTD, 3)
    assert enrolled == 3 + 3 + 6


def test_simulated_trial_toxic_first_level():
    proposal, enrolled = _simulate({1: [True, True, False], 2: [], 3: []}, 3)
    assert proposal.action is Action.STOP_NO_MTD and proposal.mtd is None
    assert enrolled == 3


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"level": 1, "treated": 3, "evaluable": 3, "dlts": 4}, "dlts (4)"),
        ({"level": 1, "treated": 2, "evaluable": 3, "dlts": 0}, "treated (2)"),
        ({"level": 1, "treated": 3, "evaluable": -1, "dlts": 0}, "evaluable (-1)"),
        ({"level": 1, "treated": 3.0, "evaluable": 3, "dlts": 0}, "3.0"),
        ({"level": True, "treated": 3, "evaluable": 3, "dlts": 0}, "True"),
    ],
)
def test_level_state_rejects_impossible_counts(kwargs, fragment):
    with pytest.raises(EscalationError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        LevelState(**kwargs)


def test_invalid_ladders_rejected():
    with pytest.raises(EscalationError, match="unique"):
        three_plus_three([LevelState(1, 0, 0, 0), LevelState(1, 3, 3, 0)], 1)
    with pytest.raises(EscalationError, match="no dose levels"):
        three_plus_three([], 1)
    with pytest.raises(EscalationError, match="unknown current level 4"):
        three_plus_three(ladder("0/3", "-"), 4)
    with pytest.raises(EscalationError, match="unknown current level 4"):
        boin_decision(ladder("0/3", "-"), 4, target=0.3)


# --- BOIN boundaries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "lambda_e", "lambda_d"),
    [
        (0.30, 0.2365, 0.3585),  # CLINICAL_REFERENCE
        (Decimal("0.30"), 0.2365, 0.3585),
        ("0.3", 0.2365, 0.3585),
        (0.20, 0.1572, 0.2385),  # 0.157 / 0.238 in Liu & Yuan's table
        (0.25, 0.1968, 0.2984),  # 0.197 / 0.298
        (0.33, 0.2604, 0.3947),
        (Decimal("0.33"), 0.2604, 0.3947),
    ],
)
def test_boin_boundaries(target, lambda_e, lambda_d):
    low, high = boin_boundaries(target)
    assert (round(low, 4), round(high, 4)) == (lambda_e, lambda_d)
    assert low < float(target) < high


def test_boin_boundaries_explicit_p_saf_and_p_tox():
    assert boin_boundaries(0.3, 0.18, 0.42) == boin_boundaries(0.3)
    low, high = boin_boundaries(0.3, p_saf=0.15, p_tox=0.45)
    assert 0.15 < low < boin_boundaries(0.3)[0] and 0.3 < boin_boundaries(0.3)[1] < high


@pytest.mark.parametrize(
    ("target", "p_saf", "p_tox", "fragment"),
    [
        (0.3, 0.3, None, "p_saf"),
        (0.3, None, 0.25, "p_tox"),
        (0.8, None, None, "p_tox"),  # 1.4 * 0.8 >= 1
        (0, None, None, "target"),
        (1, None, None, "target"),
        ("abc", None, None, "target"),
        (float("nan"), None, None, "target"),
        (True, None, None, "target"),
    ],
)
def test_boin_boundaries_invalid(target, p_saf, p_tox, fragment):
    with pytest.raises(EscalationError, match=fragment):
        boin_boundaries(target, p_saf, p_tox)


# --- BOIN decisions ----------------------------------------------------------------------

# Liu & Yuan's published decision table for phi = 0.30, n = 1..12:
# escalate if DLTs <= ESC[n], de-escalate if DLTs >= DE[n], otherwise stay.
ESC_030 = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
DE_030 = [1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5]


@pytest.mark.parametrize("n", range(1, 13))
def test_boin_decision_table_phi_030(n):
    for dlts in range(n + 1):
        levels = [LevelState(1, 6, 6, 0), LevelState(2, n, n, dlts), LevelState(3, 0, 0, 0)]
        proposal = boin_decision(levels, 2, target=0.3)
        if dlts <= ESC_030[n - 1]:
            assert (proposal.action, proposal.level) == (E, 3), (n, dlts)
        elif dlts >= DE_030[n - 1]:
            assert (proposal.action, proposal.level) == (D, 1), (n, dlts)
        else:
            assert (proposal.action, proposal.level) == (S, 2), (n, dlts)


@pytest.mark.parametrize(
    ("dlts", "n", "action"),
    [
        # lambda_e = 0.2365 for phi = 0.30
        (4, 17, E),  # 0.2353 just below
        (5, 21, S),  # 0.2381 just above
        (3, 13, E),  # 0.2308
        (4, 16, S),  # 0.2500
        # lambda_d = 0.3585
        (5, 14, S),  # 0.3571 just below
        (9, 25, D),  # 0.3600 just above
        (7, 20, S),  # 0.3500
        (1, 3, S),
        (0, 3, E),
        (2, 3, D),
    ],
)
def test_boin_decision_near_boundaries(dlts, n, action):
    levels = [LevelState(1, 3, 3, 0), LevelState(2, n, n, dlts), LevelState(3, 0, 0, 0)]
    assert boin_decision(levels, 2, target=Decimal("0.30")).action is action


@pytest.mark.parametrize(
    ("dlts", "n", "action"),
    [
        (1, 4, E),  # exactly lambda_e = 0.25: escalate (inclusive)
        (1, 5, E),
        (2, 7, S),  # 0.2857: just above lambda_e
        (2, 5, S),
        (6, 13, S),  # 0.4615: just below lambda_d
        (2, 4, D),  # exactly lambda_d = 0.50: de-escalate (inclusive)
        (5, 9, D),
    ],
)
def test_boin_decision_exactly_at_protocol_boundaries(dlts, n, action):
    levels = [LevelState(1, 3, 3, 0), LevelState(2, n, n, dlts), LevelState(3, 0, 0, 0)]
    proposal = boin_decision(levels, 2, target=0.3, boundaries=(Decimal("0.25"), Decimal("0.5")))
    assert proposal.action is action


@pytest.mark.parametrize(
    ("specs", "current", "action", "level", "fragment"),
    [
        (("-", "-", "-"), 1, ENROL, 1, "no evaluable subject yet at level 1"),
        (("0/3", "-", "-"), 1, E, 2, "0 DLTs in 3 evaluable subjects at level 1 (rate 0.000"),
        (("0/3", "0/3", "0/3"), 3, S, 3, "level 3 is the top level"),
        (("0/3", "0/6", "1/6"), 3, S, 3, "top level"),
        (("1/3", "-", "-"), 1, S, 1, "between lambda_e 0.2365 and lambda_d 0.3585"),
        (("2/3", "-", "-"), 1, S, 1, "level 1 is the lowest level"),  # 2/3 not eliminated
        (("3/3", "-", "-"), 1, NOMTD, None, "P(DLT rate > 0.3) = 0.992 > 0.95"),
        (("1/6", "3/3", "-"), 2, D, 1, "level 2 and all above eliminated"),
        (("1/6", "3/3", "-"), 1, S, 1, "level 2 is eliminated, stay"),
        (("0/6", "0/3", "3/3"), 2, S, 2, "level 3 is eliminated, stay"),
        (("0/6", "0/3", "3/3"), 3, D, 2, "de-escalate to level 2"),
        (("0/6", "3/3", "0/3"), 3, D, 1, "de-escalate to level 1"),  # above an eliminated level
        (("0/3", "3/4", "-"), 2, D, 1, "P(DLT rate > 0.3) = 0.969"),
        (("1/2", "-", "-"), 1, S, 1, "lowest level"),  # 1/2 = 0.5 >= lambda_d, n < 3
        (("2/2", "-", "-"), 1, S, 1, "lowest level"),  # n < 3: never eliminated
    ],
)
def test_boin_decision_cases(specs, current, action, level, fragment):
    proposal = boin_decision(ladder(*specs), current, target=0.3)
    assert (proposal.action, proposal.level) == (action, level)
    assert fragment in proposal.reason


def test_boin_max_n_stops_only_when_staying():
    levels = ladder("0/3", "3/9", "-")
    stop = boin_decision(levels, 2, target=0.3, max_n_per_level=9)
    assert (stop.action, stop.level, stop.mtd) == (MTD, 2, 2)
    assert "9 evaluable subjects reached the maximum of 9" in stop.reason
    assert boin_decision(levels, 2, target=0.3, max_n_per_level=12).action is S
    # the rule says escalate: the cap does not stop the trial
    levels = ladder("0/3", "1/9", "-")
    assert boin_decision(levels, 2, target=0.3, max_n_per_level=9).action is E
    # the top level, safe and full
    levels = ladder("0/3", "0/3", "1/9")
    stop = boin_decision(levels, 3, target=0.3, max_n_per_level=9)
    assert (stop.action, stop.mtd) == (MTD, 3)


def test_boin_invalid_boundaries():
    with pytest.raises(EscalationError, match="lambda_e"):
        boin_decision(ladder("0/3"), 1, target=0.3, boundaries=(0.4, 0.3))


# --- BOIN elimination --------------------------------------------------------------------

# Smallest DLT count that eliminates a level at phi = 0.30 (cutoff 0.95), n = 3..12;
# matches the BOIN elimination table.
ELIMINATE_030 = {3: 3, 4: 3, 5: 4, 6: 4, 7: 5, 8: 5, 9: 5, 10: 6, 11: 6, 12: 7}


@pytest.mark.parametrize(("n", "threshold"), sorted(ELIMINATE_030.items()))
def test_boin_elimination_table(n, threshold):
    for dlts in range(n + 1):
        assert boin_eliminated(n, dlts, 0.3) is (dlts >= threshold), (n, dlts)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_boin_never_eliminates_below_three(n):
    for dlts in range(n + 1):
        assert boin_eliminated(n, dlts, 0.3) is False
        assert boin_eliminated(n, dlts, 0.1, cutoff=0.5) is False


@pytest.mark.parametrize(
    ("n", "dlts", "target", "exact"),
    [
        (3, 3, 0.3, Fraction(9919, 10000)),  # 1 - 0.3**4
        (3, 2, 0.3, Fraction(9163, 10000)),  # 1 - 4*0.3**3*0.7 - 0.3**4
        (3, 0, 0.3, Fraction(2401, 10000)),  # 0.7**4
        (0, 0, 0.3, Fraction(7, 10)),  # the prior: P(p > 0.3) under Beta(1, 1)
        (2, 2, 0.3, Fraction(973, 1000)),  # 1 - 0.3**3
        (4, 3, 0.3, Fraction(96922, 100000)),
        (6, 4, 0.3, Fraction(9712045, 10000000)),
        (1, 1, Decimal("0.25"), Fraction(15, 16)),  # P(Bin(2, 1/4) <= 1) = 1 - 1/16
    ],
)
def test_boin_posterior_known_values(n, dlts, target, exact):
    assert boin_posterior_exceeds(n, dlts, target) == exact


def test_boin_cutoff_is_strict_and_configurable():
    p = boin_posterior_exceeds(4, 3, 0.3)  # 0.96922
    assert boin_eliminated(4, 3, 0.3, cutoff=Decimal("0.96922")) is False  # not > itself
    assert boin_eliminated(4, 3, 0.3, cutoff=Decimal("0.96921")) is True
    assert boin_eliminated(4, 3, 0.3, cutoff=0.97) is False
    assert p == Fraction(96922, 100000)


@pytest.mark.parametrize(("n", "dlts"), [(-1, 0), (3, 4), (3, -1), (2.0, 1)])
def test_boin_counts_validated(n, dlts):
    with pytest.raises(EscalationError):
        boin_eliminated(n, dlts, 0.3)


# --- BOIN MTD selection ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("specs", "target", "mtd"),
    [
        (("0/3", "1/6", "3/6"), 0.3, 2),  # 0.167 vs 0.5
        (("0/3", "1/6", "2/6"), 0.3, 3),  # 0.333 closest
        (("1/3", "0/3", "2/6"), 0.3, 3),  # PAVA pools 1 and 2 to 1/6; 0.333 closest
        (("2/6", "0/3", "-"), 0.3, 2),  # pooled 2/9 at both: below target, higher level
        (("1/6", "1/6", "-"), 0.3, 2),  # tie below target: higher level
        (("2/6", "2/6", "-"), 0.3, 1),  # tie above target: lower level
        (("3/10", "3/10", "-"), 0.3, 1),  # tie exactly at target: lower level
        (("1/5", "2/5", "-"), 0.3, 1),  # 0.2 and 0.4 equally far: the one below
        (("0/3", "1/3", "3/3"), 0.3, 2),  # level 3 eliminated
        (("0/3", "0/6", "3/3"), 0.3, 2),
        (("3/3", "-", "-"), 0.3, None),  # lowest level eliminated
        (("-", "-", "-"), 0.3, None),
        (("0/3", "-", "-"), 0.3, 1),  # untreated levels are not candidates
        (("0/3", "0/3", "1/3"), 0.25, 3),
        (("0/3", "1/9", "4/9"), 0.25, 2),  # 0.111 vs 0.444
        (("0/3", "1/6", "3/9"), 0.33, 3),
    ],
)
def test_boin_select_mtd(specs, target, mtd):
    assert boin_select_mtd(ladder(*specs), target) == mtd


def test_boin_select_respects_cutoff():
    levels = ladder("0/6", "2/6")  # P(p > 0.3 | 2 of 6) = 0.647
    assert boin_select_mtd(levels, 0.3) == 2
    assert boin_select_mtd(levels, 0.3, cutoff_eliminate=0.6) == 1
    assert boin_decision(levels, 2, target=0.3, cutoff_eliminate=0.6).action is D
