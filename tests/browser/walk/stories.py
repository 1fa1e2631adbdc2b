"""The two seed trials' walks: what happens to their subjects, step by step.

UCMSC-Exo: WUH-101 is enrolled 420 days ago, so the whole year after the infusion lies in
the past and every visit can be entered on its planned day: screening, a dose level from
the escalation, consolidation chemotherapy, the infusion, day 1-42 monitoring (the counts
pasted into the grid), the DLT assessment, the day-28 visit and the 3, 6 and 12-month
follow-ups; an AE and an SAE, medications, a deviation; death after the 12-month visit and
the end of study.

DEXAML-03: randomization writes today's date, so each subject is screened in the four
weeks before today and treated from today. TLS-101 takes the intensive branch (induction,
response, a consolidation cycle), receives a transplant and dies; TLS-102 takes the
azacitidine branch (cycle 1, cycle 2, response after cycle 3) and withdraws consent.
"""

from __future__ import annotations

import datetime as dt
import re
import time

from playwright.sync_api import expect

from tests.browser.walk.flow import Walk, casebook_text, odm_text
from tests.browser.walk.pages import SubjectPages, WalkError

AE_TERM = "Oral mucositis"
SAE_TERM = "Febrile neutropenia"
# The AE log's rows: the AE, the SAE, and an AE entered twice (removed, with the reason).
SAE_ROW = {
    "AESER": {"rows": ["N", "Y", "N"]},
    "AESDTH": {"rows": [None, "N", None]},
    "AESLIFE": {"rows": [None, "N", None]},
    "AESHOSP": {"rows": [None, "Y", None]},
    "AESDISAB": {"rows": [None, "N", None]},
    "AESCONG": {"rows": [None, "N", None]},
    "AESMIE": {"rows": [None, "N", None]},
}

# Every repeating group of each study: a row added, a saved value changed (with the reason)
# and the last row removed (with the reason), in one visit of the form and one save:
# (event, form, group, item, new value). A group of the study missing here fails the walk
# unless NOT_WALKED says why.
ROW_EDITS = {
    "UCMSCEXO": [
        ("SCREEN", "MH", "MH_LINE", "MHTERM", "Arterial hypertension"),
        ("HEMOBS", "COUNTS", "CNT_DAY", "HGB", "101"),
        ("HEMOBS", "FN", "FN_LINE", "FNTEMP", "39.1"),
        ("HEMOBS", "INFECT", "INFECT_LINE", "INFSITE", "LUNG"),
        ("HEMOBS", "BLEED", "BLEED_LINE", "BLGRADE", "2"),
        ("HEMOBS", "ANTIINF", "ANTIINF_LINE", "AITRT", "Meropenem 1 g every 8 hours"),
        ("AE_LOG", "AE", "AE_LINE", "AETOXGR", "1"),
        ("CM_LOG", "CM", "CM_LINE", "CMDOSE", "16.00"),
        ("DV_LOG", "DV", "DV_LINE", "DVTERM", "Visit performed outside its window"),
    ],
    "DEXAML03": [
        ("SCREEN", "MH", "MH_LINE", "MHTERM", "Type 2 diabetes mellitus"),
        ("DEXTRT", "DEXADM", "DEX_LINE", "DEXDOSE", "12.0"),
        ("AE_LOG", "AE", "AE_LINE", "AETOXGR", "1"),
        ("CM_LOG", "CM", "CM_LINE", "CMDOSE", "16.00"),
        ("DV_LOG", "DV", "DV_LINE", "DVTERM", "Response assessment outside its window"),
    ],
}
NOT_WALKED = {  # group -> why the walk cannot have a row of it
    "UCMSCEXO": {
        "DLT_LINE": "WUH-101 has no dose-limiting toxicity (dose level 1, no AE related to "
                    "UCMSC-Exo): the DLT assessment is completed with no row",
    },
    "DEXAML03": {},
}


def _days(start: dt.date, n: int) -> dt.date:
    return start + dt.timedelta(days=n)


def edit_rows(walk: Walk, key: str, *forms: str) -> None:
    """The rows of these forms (each completed with two rows or more): one edited, the last
    removed, as ROW_EDITS says."""
    done = set()
    for event_oid, form_oid, group, item_oid, value in ROW_EDITS[walk.study_oid]:
        if form_oid not in forms:
            continue
        if walk._definition().form(form_oid).group(group).is_grid:
            walk.edit_and_remove_grid_line(key, event_oid, form_oid, group, item_oid, value)
        else:
            walk.edit_and_remove_rows(key, event_oid, form_oid, group, item_oid, value)
        done.add(form_oid)
    assert done == set(forms), f"not in ROW_EDITS: {set(forms) - done}"


