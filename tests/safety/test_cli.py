"""`ecrf ctcae grade` prints the grade as JSON; `ecrf endpoints` summarises a study."""

from __future__ import annotations

import json

from tests.safety.safety_setup import load_safety_study


def grade(runner, *args):
    result = runner.invoke(args=["ctcae", "grade", *args])
    return result, (json.loads(result.output) if result.exit_code == 0 else None)


def test_grade_prints_the_lab_grade_as_json(runner):
    result, found = grade(runner, "NEUT", "400", "cells/uL")
    assert result.exit_code == 0
    assert found == {"test": "NEUT", "grade": 4, "term": "Neutrophil count decreased",
                     "version": "CTCAE v5.0", "basis": "absolute: 0.4 x10^9/L < 0.5",
                     "gradable": True, "value_si": "0.400", "unit_si": "10^9/L"}


def test_grade_with_limits_and_baseline(runner):
    _, found = grade(runner, "ALT", "160", "U/L", "--uln", "40", "--baseline", "100")
    assert found["grade"] == 1 and found["basis"].startswith("baseline-based: 1.6 x BL")
    _, found = grade(runner, "NEUT", "1.6", "10^9/L", "--lln", "1.8")
    assert found["grade"] == 1


def test_a_value_that_cannot_be_graded_says_why(runner):
    result, found = grade(runner, "PLAT", "80", "10^9/L")
    assert result.exit_code == 0
    assert found["gradable"] is False and found["grade"] is None
    assert "needs the lab's LLN" in found["basis"]
    _, found = grade(runner, "HGB", "abc", "g/L")
    assert found["basis"] == "not gradable: value 'abc' is not a number"
    _, found = grade(runner, "HGB", "9", "furlongs")
    assert "unit 'furlongs' not recognised for HGB" in found["basis"]


def test_an_unknown_test_is_an_error(runner):
    result = runner.invoke(args=["ctcae", "grade", "GLUC", "5", "mmol/L"])
    assert result.exit_code != 0
    assert "unknown lab test code 'GLUC'" in result.output


def test_endpoints_command(app, runner, make_study, tmp_path):
    result = runner.invoke(args=["endpoints", "NOPE"])
    assert result.exit_code != 0 and "no study with OID 'NOPE'" in result.output
    load_safety_study(make_study)
    result = runner.invoke(args=["endpoints", "SAFETY"])
    assert result.exit_code == 0 and "0 subject(s) with endpoints" in result.output
    target = tmp_path / "summary.csv"
    result = runner.invoke(args=["endpoints", "SAFETY", "--csv", str(target)])
    assert result.exit_code == 0
    assert target.read_text().startswith("group,endpoint,kind,n,not_evaluable,events")


def test_endpoints_command_prints_denominators_rules_and_subject_rows(app, runner, make_study,
                                                                     make_user, tmp_path):
    from tests.safety.test_endpoints import actor_for, subject_a

    study = load_safety_study(make_study)
    inv = actor_for(make_user("inv1", role="investigator", study="SAFETY", site="S01"))
    subject_a(inv, study)
    result = runner.invoke(args=["endpoints", "SAFETY"])
    assert result.exit_code == 0, result.output
    assert "time_to_neutrophil_recovery: ANC >= 0.5 on 3 consecutive measurements" in (
        result.output)
    # 1/1 severe anaemia: exact interval 0.025 ** 1 = 2.5 % to 100 %
    assert "severe_anemia" in result.output
    assert "1/1 (100.0 %; 95 % CI 2.5-100.0)" in result.output
    # one subject recovering on day 15: S(15) = 0, where the log-log interval is undefined
    assert ("n 1 at risk, 1 event, 0 censored; KM median 15 (95 % CI not estimable); "
            "range 15-15") in result.output
    assert "infection" in result.output and "0/0; 1 not evaluable" in result.output
    target = tmp_path / "subjects.csv"
    result = runner.invoke(args=["endpoints", "SAFETY", "--subjects-csv", str(target)])
    assert result.exit_code == 0 and f"to {target}" in result.output
    text = target.read_text()
    assert text.startswith("subject_key,site_code,group,endpoint,status,value,day,rule,")
    assert ("S01-A,S01,Dose level 1,time_to_neutrophil_recovery,event,15,15,"
            "\"ANC >= 0.5 on 3 consecutive measurements, first day 15 (days 15, 17, 18)\","
            "yes,") in text
    result = runner.invoke(args=["endpoints", "SAFETY", "--subjects-csv", "-"])
    assert result.exit_code == 0 and result.output.startswith("subject_key,")
    result = runner.invoke(args=["endpoints", "SAFETY", "--subjects-csv", "-", "--csv", "-"])
    assert result.exit_code != 0 and "only one of" in result.output
    result = runner.invoke(args=["endpoints", "SAFETY", "--subjects-csv",
                                 str(tmp_path / "missing" / "x.csv")])
    assert result.exit_code != 0 and "cannot write" in result.output
