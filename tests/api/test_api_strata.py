"""Correcting a stratification factor through the API, as the strata screen: data
managers only, the allocation kept, the reason required, frozen data refused (423)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ecrf.capture.models import Subject
from ecrf.core.extensions import db
from tests.allocation.test_system_values import randomized, stored  # noqa: F401  (fixture)
from tests.api import API, audit_rows, bearer, token_for
from tests.api.test_openapi import check

STRATA = "/studies/{study_oid}/subjects/{subject_key}/strata"
URL = f"{API}/studies/DEXAML03/subjects/TLS-001/strata"


@pytest.fixture
def doc(client) -> dict:
    return client.get(f"{API}/openapi.json").get_json()


@pytest.fixture
def dm(make_user, randomized):  # noqa: F811
    return bearer(token_for(make_user("dm1", role="data_manager", study="DEXAML03")))


def test_a_data_manager_reads_and_corrects_a_stratum(client, doc, dm, randomized):  # noqa: F811
    arm = randomized.arm
    body = check(doc, STRATA, "get", client.get(URL, headers=dm))
    salvage = next(s for s in body["strata"] if s["name"] == "salvage")
    assert (body["randomized"], salvage["used"], salvage["recorded"], salvage["mismatch"]) \
        == (True, "INTENSIVE", "INTENSIVE", False)
    assert "AZA" in [level["code"] for level in salvage["levels"]]

    for sent, field in (({"stratum": "salvage", "value": "AZA"}, "reason"),
                        ({"stratum": "salvage", "value": "AZA", "reason": " "}, "reason"),
                        ({"stratum": "nope", "value": "AZA", "reason": "x"}, "stratum"),
                        ({"stratum": "salvage", "value": "XX", "reason": "x"}, "value"),
                        ({"stratum": "salvage", "value": "INTENSIVE", "reason": "x"}, "value"),
                        ({"stratum": "salvage", "value": 1, "reason": "x"}, "value"),
                        ({"stratum": "salvage", "value": "AZA", "reason": "x" * 2001},
                         "reason"),
                        ({"stratum": "salvage", "value": "AZA", "reason": "x", "y": 1}, "y")):
        refused = client.post(f"{URL}/correct", headers=dm, json=sent)
        assert check(doc, STRATA + "/correct", "post", refused) and \
            refused.status_code == 422, sent
        assert field in refused.get_json()["errors"], (sent, refused.get_json())

    done = client.post(f"{URL}/correct", headers=dm, json={
        "stratum": "salvage", "value": "AZA", "reason": "source shows azacitidine"})
    body = check(doc, STRATA + "/correct", "post", done)
    salvage = next(s for s in body["strata"] if s["name"] == "salvage")
    assert (salvage["used"], salvage["recorded"], salvage["mismatch"]) == \
        ("INTENSIVE", "AZA", True)
    db.session.expire_all()
    subject = db.session.scalar(select(Subject).where(Subject.subject_key == "TLS-001"))
    assert subject.arm == arm and json.loads(subject.strata)["salvage"] == "INTENSIVE"
    assert stored(subject, "SALVAGE", "SALVTYPE") == "AZA"
    [row] = audit_rows(action="allocation.stratum_corrected")
    assert row.username == "dm1"


def test_others_are_refused_and_frozen_data_is_423(client, doc, dm, make_user,
                                                    randomized):  # noqa: F811
    crc = bearer(token_for(make_user("crc1", role="coordinator", study="DEXAML03",
                                     site="TLS")))
    for response, method, path in (
            (client.get(URL, headers=crc), "get", STRATA),
            (client.post(f"{URL}/correct", headers=crc, json={
                "stratum": "salvage", "value": "AZA", "reason": "x"}), "post",
             STRATA + "/correct")):
        assert check(doc, path, method, response) and response.status_code == 403
    missing = client.get(f"{API}/studies/DEXAML03/subjects/TLS-999/strata", headers=dm)
    assert check(doc, STRATA, "get", missing) and missing.status_code == 404

    randomized.study.status = "frozen"
    db.session.commit()
    frozen = client.post(f"{URL}/correct", headers=dm, json={
        "stratum": "salvage", "value": "AZA", "reason": "source shows azacitidine"})
    assert check(doc, STRATA + "/correct", "post", frozen) and frozen.status_code == 423
    assert "frozen" in frozen.get_json()["message"]
    assert not audit_rows(action="allocation.stratum_corrected")
