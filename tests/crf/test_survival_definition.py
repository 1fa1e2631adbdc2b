"""The ``survival`` block of study.yaml: checked where it is written, built into the
definition (DEXAML-03 declares overall survival)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ecrf.crf import check_study, definition_from_content, load_study

from .conftest import line_of

DEXAML03 = Path(__file__).resolve().parents[2] / "forms" / "dexaml03"
S = "study.yaml"

CASES = [
    ("origin-anchor", [("origin: randomization", "origin: randomisation")],
     "origin: randomisation", "unknown anchor 'randomisation'"),
    ("event-anchor", [("event: death\n", "event: died\n")], "event: died",
     "unknown anchor 'died'"),
    ("event-is-origin", [("event: death\n", "event: randomization\n")],
     "event: randomization", "the event anchor must differ from the origin"),
    ("censor-anchor", [("censor_at: [lost_to_follow_up, withdrawal]",
                        "censor_at: [lost_to_follow_up, withdrawn]")], "censor_at:",
     "unknown anchor 'withdrawn'"),
    ("censor-is-event", [("censor_at: [lost_to_follow_up, withdrawal]",
                          "censor_at: [death]")], "censor_at:",
     "'death' is the origin or the event"),
    ("alive-unknown-item", [("[FU.LKADT,", "[FU.LKA,")], "last_known_alive:",
     "unknown item 'FU.LKA'"),
    ("alive-unknown-form", [("[FU.LKADT,", "[FUP.LKADT,")], "last_known_alive:",
     "unknown form 'FUP' in 'FUP.LKADT'"),
    ("alive-not-a-date", [("[FU.LKADT,", "[FU.SURVSTAT,")], "last_known_alive:",
     "FU.SURVSTAT must be a date or datetime item"),
    ("cutoff-unknown", [("cutoff: analysis_cutoff_date", "cutoff: data_cut")],
     "cutoff: data_cut", "unknown parameter 'data_cut'"),
    ("cutoff-not-a-date", [("cutoff: analysis_cutoff_date", "cutoff: age_min")],
     "cutoff: age_min", "parameter 'age_min' must be of type date, not integer"),
    ("by-unknown", [("  by: arm\n", "  by: site\n")], "by: site", "site"),
    ("missing-origin", [("  origin: randomization\n", "")], "survival:",
     "missing required attribute 'origin'"),
    ("typo", [("  at_risk_every: 6", "  at_risk_each: 6")], "at_risk_each",
     "unknown attribute 'at_risk_each'"),
    ("landmark-zero", [("landmarks: [12, 24]", "landmarks: [0, 24]")], "landmarks",
     "0"),
]


@pytest.fixture
def dex_copy(tmp_path):
    target = tmp_path / "dexaml03"
    shutil.copytree(DEXAML03, target)
    return target


def _mutate(folder: Path, replacements) -> str:
    path = folder / S
    text = path.read_text(encoding="utf-8")
    survival = text.index("\nsurvival:")
    head, tail = text[:survival], text[survival:]
    for old, new in replacements:
        assert old in tail, old
        tail = tail.replace(old, new, 1)
    text = head + tail
    path.write_text(text, encoding="utf-8")
    return text


@pytest.mark.parametrize(("replacements", "marker", "fragment"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_broken_survival_block_is_reported_where_it_is(dex_copy, replacements, marker,
                                                         fragment):
    text = _mutate(dex_copy, replacements)
    problems = check_study(dex_copy)
    matching = [p for p in problems if fragment in p.message]
    assert matching, "\n".join(str(p) for p in problems)
    start = text.index("\nsurvival:")
    expected = line_of(text[start:], marker) + text.count("\n", 0, start)
    assert (S, expected) in {(p.file, p.line) for p in matching}, \
        f"expected {S}:{expected}; got " + "; ".join(str(p) for p in matching)
    assert all(p.path.startswith("survival") for p in matching)


def test_dexaml03_declares_overall_survival():
    loaded = load_study(DEXAML03)
    survival = loaded.definition.survival
    assert definition_from_content(loaded.content) == loaded.definition
    assert (survival.name, survival.origin, survival.event) == (
        "Overall survival", "randomization", "death")
    assert survival.last_known_alive[:2] == (("FU", "LKADT"), ("EOS", "LKADT"))
    assert survival.censor_at == ("lost_to_follow_up", "withdrawal")
    assert survival.cutoff == "analysis_cutoff_date"
    assert (survival.by, survival.landmarks, survival.at_risk_every) == ("arm", (12, 24), 6)


def test_a_study_without_the_block_has_no_survival(dex_copy):
    text = (dex_copy / S).read_text(encoding="utf-8")
    (dex_copy / S).write_text(text[:text.index("\nsurvival:")] + "\n", encoding="utf-8")
    assert check_study(dex_copy) == []
    assert load_study(dex_copy).definition.survival is None
