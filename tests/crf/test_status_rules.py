"""study.yaml ``status:``, ``tasks:`` and conditional stop anchors: loaded into the
definition, and every mistake reported on its line (DEXAML-03 seed trial, mutated)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ecrf.crf import check_study, load_study
from ecrf.domain.subject_status import SubjectStatus

from .conftest import line_of

SEED = Path(__file__).resolve().parents[2] / "forms" / "dexaml03"


@pytest.fixture
def folder(tmp_path) -> Path:
    target = tmp_path / "dexaml03"
    shutil.copytree(SEED, target)
    return target


def test_seed_trials_declare_status_rules_and_tasks():
    definition = load_study(SEED).definition
    statuses = [rule.status for rule in definition.status_rules]
    assert statuses[0] is SubjectStatus.DIED
    assert set(statuses) == set(SubjectStatus) - {SubjectStatus.SCREENING}
    [eot, eos] = definition.tasks
    assert (eot.event, eot.form, str(eot.due_after)) == ("EOT_LOG", "EOT", "14d")
    assert (eos.event, eos.form) == ("EOS_LOG", "EOS")
    stop = definition.schedule.stop
    assert stop.anchors == ("death", "lost_to_follow_up", "withdrawal")
    assert stop.conditions == (("withdrawal", 'EOS.WDSCOPE != "SURVIVAL"'),)
    ucmsc = load_study(SEED.parent / "ucmscexo").definition
    assert ucmsc.status_rules[-2].status is SubjectStatus.ON_STUDY and ucmsc.tasks


CASES = [
    ("unknown-status", "  - status: in_follow_up\n", "  - status: following\n",
     "status: following", "'following' is not one of"),
    ("status-bad-expression", "when: 'not is_blank(anchor.eot)'", "when: 'not is_blank(anchor.eot'",
     "is_blank(anchor.eot'", "expected ')'"),
    ("status-unknown-item", "when: 'EOS.EOSREAS = \"LTFU\"'", "when: 'EOS.EOSREASON = \"LTFU\"'",
     "EOSREASON", "unknown item 'EOS.EOSREASON'"),
    ("status-unknown-anchor", "when: 'not is_blank(anchor.death)'",
     "when: 'not is_blank(anchor.deceased)'", "anchor.deceased", "unknown anchor 'deceased'"),
    ("status-not-boolean", "when: 'not is_blank(anchor.eot)'", "when: 'anchor.eot'",
     "when: 'anchor.eot'", "true/false"),
    ("task-unknown-event", "    event: EOT_LOG\n", "    event: EOT_LOGS\n",
     "event: EOT_LOGS", "unknown event 'EOT_LOGS'"),
    ("task-form-not-in-event", "    form: EOT\n", "    form: FU\n", "form: FU",
     "event EOT_LOG has no form FU"),
    ("task-start-not-a-date", "      - from: anchor.hsct\n", "      - from: HSCT.DONOR\n",
     "from: HSCT.DONOR", "date"),
    ("task-due-after", "    due_after: 14d\n", "    due_after: fortnight\n",
     "due_after: fortnight", "invalid period"),
    ("stop-condition-unknown-item", "when: 'EOS.WDSCOPE != \"SURVIVAL\"'",
     "when: 'EOS.SCOPE != \"SURVIVAL\"'", "EOS.SCOPE", "unknown item 'EOS.SCOPE'"),
    ("stop-condition-unknown-anchor", "    - anchor: withdrawal\n", "    - anchor: withdrawn\n",
     "anchor: withdrawn", "unknown anchor 'withdrawn'"),
]


@pytest.mark.parametrize(("old", "new", "marker", "message"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_mistakes_are_reported_on_their_line(folder, old, new, marker, message):
    path = folder / "study.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    problems = check_study(folder)
    found = [p for p in problems if message in p.message]
    assert found, [str(p) for p in problems]
    assert found[0].file.endswith("study.yaml")
    assert found[0].line == line_of(text, marker)
