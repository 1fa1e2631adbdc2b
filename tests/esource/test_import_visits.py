"""DEXAML-03: the blood count of a visit (HEMATO, not repeating) receives the results of
the one collection date whose visit window holds it."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from ecrf import esource
from ecrf.capture import EventInstance, ItemValue, enrol_subject
from ecrf.core import PROJECT_ROOT, db
from ecrf.core.audit import Actor
from ecrf.studies import get_site, load_folder, require_study

ACTOR = Actor(user_id=None, username="lab-import", role="data_manager")
ENROLLED = dt.date(2026, 3, 2)  # SCREEN's window: 2 to 30 March
TODAY = dt.date(2026, 4, 1)


@pytest.fixture
def subject(app, make_study):
    make_study("DEXAML03", sites=("TLS",))
    load_folder(db.session, ACTOR, PROJECT_ROOT / "forms" / "dexaml03")
    study = require_study(db.session, "DEXAML03")
    subject = enrol_subject(db.session, ACTOR, study, get_site(db.session, "TLS"), "TLS-101",
                            ENROLLED)
    db.session.commit()
    return subject


def csv(*lines: str) -> bytes:
    return ("patient,collected,code,value,unit\n" + "\n".join(lines) + "\n").encode()


def plan(data: bytes):
    return esource.plan_import(db.session, require_study(db.session, "DEXAML03"),
                               "cbc.csv", data)


def test_the_screening_count_goes_to_the_screening_visit(subject):
    found = plan(csv("TLS-101,2026-03-04T08:15,6690-2,4.2,10*9/L",
                     "TLS-101,2026-03-04T08:15,751-8,2100,/mm3",
                     "TLS-101,2026-03-04T08:15,731-0,1.1,G/L",
                     "TLS-101,2026-03-04T08:15,718-7,11.2,g/dL",
                     "TLS-101,2026-03-04T08:15,777-3,210,G/L"))
    assert found.problems == []
    assert {(line.event, line.row, line.item, line.value) for line in found.lines} == {
        ("SCREEN", 1, "WBC", "4.20"), ("SCREEN", 1, "ANC", "2.10"), ("SCREEN", 1, "LYM", "1.10"),
        ("SCREEN", 1, "HGB", "112"), ("SCREEN", 1, "PLT", "210")}
    stored = esource.apply_import(db.session, ACTOR, require_study(db.session, "DEXAML03"),
                                  found, today=TODAY)
    db.session.commit()
    assert (stored.values, stored.forms) == (5, 1)
    values = {v.item_oid: v.value for v in db.session.scalars(
        select(ItemValue).where(ItemValue.form_oid == "HEMATO"))}
    assert values == {"LBDT": "2026-03-04", "WBC": "4.20", "ANC": "2.10", "LYM": "1.10",
                      "HGB": "112", "PLT": "210"}
    event = db.session.scalar(select(EventInstance).where(EventInstance.event_oid == "SCREEN"))
    assert event.actual_date == dt.date(2026, 3, 4)

    # A second count in the same window: the visit already holds the count of 4 March.
    again = plan(csv("TLS-101,2026-03-20,751-8,2.5,G/L"))
    assert [(p.where, p.reason) for p in again.problems] == [
        ("line 2", "TLS-101: every occurrence whose window holds 2026-03-20 already holds a "
                   "count of another date: SCREEN[1] (2026-03-04)")]


def test_two_dates_for_one_visit_in_one_file(subject):
    found = plan(csv("TLS-101,2026-03-04,751-8,2.1,G/L", "TLS-101,2026-03-05,751-8,2.1,G/L"))
    assert [line.where for line in found.lines] == ["line 2"]
    assert [(p.where, p.reason) for p in found.problems] == [
        ("line 3", "TLS-101: every occurrence whose window holds 2026-03-05 already holds a "
                   "count of another date: SCREEN[1] (2026-03-04)")]


def test_a_date_outside_every_visit_window(subject):
    # After the screening window: no visit of this subject (not randomised) holds the date.
    found = plan(csv("TLS-101,2026-04-01,751-8,2.1,G/L"))
    assert [(p.where, p.reason) for p in found.problems] == [
        ("line 2", "TLS-101: no occurrence of the lab events has a window holding 2026-04-01")]
