"""The study endpoints on the demo (loaded once for both trials): the data manager reads
the UCMSC-Exo recovery endpoints page (rules, denominators, exact intervals, per-subject
CSV); the data manager and the sponsor open the DEXAML-03 dashboard, see the overall
survival Kaplan-Meier plot with the numbers at risk, and download the study report PDF.
Screenshots and the PDFs go to /tmp/shots-recov/ and /tmp/shots-surv/ for a human to
look at."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from ecrf.core.extensions import db
from tests.browser.endpoints_page import read_the_endpoints_page
from tests.browser.session import sign_in

DEMO_PASSWORD = "Ecrf-demo-2026"
SHOTS = Path("/tmp/shots-surv")
DASHBOARD = "/studies/DEXAML03/dashboard"


def sign_out(page: Page) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()


def look_at_survival(page: Page, name: str) -> str:
    panel = page.locator("#survival-panel")
    expect(panel).to_be_visible()
    expect(panel.get_by_role("heading", name="Overall survival")).to_be_visible()
    plot = panel.locator("img.survival-chart")
    expect(plot).to_be_visible()
    # The SVG really loaded (an <img> whose source failed has no natural width).
    assert plot.evaluate("img => img.complete && img.naturalWidth") > 600
    summary = panel.locator("#survival-summary")
    expect(summary).to_contain_text("Salvage therapy + dexamethasone")
    expect(summary).to_contain_text("Salvage therapy alone")
    expect(summary).to_contain_text("All subjects")
    at_risk = panel.locator("#survival-at-risk")
    expect(at_risk).to_contain_text("Number at risk")
    expect(at_risk.locator("tbody tr")).to_have_count(3)
    panel.scroll_into_view_if_needed()
    SHOTS.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(SHOTS / f"{name}-panel.png"))
    page.screenshot(path=str(SHOTS / f"{name}-dashboard.png"), full_page=True)
    with page.expect_download() as download:
        panel.get_by_role("link", name="Study report (PDF)").click()
    target = SHOTS / f"{name}-report.pdf"
    download.value.save_as(str(target))
    assert target.read_bytes().startswith(b"%PDF")
    return panel.inner_text()


def test_the_demo_endpoints_for_the_data_manager_and_the_sponsor(page: Page, live_server):
    with live_server.app.app_context():
        result = live_server.app.test_cli_runner().invoke(args=["demo"])
        db.session.remove()
    assert result.exit_code == 0, result.output
    page.set_viewport_size({"width": 1280, "height": 1000})

    sign_in(page, "dm.lead", DEMO_PASSWORD)
    read_the_endpoints_page(page)
    page.goto(DASHBOARD + "?role=data_manager")
    look_at_survival(page, "data-manager")
    svg = page.request.get("/studies/DEXAML03/survival.svg")
    assert svg.ok and "Number at risk" in svg.text()
    sign_out(page)

    sign_in(page, "sponsor", DEMO_PASSWORD)
    page.goto(DASHBOARD + "?role=sponsor_viewer")
    text = look_at_survival(page, "sponsor")
    assert "TLS-001" not in text and "PAR-001" not in text  # aggregates only
