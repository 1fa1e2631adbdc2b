"""The UCMSC-Exo recovery endpoints page on the demo data, in Chromium, for the data
manager: the rule of every endpoint, n, events and the exact interval beside each
percentage, Kaplan-Meier medians, and the per-subject CSV link. A screenshot of the page is
kept in /tmp/shots-recov/ for a look by eye."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from ecrf.core import Actor, db
from ecrf.demo.loader import DEMO_PASSWORD, load_demo
from tests.browser.session import sign_in

LOADER = Actor(user_id=None, username="test-loader")
SHOTS = Path("/tmp/shots-recov")


def test_the_data_manager_reads_rules_denominators_and_intervals(page: Page, live_server):
    with live_server.app.app_context():
        load_demo(db.session, LOADER, live_server.app.config)
        db.session.commit()
        db.session.remove()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    sign_in(page, "dm.lead", DEMO_PASSWORD)
    response = page.goto("/studies/UCMSCEXO/endpoints")
    assert response is not None and response.status == 200

    rules = page.locator("#rules")
    expect(rules).to_contain_text("ANC >= 0.5 on 3 consecutive measurements, after the nadir")
    expect(rules).to_contain_text("PLT >= 20 on 3 consecutive measurements with no platelet "
                                  "transfusion in the 7 days before any of them")
    summary = page.locator("#summary")
    expect(summary.get_by_role("columnheader", name="95 % CI", exact=True)).to_be_visible()
    expect(summary.get_by_role("columnheader", name="Not evaluable")).to_be_visible()
    # Dose level 1 has 3 subjects with counts, all platelet-transfused: 3/3, 29.2-100.0
    row = summary.locator("tr", has=page.get_by_role("cell", name="platelet transfusion",
                                                     exact=True)).first
    expect(row).to_contain_text("Dose level 1")
    expect(row.locator("td").nth(1)).to_have_text("3")
    expect(row.locator("td").nth(2)).to_have_text("3")
    expect(row.locator("td").nth(4)).to_have_text("29.2–100.0")
    time_row = summary.locator("tr", has=page.get_by_role(
        "cell", name="time to neutrophil recovery", exact=True)).first
    expect(time_row.locator("td").nth(6)).not_to_be_empty()  # the Kaplan-Meier median

    link = page.locator("#subjects-csv")
    expect(link).to_be_visible()
    csv = page.request.get(link.get_attribute("href"))
    assert csv.status == 200
    assert csv.text().startswith("subject_key,site_code,group,endpoint,status,value,day,rule,"
                                 "evaluable,reason")
    assert problems == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "ucmscexo-endpoints.png"), full_page=True)