# --- UCMSC-Exo ---------------------------------------------------------------------------


def counts_block(day1: dt.date, days: int = 42) -> tuple[list[list[str]], str]:
    """Daily counts after consolidation: aplasia from day 8, recovery by day 28.

    Columns as the grid shows them: date, WBC, ANC, Hb, platelets, Tmax, red cells
    transfused (Y/N), units, platelets transfused (Y/N), units.
    """
    rows = []
    for n in range(days):
        nadir = 7 <= n <= 24
        wbc = "0.40" if nadir else f"{3.5 + (n % 5) * 0.1:.2f}"
        anc = "0.10" if nadir else f"{1.6 + (n % 4) * 0.1:.2f}"
        hgb = str(78 if nadir else 95 + n % 9)
        plt = str(18 if nadir else 120 + 3 * n)
        rows.append([_days(day1, n).isoformat(), wbc, anc, hgb, plt, "36.8",
                     "N", "", "N", ""])
    rows[12][1:3] = ["0.37", "0.08"]  # a value the export and the casebook must show
    return rows, "\n".join("\t".join(r) for r in rows)


def walk_ucmscexo(walk: Walk) -> None:
    key = "WUH-101"
    today = walk.today()
    enrolled = today - dt.timedelta(days=420)
    subject = walk.enrol(key, enrolled)

    # Screening, then the dose level the escalation board proposes.
    walk.visit(key, "SCREEN", on=enrolled, skip=("DOSELVL",), forms={
        "MH": {"rows": 2, "MHOTHER": "Y",
               "MHTERM": {"rows": ["Hypertension", "Appendicectomy"]},
               "MHSTDTC": {"rows": ["2015-06", "1998"]},
               "MHONGO": {"rows": ["Y", "N"]}, "MHENDTC": {"rows": [None, "1998"]}},
    })
    edit_rows(walk, key, "MH")
    board = walk.role("dm").visit(f"/studies/{walk.study_oid}/escalation")
    expect(board.locator("#proposal")).to_be_visible()
    crc = walk.role("crc")
    subject.open()
    crc.submit(crc.page.get_by_role("link", name=walk.t("Assign dose level")))
    crc.submit(crc.page.get_by_role("button", name=walk.t("Assign the open dose level")))
    expect(crc.page.locator("#result")).to_contain_text("1")
    walk.visit(key, "SCREEN", on=enrolled, skip=tuple(
        f for f in walk.event_forms("SCREEN") if f != "DOSELVL"))

    walk.visit(key, "CHEMO_D1", on=_days(enrolled, 3))
    day1 = _days(enrolled, 3)
    # The protocol dose of level 1; the level itself is written by the system.
    walk.visit(key, "INFUSION", on=_days(day1, 6), forms={"INF": {"DOSEKG": "1.00"}})

    # Day 1 to day 42: counts pasted into the grid, one episode of each kind.
    hemobs = walk.visit(key, "HEMOBS", on=_days(day1, 41), skip=("COUNTS",), forms={
        "FN": {"rows": 2, "FNANY": "Y", "FNSTDT": _days(day1, 12).isoformat(),
               "FNANC": "0.08", "FNTEMP": "38.9", "FNONGO": "N",
               "FNENDT": _days(day1, 15).isoformat()},
        "INFECT": {"rows": 2, "INFANY": "Y", "INFSTDT": _days(day1, 13).isoformat(),
                   "INFSITE": "BLOOD",
                   "INFONGO": "N", "INFENDT": _days(day1, 20).isoformat()},
        "BLEED": {"rows": 2, "BLANY": "Y", "BLSTDT": _days(day1, 14).isoformat(),
                  "BLGRADE": "1", "BLONGO": "N", "BLENDT": _days(day1, 15).isoformat()},
        "ANTIINF": {"rows": 2, "AIANY": "Y",
                    "AISTDT": {"rows": [_days(day1, 12).isoformat(),
                                        _days(day1, 13).isoformat()]},
                    "AITRT": {"rows": ["Meropenem", "Vancomycin"]}, "AIONGO": "N",
                    "AIENDT": {"rows": [_days(day1, 19).isoformat(),
                                        _days(day1, 18).isoformat()]}},
    })
    fill_counts_grid(walk, key, hemobs.event_oid, day1)
    edit_rows(walk, key, "COUNTS", "FN", "INFECT", "BLEED", "ANTIINF")

    walk.visit(key, "DLT_EVAL", on=_days(day1, 6 + 14))
    walk.visit(key, "D28", on=_days(day1, 6 + 28))
    for event_oid in ("FU_M3", "FU_M6", "FU_M12"):
        walk.visit(key, event_oid)

    # Logs: an AE and an SAE, medications, a deviation (a row of each edited, one removed).
    ae_day = _days(day1, 12)
    walk.log(key, "AE_LOG", rows=3, day=ae_day, overrides={
        "AETERM": {"rows": [AE_TERM, SAE_TERM, AE_TERM]},
        "AESTDTC": ae_day.isoformat(), "AEONGO": "N",
        "AEENDTC": {"rows": [_days(ae_day, 6).isoformat(), _days(ae_day, 3).isoformat(),
                             _days(ae_day, 6).isoformat()]},
        "AETOXGR": {"rows": ["2", "3", "2"]}, **SAE_ROW,
        "AESAWDTC": {"rows": [None, f"{ae_day.isoformat()}T08:00", None]},
        "AESRPDTC": {"rows": [None, f"{ae_day.isoformat()}T16:00", None]},
        "AERELEXO": "unlikely", "AERELCHM": "probable",
        "AEEXPECT": {"rows": [None, "EXPECTED", None]},
        "AEOUT": "RECOVERED/RESOLVED", "AEACN": "NOT APPLICABLE",
    })
    walk.log(key, "CM_LOG", rows=2, day=day1)
    walk.log(key, "DV_LOG", rows=2, day=_days(day1, 30))
    edit_rows(walk, key, "AE", "CM", "DV")

    check_sae_clock(walk, key, SAE_TERM)

    # Review: a correction, a query answered and closed, SDV.
    walk.correct(key, "SCREEN", "VS", "VS_MAIN", "WEIGHT", "71.5",
                 "Weight re-read from the nursing chart.")
    walk.query_round(key, "INFUSION", "INF", "LOTNO",
                     "Please confirm the lot number against the pharmacy log.",
                     "Lot number checked against the pharmacy dispensing log.")
    walk.sdv(key, "INFUSION", "INF")

    # Death after the 12-month visit, then the end of study.
    death = today - dt.timedelta(days=20)
    walk.log(key, "DEATH_LOG", day=death, overrides={
        "DTHDT": death.isoformat(), "DTHCAUSE": "PROGRESSION", "DTHAE": "N"})
    walk.log(key, "EOS_LOG", day=death, overrides={
        "EOSDT": death.isoformat(), "EOSREAS": "DEATH", "INFUSED": "Y"})

    walk.sign_casebook(key)
    walk.lock_subject(key)
    walk.assert_every_form_filled()
    walk.assert_every_repeating_group_walked(NOT_WALKED[walk.study_oid])
    check_outputs(walk, key, [AE_TERM, "0.37", day1.isoformat()])
    check_subject(walk, key, status="Died", events=["FU_M12"])


