"""The two real trials under forms/ must always pass the checker and load."""

from pathlib import Path

import pytest

from ecrf.crf import check_study, definition_from_content, load_study

FORMS = Path(__file__).resolve().parents[2] / "forms"


@pytest.mark.parametrize("study", ["dexaml03", "ucmscexo"])
def test_real_trial_is_valid_and_round_trips(study):
    folder = FORMS / study
    assert [str(p) for p in check_study(folder)] == []
    loaded = load_study(folder)
    assert definition_from_content(loaded.content) == loaded.definition
    assert loaded.definition.events and loaded.definition.forms
