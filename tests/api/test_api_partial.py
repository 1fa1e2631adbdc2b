"""A partial save keeps the values it does not mention, but never carries over a
calculated item: it is recomputed from its (possibly changed) inputs."""

from __future__ import annotations

from sqlalchemy import select

from ecrf.capture.models import ItemValue
from ecrf.core.extensions import db
from tests.api import VITALS_VALUES, bearer, form_url, setup_study, start_event, token_for


def bmi() -> str | None:
    return db.session.scalar(select(ItemValue.value).where(ItemValue.item_oid == "BMI"))


def test_partial_save_changing_an_input_recomputes_the_calculated_item(client, make_study,
                                                                       make_user):
    setup_study(make_study)
    headers = bearer(token_for(make_user("crc1", role="coordinator", study="CAPTURE",
                                         site="S01")))
    start_event("S01-001")
    first = client.put(form_url("S01-001"), headers=headers,
                       json={"version": None, "values": VITALS_VALUES})
    assert first.status_code == 200, first.get_json()
    before = bmi()
    assert before is not None
    second = client.put(form_url("S01-001"), headers=headers, json={
        "version": first.get_json()["version"], "partial": True,
        "values": {"VS.1.WEIGHT": "90.0"}, "reasons": {"VS.1.WEIGHT": "re-weighed"}})
    assert second.status_code == 200, second.get_json()
    assert bmi() not in (None, before)