def fill_counts_grid(walk: Walk, key: str, event_oid: str, day1: dt.date) -> None:
    """Paste 42 days of counts into the grid's first cell, then save and complete."""
    crc = walk.role("crc")
    event = SubjectPages(crc, key).open_event(event_oid)
    started = time.perf_counter()
    form = event.open_form("COUNTS")
    walk.timings.add("counts grid load", time.perf_counter() - started)
    rows, block = counts_block(day1)
    grid = form.page.locator("table.entry-grid")
    if not grid.count():
        raise WalkError("COUNTS has no grid to paste into (branch grid)")
    first = grid.locator("tbody tr").first.locator(".g-in").first
    first.focus()
    first.evaluate(
        """(cell, text) => {
             const data = new DataTransfer();
             data.setData('text/plain', text);
             cell.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data,
                                                             bubbles: true, cancelable: true}));
           }""", block)
    lines = grid.locator("tbody tr")
    expect(lines).to_have_count(len(rows))
    expect(lines.nth(len(rows) - 1).locator(".g-in").first).to_have_value(rows[-1][0])
    expect(lines.nth(12).locator(".g-in").nth(2)).to_have_value(rows[12][2])
    planned = walk.oracle(key).plan(event_oid, 1, "COUNTS", _days(day1, 41), rows=0)
    form.fill(planned, skip_groups=("CNT_DAY",))
    started = time.perf_counter()
    form.complete()
    walk.timings.add("counts grid save", time.perf_counter() - started)
    walk.filled.add("COUNTS")


