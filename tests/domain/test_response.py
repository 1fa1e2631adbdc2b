from __future__ import annotations

from decimal import Decimal

import pytest

from ecrf.domain.response import (
    CRITERIA_VERSION,
    ResponseCategory,
    ResponseInputError,
    ResponseInputs,
    classify_response,
)

D = Decimal
C = ResponseCategory


def inputs(blasts: str | None = "2", circ: bool | None = False, emd: bool | None = False,
           anc: str | None = "1.5", plt: str | None = "150", baseline: str | None = "60",
           ti: bool | None = None) -> ResponseInputs:
    def dec(value: str | None) -> Decimal | None:
        return None if value is None else D(value)

    return ResponseInputs(dec(blasts), circ, emd, dec(anc), dec(plt), dec(baseline), ti)


# Marrow clear (blasts < 5%, no circulating blasts, no EMD): the counts decide.
@pytest.mark.parametrize(
    ("anc", "plt", "category"),
    [
        ("1.0", "100", C.CR),
        ("5.2", "400", C.CR),
        ("0.99", "100", C.CRH),
        ("1.0", "99", C.CRH),
        ("0.99", "99", C.CRH),
        ("0.5", "50", C.CRH),
        ("0.5", "100", C.CRH),
        ("1.0", "50", C.CRH),
        ("0.49", "50", C.MLFS),  # neither lineage recovered
        ("0.5", "49", C.MLFS),
        ("0.49", "49", C.MLFS),
        ("0.49", "100", C.CRI),
        ("1.0", "49", C.CRI),
        ("1.2", "49.9", C.CRI),
        ("0.0", "5", C.MLFS),
        ("0.499", "250", C.CRI),
        ("0.999", "99.9", C.CRH),
    ],
)
def test_count_boundaries_with_clear_marrow(anc, plt, category):
    result = classify_response(inputs(anc=anc, plt=plt))
    assert result.category is category
    assert not result.provisional and result.missing == ()
    assert result.criteria_version == CRITERIA_VERSION == "ELN 2022"


@pytest.mark.parametrize(
    ("blasts", "anc", "plt", "category"),
    [
        ("0", "1.0", "100", C.CR),
        ("4.9", "1.0", "100", C.CR),
        ("4.99", "1.0", "100", C.CR),
        ("5.0", "1.0", "100", C.PR),  # 5.0 is not < 5; 5 <= 30/2
        ("4.9", "0.5", "50", C.CRH),
        ("5.0", "0.5", "50", C.NR),  # no CR counts, so no PR either
        ("4.9", "0.1", "10", C.MLFS),
        ("4.9", "0.1", "120", C.CRI),
        ("5.0", "0.1", "10", C.NR),
    ],
)
def test_marrow_blast_boundary(blasts, anc, plt, category):
    assert classify_response(inputs(blasts=blasts, anc=anc, plt=plt, baseline="30")).category \
        is category


@pytest.mark.parametrize(
    ("blasts", "baseline", "anc", "plt", "category"),
    [
        ("25", "50", "1.0", "100", C.PR),  # upper bound inclusive, decrease exactly 50%
        ("25.1", "60", "1.0", "100", C.NR),  # above 25%
        ("25", "49.9", "1.0", "100", C.NR),  # decrease just under 50%
        ("25", "50.1", "1.0", "100", C.PR),
        ("10", "20", "1.0", "100", C.PR),  # exactly 50%
        ("10.1", "20", "1.0", "100", C.NR),
        ("10", "19.99", "1.0", "100", C.NR),
        ("5", "10", "1.0", "100", C.PR),
        ("5", "9.9", "1.0", "100", C.NR),
        ("10", "80", "0.99", "100", C.NR),  # PR needs CR counts
        ("10", "80", "1.0", "99", C.NR),
        ("10", "80", "0.5", "50", C.NR),
        ("10", "0", "1.0", "100", C.NR),  # no decrease from a zero baseline
        ("30", "90", "1.0", "100", C.NR),
        ("10", "80", "1.0", "100", C.PR),
    ],
)
def test_partial_remission_boundaries(blasts, baseline, anc, plt, category):
    result = classify_response(inputs(blasts=blasts, baseline=baseline, anc=anc, plt=plt))
    assert result.category is category
    assert result.missing == ()


@pytest.mark.parametrize(
    ("circ", "emd", "blasts"),
    [(True, False, "2"), (False, True, "2"), (True, True, "2"), (True, None, "2"),
     (None, True, "2")],
)
def test_circulating_blasts_or_emd_with_low_marrow_blasts_is_no_response(circ, emd, blasts):
    result = classify_response(inputs(blasts=blasts, circ=circ, emd=emd))
    assert result.category is C.NR
    assert result.missing == ()


