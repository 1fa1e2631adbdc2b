"""The UCMSC-Exo day-1-to-42 counts as a grid in Chromium: a coordinator pastes 42 days
copied from a spreadsheet into the first cell, saves them in one go, finds the one
out-of-range value marked in its cell, fixes it, and moves between cells with the keyboard;
pasting past the last line adds lines. Page load and save timings are printed."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from ecrf.capture.models import GroupRow, ItemValue
from ecrf.core.extensions import db
from tests.browser.session import sign_in
from tests.capture.grid_setup import COUNTS_PATH, counts_subject, day1_of, load_ucmsc

KEY = "WUH-101"
COUNTS = COUNTS_PATH.format(key=KEY)
SHOTS = Path("/tmp/shots-grid")
G = "CNT_DAY"
BAD_DAY = 20


def block() -> str:
    """42 lines of WBC, ANC, Hb, platelets and temperature, as a spreadsheet copies them."""
    lines = []
    for d in range(1, 43):
        anc = "250" if d == BAD_DAY else f"{0.5 + d / 20:.2f}"
        lines.append("\t".join((f"{1 + d / 10:.2f}", anc, str(80 + d), str(20 + 3 * d),
                                "36.8")))
    return "\r\n".join(lines) + "\r\n"


PASTE = """([name, text]) => {
  const el = document.getElementById(name);
  el.focus();
  const data = new DataTransfer();
  data.setData("text/plain", text);
  el.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true,
                                                cancelable: true}));
}"""

NAVIGATION = """() => {
  const n = performance.getEntriesByType("navigation")[0];
  return {response: n.responseEnd - n.requestStart, ready: n.domContentLoadedEventEnd,
          load: n.loadEventEnd, bytes: n.transferSize,
          height: document.documentElement.scrollHeight,
          inputs: document.querySelectorAll("input, select, textarea").length};
}"""


def save(page: Page) -> tuple[float, dict]:
    began = time.perf_counter()
    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).last.click()
    page.wait_for_load_state("load")
    return (time.perf_counter() - began) * 1000, page.evaluate(NAVIGATION)


def test_paste_42_days_save_once_fix_the_error_in_its_cell(page, live_server, live_user):
    SHOTS.mkdir(exist_ok=True)
    with live_server.app.app_context():
        load_ucmsc(db.session)
        live_user("clara", role="coordinator", study="UCMSCEXO", site="WUH")
        counts_subject(db.session, KEY)
        db.session.remove()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    sign_in(page, "clara")

    page.goto(COUNTS)
    opened = page.evaluate(NAVIGATION)
    page.screenshot(path=str(SHOTS / "1-opened.png"))
    rows = page.locator(f"#grid-{G} tbody tr")
    expect(rows).to_have_count(42)
    expect(page.locator(f"#{G}-42-STUDYDY")).to_have_text("42")

    page.evaluate(PASTE, [f"{G}-1-WBC", block()])
    expect(page.locator(f"#{G}-42-TMAX")).to_have_value("36.8")
    expect(page.locator(f"#{G}-42-PLT")).to_have_value("146")
    expect(page.locator(f"#{G}-{BAD_DAY}-ANC")).to_have_value("250")
    expect(rows).to_have_count(42)  # the block fitted: no line added
    page.screenshot(path=str(SHOTS / "2-pasted.png"))

    first_save, refused = save(page)
    # Nothing saved; the error is in its cell, linked from the list above, entries kept.
    bad = page.locator(f"#{G}-{BAD_DAY}-ANC")
    expect(bad).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#{G}-{BAD_DAY}-ANC-error")).to_be_visible()
    expect(page.locator(f"#error-summary a[href='#wrap-{G}-{BAD_DAY}-ANC']")).to_be_visible()
    expect(page.locator(f"#{G}-41-PLT")).to_have_value("143")
    page.locator(f"#{G}-{BAD_DAY}-ANC-error").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "3-error-in-cell.png"))
    with live_server.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(GroupRow)
                                 .where(GroupRow.group_oid == G)) == 0
        db.session.remove()

    bad.fill("1.50")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    second_save, saved = save(page)
    assert len(posts) == 1 and urlsplit(posts[0]).path == COUNTS  # 42 days, one request
    expect(page.get_by_text("Saved as in progress", exact=False).first).to_be_visible()
    expect(page.locator(f"#{G}-{BAD_DAY}-ANC")).to_have_value("1.50")
    with live_server.app.app_context():
        values = {(r, i): v for r, i, v in db.session.execute(
            select(ItemValue.row, ItemValue.item_oid, ItemValue.value)
            .where(ItemValue.group_oid == G))}
        db.session.remove()
    assert len({r for r, _ in values}) == 42
    assert values[(1, "WBC")] == "1.10" and values[(42, "PLT")] == "146"
    assert values[(BAD_DAY, "ANC")] == "1.50" and values[(42, "STUDYDY")] == "42"
    assert values[(30, "TMAX")] == "36.8"

    # Keyboard: arrows move by line and by cell, Enter moves down, and never submits.
    page.locator(f"#{G}-1-WBC").focus()
    page.keyboard.press("ArrowDown")
    expect(page.locator(f"#{G}-2-WBC")).to_be_focused()
    page.keyboard.press("End")
    page.keyboard.press("ArrowRight")
    expect(page.locator(f"#{G}-2-ANC")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(f"#{G}-3-ANC")).to_be_focused()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    expect(page.locator(f"#{G}-1-ANC")).to_be_focused()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowLeft")
    expect(page.locator(f"#{G}-1-WBC")).to_be_focused()
    history = page.locator(f"#grid-history-{G}")
    expect(history).to_have_text("History of White blood cells, line 1")
    assert history.get_attribute("href").endswith("?group=CNT_DAY&row=1&item=WBC")

    # Pasting past the last line adds dated lines, whose questions show and hide as usual.
    page.evaluate(PASTE, [f"{G}-42-WBC", "2.1\t1.2\t90\t60\t37.0\n2.2\t1.3\t91\t61\t37.1\n"])
    expect(rows).to_have_count(43)
    # line 42 was saved: each changed cell now asks for its reason
    expect(page.locator(f"#reason-{G}-42-WBC")).to_be_visible()
    expect(page.locator(f"#reason-{G}-42-WBC")).to_have_attribute(
        "aria-label", "Reason for changing White blood cells (saved value: 5.20 10^9/L)")
    page.locator(f"#reason-{G}-42-WBC").fill("Day 43 pasted one line too high")
    expect(page.locator(f"#reason-{G}-42-TMAX")).to_have_value("Day 43 pasted one line too high")
    expect(page.locator(f"#{G}-43-WBC")).to_have_value("2.2")
    expect(page.locator(f"#{G}-43-LBDT")).to_have_value(
        (day1_of() + dt.timedelta(days=42)).isoformat())
    assert page.locator(f"input[name='rows-{G}']").input_value().endswith(",42,43")
    expect(page.locator(f"#{G}-43-RBCU")).to_be_disabled()
    page.locator(f"#{G}-43-RBCTX").select_option("Y")
    expect(page.locator(f"#{G}-43-RBCU")).to_be_enabled()
    page.locator(f"#{G}-43-RBCU").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "4-line-added.png"))

    # One reason, given once, goes with every changed cell of line 42; line 43 is new.
    save(page)
    expect(page.get_by_text("Saved as in progress", exact=False).first).to_be_visible()
    with live_server.app.app_context():
        values = {(r, i): v for r, i, v in db.session.execute(
            select(ItemValue.row, ItemValue.item_oid, ItemValue.value)
            .where(ItemValue.group_oid == G, ItemValue.row >= 42))}
        db.session.remove()
    assert values[(42, "WBC")] == "2.1" and values[(42, "TMAX")] == "37.0"
    assert values[(43, "PLT")] == "61" and values[(43, "RBCTX")] == "Y"
    expect(page.locator(f"#grid-{G} tbody tr")).to_have_count(43)
    assert problems == []

    print(f"\nCOUNTS grid in Chromium: open {opened['load']:.0f} ms (server response "
          f"{opened['response']:.0f} ms, {opened['bytes']} bytes, page {opened['height']} px "
          f"high, {opened['inputs']} inputs); 42 days saved: page {saved['height']} px, "
          f"{saved['inputs']} inputs; save with an error "
          f"{first_save:.0f} ms (response {refused['response']:.0f} ms); save of 42 days "
          f"{second_save:.0f} ms click to loaded page (POST + redirect + GET)")