# --- DEXAML-03 ---------------------------------------------------------------------------


def walk_dexaml03(walk: Walk) -> None:
    real = walk.clock.real_today()
    arms = {}

    # TLS-101, intensive salvage: enrolled 400 days ago.
    key = "TLS-101"
    walk.clock.travel(real - dt.timedelta(days=400))
    enrolled = walk.today()
    walk.enrol(key, enrolled)
    walk.advance(_days(enrolled, 3))
    walk.visit(key, "SCREEN", on=enrolled, skip=("RAND",), forms={
        "MH": {"rows": 2, "MHOTHER": "Y",
               "MHTERM": {"rows": ["Type 2 diabetes", "Cholecystectomy"]},
               "MHSTDTC": {"rows": ["2012", "2009-05"]},
               "MHONGO": {"rows": ["Y", "N"]}, "MHENDTC": {"rows": [None, "2009-05"]}},
    })
    edit_rows(walk, key, "MH")
    arms[key] = walk.randomize(key)
    # The randomization form: what the system wrote is checked, not typed over.
    walk.visit(key, "SCREEN", on=enrolled, forms={"RAND": {"keep": True}},
               skip=tuple(f for f in walk.event_forms("SCREEN") if f != "RAND"))
    walk.visit(key, "INDUCT", lag=7)
    walk.visit(key, "RESP_IND", lag=3)
    walk.visit(key, "CONS", 1, lag=5)
    dexamethasone(walk, key, arms[key])
    ae_day = _days(enrolled, 12)
    walk.log(key, "AE_LOG", rows=3, overrides={
        "AETERM": {"rows": [AE_TERM, SAE_TERM, AE_TERM]},
        "AESTDTC": ae_day.isoformat(), "AEONGO": "N",
        "AEENDTC": {"rows": [_days(ae_day, 6).isoformat(), _days(ae_day, 4).isoformat(),
                             _days(ae_day, 6).isoformat()]},
        "AETOXGR": {"rows": ["2", "3", "2"]}, **SAE_ROW,
        "AESAWDTC": {"rows": [None, f"{ae_day.isoformat()}T09:00", None]},
        "AESRPDTC": {"rows": [None, f"{ae_day.isoformat()}T17:30", None]},
        "AEEXPECT": {"rows": [None, "EXPECTED", None]}, "AEOUT": "RECOVERED/RESOLVED",
    })
    check_sae_clock(walk, key, SAE_TERM)
    walk.log(key, "CM_LOG", rows=2)
    walk.log(key, "DV_LOG", rows=2)
    edit_rows(walk, key, "AE", "CM", "DV")
    hsct = real - dt.timedelta(days=300)
    walk.log(key, "HSCT_LOG", day=_days(hsct, 5), overrides={
        "HSCTDT": hsct.isoformat(), "HSCTDIS": "CR", "ENGRAFT": "Y",
        "ENGDT": _days(hsct, 18).isoformat()})
    walk.log(key, "EOT_LOG", day=_days(hsct, 6), overrides={
        "EOTDT": _days(hsct, -1).isoformat(), "EOTREAS": "HSCT", "NCYCLES": "2",
        "BESTRESP": "CR"})
    walk.visit(key, "FU_Y12", 1)
    death = real - dt.timedelta(days=180)
    walk.log(key, "DEATH_LOG", day=death, overrides={
        "DTHDT": death.isoformat(), "DTHCAUSE": "INFECTION", "DTHAE": "N"})
    walk.log(key, "EOS_LOG", day=death, overrides={
        "EOSDT": death.isoformat(), "EOSREAS": "DEATH"})

    # TLS-102, azacitidine: enrolled 150 days ago, withdraws after the cycle 3 response.
    key2 = "TLS-102"
    walk.advance(real - dt.timedelta(days=150))
    enrolled2 = walk.today()
    walk.enrol(key2, enrolled2)
    walk.oracle(key2, index=1)
    walk.advance(_days(enrolled2, 3))
    walk.visit(key2, "SCREEN", on=enrolled2, skip=("RAND",))
    arms[key2] = walk.randomize(key2)
    walk.visit(key2, "SCREEN", on=enrolled2, forms={"RAND": {"keep": True}},
               skip=tuple(f for f in walk.event_forms("SCREEN") if f != "RAND"))
    walk.visit(key2, "AZA_C1", lag=8)
    walk.visit(key2, "AZA_CYC", 1, lag=7)
    walk.visit(key2, "AZA_CYC", 2, lag=7)
    walk.visit(key2, "RESP_AZA", lag=2)
    dexamethasone(walk, key2, arms[key2])
    assert any(map(is_dex, arms.values())), f"no subject in the dexamethasone arm: {arms}"
    withdrawn = real - dt.timedelta(days=30)
    walk.log(key2, "EOS_LOG", day=withdrawn, overrides={
        "EOSDT": withdrawn.isoformat(), "EOSREAS": "WITHDRAWAL",
        "WDDT": withdrawn.isoformat(), "LKADT": withdrawn.isoformat()})

    # Today: review, signature, lock, outputs.
    walk.clock.back_to_now()
    walk.correct(key, "SCREEN", "VS", "VS_MAIN", "WEIGHT", "79.5",
                 "Weight re-read from the nursing chart.")
    walk.query_round(key, "INDUCT", "IND", "CYCSTDT",
                     "Please confirm day 1 of induction against the chemotherapy chart.",
                     "Day 1 confirmed on the chemotherapy administration chart.")
    walk.sdv(key, "INDUCT", "IND")
    for subject in (key, key2):
        walk.sign_casebook(subject)
        walk.lock_subject(subject)
    walk.assert_every_form_filled()
    walk.assert_every_repeating_group_walked(NOT_WALKED[walk.study_oid])
    check_outputs(walk, key, [AE_TERM, "Type 2 diabetes mellitus", hsct.isoformat()])
    check_subject(walk, key, status="Died", events=["RESP_IND", "CONS", "FU_Y12"])
    check_subject(walk, key2, status="Withdrawn from study", events=["AZA_CYC", "RESP_AZA"])


