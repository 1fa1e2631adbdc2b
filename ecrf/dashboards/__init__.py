"""Role dashboards: what each role needs to see first in a study, and the panels other
areas add to them (``ecrf.core.panels``)."""

from __future__ import annotations

from flask import Flask

from ecrf.dashboards.boards import (
    AGE_BUCKETS,
    DASHBOARD_ROLES,
    DataManagerBoard,
    SponsorBoard,
    choose_role,
    coordinator,
    data_manager,
    enrolment_series,
    held_roles,
    investigator,
    monitor,
    panels,
    sponsor,
)

__all__ = [
    "AGE_BUCKETS", "DASHBOARD_ROLES", "DataManagerBoard", "SponsorBoard", "choose_role",
    "coordinator", "data_manager", "enrolment_series", "held_roles", "investigator",
    "monitor", "panels", "register", "sponsor",
]


def register(app: Flask) -> None:
    from ecrf.dashboards.views import bp

    app.register_blueprint(bp)
