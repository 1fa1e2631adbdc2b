"""Laboratory results in Chromium: a coordinator finds the import page in the study menu,
previews a FHIR bundle, stores it, then previews a laboratory CSV whose day-1 neutrophils
differ from what is stored and replaces that one value by ticking it."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy import select

from ecrf.capture.models import ItemValue
from ecrf.core.extensions import db
from tests.browser.session import sign_in
from tests.capture.grid_setup import counts_subject, load_ucmsc
from tests.esource.lab_setup import KEY, TODAY

FILES = Path(__file__).resolve().parents[1] / "esource" / "files"


def stored() -> dict[tuple[int, str], str]:
    return {(r, i): v for r, i, v in db.session.execute(
        select(ItemValue.row, ItemValue.item_oid, ItemValue.value)
        .where(ItemValue.group_oid == "CNT_DAY")) if v is not None}


def test_preview_store_and_replace_one_value(page, live_server, live_user, tmp_path):
    with live_server.app.app_context():
        load_ucmsc(db.session)
        live_user("clara", role="coordinator", study="UCMSCEXO", site="WUH")
        counts_subject(db.session, KEY, today=TODAY)
        db.session.remove()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    sign_in(page, "clara")
    page.goto("/studies/UCMSCEXO/dashboard")
    page.get_by_role("button", name="Study").or_(page.get_by_role("link", name="Study")).click()
    page.get_by_role("link", name="Import laboratory results").click()
    expect(page.get_by_role("heading", name="Import laboratory results")).to_be_visible()

    page.get_by_label("Laboratory file").set_input_files(str(FILES / "counts.fhir.json"))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#lab-summary")).to_contain_text(
        "6 result(s): 5 new, 0 unchanged, 0 differ from entry, 1 skipped, 0 cannot be "
        "imported.")
    expect(page.locator("#lab-lines tbody tr")).to_have_count(5)
    page.get_by_role("button", name="Store these results").click()
    expect(page.get_by_text("5 value(s) from counts.fhir.json stored in 1 form(s)")
           ).to_be_visible()
    with live_server.app.app_context():
        values = stored()
        db.session.remove()
    assert (values[(1, "HGB")], values[(1, "PLT")], values[(2, "ANC")]) == ("104", "152", "0.80")

    # The laboratory corrected day 1's neutrophils: 1.45 becomes 1.40 in its CSV.
    corrected = tmp_path / "counts-corrected.csv"
    corrected.write_bytes((FILES / "counts.csv").read_bytes().replace(b";751-8;1,45;",
                                                                      b";751-8;1,40;"))
    page.get_by_label("Laboratory file").set_input_files(str(corrected))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#lab-summary")).to_contain_text(
        "10 result(s): 3 new, 4 unchanged, 1 differ from entry, 2 skipped")
    conflict = page.locator("#lab-lines tbody tr[data-state=conflict]")
    expect(conflict).to_have_count(1)
    expect(conflict).to_contain_text("1.45")
    conflict.get_by_label("Replace the entered value").check()
    page.get_by_role("button", name="Store these results").click()
    expect(page.get_by_text("4 value(s) from counts-corrected.csv stored in 1 form(s); 0 "
                            "entered value(s) kept.")).to_be_visible()
    with live_server.app.app_context():
        values = stored()
        db.session.remove()
    assert (values[(1, "ANC")], values[(2, "HGB")], values[(2, "PLT")]) == ("1.40", "98", "98")
    assert problems == []
