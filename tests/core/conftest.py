"""Fixtures of the audit trail tests: a study with two subjects, one form entered."""

from __future__ import annotations

import pytest

from tests.capture.capture_setup import enrol, load_capture_study
from tests.conftest import sign_in
from tests.core.audit_setup import SCREEN, VITALS


@pytest.fixture
def study(app, make_study):
    study = load_capture_study(make_study)
    enrol(study, "S01-001", "S01")
    enrol(study, "S02-001", "S02")
    return study


@pytest.fixture
def entered(study, client, make_user):
    """S01-001 with VITALS saved, then corrected with a reason, by a coordinator."""
    make_user("crc1", role="coordinator", study="CAPTURE", site="S01")
    sign_in(client, "crc1")
    assert client.post(SCREEN + "/start", data={"actual_date": "2025-05-02"}).status_code == 302
    data = {"VS-1-VSDT": "2025-05-02", "VS-1-SEX": "M", "VS-1-WEIGHT": "72.5",
            "VS-1-HEIGHT": "180", "action": "save", "base_version": ""}
    assert client.post(VITALS, data=data).status_code == 302
    data.update({"VS-1-WEIGHT": "75.0", "base_version": "1",
                 "reason-VS-1-WEIGHT": "source document re-read"})
    assert client.post(VITALS, data=data).status_code == 302
    client.post("/logout")
    return study
