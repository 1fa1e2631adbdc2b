"""A UCMSC-Exo subject whose daily counts can receive laboratory results: chemotherapy
day 1 on 5 January 2026, so the monitoring event HEMOBS holds 5 January to 22 February
(day 1 to day 42, and 7 days after). Shared by the import tests and the bench."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ecrf.capture import EventInstance, FormInstance, GroupRow, ItemValue
from ecrf.core.audit import AuditEvent
from tests.capture.grid_setup import counts_subject

DAY1 = dt.date(2026, 1, 5)
TODAY = dt.date(2026, 2, 19)  # DAY1 is 45 days before
KEY = "WUH-101"


def lab_subject(session: Session, key: str = KEY):
    return counts_subject(session, key, today=TODAY)


def day(n: int) -> dt.date:
    return DAY1 + dt.timedelta(days=n - 1)


def counts_csv(days: range, key: str = KEY) -> bytes:
    """Five analytes a day as a laboratory CSV (semicolons, decimal comma, BOM): WBC and
    ANC in G/L, haemoglobin in g/dL, platelets per microlitre, the day's highest
    temperature."""
    lines = ["subject;collection_datetime;code;value;unit"]
    for n in days:
        when = f"{day(n).isoformat()} 07:00"
        lines += [f"{key};{when};6690-2;{2 + n / 10:.2f};G/L".replace(".", ","),
                  f"{key};{when};751-8;{1 + n / 20:.2f};G/L".replace(".", ","),
                  f"{key};{when};718-7;{9 + n / 50:.1f};g/dL".replace(".", ","),
                  f"{key};{when};777-3;{(50 + n) * 1000};/µL",
                  f"{key};{when};TMAX24H;{36.5 + (n % 3) / 10:.1f};Cel".replace(".", ",")]
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode()


def row_counts(session: Session) -> dict[str, int]:
    """Rows of every table a lab import writes to."""
    return {model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (AuditEvent, EventInstance, FormInstance, GroupRow, ItemValue)}
