"""The UCMSC-Exo recovery endpoints page as the data manager reads it: the rule of every
endpoint, n, events and the exact interval beside each percentage, Kaplan-Meier medians,
and the per-subject CSV link. A screenshot of the page is kept in /tmp/shots-recov/."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

SHOTS = Path("/tmp/shots-recov")


def read_the_endpoints_page(page: Page) -> None:
    """On the demo, signed in as the data manager."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
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
