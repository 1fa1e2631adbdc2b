"""Dose-escalation rules: 3+3 and BOIN (Liu & Yuan 2015).

Both engines are pure: they take the per-level counts and the level currently enrolling and
propose what to do next. DLTs are counted among evaluable subjects only (evaluable =
received the full dose and completed the DLT window, or had a DLT); non-evaluable subjects
are replaced, so ``treated`` appears in reasons but never drives a decision.

Levels are ordered by their number, which need not be consecutive (a "-1" level below
level 1 is common); "next" and "lower" mean the neighbour in that order.

Pacing is the caller's: call after each cohort has completed its DLT window. BOIN in
particular decides on whatever evaluable data the current level holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from fractions import Fraction

# 3+3 cohort sizes: a level is judged on 3 evaluable subjects, the MTD needs 6.
COHORT = 3
MTD_MIN_EVALUABLE = 6
TOXIC_DLTS = 2


class EscalationError(ValueError):
    """Invalid dose-level data or design parameter; the message names the value."""


@dataclass(frozen=True)
class LevelState:
    level: int
    treated: int
    evaluable: int
    dlts: int
    label: str = ""

    def __post_init__(self) -> None:
        for name in ("level", "treated", "evaluable", "dlts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise EscalationError(f"{name} must be an integer: {value!r}")
        if not 0 <= self.dlts <= self.evaluable <= self.treated:
            raise EscalationError(
                f"level {self.level}: need 0 <= dlts ({self.dlts}) <= evaluable "
                f"({self.evaluable}) <= treated ({self.treated})"
            )

    @property
    def name(self) -> str:
        return f"level {self.level} ({self.label})" if self.label else f"level {self.level}"

    @property
    def counts(self) -> str:
        dlts = "1 DLT" if self.dlts == 1 else f"{self.dlts} DLTs"
        subjects = "subject" if self.evaluable == 1 else "subjects"
        extra = self.treated - self.evaluable
        pending = f" ({extra} more treated, not (yet) evaluable)" if extra else ""
        return f"{dlts} in {self.evaluable} evaluable {subjects}{pending} at {self.name}"


class Action(Enum):
    ENROL = "enrol"  # keep enrolling at ``level``: not enough evaluable subjects yet
    ESCALATE = "escalate"
    EXPAND = "expand"  # add 3 more at ``level`` so that it holds 6 evaluable
    STAY = "stay"
    DE_ESCALATE = "de-escalate"
    DECLARE_MTD = "declare MTD"
    STOP_NO_MTD = "stop, no MTD"


@dataclass(frozen=True)
class Proposal:
    action: Action
    level: int | None  # where the next subject goes, the MTD, or None when stopping
    reason: str
    mtd: int | None = None


class _Ladder:
    """Levels in order, with neighbour lookups."""

    def __init__(self, levels: Sequence[LevelState]) -> None:
        self.states = sorted(levels, key=lambda s: s.level)
        if not self.states:
            raise EscalationError("no dose levels given: []")
        numbers = [s.level for s in self.states]
        if len(set(numbers)) != len(numbers):
            raise EscalationError(f"dose levels must be unique: {numbers}")
        self.index = {s.level: i for i, s in enumerate(self.states)}

    def get(self, level: int) -> LevelState:
        if level not in self.index:
            raise EscalationError(f"unknown current level {level!r}; levels are "
                                  f"{[s.level for s in self.states]}")
        return self.states[self.index[level]]

    def above(self, state: LevelState) -> LevelState | None:
        i = self.index[state.level] + 1
        return self.states[i] if i < len(self.states) else None

    def below(self, state: LevelState) -> LevelState | None:
        i = self.index[state.level] - 1
        return self.states[i] if i >= 0 else None

# --- 3+3 ------------------------------------------------------------------------------


def _lowest_toxic(ladder: _Ladder) -> LevelState | None:
    # Two DLTs exceed the MTD whatever the cohort size (2 of 2 already means >= 2 of 3).
    return next((s for s in ladder.states if s.dlts >= TOXIC_DLTS), None)


def three_plus_three_mtd(levels: Sequence[LevelState]) -> int | None:
    """Highest level with at most 1 DLT in at least 6 evaluable subjects whose next level
    was shown toxic (>= 2 DLTs), or the top level; None while undetermined or none."""
    ladder = _Ladder(levels)
    toxic = _lowest_toxic(ladder)
    candidate = ladder.states[-1] if toxic is None else ladder.below(toxic)
    if candidate is None or candidate.evaluable < MTD_MIN_EVALUABLE:
        return None
    return candidate.level


def _after_toxicity(ladder: _Ladder, current: LevelState, toxic: LevelState) -> Proposal:
    exceeded = f"{toxic.counts}: MTD exceeded"
    if current.level != toxic.level:
        exceeded = f"current {current.name} is above a toxic level; {exceeded}"
    lower = ladder.below(toxic)
    if lower is None:
        return Proposal(Action.STOP_NO_MTD, None,
                        f"{exceeded} at the lowest level: no MTD, stop the escalation")
    if lower.evaluable >= MTD_MIN_EVALUABLE:
        return Proposal(Action.DECLARE_MTD, lower.level,
                        f"{exceeded}; {lower.counts}: MTD is {lower.name}", mtd=lower.level)
    if lower.evaluable == COHORT:
        return Proposal(Action.EXPAND, lower.level,
                        f"{exceeded}; {lower.counts}: expand {lower.name} to "
                        f"{MTD_MIN_EVALUABLE}")
    return Proposal(Action.DE_ESCALATE, lower.level,
                    f"{exceeded}; {lower.counts}: de-escalate to {lower.name} and enrol "
                    f"until {MTD_MIN_EVALUABLE} are evaluable")


def three_plus_three(levels: Sequence[LevelState], current: int) -> Proposal:
    """Next step of a 3+3 escalation from the counts at each level.

    0/3 escalate; 1/3 expand to 6; <= 1/6 escalate; >= 2 DLTs: MTD exceeded, the lower
    level needs 6 evaluable (expand it if it has 3, otherwise enrol there) before it is
    declared the MTD. Never escalates past the top level or into a level shown toxic:
    there a level is filled to 6 and declared the MTD instead.
    """
    ladder = _Ladder(levels)
    state = ladder.get(current)
    toxic = _lowest_toxic(ladder)
    if toxic is not None and state.level >= toxic.level:
        return _after_toxicity(ladder, state, toxic)
    counts = state.counts
    if state.evaluable < COHORT:
        return Proposal(Action.ENROL, state.level,
                        f"{counts}: fewer than {COHORT} evaluable, keep enrolling at "
                        f"{state.name} (replace non-evaluable subjects)")
    nxt = ladder.above(state)
    if nxt is None:
        blocked = f"{state.name} is the top level"
    elif toxic is not None and nxt.level == toxic.level:
        blocked = f"{nxt.name} was shown toxic ({nxt.counts})"
    else:
        blocked = ""
    if nxt is not None and not blocked \
            and (state.dlts == 0 or state.evaluable >= MTD_MIN_EVALUABLE):
        return Proposal(Action.ESCALATE, nxt.level, f"{counts}: escalate to {nxt.name}")
    if state.evaluable >= MTD_MIN_EVALUABLE:
        return Proposal(Action.DECLARE_MTD, state.level,
                        f"{counts}; {blocked}: MTD is {state.name}", mtd=state.level)
    why = f" ({blocked}: the MTD needs {MTD_MIN_EVALUABLE})" if state.dlts == 0 else ""
    if state.evaluable == COHORT:
        return Proposal(Action.EXPAND, state.level,
                        f"{counts}: expand to {MTD_MIN_EVALUABLE}{why}")
    return Proposal(Action.ENROL, state.level,
                    f"{counts}: keep enrolling until {MTD_MIN_EVALUABLE} are evaluable{why}")


# --- BOIN -----------------------------------------------------------------------------


def _decimal(value: float | Decimal | str, what: str) -> Decimal:
    if isinstance(value, bool):
        raise EscalationError(f"{what} must be a number: {value!r}")
    try:
        # str() first so that 0.3 means 0.3, not its binary approximation.
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise EscalationError(f"{what} must be a number: {value!r}") from None
    if not result.is_finite():
        raise EscalationError(f"{what} must be finite: {value!r}")
    return result


def _probability(value: float | Decimal | str, what: str) -> Decimal:
    result = _decimal(value, what)
    if not 0 < result < 1:
        raise EscalationError(f"{what} must lie strictly between 0 and 1: {value!r}")
    return result


def boin_boundaries(target: float | Decimal, p_saf: float | Decimal | None = None,
                    p_tox: float | Decimal | None = None) -> tuple[float, float]:
    """(lambda_e, lambda_d) of BOIN; p_saf and p_tox default to 0.6 and 1.4 times target."""
    phi = _probability(target, "target")
    saf = Decimal("0.6") * phi if p_saf is None else _probability(p_saf, "p_saf")
    tox = Decimal("1.4") * phi if p_tox is None else _probability(p_tox, "p_tox")
    if not 0 < saf < phi < tox < 1:
        raise EscalationError(f"BOIN needs 0 < p_saf ({saf}) < target ({phi}) < "
                              f"p_tox ({tox}) < 1")
    f_phi, f_saf, f_tox = float(phi), float(saf), float(tox)
    lambda_e = (math.log((1 - f_saf) / (1 - f_phi))
                / math.log(f_phi * (1 - f_saf) / (f_saf * (1 - f_phi))))
    lambda_d = (math.log((1 - f_phi) / (1 - f_tox))
                / math.log(f_tox * (1 - f_phi) / (f_phi * (1 - f_tox))))
    return lambda_e, lambda_d


def _check_counts(n: int, dlts: int) -> None:
    if isinstance(n, bool) or isinstance(dlts, bool) or not isinstance(n, int) \
            or not isinstance(dlts, int) or not 0 <= dlts <= n:
        raise EscalationError(f"need integers 0 <= dlts ({dlts!r}) <= n ({n!r})")


def boin_posterior_exceeds(n: int, dlts: int, target: float | Decimal) -> Fraction:
    """Exact P(p > target | dlts of n) under a Beta(1, 1) prior.

    The posterior is Beta(1 + dlts, 1 + n - dlts); with integer parameters its upper tail
    at phi equals P(Binomial(n + 1, phi) <= dlts), an exact finite sum.
    """
    _check_counts(n, dlts)
    phi = Fraction(_probability(target, "target"))
    trials = n + 1
    return sum((math.comb(trials, k) * phi**k * (1 - phi) ** (trials - k)
                for k in range(dlts + 1)), Fraction(0))


def boin_eliminated(n: int, dlts: int, target: float | Decimal,
                    cutoff: float | Decimal = 0.95) -> bool:
    """True when P(p > target | data) > cutoff and at least 3 subjects are evaluable."""
    _check_counts(n, dlts)
    limit = Fraction(_probability(cutoff, "elimination cutoff"))
    return n >= COHORT and boin_posterior_exceeds(n, dlts, target) > limit


def _lowest_eliminated(ladder: _Ladder, target: float | Decimal,
                       cutoff: float | Decimal) -> LevelState | None:
    return next((s for s in ladder.states
                 if boin_eliminated(s.evaluable, s.dlts, target, cutoff)), None)


def _isotonic(pairs: Sequence[tuple[int, int]]) -> list[Fraction]:
    """Non-decreasing rates closest (weighted by n) to dlts/n: pool adjacent violators."""
    pools: list[list[int]] = []  # [dlts, n, levels pooled]
    for dlts, n in pairs:
        pools.append([dlts, n, 1])
        while len(pools) > 1 and pools[-2][0] * pools[-1][1] > pools[-1][0] * pools[-2][1]:
            d, m, k = pools.pop()
            pools[-1] = [pools[-1][0] + d, pools[-1][1] + m, pools[-1][2] + k]
    return [Fraction(d, n) for d, n, k in pools for _ in range(k)]


def boin_select_mtd(levels: Sequence[LevelState], target: float | Decimal, *,
                    cutoff_eliminate: float | Decimal = 0.95) -> int | None:
    """MTD at the end of a BOIN trial, or None.

    Candidates are the levels with evaluable subjects below the lowest eliminated level.
    Their observed rates are made non-decreasing by isotonic regression (pool adjacent
    violators, weighted by evaluable count); the level whose estimate is closest to the
    target wins. Ties: an estimate below the target beats one equally far above it; equal
    estimates below the target pick the higher level, equal estimates at or above it the
    lower level. None when the lowest level is eliminated or nothing was evaluated.
    """
    ladder = _Ladder(levels)
    phi = Fraction(_probability(target, "target"))
    eliminated = _lowest_eliminated(ladder, target, cutoff_eliminate)
    candidates = [s for s in ladder.states if s.evaluable > 0
                  and (eliminated is None or s.level < eliminated.level)]
    if not candidates:
        return None
    estimates = _isotonic([(s.dlts, s.evaluable) for s in candidates])

    def rank(pair: tuple[LevelState, Fraction]) -> tuple[Fraction, int, int]:
        state, estimate = pair
        below = estimate < phi
        return abs(estimate - phi), 0 if below else 1, -state.level if below else state.level

    return min(zip(candidates, estimates, strict=True), key=rank)[0].level


def boin_decision(
    levels: Sequence[LevelState],
    current: int,
    *,
    target: float | Decimal,
    max_n_per_level: int | None = None,
    cutoff_eliminate: float | Decimal = 0.95,
    boundaries: tuple[float | Decimal, float | Decimal] | None = None,
) -> Proposal:
    """Next step of a BOIN escalation.

    Observed rate dlts/evaluable at the current level: <= lambda_e escalate (stay at the top
    level or below an eliminated one), >= lambda_d de-escalate (stay at the lowest level),
    otherwise stay. A level is eliminated with every level above it; the lowest level
    eliminated stops the trial. Once the current level holds ``max_n_per_level`` evaluable
    subjects and the rule says stay, the trial stops and the MTD is selected.
    ``boundaries`` replaces the computed (lambda_e, lambda_d) with protocol-stated values.
    """
    ladder = _Ladder(levels)
    state = ladder.get(current)
    phi = _probability(target, "target")
    if boundaries is None:
        lambda_e, lambda_d = (_decimal(b, "boundary") for b in boin_boundaries(phi))
    else:
        lambda_e, lambda_d = (_decimal(b, "boundary") for b in boundaries)
    if not 0 <= lambda_e < lambda_d <= 1:
        raise EscalationError(f"need 0 <= lambda_e ({lambda_e}) < lambda_d ({lambda_d}) <= 1")
    eliminated = _lowest_eliminated(ladder, phi, cutoff_eliminate)
    if eliminated is not None:
        p = boin_posterior_exceeds(eliminated.evaluable, eliminated.dlts, phi)
        why = (f"{eliminated.counts}: P(DLT rate > {phi}) = {float(p):.3f} > "
               f"{cutoff_eliminate}, {eliminated.name} and all above eliminated")
        lower = ladder.below(eliminated)
        if lower is None:
            return Proposal(Action.STOP_NO_MTD, None, f"{why}; no MTD, stop the trial")
        if state.level >= eliminated.level:
            return Proposal(Action.DE_ESCALATE, lower.level,
                            f"{why}; de-escalate to {lower.name}")
    if state.evaluable == 0:
        return Proposal(Action.ENROL, state.level,
                        f"no evaluable subject yet at {state.name}: enrol")

    rate = Fraction(state.dlts, state.evaluable)
    counts = f"{state.counts} (rate {float(rate):.3f}"
    nxt, lower = ladder.above(state), ladder.below(state)
    if rate <= Fraction(lambda_e):
        counts += f" <= lambda_e {float(lambda_e):.4f})"
        if nxt is None:
            proposal = Proposal(Action.STAY, state.level,
                                f"{counts}: {state.name} is the top level, stay")
        elif eliminated is not None and nxt.level >= eliminated.level:
            proposal = Proposal(Action.STAY, state.level,
                                f"{counts}: {nxt.name} is eliminated, stay")
        else:
            return Proposal(Action.ESCALATE, nxt.level, f"{counts}: escalate to {nxt.name}")
    elif rate >= Fraction(lambda_d):
        counts += f" >= lambda_d {float(lambda_d):.4f})"
        if lower is not None:
            return Proposal(Action.DE_ESCALATE, lower.level,
                            f"{counts}: de-escalate to {lower.name}")
        proposal = Proposal(Action.STAY, state.level,
                            f"{counts}: {state.name} is the lowest level, stay")
    else:
        proposal = Proposal(Action.STAY, state.level,
                            f"{counts} between lambda_e {float(lambda_e):.4f} and lambda_d "
                            f"{float(lambda_d):.4f}): stay")
    if max_n_per_level is not None and state.evaluable >= max_n_per_level:
        mtd = boin_select_mtd(levels, phi, cutoff_eliminate=cutoff_eliminate)
        stop = (f"{proposal.reason}; {state.evaluable} evaluable subjects reached the "
                f"maximum of {max_n_per_level} per level")
        if mtd is None:
            return Proposal(Action.STOP_NO_MTD, None, f"{stop}: stop, no MTD")
        return Proposal(Action.DECLARE_MTD, mtd,
                        f"{stop}: stop; isotonic estimates select level {mtd}", mtd=mtd)
    return proposal
