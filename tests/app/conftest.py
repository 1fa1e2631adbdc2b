"""Fixtures of the application-wide tests: an empty database to migrate, and the world
the input boundary's tests send bad input to."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from tests.api import STUDY, VITALS_VALUES, bearer, form_url, setup_study, start_event, token_for
from tests.conftest import PG_URL, _psycopg_url


@pytest.fixture
def empty_url(tmp_path):
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    server = _psycopg_url(PG_URL)
    name = f"ecrf_mig_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def world(app, client, make_study, make_user):
    """CAPTURE with VITALS saved for S01-001, a query raised on it; tokens of a
    coordinator and a monitor; an admin's password."""
    setup_study(make_study)
    crc_user = make_user("crc1", role="coordinator", study="CAPTURE", site="S01")
    crc = bearer(token_for(crc_user))
    mon = bearer(token_for(make_user("mon1", role="monitor", study="CAPTURE")))
    make_user("root", role="admin")
    start_event("S01-001")
    saved = client.put(form_url("S01-001"), headers=crc,
                       json={"version": None, "values": VITALS_VALUES})
    assert saved.status_code == 200, saved.get_json()
    raised = client.post(f"{STUDY}/queries", headers=mon, json={
        "subject_key": "S01-001", "text": "Weight?", "event_oid": "SCREEN", "repeat": 1,
        "form_oid": "VITALS", "group_oid": "VS", "row": 1, "item_oid": "WEIGHT"})
    assert raised.status_code == 201, raised.get_json()
    return {"crc": crc, "mon": mon, "query": raised.get_json()["id"],
            "version": saved.get_json()["version"]}
