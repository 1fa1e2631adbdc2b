"""The dashboards' test world: the review study with a user of each role."""

from __future__ import annotations

import pytest

from tests.capture.capture_setup import actor_for
from tests.review.review_setup import load_review_study


@pytest.fixture
def world(app, make_study, make_user):
    study = load_review_study(make_study)
    users = {
        "crc1": make_user("crc1", role="coordinator", study="REVIEW", site="S01"),
        "inv1": make_user("inv1", role="investigator", study="REVIEW", site="S01"),
        "mon1": make_user("mon1", role="monitor", study="REVIEW", site="S01"),
        "dm1": make_user("dm1", role="data_manager", study="REVIEW"),
        "sv1": make_user("sv1", role="sponsor_viewer", study="REVIEW"),
    }
    return {"study": study, "users": users, "crc": actor_for(users["crc1"]),
            "monitor": actor_for(users["mon1"], "monitor"),
            "inv": actor_for(users["inv1"], "investigator")}
