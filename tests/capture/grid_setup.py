"""The UCMSC-Exo seed trial with a subject whose day-1-to-42 counts form is open: chemotherapy
day 1 recorded 45 days ago, the monitoring event started. Shared by the grid web tests and
the grid browser test."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from ecrf.capture import operations as capture
from ecrf.capture import subjects
from ecrf.capture.models import Subject
from ecrf.core import PROJECT_ROOT
from ecrf.core.audit.trail import Actor
from ecrf.studies import get_site, load_folder, require_study

UCMSC = PROJECT_ROOT / "forms" / "ucmscexo"
LOADER = Actor(user_id=None, username="grid-loader", role="data_manager")
COUNTS_PATH = "/studies/UCMSCEXO/subjects/{key}/events/HEMOBS/1/forms/COUNTS"
DAY1_AGO = 45


def load_ucmsc(session: Session) -> None:
    load_folder(session, LOADER, UCMSC)
    session.commit()


def counts_subject(session: Session, key: str, site: str = "WUH",
                   today: dt.date | None = None) -> Subject:
    """A subject of UCMSC-Exo whose COUNTS form can be entered, day 1 ``DAY1_AGO`` days ago."""
    today = today or dt.date.today()
    day1 = today - dt.timedelta(days=DAY1_AGO)
    study = require_study(session, "UCMSCEXO")
    subject = subjects.enrol_subject(session, LOADER, study, get_site(session, site), key,
                                     day1 - dt.timedelta(days=3))
    capture.open_event(session, LOADER, subject, "CHEMO_D1", 1, day1)
    result = capture.save_form(session, LOADER, subject, "CHEMO_D1", 1, "CHEMO",
                               capture.Submission(values={("CHEMO_COURSE", 1, "CHEMOD1"):
                                                          day1.isoformat()}),
                               base_version=None, complete=False)
    assert result.saved, result.errors
    capture.open_event(session, LOADER, subject, "HEMOBS", 1, today - dt.timedelta(days=2))
    session.commit()
    return subject


def day1_of(today: dt.date | None = None) -> dt.date:
    return (today or dt.date.today()) - dt.timedelta(days=DAY1_AGO)


def day(d: int) -> str:
    """The date of study day ``d``, day 1 ``DAY1_AGO`` days ago."""
    return (day1_of() + dt.timedelta(days=d - 1)).isoformat()


def counts(d: int) -> dict[str, str]:
    """Plausible counts of study day ``d``: no transfusion, nothing out of range."""
    return {"LBDT": day(d), "WBC": f"{1 + d / 10:.2f}", "ANC": f"{0.5 + d / 20:.2f}",
            "HGB": str(80 + d), "PLT": str(20 + 3 * d), "TMAX": "36.8", "RBCTX": "N",
            "PLTTX": "N"}
