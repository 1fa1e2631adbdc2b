"""SVG charts: valid XML, the threshold lines, transfusion markers, the infusion day and
the median, and user text shown literally (no markup, no mathtext)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

from ecrf.core.plots import ChartPanel, Threshold, dose_level_anc_svg, subject_counts_svg

SVG = "{http://www.w3.org/2000/svg}"


def ids(svg: str) -> set[str]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return {e.get("id") for e in root.iter() if e.get("id")}


def texts(svg: str) -> str:
    return " ".join(e.text or "" for e in ET.fromstring(svg).iter(f"{SVG}text"))


def panels():
    anc = {1: Decimal("3.1"), 2: Decimal("0.4"), 3: Decimal("0"), 5: Decimal("0.7")}
    return [
        ChartPanel("anc", "ANC", "10^9/L", anc, [Threshold(Decimal("0.5"), "recovery 0.5")],
              log=True),
        ChartPanel("plt", "Platelets", "10^9/L", {1: 150, 2: 18, 3: 9},
              [Threshold(Decimal("20"), "recovery 20"), Threshold(Decimal("25"), "severe")]),
        ChartPanel("hgb", "Haemoglobin", "g/L", {1: 95, 3: 58}, [Threshold(Decimal("60"), "60")]),
    ]


def test_subject_chart_has_thresholds_transfusions_and_the_infusion_day():
    svg = subject_counts_svg(panels(), horizon=42, infusion_day=7,
                             transfusions=[(3, "platelets"), (3, "red_cells")], title="S-001")
    found = ids(svg)
    assert {"threshold-anc-0.5", "threshold-plt-20", "threshold-plt-25",
            "threshold-hgb-60"} <= found
    assert {"transfusions-platelets", "transfusions-red_cells"} <= found
    assert {"infusion-day", "infusion-day-plt", "infusion-day-hgb"} <= found
    words = texts(svg)
    assert "Day from chemotherapy day 1" in words and "S-001" in words
    assert "recovery 0.5" in words


def test_without_infusion_or_transfusions_nothing_is_drawn_for_them():
    found = ids(subject_counts_svg(panels()))
    assert not {i for i in found if i.startswith(("infusion", "transfusions"))}


def test_user_text_is_escaped_and_not_mathtext():
    title = '<script>alert("x")</script> $\\alpha$ & co'
    svg = subject_counts_svg(panels(), title=title)
    root = ET.fromstring(svg)
    assert not list(root.iter(f"{SVG}script")) and "<script" not in svg
    assert '<script>alert("x")</script> $\\alpha$ & co' in texts(svg)


def test_dose_level_chart_has_every_curve_the_median_and_the_threshold():
    curves = {"a": {1: Decimal("2"), 2: Decimal("0.2"), 3: Decimal("0.8")},
              "b": {1: Decimal("3"), 3: Decimal("0.4")},
              "c": {2: Decimal("0"), 3: Decimal("1.2")}}
    svg = dose_level_anc_svg(curves, threshold=Threshold(Decimal("0.5"), "0.5"),
                             title="Dose level 1")
    found = ids(svg)
    assert {"subject-1", "subject-2", "subject-3", "median-anc", "threshold-anc-0.5"} <= found
    assert "Dose level 1" in texts(svg)


def test_an_empty_dose_level_still_gives_a_valid_chart():
    found = ids(dose_level_anc_svg({}, threshold=Threshold(Decimal("0.5"), "0.5")))
    assert "threshold-anc-0.5" in found and "median-anc" not in found
