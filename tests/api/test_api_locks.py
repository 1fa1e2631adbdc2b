"""Locks hold through every entry point: capture sends the signals review reacts to, so
the API (like the screen) refuses writes to frozen studies and locked subjects, and
opening an event counts as a write."""

from __future__ import annotations

import pytest

from ecrf.capture import operations as capture
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.review import locks
from tests.api import VITALS_VALUES, bearer, form_url, setup_study, start_event, subject, token_for


@pytest.fixture
def crc_headers(app, make_study, make_user):
    setup_study(make_study)
    user = make_user("crc1", role="coordinator", study="CAPTURE", site="S01")
    return bearer(token_for(user))


@pytest.fixture
def dm_actor(make_user):
    user = make_user("dm1", role="data_manager", study="CAPTURE")
    return Actor(user_id=user.id, username=user.username, role="data_manager")


def test_a_frozen_study_refuses_an_api_save_with_423(client, crc_headers, dm_actor):
    start_event("S01-001")
    locks.change_study_status(db.session, dm_actor, subject("S01-001").study, "freeze",
                              "interim analysis")
    db.session.commit()
    response = client.put(form_url("S01-001"), headers=crc_headers,
                          json={"version": None, "values": VITALS_VALUES})
    assert response.status_code == 423, response.get_json()
    assert "frozen" in response.get_json()["message"]
    assert capture.form_definition  # the form itself exists: only the lock refused it


def test_a_locked_subject_refuses_saves_and_new_events(client, crc_headers, dm_actor):
    start_event("S01-001")
    locks.lock_subject(db.session, dm_actor, subject("S01-001"), "ready for analysis")
    db.session.commit()
    response = client.put(form_url("S01-001"), headers=crc_headers,
                          json={"version": None, "values": VITALS_VALUES})
    assert response.status_code == 423
    with pytest.raises(locks.DataLockedError):
        start_event("S01-001", "UNSCHED", 1)
    db.session.rollback()
    # another subject of the same site is untouched by the lock
    start_event("S01-002")
    ok = client.put(form_url("S01-002"), headers=crc_headers,
                    json={"version": None, "values": VITALS_VALUES})
    assert ok.status_code == 200, ok.get_json()
