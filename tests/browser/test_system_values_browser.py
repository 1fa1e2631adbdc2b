"""What a coordinator and a data manager see of values the system wrote (DEXAML-03 as in
forms/): the randomization number read-only with its mark, and a stratification factor
corrected on its own page while the allocation stays."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from playwright.sync_api import expect

from ecrf.allocation import randomization
from ecrf.core import PROJECT_ROOT, db
from ecrf.studies import load_folder, require_study
from tests.allocation.test_randomization import ACTOR, add_subject, record, site_today
from tests.browser.session import sign_in

SHOTS = Path("/tmp/shots-sysval")
BASE = "/studies/DEXAML03/subjects/TLS-001"


def test_the_coordinator_sees_the_randomization_number_set_by_the_system(
        page, live_server, live_user):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with live_server.app.app_context():
        load_folder(db.session, ACTOR, PROJECT_ROOT / "forms" / "dexaml03")
        db.session.commit()
    live_user("crc", role="coordinator", study="DEXAML03", site="TLS")
    live_user("dm", role="data_manager", study="DEXAML03")
    with live_server.app.app_context():
        study = require_study(db.session, "DEXAML03")
        randomization.generate(db.session, ACTOR, study, seed="42", per_stratum=8)
        subject = add_subject(study, "TLS-001", site="TLS")
        yesterday = site_today("TLS") - dt.timedelta(days=1)
        record(subject, "SCREEN", "CONSENT", {"CONSDT": yesterday})
        record(subject, "SCREEN", "ELIG", {"ELIGIBLE": "Y"})
        record(subject, "SCREEN", "AMLHIST", {"DISSTAT": "RELAPSE"})
        record(subject, "SCREEN", "SALVAGE", {"SALVTYPE": "INTENSIVE"}, complete=False)
        randomization.randomize(db.session, ACTOR, subject)
        number = db.session.execute(db.text(
            "SELECT value FROM item_value WHERE item_oid = 'RANDNO'")).scalar()
        db.session.commit()
        db.session.remove()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    sign_in(page, "crc")
    page.goto(f"{BASE}/events/SCREEN/1/forms/RAND")
    field = page.locator("#wrap-RAND_MAIN-1-RANDNO")
    expect(field).to_contain_text("Randomisation number")
    expect(field.get_by_text("set by the system")).to_be_visible()
    expect(field.locator("output")).to_have_text(number)
    expect(page.locator("input[name='RAND_MAIN-1-RANDNO']")).to_have_count(0)
    expect(page.locator("#wrap-RAND_MAIN-1-RANDDT").get_by_text("set by the system")) \
        .to_be_visible()
    page.screenshot(path=str(SHOTS / "rand-form-coordinator.png"), full_page=True)

    page.context.clear_cookies()
    sign_in(page, "dm")
    page.goto(f"{BASE}/randomization/strata")
    form = page.locator("#correct-salvage")
    form.get_by_label("Correct level").select_option("AZA")
    form.get_by_label("Reason for the correction").fill("Source shows azacitidine")
    with page.expect_navigation():
        form.get_by_role("button").click()
    expect(page.get_by_text("The stratification factor was corrected.")).to_be_visible()
    table = page.locator("#strata")
    expect(table).to_contain_text("Intensive chemotherapy")
    expect(table).to_contain_text("Azacitidine")
    expect(table.get_by_text("mis-stratified")).to_be_visible()
    page.screenshot(path=str(SHOTS / "strata-data-manager.png"), full_page=True)
    assert problems == []