@pytest.mark.parametrize(("circ", "emd"), [(True, False), (False, True), (None, None)])
def test_partial_remission_ignores_circulating_blasts_and_emd(circ, emd):
    result = classify_response(inputs(blasts="10", baseline="40", circ=circ, emd=emd))
    assert result.category is C.PR


@pytest.mark.parametrize(
    ("kwargs", "category", "missing", "provisional"),
    [
        ({"blasts": None}, C.NE, ("marrow_blasts_pct",), False),
        ({"blasts": None, "anc": None}, C.NE, ("marrow_blasts_pct",), False),
        ({"circ": None}, C.NE, ("circulating_blasts",), False),
        ({"emd": None}, C.NE, ("extramedullary_disease",), False),
        ({"circ": None, "emd": None}, C.NE,
         ("circulating_blasts", "extramedullary_disease"), False),
        # clear marrow, counts missing: MLFS holds, higher categories stay open
        ({"anc": None}, C.MLFS, ("anc",), True),
        ({"plt": None}, C.MLFS, ("plt",), True),
        ({"anc": None, "plt": None}, C.MLFS, ("anc", "plt"), True),
        ({"anc": "0.7", "plt": None}, C.MLFS, ("plt",), True),  # CRh or CRi open
        ({"anc": None, "plt": "70"}, C.MLFS, ("anc",), True),
        # a known count can settle the category even when the other is missing
        ({"anc": "0.49", "plt": None}, C.MLFS, ("plt",), True),  # CRi open
        ({"anc": "1.2", "plt": "49"}, C.CRI, (), False),
        ({"anc": None, "plt": "49"}, C.MLFS, ("anc",), True),
        ({"anc": "0.3", "plt": "49"}, C.MLFS, (), False),
        # marrow blasts >= 5%: PR undecidable without counts or baseline
        ({"blasts": "10", "baseline": None}, C.NE, ("baseline_marrow_blasts_pct",), False),
        ({"blasts": "10", "anc": None}, C.NE, ("anc",), False),
        ({"blasts": "10", "anc": None, "plt": None, "baseline": None}, C.NE,
         ("anc", "plt", "baseline_marrow_blasts_pct"), False),
        # ... but decidable when a known value already excludes PR
        ({"blasts": "10", "baseline": None, "anc": "0.4"}, C.NR, (), False),
        ({"blasts": "26", "baseline": None, "anc": None}, C.NR, (), False),
        ({"blasts": "10", "baseline": "15", "anc": None}, C.NR, (), False),
        # circulating/EMD are not needed once marrow blasts are >= 5%
        ({"blasts": "10", "baseline": "40", "circ": None, "emd": None}, C.PR, (), False),
        ({"blasts": "40", "circ": None, "emd": None}, C.NR, (), False),
    ],
)
def test_missing_data(kwargs, category, missing, provisional):
    result = classify_response(inputs(**kwargs))
    assert result.category is category
    assert result.missing == missing
    assert result.provisional is provisional
    for name in missing:
        assert name in result.reason


def test_transfusion_independence_does_not_change_the_category():
    for ti in (True, False, None):
        assert classify_response(inputs(anc="0.4", plt="130", ti=ti)).category is C.CRI
        assert classify_response(inputs(ti=ti)).category is C.CR


@pytest.mark.parametrize(
    ("category", "fragment"),
    [(C.CR, "ANC >= 1.0"), (C.CRH, "ANC >= 0.5"), (C.CRI, "CRh counts not met"),
     (C.NR, "not met")],
)
def test_reasons_explain_the_category(category, fragment):
    cases = {C.CR: inputs(), C.CRH: inputs(anc="0.6", plt="60"),
             C.CRI: inputs(anc="0.1", plt="110"), C.NR: inputs(blasts="40")}
    result = classify_response(cases[category])
    assert result.category is category and fragment in result.reason


def test_categories_are_the_eln_labels():
    assert [c.value for c in ResponseCategory] == ["CR", "CRh", "CRi", "MLFS", "PR", "NR", "NE"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("marrow_blasts_pct", D("-0.1")), ("marrow_blasts_pct", D("100.1")),
     ("marrow_blasts_pct", 4.9), ("baseline_marrow_blasts_pct", D("101")),
     ("anc", D("-1")), ("anc", 1.0), ("plt", "100"), ("circulating_blasts", "no"),
     ("extramedullary_disease", 0), ("transfusion_independent", "yes")],
)
def test_invalid_inputs(field, value):
    base = {"marrow_blasts_pct": D("2"), "circulating_blasts": False,
            "extramedullary_disease": False, "anc": D("1"), "plt": D("100")}
    with pytest.raises(ResponseInputError, match=field):
        ResponseInputs(**{**base, field: value})


@pytest.mark.parametrize("blasts", ["0", "100"])
def test_blast_percentage_range_inclusive(blasts):
    assert classify_response(inputs(blasts=blasts)).category in (C.CR, C.NR)
