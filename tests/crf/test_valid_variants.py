"""Mutations of the `full` fixture that stay valid: the checker must not cry wolf."""

import pytest

from ecrf.crf import check_study, load_study
from ecrf.domain.dates import Period
from ecrf.domain.schedule import Window

ARMS = "arms:\n  - code: DEX\n    name: Salvage + dexamethasone\n" \
       "    labels: {fr: Rattrapage + dexaméthasone}\n    ratio: 1\n" \
       "  - code: CTRL\n    name: Salvage alone\n    ratio: 1\n"
RANDOMIZATION = "randomization:\n  block_sizes: [2, 4]\n  strata:\n    - name: salvage\n" \
    "      item: ELIG.SALVTYPE\n    - name: status\n      item: ELIG.RELAPSE\n" \
    "  eligibility: ELIG.ELIGIBLE\n  date_item: RAND.RANDDT\n"

VARIANTS = [
    ("three-plus-three", "study.yaml",
     [("design: boin", "design: 3+3"), ("  target_dlt_rate: 0.30\n", ""),
      ("  cohort_size: 3\n", "")]),
    ("no-allocation", "study.yaml",
     [(ARMS, ""), (RANDOMIZATION, "")]),
    ("symmetric-window", "study.yaml", [("window: 14d", "window: 0d")]),
    ("negative-offset", "study.yaml", [("offset: 7d", "offset: -7d")]),
    ("unequal-ratio", "study.yaml", [("ratio: 1", "ratio: 2"), ("[2, 4]", "[3, 6]")]),
    ("quoted-codes", "codelists.yaml", [("{code: 1,", "{code: \"1\",")]),
    ("lab-unit-on-lab-only", "crfs/HEMATO.yaml",
     [("        unit: 10^9/L\n        lab: {test: NEUT, lln: 1.8}",
       "        lab: {test: NEUT, unit: 10^9/L, lln: '1.8'}")]),
    ("lab-same-unit-twice", "crfs/HEMATO.yaml", [("{test: HGB, unit: g/dL}", "{test: HGB}")]),
    ("check-default-severity", "crfs/AE.yaml", [("    severity: error\n", "")]),
    ("block-expression", "crfs/AE.yaml",
     [("    expression: 'is_blank(AEENDTC) or AEENDTC >= AESTDTC'",
       "    expression: |\n      is_blank(AEENDTC)\n        or AEENDTC >= AESTDTC")]),
    ("folded-expression", "crfs/AE.yaml",
     [("    expression: 'is_blank(AEENDTC) or AEENDTC >= AESTDTC'",
       "    expression: >\n      is_blank(AEENDTC)\n      or AEENDTC >= AESTDTC")]),
    ("row-item-sees-form-items", "crfs/AE.yaml",
     [("groups:\n", "groups:\n  - oid: AE_HEAD\n    items:\n      - oid: ANYAE\n"
                    "        label: Any adverse event\n        type: yes_no\n"),
      ("show_if: 'AESER = \"Y\"'", "show_if: 'AESER = \"Y\" and ANYAE = \"Y\"'")]),
    ("calculated-date-anchor", "crfs/TREAT.yaml",
     [("        unit: mg", "        unit: mg\n      - oid: C2D1DT\n        label: Cycle 2\n"
                            "        type: calculated\n        expression: 'add_days(C1D1DT, 28)'\n"
                            "        result_type: date")]),
    ("decimal-from-integer", "crfs/DEMOG.yaml",
     [("result_type: integer\n        unit: years", "result_type: decimal\n        unit: years")]),
    ("arm-condition", "study.yaml",
     [("subject.site != \"X\"", "subject.arm in (\"DEX\", \"CTRL\")")]),
    ("grid-with-planned-days", "crfs/HEMATO.yaml",
     [("max_rows: 60\n    items:", "max_rows: 60\n    layout: grid\n    row_label: LBDT\n"
                                   "    planned_days: {date: LBDT, anchor: c1d1, first: 1, "
                                   "last: 28}\n    items:")]),
    ("undeclared-en-label", "crfs/RESP.yaml",
     [("label: Date of progression", "label: Date of progression\n        labels: {en: PD date}")]),
]


def _apply(folder, file, replacements):
    path = folder / file
    text = path.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, f"{old!r} not in {file}"
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(("file", "replacements"), [v[1:] for v in VARIANTS],
                         ids=[v[0] for v in VARIANTS])
def test_valid_variant(study_copy, file, replacements):
    folder = study_copy()
    _apply(folder, file, replacements)
    assert [str(p) for p in check_study(folder)] == []
    load_study(folder)


def test_three_plus_three_defaults(study_copy):
    folder = study_copy()
    _apply(folder, "study.yaml", VARIANTS[0][2])
    escalation = load_study(folder).definition.dose_escalation
    assert escalation.target_dlt_rate is None and escalation.cohort_size == 3


def test_study_without_allocation(study_copy):
    folder = study_copy()
    _apply(folder, "study.yaml", [(ARMS, ""), ("randomization:\n", "x_removed:\n")])
    problems = check_study(folder)
    assert [p.message for p in problems] == ["unknown attribute 'x_removed'"]


def test_symmetric_window_is_both_sides(study_copy):
    folder = study_copy()
    _apply(folder, "study.yaml", [("window: 14d", "window: 2w")])
    rule = load_study(folder).definition.event("FU")
    assert rule.window == Window(Period(2, "w"), Period(2, "w"))
    assert rule.offset == Period(3, "m")


def test_grid_group_is_built_with_its_row_label_and_planned_days(study_copy):
    import datetime as dt

    folder = study_copy()
    _apply(folder, "crfs/HEMATO.yaml", [VARIANTS[[v[0] for v in VARIANTS].index(
        "grid-with-planned-days")][2][0]])
    group = load_study(folder).definition.form("HEMATO").group("HEMATO_DAY")
    assert group.is_grid and group.row_label == "LBDT"
    assert group.planned_days.dates(dt.date(2025, 1, 30)) == {
        d: dt.date(2025, 1, 29) + dt.timedelta(days=d) for d in range(1, 29)}
    plain = load_study(study_copy("minimal")).definition
    assert not any(g.is_grid or g.planned_days for f in plain.forms.values() for g in f.groups)
