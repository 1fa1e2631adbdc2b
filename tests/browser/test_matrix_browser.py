"""The subject matrix in a real browser: each cell is painted in its visit status colour,
the same as the legend (Bootstrap's table cell background must not hide it)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy import select

from ecrf.capture import operations as capture
from ecrf.capture import subjects
from ecrf.core.extensions import db
from ecrf.studies import Site
from ecrf.studies import store as studies
from tests.browser.session import sign_in
from tests.capture.capture_setup import CAPTURE_STUDY, LOADER, actor_for

WHITE = "rgb(255, 255, 255)"
SHOTS = Path(os.environ.get("ECRF_SHOTS", "test-artifacts"))


def test_matrix_cells_carry_their_status_colour(page, live_server, live_user):
    crc = live_user("clara", role="coordinator", study="CAPTURE", site="S01")
    with live_server.app.app_context():
        studies.load_folder(db.session, LOADER, CAPTURE_STUDY)
        db.session.commit()
        study = studies.require_study(db.session, "CAPTURE")
        long_ago = dt.date.today() - dt.timedelta(days=90)
        site = db.session.scalar(select(Site).where(Site.code == "S01"))
        subject = subjects.enrol_subject(db.session, LOADER, study, site, "S01-001", long_ago)
        capture.open_event(db.session, actor_for(crc), subject, "SCREEN", 1, long_ago)
        subjects.enrol_subject(db.session, LOADER, study, site, "S01-002", dt.date.today())
        db.session.commit()
        db.session.remove()

    sign_in(page, "clara")
    page.goto("/studies/CAPTURE/subjects")
    cells = page.locator("table.table-matrix td[class^='status-']")
    expect(cells.first).to_be_visible()
    painted = cells.evaluate_all(
        "cells => cells.map(c => [c.className, getComputedStyle(c).backgroundColor])")
    legend = dict(page.locator(".schedule-legend .badge").evaluate_all(
        "bs => bs.map(b => [b.className.split(' ').find(c => c.startsWith('status-')),"
        " getComputedStyle(b).backgroundColor])"))
    coloured = [(cls, bg) for cls, bg in painted if cls != "status-not_applicable"]
    assert coloured, painted
    for cls, bg in coloured:
        assert bg != WHITE, f"{cls} cell is white"
        assert bg == legend[cls], f"{cls}: cell {bg}, legend {legend[cls]}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "matrix.png"), full_page=True)