def is_dex(arm: str) -> bool:
    """The arm as the randomization page shows it: its code or its name."""
    return arm == "DEX" or "dexamethasone" in arm.lower()


def dexamethasone(walk: Walk, key: str, arm: str) -> None:
    """The dexamethasone log, open to the DEX arm only."""
    pages = SubjectPages(walk.role("crc"), key)
    pages.open()
    logs = pages.page.locator("section[aria-labelledby='logs-title']")
    name = walk.event_name("DEXTRT")
    if not is_dex(arm):
        expect(logs.get_by_role("link", name=name, exact=True)).to_have_count(0)
        return
    walk.log(key, "DEXTRT", rows=2)
    edit_rows(walk, key, "DEXADM")


# --- checks shared by both trials -------------------------------------------------------


def check_sae_clock(walk: Walk, key: str, term: str) -> None:
    """The SAE's 24-hour clock: on the subject's safety page (its AE row) and subject page."""
    inv = walk.role("inv")
    page = inv.visit(f"/studies/{walk.study_oid}/subjects/{key}/safety")
    row = page.locator("#ae-rows tbody tr").filter(has_text=term)
    expect(row).to_contain_text(re.compile(
        walk.t.regex("aware %(when)s") + ".*" + walk.t.regex("due %(when)s")))
    clocks = SubjectPages(inv, key).open().locator(".sae-clocks")
    expect(clocks).to_contain_text(walk.t("SAE reporting (24 hours from awareness)"))
    expect(clocks).to_contain_text(term)


def check_subject(walk: Walk, key: str, *, status: str, events: list[str]) -> None:
    """The subject page: its status (English msgid) and these events (OIDs) on the schedule,
    in the walk's language."""
    pages = SubjectPages(walk.role("mon"), key)
    page = pages.open()
    schedule = page.locator("table.schedule-table")
    for event_oid in events:
        name = walk.event_name(event_oid)
        expect(schedule.get_by_role("rowheader", name=name, exact=True).first).to_be_visible()
    status = walk.t(status)
    assert pages.status() == status, f"{key}: status {pages.status()!r}, expected {status!r}"


def check_outputs(walk: Walk, key: str, values: list[str]) -> None:
    odm = odm_text(walk.export("odm"))
    assert key in odm
    for value in values:
        assert value in odm, f"{value!r} is not in the ODM export"
    text = casebook_text(walk.export("casebooks"), key)
    flat = re.sub(r"\s+", " ", text)
    for value in values:
        assert value in flat, f"{value!r} is not in the casebook of {key}"


STORIES = {"UCMSCEXO": walk_ucmscexo, "DEXAML03": walk_dexaml03}
