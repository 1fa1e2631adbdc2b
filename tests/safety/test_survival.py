"""Overall survival through the service, the pages, the study report and the command, on
dates entered through data capture in the survival test study (tests/fixtures).

Hand-computed: origin 2025-01-01 -> 2025-03-02 is 60 days, -> 2025-04-01 90 days; origin
2025-02-01 -> 2025-05-02 is 90 days. Months are days / 30.4375 (60 d = 1.971, 90 d = 2.957).
Arm A: a death at 60 d, alive at 90 d, lost to follow-up at 60 d -> S = 2/3 after 1.971.
Arm B: a death on the randomisation day, no follow-up (day 0), alive at 90 d (site S02),
and a death dated before randomisation (left out, a data problem) -> S = 2/3 from 0.
Pooled (6): 5/6 after 0, then 5/6 * 3/4 = 0.625 after 1.971 (4 at risk there).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import event, select

from ecrf.core.audit import trail as audit
from ecrf.core.extensions import db
from ecrf.safety import survival
from ecrf.studies import store as studies
from ecrf.studies.models import Site
from tests.safety.safety_setup import LOADER, actor_for, enrol, save

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "survival_study"
EVENTS = {"RAND": "SCREEN", "FU": "FU_LOG", "DEATH": "DEATH_LOG", "EOS": "EOS_LOG"}
D = dt.date


def load(make_study, folder: Path = FIXTURE):
    study = make_study("SURV", sites=("S01", "S02"))
    studies.load_folder(db.session, LOADER, folder)
    db.session.commit()
    return study


@pytest.fixture
def study(app, make_study):
    return load(make_study)


@pytest.fixture
def inv(make_user, study):
    return actor_for(make_user("inv1", role="investigator", study="SURV", site="S01"))


def subject(inv, study, key, arm, randomized=None, *, death=None, alive=(), ltfu=None,
            site="S01"):
    found = enrol(study, key, site=site, on=D(2024, 12, 20))
    if arm:
        audit.bind_actor(db.session, LOADER)
        found.arm = arm
        db.session.commit()
    actor = actor_for(None, site=site)
    if randomized:
        save(actor, found, "RAND", {("RAND_MAIN", 1, "RANDDT"): randomized.isoformat()},
             event=EVENTS["RAND"], day=D(2024, 12, 20))
    if alive:
        save(actor, found, "FU", {("FU_LINE", n, "LKADT"): day.isoformat()
                                  for n, day in enumerate(alive, start=1)}, event="FU_LOG")
    if death:
        save(actor, found, "DEATH", {("DEATH_MAIN", 1, "DTHDT"): death.isoformat()},
             event="DEATH_LOG")
    if ltfu:
        save(actor, found, "EOS", {("EOS_MAIN", 1, "LTFUDT"): ltfu.isoformat()},
             event="EOS_LOG")
    return found


@pytest.fixture
def cohort(inv, study):
    subject(inv, study, "S01-A1", "A", D(2025, 1, 1), death=D(2025, 3, 2))
    subject(inv, study, "S01-A2", "A", D(2025, 1, 1), alive=[D(2025, 2, 1), D(2025, 4, 1)])
    subject(inv, study, "S01-A3", "A", D(2025, 1, 1), alive=[D(2025, 1, 20)],
            ltfu=D(2025, 3, 2))
    subject(inv, study, "S01-B1", "B", D(2025, 2, 1), death=D(2025, 2, 1))
    subject(inv, study, "S01-B2", "B", D(2025, 2, 1))
    subject(inv, study, "S01-B3", "B", D(2025, 2, 1), death=D(2025, 1, 15))
    subject(inv, study, "S02-B4", "B", D(2025, 2, 1), alive=[D(2025, 5, 2)], site="S02")
    subject(inv, study, "S01-C1", None)  # never randomised
    return study


def flat(steps) -> list[float]:
    return [value for step in steps for value in step]


def by_key(result):
    return {s.subject_key: s for s in [*result.subjects, *result.excluded]}


def test_each_subject_time_and_reason(cohort):
    result = survival.study_survival(db.session, cohort, None)
    found = {k: (s.arm, s.time.days, s.time.event, s.time.reason)
             for k, s in by_key(result).items() if s.time.included}
    assert found == {
        "S01-A1": ("A", 60, True, "event"), "S01-A2": ("A", 90, False, "alive"),
        "S01-A3": ("A", 60, False, "lost_to_follow_up"),
        "S01-B1": ("B", 0, True, "event"), "S01-B2": ("B", 0, False, "no_follow_up"),
        "S02-B4": ("B", 90, False, "alive")}
    assert "S01-C1" not in by_key(result)  # never randomised: not in the analysis
    left = by_key(result)["S01-B3"]
    assert not left.time.included and left.time.days is None
    assert result.problems == [("S01-B3", "death date 2025-01-15 is before the origin "
                                          "2025-02-01")]


def test_kaplan_meier_per_arm_and_pooled(cohort):
    result = survival.study_survival(db.session, cohort, None)
    a, b, pooled = result.groups
    assert (a.label, a.code, b.code, pooled.code) == ("Arm A", "A", "B", None)
    assert (a.km.n, a.km.events, a.km.censored) == (3, 1, 2)
    assert flat(a.km.steps) == pytest.approx([60 / 30.4375, 2 / 3])
    assert (b.km.n, b.km.events, b.km.censored) == (3, 1, 2)
    assert flat(b.km.steps) == pytest.approx([0.0, 2 / 3])
    assert (pooled.km.n, pooled.km.events) == (6, 2)
    assert flat(pooled.km.steps) == pytest.approx([0.0, 5 / 6, 60 / 30.4375, 0.625])
    assert pooled.km.median is None  # never at or below one half
    # Nobody followed 3 months (90 d = 2.957 months) and the curve is above 0: not estimable.
    assert a.landmarks == ((3, None),)
    assert result.at_risk_times() == [0, 1, 2, 3]
    assert [pooled.km.at_risk(t) for t in (0, 1, 2, 3)] == [6, 4, 2, 0]
    summary = result.summary()
    assert summary[2] == {"group": "All subjects", "arm": "", "n": 6, "events": 2,
                          "censored": 4, "median_months": None, "median_ci_low": 0.0,
                          "median_ci_high": None, "survival_3m": None}


def test_site_scope(cohort):
    s01 = db.session.scalar(select(Site).where(Site.code == "S01"))
    result = survival.study_survival(db.session, cohort, {s01.id})
    assert "S02-B4" not in by_key(result)
    assert result.groups[-1].km.n == 5


def test_a_fixed_number_of_statements(inv, study):
    def count() -> int:
        seen = []
        listener = lambda *args: seen.append(1)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            survival.study_survival(db.session, study, None)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(seen)

    subject(inv, study, "S01-A1", "A", D(2025, 1, 1), death=D(2025, 3, 2))
    few = count()
    for n in range(2, 6):
        subject(inv, study, f"S01-A{n}", "A", D(2025, 1, 1), alive=[D(2025, 2, n)])
    assert count() == few


def test_the_dashboards_keep_the_result_until_the_data_change(inv, study):
    def kept():
        seen = []
        listener = lambda *args: seen.append(1)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            result = survival.kept_study_survival(db.session, study, None)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return result, len(seen)

    subject(inv, study, "S01-A1", "A", D(2025, 1, 1), death=D(2025, 3, 2))
    first, _ = kept()
    again, statements = kept()
    assert statements == 1, "only the audit chain head is read"
    assert again.groups == first.groups and again.study is study
    subject(inv, study, "S01-A2", "A", D(2025, 1, 1), alive=[D(2025, 2, 1)])
    changed, statements = kept()
    assert statements > 1 and len(changed.subjects) == 2, "recomputed after a change"
    assert survival.kept_study_survival(db.session, study, {-1}).subjects == [], "per scope"


def test_the_cut_off_censors_later_deaths_and_contacts(app, make_study, tmp_path):
    folder = tmp_path / "survival_study"
    shutil.copytree(FIXTURE, folder)
    path = folder / "study.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("default: null",
                                                             "default: 2025-03-01"),
                    encoding="utf-8")
    study = load(make_study, folder)
    subject(None, study, "S01-A1", "A", D(2025, 1, 1), death=D(2025, 3, 2))
    subject(None, study, "S01-A2", "A", D(2025, 1, 1), alive=[D(2025, 4, 1)])
    subject(None, study, "S01-A3", "A", D(2025, 1, 1), alive=[D(2025, 2, 1)])
    result = survival.study_survival(db.session, study, None)
    assert result.cutoff == D(2025, 3, 1)
    found = {k: (s.time.days, s.time.event, s.time.reason) for k, s in by_key(result).items()}
    assert found == {"S01-A1": (59, False, "cutoff"), "S01-A2": (59, False, "cutoff"),
                     "S01-A3": (31, False, "alive")}


def test_csv_and_json(cohort):
    result = survival.study_survival(db.session, cohort, None)
    lines = result.csv().splitlines()
    assert lines[0] == "subject,site,arm,origin,end,days,months,status,reason,problems"
    assert "S01-A3,S01,A,2025-01-01,2025-03-02,60,1.97,censored,lost to follow up," in lines
    assert any(line.startswith("S01-B3,S01,B,2025-02-01,,,,excluded,death before the origin")
               for line in lines)
    data = result.as_json()
    assert data["unit"] == "months" and data["cutoff"] is None
    assert [row["events"] for row in data["summary"]] == [1, 1, 2]
    assert data["at_risk"] == {"months": [0, 1, 2, 3],
                               "groups": {"A": [3, 3, 1, 0], "B": [3, 1, 1, 0],
                                          "All": [6, 4, 2, 0]}}


# --- pages and the study report ---------------------------------------------------------------


def test_the_data_manager_sees_the_plot(cohort, client, login_as):
    login_as("data_manager", study="SURV", username="dm1")
    page = client.get("/studies/SURV/dashboard")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="survival-panel"' in html and "/studies/SURV/survival.svg" in html
    assert "/studies/SURV/report.pdf" in html and 'id="survival-at-risk"' in html
    assert "S01-B3: death date 2025-01-15 is before the origin" in html  # to check
    svg = client.get("/studies/SURV/survival.svg")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    text = svg.get_data(as_text=True)
    assert "Number at risk" in text and 'id="km-curve-0"' in text
    assert 'id="at-risk-2-0"' in text and 'id="km-censored-0"' in text


def test_the_sponsor_sees_aggregates_only(cohort, client, login_as):
    login_as("sponsor_viewer", study="SURV", username="sponsor1")
    html = client.get("/studies/SURV/dashboard").get_data(as_text=True)
    assert 'id="survival-panel"' in html
    assert "S01-A1" not in html and "S01-B3" not in html  # aggregates only
    assert 'id="survival-problems"' not in html
    assert client.get("/studies/SURV/survival.svg").status_code == 200


def test_the_report_pdf(cohort, client, login_as):
    login_as("data_manager", study="SURV", username="dm1")
    response = client.get("/studies/SURV/report.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    assert "attachment" in response.headers["Content-Disposition"]


@pytest.mark.parametrize(("language", "title", "axis"), [
    ("zh", "研究报告", "自 randomization 起的月数"),
    ("fr", "Rapport d'étude", "Mois depuis randomization"),
    (None, "Study report", "Months from randomization"),
])
def test_the_report_prints_in_the_language_asked(cohort, app, language, title, axis):
    from ecrf.outputs.pdf.report import study_report_html

    with app.test_request_context():
        html = study_report_html(db.session, cohort, None, with_subjects=True,
                                 generated_by="dm1", language=language)
    assert title in html and axis in html


def test_the_report_refuses_an_unknown_language(cohort, client, login_as):
    login_as("data_manager", study="SURV", username="dm1")
    response = client.get("/studies/SURV/report.pdf?language=klingon")
    assert response.status_code == 400
    assert "cannot be printed in klingon" in response.get_data(as_text=True)


def test_the_report_lists_subjects_for_the_data_manager_only(cohort, app):
    from ecrf.outputs.pdf.report import study_report_html

    with app.test_request_context():
        full = study_report_html(db.session, cohort, None, with_subjects=True,
                                 generated_by="dm1")
        aggregate = study_report_html(db.session, cohort, None, with_subjects=False,
                                      generated_by="sponsor1")
    assert "S01-A3" in full and "Per-subject listing" in full
    assert "S01-A3" not in aggregate and "S01-B3" not in aggregate
    assert "Number at risk" in aggregate and "Data as of" in aggregate


@pytest.mark.parametrize("path", ["/studies/SURV/survival.svg", "/studies/SURV/report.pdf"])
def test_a_site_coordinator_is_refused(cohort, client, login_as, path):
    login_as("coordinator", "S01", study="SURV", username="crc1")
    assert client.get(path).status_code == 403
    assert 'id="survival-panel"' not in client.get("/studies/SURV/dashboard").get_data(
        as_text=True)


def test_a_study_without_survival(app, client, login_as, make_study):
    from tests.safety.safety_setup import load_safety_study

    load_safety_study(make_study)
    login_as("data_manager", study="SAFETY", username="dm2")
    report = client.get("/studies/SAFETY/report.pdf")
    assert report.status_code == 404
    assert "declares no survival endpoint" in report.get_data(as_text=True)
    assert client.get("/studies/SAFETY/survival.svg").status_code == 404
    page = client.get("/studies/SAFETY/dashboard")
    assert page.status_code == 200 and 'id="survival-panel"' not in page.get_data(as_text=True)


# --- the command --------------------------------------------------------------------------------


def test_the_command(cohort, runner, tmp_path):
    shown = runner.invoke(args=["survival", "surv"])
    assert shown.exit_code == 0, shown.output
    assert "6 subject(s) in the analysis" in shown.output
    assert "Arm A" in shown.output and "deaths=1" in shown.output
    assert "data problem: S01-B3: death date 2025-01-15" in shown.output
    out = runner.invoke(args=["survival", "SURV", "--csv", "-"])
    assert out.exit_code == 0 and out.output.startswith("subject,site,arm")
    target = tmp_path / "os.csv"
    wrote = runner.invoke(args=["survival", "SURV", "--csv", str(target)])
    assert wrote.exit_code == 0 and target.read_text().count("\n") == 8
    as_json = runner.invoke(args=["survival", "SURV", "--json"])
    assert json.loads(as_json.output)["summary"][0]["group"] == "Arm A"


def test_the_command_refuses_clearly(app, runner, make_study):
    from tests.safety.safety_setup import load_safety_study

    assert "no study with OID" in runner.invoke(args=["survival", "NOPE"]).output
    load_safety_study(make_study)
    refused = runner.invoke(args=["survival", "SAFETY"])
    assert refused.exit_code != 0 and "no survival endpoint" in refused.output


def test_no_subject_randomised_yet(study, client, login_as):
    result = survival.study_survival(db.session, study, None)
    assert result.subjects == [] and [g.km.n for g in result.groups] == [0]
    login_as("data_manager", study="SURV", username="dm1")
    assert client.get("/studies/SURV/dashboard").status_code == 200
    assert client.get("/studies/SURV/survival.svg").status_code == 200
    assert client.get("/studies/SURV/report.pdf").status_code == 200
