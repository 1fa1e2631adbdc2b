"""The lines of a grid rendered from one compiled line (ecrf/capture/views/grid_rows.py)
give the same page as the cell-by-cell template they replace (kept as
tests/capture/reference/_grid_cellwise.html): the same names, ids, values, aria and data
attributes, messages and states, byte for byte but for blank lines. On the UCMSC-Exo counts
form (planned days, saved days, errors, grades, reasons, removals, another language, a
monitor, a locked subject) and on the DEXAML-03 dexamethasone lines laid out as a grid."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
from flask_babel import refresh
from jinja2 import ChoiceLoader, DictLoader

from ecrf.capture import enrol_subject
from ecrf.capture.views.grid_rows import compiled_line
from ecrf.core import PROJECT_ROOT
from ecrf.core.extensions import db
from ecrf.review import locks
from ecrf.studies import definition_for, get_site, load_folder, require_study
from tests.capture.grid_setup import (
    COUNTS_PATH,
    LOADER,
    counts,
    counts_subject,
    load_ucmsc,
)

REFERENCE = Path(__file__).parent / "reference" / "_grid_cellwise.html"
KEY = "WUH-001"
COUNTS = COUNTS_PATH.format(key=KEY)
G = "CNT_DAY"


def both(app, fetch) -> tuple[str, str]:
    """The page given by ``fetch()`` rendered by the compiled lines, then by the reference
    template, each with blank lines (and the sign-in's tokens and times) taken out."""
    compiled = fetch()
    original = app.jinja_env.loader
    app.jinja_env.loader = ChoiceLoader([
        DictLoader({"entry/_grid.html": REFERENCE.read_text(encoding="utf-8")}), original])
    try:
        reference = fetch()
    finally:
        app.jinja_env.loader = original
    return squeeze(compiled), squeeze(reference)


def squeeze(text: str) -> str:
    text = re.sub(r"last saved [^<]*<", "last saved <", text)
    text = re.sub(r'<input[^>]*name="csrf_token"[^>]*>', "", text)
    return "\n".join(line for line in text.splitlines() if line.strip())


def grid_of(text: str) -> str:
    start = text.index('<table class="table table-sm table-bordered entry-grid')
    return text[start:text.index("</table>", start)]


def assert_same(app, fetch, *expected: str) -> str:
    compiled, reference = both(app, fetch)
    assert compiled == reference
    grid = grid_of(compiled)
    for piece in expected:
        assert piece in grid, piece
    return grid



def post(group: str, days: dict[int, dict[str, str]], rows=None, action="save", base="",
         **extra) -> dict:
    data = {"action": action, "base_version": base,
            f"rows-{group}": ",".join(str(r) for r in (rows or sorted(days)))}
    for number, values in days.items():
        for item, value in values.items():
            data[f"{group}-{number}-{item}"] = value
    return {**data, **extra}


@pytest.fixture
def subject(app, make_study):
    make_study("UCMSCEXO", sites=("WUH",))
    load_ucmsc(db.session)
    return counts_subject(db.session, KEY)


@pytest.fixture
def crc(subject, login_as):
    return login_as("coordinator", site="WUH", study="UCMSCEXO", username="crc1")


def saved(client, n: int) -> None:
    response = client.post(COUNTS, data=post(G, {d: counts(d) for d in range(1, n + 1)}))
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    client.get(COUNTS)  # shows (and so clears) the "saved" message


def test_the_planned_days_open_the_same(app, client, crc):
    assert_same(app, lambda: client.get(COUNTS).get_data(as_text=True),
                f'<tr id="row-{G}-42" data-row="42" class="grid-new">',
                f'name="{G}-1-LBDT" aria-labelledby="col-{G}-LBDT line-{G}-1"',
                'placeholder="YYYY-MM-DD"')


def test_saved_days_with_errors_grades_reasons_and_removals_render_the_same(app, client, crc):
    saved(client, 6)
    days = {d: counts(d) for d in range(1, 8)}
    days[2]["PLT"] = "99"                        # a changed saved cell: its reason box
    days[3]["WBC"] = "abc"                       # an error in its cell
    days[4]["HGB"] = "999"                       # out of range
    days[5].update(RBCTX="Y", RBCU="<2> & 'x'")  # a shown dependent cell, escaped
    days[7]["TMAX"] = "39.5"                     # a new line with a check note

    def fetch():
        response = client.post(COUNTS, data=post(G, days, base="1", **{f"remove-{G}-6": "1"}))
        assert response.status_code == 422
        return response.get_data(as_text=True)

    grid = assert_same(app, fetch, f'id="{G}-2-PLT-reasonbox"', 'aria-invalid="true"',
                       f'id="{G}-3-WBC-error"', f'id="remove-{G}-6-error"',
                       "grid-grade-", "&lt;2&gt; &amp; &#39;x&#39;", "data-show-if=",
                       f'<tr id="row-{G}-7" data-row="7" class="grid-new">')
    assert '<details class="grid-remove" open>' in grid


def test_the_grid_in_another_language_renders_the_same(app, client, crc):
    saved(client, 2)
    assert_same(app, lambda: client.get(
        COUNTS, headers={"Accept-Language": "zh"}).get_data(as_text=True),
        '<option value="Y">是</option>')


def test_a_monitor_and_a_locked_subject_render_the_same(app, client, subject, crc, login_as):
    saved(client, 3)
    locks.lock_subject(db.session, LOADER, subject, "monitoring visit")
    db.session.commit()
    grid = assert_same(app, lambda: client.get(COUNTS).get_data(as_text=True),
                       '<output class="grid-value">23</output>')
    assert "<input" not in grid and "<details" not in grid

    def kept():  # the lock arrived while typing: the entries are kept, disabled
        response = client.post(COUNTS, data=post(G, {d: counts(d) for d in (1, 2, 3)},
                                                 base="1"))
        return response.get_data(as_text=True)

    compiled, reference = both(app, kept)
    assert compiled == reference
    login_as("monitor", study="UCMSCEXO", username="mon1")
    assert_same(app, lambda: client.get(COUNTS).get_data(as_text=True),
                f'id="{G}-2-STUDYDY" name="{G}-2-STUDYDY"')


def test_a_dexaml03_repeating_group_as_a_grid_renders_the_same(app, client, make_study,
                                                               login_as, tmp_path):
    folder = tmp_path / "dexaml03"
    shutil.copytree(PROJECT_ROOT / "forms" / "dexaml03", folder)
    crf = folder / "crfs" / "DEXADM.yaml"
    crf.write_text(crf.read_text(encoding="utf-8").replace(
        "    repeating: true\n", "    repeating: true\n    layout: grid\n", 1), encoding="utf-8")
    make_study("DEXAML03", sites=("TLS",))
    load_folder(db.session, LOADER, folder)
    db.session.commit()
    login_as("investigator", site="TLS", study="DEXAML03", username="inv-grid")
    study = require_study(db.session, "DEXAML03")
    subject = enrol_subject(db.session, LOADER, study, get_site(db.session, "TLS"), "TLS-101",
                            dt.date.today())
    db.session.commit()
    definition = definition_for(subject.study_version)
    assert definition.form("DEXADM").group("DEX_LINE").is_grid
    event = definition.events_with_form("DEXADM")[0]
    url = f"/studies/DEXAML03/subjects/TLS-101/events/{event.oid}/1/forms/DEXADM"
    response = client.post(url.rsplit("/forms/", 1)[0] + "/start",
                           data={"actual_date": dt.date.today().isoformat()})
    assert response.status_code == 302
    client.get(url)  # shows (and so clears) the "started" message
    today = dt.date.today().isoformat()
    lines = {1: {"DEXCYCN": "1", "DEXSTDT": today, "DEXENDT": today, "DEXDOSE": "10",
                 "DEXFREQ": "1", "DEXNADM": "4", "DEXMOD": "N"},
             2: {"DEXCYCN": "x", "DEXSTDT": today, "DEXDOSE": "-5", "DEXMOD": "Y",
                 "DEXMODSP": 'Dose "halved" <toxicity>'}}

    def fetch():
        response = client.post(url, data=post("DEX_LINE", lines, action="save"))
        assert response.status_code == 422, response.status_code
        return response.get_data(as_text=True)

    assert_same(app, fetch, 'maxlength="400"', 'id="DEX_LINE-2-DEXDOSE-error"',
                "Dose &#34;halved&#34; &lt;toxicity&gt;", "<select", 'aria-required="true"',
                'inputmode="numeric"', '<output class="grid-value" id="DEX_LINE-1-DEXTOT"')
    assert_same(app, lambda: client.get(url).get_data(as_text=True))


def test_a_line_is_compiled_once_per_group_and_language(app, subject):
    group = definition_for(subject.study_version).form("COUNTS").group(G)
    with app.test_request_context(headers={"Accept-Language": "en"}):
        refresh()  # the locale is kept on the test's application context
        english = compiled_line(group)
        assert compiled_line(group) is english
        assert english.remove == "Remove this line"
        assert [c.oid for c in english.columns][:3] == ["STUDYDY", "LBDT", "WBC"]
    with app.test_request_context(headers={"Accept-Language": "zh"}):
        refresh()
        chinese = compiled_line(group)
        assert chinese is not english and chinese.remove != english.remove
        assert compiled_line(group) is chinese
