"""A data manager sees on the DEXAML-03 study page where the study's first randomization
comes from (date, subject, form and item) and the study end it gives."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from playwright.sync_api import expect

from ecrf.allocation import randomization
from ecrf.core import PROJECT_ROOT, db
from ecrf.studies import load_folder, require_study
from tests.allocation.test_randomization import ACTOR, add_subject, record, site_today
from tests.browser.session import sign_in

SHOTS = Path("/tmp/shots-sched")


def test_the_data_manager_sees_the_first_randomization_and_the_study_end(
        page, live_server, live_user):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with live_server.app.app_context():
        load_folder(db.session, ACTOR, PROJECT_ROOT / "forms" / "dexaml03")
        db.session.commit()
    live_user("crc", role="coordinator", study="DEXAML03", site="TLS")  # links site TLS
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
        today = site_today("TLS")
        db.session.commit()
        db.session.remove()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    sign_in(page, "dm")
    page.goto("/studies/DEXAML03")
    section = page.locator("#study-dates")
    expect(section.get_by_role("heading", name="Study-wide dates")).to_be_visible()
    first = section.locator("[data-first='randomization']")
    expect(first).to_contain_text(today.isoformat())
    expect(first.get_by_role("link", name="TLS-001")).to_be_visible()
    expect(first).to_contain_text("Randomisation form")
    expect(first).to_contain_text("Date of randomisation")
    end = today.replace(year=today.year + 5) if (today.month, today.day) != (2, 29) \
        else dt.date(today.year + 5, 2, 28)
    expect(section.locator("[data-study-end]")).to_contain_text(end.isoformat())
    expect(section.locator("[data-study-end] code")).to_contain_text(
        "add_months(study.first.randomization, 60)")
    page.screenshot(path=str(SHOTS / "study-page-first-randomisation.png"), full_page=True)
    first.get_by_role("link", name="TLS-001").click()
    expect(page).to_have_url(f"{live_server.url}/studies/DEXAML03/subjects/TLS-001")
    assert problems == []
