"""A site investigator sees a DEXAML-03 subject's status (its label) and the End of
treatment the data asks for, on the subject page and on the dashboard, and follows the
task to the form."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from playwright.sync_api import expect

from ecrf import capture
from ecrf.capture import Submission, enrol_subject, mark_on_study
from ecrf.core import PROJECT_ROOT, Actor, db
from ecrf.studies import get_site, load_folder, require_study

from .test_trials_browser import sign_in, visit

LOADER = Actor(user_id=None, username="test-loader")
SHOTS = "/tmp/shots-status"


def test_investigator_sees_status_and_the_end_of_treatment_task(page, live_server,
                                                               live_user):
    today = dt.date.today()
    with live_server.app.app_context():
        load_folder(db.session, LOADER, PROJECT_ROOT / "forms" / "dexaml03")
        db.session.commit()
    live_user("inv", role="investigator", study="DEXAML03", site="TLS")
    with live_server.app.app_context():
        study = require_study(db.session, "DEXAML03")
        subject = enrol_subject(db.session, LOADER, study, get_site(db.session, "TLS"),
                                "TLS-201", today - dt.timedelta(days=150))
        subject.arm = "DEX"
        mark_on_study(db.session, LOADER, subject, "randomized to DEX")
        capture.open_event(db.session, LOADER, subject, "HSCT_LOG", 1, None)
        capture.save_form(db.session, LOADER, subject, "HSCT_LOG", 1, "HSCT",
                          Submission(values={("HSCT_MAIN", 1, "HSCTDT"):
                                             (today - dt.timedelta(days=20)).isoformat()}),
                          base_version=None, complete=False)
        db.session.commit()
        db.session.remove()
    sign_in(page, "inv")

    visit(page, "/studies/DEXAML03/subjects/TLS-201")
    status = page.locator("dt", has_text="Status").locator("xpath=following-sibling::dd[1]")
    expect(status).to_have_text("On study")
    tasks = page.get_by_role("region", name="To do")
    expect(tasks.get_by_role("link", name="Enter End of treatment")).to_be_visible()
    expect(tasks.get_by_text("Overdue")).to_be_visible()
    expect(tasks.get_by_text("Its date will plan: Follow-up, years 1-2")).to_be_visible()
    page.screenshot(path=f"{SHOTS}/subject-task.png", full_page=True)

    visit(page, "/studies/DEXAML03/dashboard?role=investigator")
    panel = page.get_by_role("region", name="Entries the data asks for")
    link = panel.get_by_role("link", name="TLS-201 · Enter End of treatment")
    expect(link).to_be_visible()
    page.screenshot(path=f"{SHOTS}/dashboard-task.png", full_page=True)
    with page.expect_navigation():
        link.click()
    # The log is not started yet: its page opens, to start it and enter the form.
    assert "/events/EOT_LOG/1" in urlsplit(page.url).path
    page.screenshot(path=f"{SHOTS}/task-followed.png", full_page=True)
