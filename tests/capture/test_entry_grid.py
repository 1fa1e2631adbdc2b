"""Grids (layout: grid) through the test client, on the UCMSC-Exo day-1-to-42 counts form:
one table, planned days, 42 days saved in one request, errors and grades in their cells,
reasons for change, line removal and the add-lines buttons."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from ecrf.capture import operations as capture
from ecrf.capture.models import GroupRow, ItemValue
from ecrf.core.extensions import db
from tests.capture.grid_setup import (
    COUNTS_PATH,
    LOADER,
    counts,
    counts_subject,
    day,
    load_ucmsc,
)

KEY = "WUH-001"
COUNTS = COUNTS_PATH.format(key=KEY)
G = "CNT_DAY"


@pytest.fixture
def subject(app, make_study):
    make_study("UCMSCEXO", sites=("WUH",))
    load_ucmsc(db.session)
    return counts_subject(db.session, KEY)


@pytest.fixture
def crc(subject, login_as):
    return login_as("coordinator", site="WUH", study="UCMSCEXO", username="crc1")


def html(response) -> str:
    return response.get_data(as_text=True)



def post(days: dict[int, dict[str, str]], rows=None, action="save", base="", **extra) -> dict:
    data = {"action": action, "base_version": base,
            f"rows-{G}": ",".join(str(r) for r in (rows or sorted(days)))}
    for number, values in days.items():
        for item, value in values.items():
            data[f"{G}-{number}-{item}"] = value
    return {**data, **extra}


def stored(item: str, row: int) -> str | None:
    return db.session.scalar(select(ItemValue.value).where(
        ItemValue.group_oid == G, ItemValue.row == row, ItemValue.item_oid == item))


def live_rows() -> list[int]:
    return sorted(db.session.scalars(select(GroupRow.row).where(
        GroupRow.group_oid == G, GroupRow.removed_at.is_(None))))


def cell(text: str, name: str) -> str:
    """The markup of one cell of the grid (its <td> or row <th>)."""
    match = re.search(rf'<t[dh][^>]*>\s*<div class="grid-wrap" id="wrap-{name}".*?</div></t[dh]>',
                      text, re.S)
    assert match, name
    return match.group(0)


def save_all(client, n=42):
    response = client.post(COUNTS, data=post({d: counts(d) for d in range(1, n + 1)}))
    assert response.status_code == 302, html(response)[:3000]


def test_grid_opens_as_one_table_of_the_planned_days(client, crc):
    text = html(client.get(COUNTS))
    assert text.count('class="table table-sm table-bordered entry-grid') == 1
    assert 'class="card card-body mb-3 entry-row"' not in text  # no stacked cards
    body = text[text.index("<tbody>"):text.index("</tbody>")]
    assert body.count("<tr ") == 42
    assert f'name="rows-{G}" value="{",".join(str(d) for d in range(1, 43))}"' in text
    # A column per item, its label and unit in the header; the study day names the line.
    for label, unit in (("White blood cells", "10^9/L"), ("Haemoglobin", "g/L"),
                        ("Highest body temperature of the day", "°C")):
        assert re.search(rf'<span class="grid-label">{re.escape(label)}.*?</span>\s*'
                         rf'<span class="grid-unit">{re.escape(unit)}</span>', text, re.S)
    first, last = cell(text, f"{G}-1-STUDYDY"), cell(text, f"{G}-42-STUDYDY")
    assert first.startswith('<th scope="row"') and ">1</output>" in first and "<input" not in first
    assert ">42</output>" in last
    assert f'value="{day(1)}"' in cell(text, f"{G}-1-LBDT")
    assert f'value="{day(42)}"' in cell(text, f"{G}-42-LBDT")
    wbc = cell(text, f"{G}-7-WBC")
    assert wbc.count("<input") == 1 and f'name="{G}-7-WBC"' in wbc
    yes_no = cell(text, f"{G}-7-RBCTX")
    assert yes_no.count("<select") == 1 and '<option value="Y">Yes</option>' in yes_no
    # Units asked only after a transfusion stay hidden and are not submitted.
    units = cell(text, f"{G}-7-RBCU")
    assert " hidden>" in units and 'disabled="disabled"' in units
    assert 'value="plan:CNT_DAY"' in text and 'value="lines:CNT_DAY"' in text


def test_42_days_of_counts_are_saved_in_one_request(client, crc):
    save_all(client)
    assert live_rows() == list(range(1, 43))
    assert stored("STUDYDY", 42) == "42" and stored("PLT", 42) == "146"
    assert stored("ANC", 10) == "1.00" and stored("LBDT", 10) == day(10)
    assert db.session.scalar(select(func.count()).select_from(ItemValue).where(
        ItemValue.group_oid == G)) == 42 * 9  # 8 entered + the study day
    text = html(client.get(COUNTS))
    assert f'value="{counts(30)["WBC"]}"' in cell(text, f"{G}-30-WBC")
    assert "data-saved" in cell(text, f"{G}-30-WBC")


def test_planned_days_left_blank_are_not_stored(client, crc):
    days = {d: {"LBDT": day(d)} for d in range(1, 43)}
    days[1] = counts(1)
    days[2] = {**counts(2), "WBC": ""}
    response = client.post(COUNTS, data=post(days))
    assert response.status_code == 302, html(response)[:3000]
    assert live_rows() == [1, 2]
    assert stored("WBC", 2) is None and stored("ANC", 2) == counts(2)["ANC"]


def test_an_error_is_shown_in_its_cell_and_every_entry_stays(client, crc):
    days = {d: counts(d) for d in range(1, 43)}
    days[5]["ANC"] = "250"  # above the hard range
    days[6]["HGB"] = "lots"
    response = client.post(COUNTS, data=post(days))
    assert response.status_code == 422
    text = html(response)
    bad = cell(text, f"{G}-5-ANC")
    assert 'class="grid-has-error"' in bad and 'aria-invalid="true"' in bad
    assert 'value="250"' in bad and f'id="{G}-5-ANC-error"' in bad
    assert f'aria-describedby="{G}-5-ANC-error"' in bad
    assert "grid-has-error" in cell(text, f"{G}-6-HGB")
    summary = text[text.index('id="error-summary"'):text.index("</ul>", text.index('id="error-summary"'))]
    assert f'href="#wrap-{G}-5-ANC"' in summary and f'href="#wrap-{G}-6-HGB"' in summary
    assert f'value="{days[41]["PLT"]}"' in cell(text, f"{G}-41-PLT")
    assert live_rows() == []


def test_grades_and_check_notes_are_shown_in_their_cells(client, crc):
    days = {d: counts(d) for d in range(1, 4)}
    days[2]["ANC"] = "0.30"  # CTCAE grade 4 neutropenia
    days[3].update({"ANC": "0.40", "TMAX": "39.0"})  # febrile neutropenia warning
    response = client.post(COUNTS, data=post(days))
    assert response.status_code == 302, html(response)[:3000]
    text = html(client.get(COUNTS))
    anc = cell(text, f"{G}-2-ANC")
    assert "grid-grade-4" in anc and ">G4</span>" in anc
    assert "grid-has-" not in anc  # a grade alone marks only its badge
    assert re.search(r'title="[^"]*grade 4', anc)
    fever = cell(text, f"{G}-3-TMAX")
    assert 'class="grid-has-note"' in fever and "Fever with neutropenia" in fever
    assert 'grid-flag" aria-hidden="true">!</span>' in fever


def test_changing_a_saved_cell_asks_for_its_reason_in_the_cell(client, crc):
    save_all(client, 3)
    days = {d: counts(d) for d in range(1, 4)}
    days[2]["PLT"] = "99"
    response = client.post(COUNTS, data=post(days, base="1"))
    assert response.status_code == 422
    box = cell(html(response), f"{G}-2-PLT")
    assert f'id="{G}-2-PLT-reasonbox"' in box and f'name="reason-{G}-2-PLT"' in box
    assert f'id="{G}-2-PLT-reasonbox" hidden' not in box and 'aria-label="Reason for changing' in box
    unchanged = cell(html(response), f"{G}-1-PLT")
    assert "reason" not in unchanged and 'data-saved="23 10^9/L"' in unchanged
    response = client.post(COUNTS, data=post(days, base="1",
                                             **{f"reason-{G}-2-PLT": "Transcription error"}))
    assert response.status_code == 302, html(response)[:3000]
    assert stored("PLT", 2) == "99"


def test_a_saved_line_is_removed_with_a_reason(client, crc):
    save_all(client, 3)
    days = {d: counts(d) for d in range(1, 4)}
    response = client.post(COUNTS, data=post(days, base="1", **{f"remove-{G}-2": "1"}))
    assert response.status_code == 422
    assert f'id="remove-{G}-2-error"' in html(response)
    response = client.post(COUNTS, data=post(days, base="1", **{
        f"remove-{G}-2": "1", f"remove_reason-{G}-2": "Duplicate of day 1"}))
    assert response.status_code == 302, html(response)[:3000]
    assert live_rows() == [1, 3]
    text = html(client.get(COUNTS))
    assert "1 removed row" in text and "Duplicate of day 1" in text
    assert 'data-next-row="4"' in text


def test_add_lines_and_the_planned_days_without_javascript(client, crc):
    save_all(client, 10)
    days = {d: counts(d) for d in range(1, 11)}
    response = client.post(COUNTS, data=post(days, base="1", action="lines:CNT_DAY",
                                             **{f"lines-{G}": "3"}))
    assert response.status_code == 200
    text = html(response)
    assert f'name="rows-{G}" value="{",".join(str(d) for d in range(1, 14))}"' in text
    assert 'value=""' in cell(text, f"{G}-13-LBDT")
    for item in ("LBDT", "WBC", "RBCTX"):  # new lines are open for entry
        assert "disabled" not in cell(text, f"{G}-13-{item}")
        assert " hidden" not in cell(text, f"{G}-13-{item}")
    response = client.post(COUNTS, data=post(days, base="1", action="plan:CNT_DAY"))
    assert response.status_code == 200
    text = html(response)
    assert f'name="rows-{G}" value="{",".join(str(d) for d in range(1, 43))}"' in text
    assert f'value="{day(11)}"' in cell(text, f"{G}-11-LBDT")
    assert ">42</output>" in cell(text, f"{G}-42-STUDYDY")
    assert live_rows() == list(range(1, 11))  # nothing saved by adding lines


def test_the_grid_speaks_the_users_language(client, crc):
    text = html(client.get(COUNTS, headers={"Accept-Language": "zh"}))
    assert '<span class="grid-label">白细胞' in text
    assert '<span class="grid-label">当日输注红细胞' in text
    assert '<caption class="visually-hidden">每日记录</caption>' in text
    assert '<option value="Y">是</option>' in cell(text, f"{G}-1-RBCTX")


def test_a_monitor_reads_the_grid_without_inputs(client, subject, login_as):
    values = {(G, d, item): v for d in (1, 2) for item, v in counts(d).items()}
    result = capture.save_form(db.session, LOADER, subject, "HEMOBS", 1, "COUNTS",
                               capture.Submission(values=values, rows={G: [1, 2]}),
                               base_version=None, complete=False)
    assert result.saved
    db.session.commit()
    login_as("monitor", study="UCMSCEXO", username="mon1")
    text = html(client.get(COUNTS))
    grid = text[text.index('<table class="table table-sm table-bordered entry-grid'):
                text.index("</table>", text.index("entry-grid"))]
    assert "<input" not in grid and "<select" not in grid and "<details" not in grid
    assert f'>{counts(2)["PLT"]}</output>' in cell(text, f"{G}-2-PLT")
    assert "No (N)</output>" in cell(text, f"{G}-2-RBCTX")
    assert 'value="plan:CNT_DAY"' not in text
