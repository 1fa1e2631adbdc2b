"""Role dashboards: each role's panels, scoping, aggregates only for sponsors, the enrolment
chart, and a constant number of statements whatever the number of subjects."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from ecrf.accounts.models import RoleGrant
from ecrf.core.extensions import db
from ecrf.review import queries, sdv, signatures
from ecrf.review.signatures import SignTarget
from ecrf.studies import store as studies
from ecrf.studies.models import Study
from tests.capture.capture_setup import LOADER, actor_for
from tests.conftest import PASSWORD, sign_in
from tests.review.review_setup import (
    REVIEW_STUDY,
    demog,
    form_of,
    save,
    start,
    subject_at,
    vitals,
)

BASE = "/studies/REVIEW"
ALLOC33 = REVIEW_STUDY.parent / "allocation_3p3"


def populate(world, keys: list[str], site: str = "S01") -> None:
    """Subjects with a complete screening, a verified form, a query and a signature each."""
    crc = world["crc"] if site == "S01" else actor_for(None, site=site)
    for key in keys:
        subject = subject_at(world["study"], key, site)
        start(crc, subject)
        save(crc, subject, values=vitals(SYSBP="190"),
             acks={("VS_SYSBP_HIGH", 0): "confirmed"}, complete=True)
        save(crc, subject, "DEMOG", demog(), complete=True)
        if site == "S01":
            sdv.verify_items(db.session, world["monitor"], form_of(subject), [("VS", 1, "WEIGHT")])
            queries.raise_query(db.session, world["monitor"], subject, f"Check {key}",
                                target=queries.QueryTarget("SCREEN", 1, "DEMOG"))
            signatures.sign(db.session, world["inv"], SignTarget(subject, "form",
                                                                 form=form_of(subject)),
                            password=PASSWORD, meaning="approval", username="inv1",
                            require_username=True, lockout_threshold=5, lockout_minutes=15)
        db.session.commit()


def client_for(app, username: str):
    client = app.test_client()
    assert sign_in(client, username).status_code == 302
    return client


@contextmanager
def statements():
    counted = []

    def count(*args) -> None:
        counted.append(1)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield counted
    finally:
        event.remove(engine, "before_cursor_execute", count)


def text_of(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


@pytest.mark.parametrize("username", ["crc1", "inv1", "mon1", "dm1", "sv1"])
def test_each_dashboard_takes_the_same_number_of_statements_for_more_subjects(
        app, world, username):
    populate(world, ["S01-001", "S01-002"])
    client = client_for(app, username)
    text_of(client.get(BASE + "/dashboard"))  # schedules refreshed for today
    with statements() as few:
        text_of(client.get(BASE + "/dashboard"))
    populate(world, [f"S01-1{n:02d}" for n in range(8)])
    populate(world, ["S02-001", "S02-002"], site="S02")
    text_of(client.get(BASE + "/dashboard"))
    with statements() as many:
        text_of(client.get(BASE + "/dashboard"))
    assert len(many) == len(few), f"{username}: {len(few)} then {len(many)} statements"


def test_investigator_board(app, world):
    populate(world, ["S01-001"])
    populate(world, ["S02-001"], site="S02")
    text = text_of(client_for(app, "inv1").get(BASE + "/dashboard"))
    for panel in ("Forms awaiting my signature", "Open queries", "Overdue visits",
                  "My subjects", "SAE reporting clocks"):
        assert panel in text
    assert "S01-001" in text and "S02-001" not in text, "site-scoped"
    assert "Demography</a>" in text  # complete and unsigned: awaits the signature
    assert "Check S01-001" in text


def test_coordinator_board_lists_todays_work(app, world):
    populate(world, ["S01-001"])
    subject = subject_at(world["study"], "S01-002")
    start(world["crc"], subject)
    save(world["crc"], subject)  # in progress
    text = text_of(client_for(app, "crc1").get(BASE + "/dashboard"))
    assert "Visits due or overdue" in text and "Forms in progress" in text
    assert "S01-002 · Screening · Vital signs" in text
    assert "Queries to answer" in text and "Check S01-001" in text


def test_monitor_board_shows_backlog_ages_and_site_preparation(app, world):
    populate(world, ["S01-001", "S01-002"])
    text = text_of(client_for(app, "mon1").get(BASE + "/dashboard"))
    assert "SDV backlog" in text and "Queries by age (days)" in text
    assert "Site visit preparation" in text
    assert "2 of 12 item(s) verified" in text  # 2 subjects x (3 vitals + 3 demography)
    assert "S01 — " in text


def test_data_manager_board_metrics_readiness_and_missing_forms(app, world):
    populate(world, ["S01-001"])
    subject = subject_at(world["study"], "S01-002")
    start(world["crc"], subject)
    text = text_of(client_for(app, "dm1").get(BASE + "/dashboard"))
    assert "Query metrics" in text and "Lock readiness" in text
    assert "Missing forms" in text and "S01-002 · Screening</a> · Demography" in text
    assert "Dose escalation board" not in text
    assert "unclosed query(ies)" in text and "item(s) to verify" in text


def test_data_manager_board_links_the_escalation_board(app, make_study, make_user):
    make_study("ALLOC33")
    studies.load_folder(db.session, LOADER, ALLOC33)
    db.session.commit()
    make_user("dm9", role="data_manager", study="ALLOC33")
    text = text_of(client_for(app, "dm9").get("/studies/ALLOC33/dashboard"))
    assert "Dose escalation board" in text and "/studies/ALLOC33/escalation" in text


def test_sponsor_board_is_aggregate_only_with_an_enrolment_chart(app, world):
    populate(world, ["S01-001", "S01-002"])
    populate(world, ["S02-001"], site="S02")
    client = client_for(app, "sv1")
    text = text_of(client.get(BASE + "/dashboard"))
    assert "Enrolment by site over time" in text
    assert "S01-00" not in text and "S02-00" not in text
    month = dt.date(2025, 5, 1).strftime("%Y-%m")
    assert month in text
    svg = client.get(BASE + "/dashboard/enrolment.svg")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    body = svg.get_data(as_text=True)
    assert body.startswith("<svg") and "<polyline" in body
    assert "S01: 2" in body and "S02: 1" in body and "S01-00" not in body
    assert "style=" not in body, "no inline styles (CSP)"


def test_enrolment_chart_of_an_empty_study(app, world):
    body = client_for(app, "sv1").get(BASE + "/dashboard/enrolment.svg").get_data(as_text=True)
    assert "No subject enrolled yet." in body


def test_a_user_with_two_roles_can_switch_boards(app, world):
    user = world["users"]["dm1"]
    db.session.add(RoleGrant(user=user, role="sponsor_viewer",
                             study=db.session.get(Study, world["study"].id)))
    db.session.commit()
    client = client_for(app, "dm1")
    assert "Query metrics" in text_of(client.get(BASE + "/dashboard"))
    switched = text_of(client.get(BASE + "/dashboard?role=sponsor_viewer"))
    assert "Enrolment by site over time" in switched
