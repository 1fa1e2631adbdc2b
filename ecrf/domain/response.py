"""AML response classification, ELN 2022 (morphologic categories).

Criteria (ANC and PLT in 10^9/L, blasts in % of marrow nucleated cells):

* marrow clear: marrow blasts < 5%, no circulating blasts, no extramedullary disease (EMD);
* CR:   marrow clear, ANC >= 1.0 and PLT >= 100;
* CRh:  marrow clear, ANC >= 0.5 and PLT >= 50 (and not CR);
* CRi:  marrow clear, residual neutropenia (ANC < 1.0) OR thrombocytopenia (PLT < 100),
  so one lineage has recovered, and CRh counts not met;
* MLFS: marrow clear, no count recovery required: what remains when neither lineage has
  recovered. The absence of circulating blasts and of EMD is part of the rule (as ELN
  2022 states it);
* PR:   ANC >= 1.0 and PLT >= 100, marrow blasts 5-25% inclusive and a decrease of at least
  50% from the pretreatment marrow blasts (blasts <= baseline / 2). Circulating blasts and
  EMD are not part of the PR rule;
* NR:   evaluated, none of the above.

Precedence CR > CRh > CRi > MLFS > PR > NR. Each criterion is three-valued: met, not met,
or unknown because an input is missing. The result is the first category in precedence
order that is met; NR only once every other category is excluded.

Missing data:

* the marrow assessment is required: without marrow blasts, or with marrow blasts < 5% but
  circulating-blast or EMD status unknown (and neither known to be present), the result is
  NE and names the missing inputs;
* counts are not needed for MLFS, so a clear marrow with missing counts that leave a
  higher category open is reported as MLFS with ``provisional=True`` and the missing
  counts named (ELN reserves "non-evaluable" for an inadequate marrow evaluation);
* when neither PR nor NR can be decided (marrow blasts >= 5% with counts or baseline
  missing) the result is NE with the missing inputs named.

``transfusion_independent`` is carried for reporting; the ELN
2022 categories do not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from enum import StrEnum

CRITERIA_VERSION = "ELN 2022"

BLAST_CLEAR_BELOW = Decimal("5")
PR_BLASTS_MAX = Decimal("25")
CR_ANC = Decimal("1.0")
CR_PLT = Decimal("100")
CRH_ANC = Decimal("0.5")
CRH_PLT = Decimal("50")


class ResponseInputError(ValueError):
    def __init__(self, field: str, value: object) -> None:
        super().__init__(f"response input {field}={value!r} is out of range or not a Decimal")
        self.field = field
        self.value = value


class ResponseCategory(StrEnum):
    CR = "CR"
    CRH = "CRh"
    CRI = "CRi"
    MLFS = "MLFS"
    PR = "PR"
    NR = "NR"
    NE = "NE"


@dataclass(frozen=True)
class ResponseInputs:
    marrow_blasts_pct: Decimal | None
    circulating_blasts: bool | None
    extramedullary_disease: bool | None
    anc: Decimal | None
    plt: Decimal | None
    baseline_marrow_blasts_pct: Decimal | None = None
    transfusion_independent: bool | None = None

    def __post_init__(self) -> None:
        for name in ("marrow_blasts_pct", "baseline_marrow_blasts_pct"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, Decimal)
                                      or not Decimal(0) <= value <= Decimal(100)):
                raise ResponseInputError(name, value)
        for name in ("anc", "plt"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, Decimal) or value < 0):
                raise ResponseInputError(name, value)
        for name in ("circulating_blasts", "extramedullary_disease", "transfusion_independent"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ResponseInputError(name, value)


@dataclass(frozen=True)
class ResponseResult:
    category: ResponseCategory
    reason: str
    #: Inputs whose absence made the result NE or provisional, in ``ResponseInputs`` order.
    missing: tuple[str, ...] = ()
    #: True when a higher category could not be excluded because of ``missing``.
    provisional: bool = False
    criteria_version: str = CRITERIA_VERSION


@dataclass(frozen=True)
class _Tri:
    """A criterion that is met (True), not met (False) or unknown (None, with causes)."""

    value: bool | None
    missing: frozenset[str] = frozenset()

    def __and__(self, other: _Tri) -> _Tri:
        if self.value is False or other.value is False:
            return _Tri(False)
        if self.value is None or other.value is None:
            return _Tri(None, self.missing | other.missing)
        return _Tri(True)

    def __or__(self, other: _Tri) -> _Tri:
        if self.value is True or other.value is True:
            return _Tri(True)
        if self.value is None or other.value is None:
            return _Tri(None, self.missing | other.missing)
        return _Tri(False)

    def __invert__(self) -> _Tri:
        return self if self.value is None else _Tri(not self.value)


def _compare(name: str, value: Decimal | None, test: bool | None) -> _Tri:
    return _Tri(None, frozenset({name})) if value is None else _Tri(test)


def _flag_absent(name: str, value: bool | None) -> _Tri:
    return _Tri(None, frozenset({name})) if value is None else _Tri(not value)


def _criteria(x: ResponseInputs) -> dict[ResponseCategory, _Tri]:
    blasts = x.marrow_blasts_pct
    baseline = x.baseline_marrow_blasts_pct
    anc, plt = x.anc, x.plt
    marrow_below_5 = _compare("marrow_blasts_pct", blasts,
                              blasts is not None and blasts < BLAST_CLEAR_BELOW)
    marrow_clear = (marrow_below_5
                    & _flag_absent("circulating_blasts", x.circulating_blasts)
                    & _flag_absent("extramedullary_disease", x.extramedullary_disease))
    cr_counts = (_compare("anc", anc, anc is not None and anc >= CR_ANC)
                 & _compare("plt", plt, plt is not None and plt >= CR_PLT))
    crh_counts = (_compare("anc", anc, anc is not None and anc >= CRH_ANC)
                  & _compare("plt", plt, plt is not None and plt >= CRH_PLT))
    cr = marrow_clear & cr_counts
    crh = marrow_clear & crh_counts & ~cr_counts
    # CRi keeps one lineage recovered (residual neutropenia OR thrombocytopenia); with
    # neither recovered the marrow-clear subject is MLFS.
    one_lineage = (_compare("anc", anc, anc is not None and anc >= CR_ANC)
                   | _compare("plt", plt, plt is not None and plt >= CR_PLT))
    cri = marrow_clear & ~crh_counts & one_lineage
    pr_blasts = _compare("marrow_blasts_pct", blasts,
                         blasts is not None and BLAST_CLEAR_BELOW <= blasts <= PR_BLASTS_MAX)
    halved = _compare("baseline_marrow_blasts_pct", baseline,
                      baseline is not None and blasts is not None and 2 * blasts <= baseline)
    return {
        ResponseCategory.CR: cr,
        ResponseCategory.CRH: crh,
        ResponseCategory.CRI: cri,
        ResponseCategory.MLFS: marrow_clear,
        ResponseCategory.PR: cr_counts & pr_blasts & halved,
    }


_REASONS = {
    ResponseCategory.CR: "marrow blasts < 5%, no circulating blasts, no EMD, "
                         "ANC >= 1.0 and PLT >= 100",
    ResponseCategory.CRH: "CR marrow criteria, ANC >= 0.5 and PLT >= 50 without full recovery",
    ResponseCategory.CRI: "CR marrow criteria, ANC >= 1.0 or PLT >= 100 but not both, "
                          "CRh counts not met",
    ResponseCategory.MLFS: "marrow blasts < 5%, no circulating blasts, no EMD",
    ResponseCategory.PR: "ANC >= 1.0 and PLT >= 100, marrow blasts 5-25% and at least 50% "
                         "below baseline",
}

_FIELD_ORDER = tuple(f.name for f in fields(ResponseInputs))


def _ordered(names: frozenset[str]) -> tuple[str, ...]:
    return tuple(name for name in _FIELD_ORDER if name in names)


def classify_response(x: ResponseInputs) -> ResponseResult:
    """Classify one response assessment per ELN 2022 (see the module docstring)."""
    if x.marrow_blasts_pct is None:
        return ResponseResult(ResponseCategory.NE, "marrow_blasts_pct not recorded",
                              ("marrow_blasts_pct",))
    criteria = _criteria(x)
    marrow_clear = criteria[ResponseCategory.MLFS]
    if marrow_clear.value is None:
        missing = _ordered(marrow_clear.missing)
        return ResponseResult(ResponseCategory.NE,
                              f"marrow blasts < 5% but {', '.join(missing)} not recorded",
                              missing)
    open_missing: frozenset[str] = frozenset()
    for category, criterion in criteria.items():
        if criterion.value is True:
            if not open_missing:
                return ResponseResult(category, _REASONS[category])
            missing = _ordered(open_missing)
            return ResponseResult(
                category,
                f"{_REASONS[category]}; a higher category is possible but "
                f"{', '.join(missing)} not recorded",
                missing, provisional=True)
        if criterion.value is None:
            open_missing |= criterion.missing
    if open_missing:
        missing = _ordered(open_missing)
        return ResponseResult(ResponseCategory.NE,
                              f"PR cannot be excluded: {', '.join(missing)} not recorded",
                              missing)
    return ResponseResult(ResponseCategory.NR, "criteria for CR, CRh, CRi, MLFS and PR not met")
