"""Endpoints through the API: the same values as the endpoints page and CSV, with the
permissions and site scoping of the screens, every response as the OpenAPI document says."""

from __future__ import annotations

import pytest

from tests.api import API, bearer, token_for
from tests.api.test_openapi import check
from tests.safety.test_endpoints import inv, study, subject_a, subject_b  # noqa: F401

BASE = f"{API}/studies/SAFETY"
SUMMARY = "/studies/{study_oid}/endpoints"
SUBJECTS = "/studies/{study_oid}/endpoints/subjects"
ONE = "/studies/{study_oid}/subjects/{subject_key}/endpoints"


@pytest.fixture
def doc(client) -> dict:
    return client.get(f"{API}/openapi.json").get_json()


@pytest.fixture
def two_subjects(inv, study):  # noqa: F811
    subject_a(inv, study)
    subject_b(inv, study, site="S02")


def headers(make_user, name, role, site=None):
    return bearer(token_for(make_user(name, role=role, study="SAFETY", site=site)))


def test_summary_with_denominators_intervals_and_rules(client, doc, make_user, two_subjects):
    dm = headers(make_user, "dm1", "data_manager")
    body = check(doc, SUMMARY, "get", client.get(f"{BASE}/endpoints", headers=dm))
    rows = {(r["group"], r["endpoint"]): r for r in body["summary"]}
    # One subject per level: subject B (level 2) never holds ANC >= 0.5 on 3 consecutive
    # measurements, so it is censored; subject A recovers.
    total = rows[("All", "time_to_neutrophil_recovery")]
    assert (total["n"], total["events"], total["censored"]) == (2, 1, 1)
    transfused = rows[("All", "any_transfusion")]
    # A had platelets on day 9 and red cells on day 10; B none: 1/2, exact CI 1.2-98.8.
    assert (transfused["events"], transfused["n"], transfused["percent"]) == (1, 2, "50.0")
    assert (transfused["ci_low"], transfused["ci_high"]) == ("1.2", "98.8")
    assert "consecutive measurements" in body["rules"]["time_to_neutrophil_recovery"]
    assert body["parameters"]["recovery_run"] == "measurements"


def test_per_subject_values_are_scoped_to_the_users_sites(client, doc, make_user, two_subjects):
    inv1 = headers(make_user, "inv-s01", "investigator", "S01")
    body = check(doc, SUBJECTS, "get", client.get(f"{BASE}/endpoints/subjects", headers=inv1))
    assert [s["subject_key"] for s in body["items"]] == ["S01-A"]
    values = {v["endpoint"]: v for v in body["items"][0]["endpoints"]}
    assert values["time_to_neutrophil_recovery"]["status"] == "event"
    assert values["time_to_neutrophil_recovery"]["evaluable"] is True
    one = check(doc, ONE, "get", client.get(f"{BASE}/subjects/S01-A/endpoints", headers=inv1))
    assert one["endpoints"] == body["items"][0]["endpoints"]
    # A subject of another site is not there for this user.
    check(doc, ONE, "get", client.get(f"{BASE}/subjects/S01-B/endpoints", headers=inv1))
    assert client.get(f"{BASE}/subjects/S01-B/endpoints", headers=inv1).status_code == 404


def test_filters_pages_and_bad_arguments(client, doc, make_user, two_subjects):
    dm = headers(make_user, "dm1", "data_manager")
    body = check(doc, SUBJECTS, "get", client.get(
        f"{BASE}/endpoints/subjects?per_page=1&page=2&endpoint=time_to_platelet_recovery",
        headers=dm))
    assert (body["total"], body["pages"], body["page"]) == (2, 2, 2)
    assert [v["endpoint"] for v in body["items"][0]["endpoints"]] == ["time_to_platelet_recovery"]
    for query in ("endpoint=nope", "page=0", "per_page=100000", "page=" + "9" * 40):
        response = client.get(f"{BASE}/endpoints/subjects?{query}", headers=dm)
        check(doc, SUBJECTS, "get", response)
        assert response.status_code == 400, query


def test_permissions(client, doc, make_user, two_subjects):
    sponsor = headers(make_user, "sv1", "sponsor_viewer")
    check(doc, SUMMARY, "get", client.get(f"{BASE}/endpoints", headers=sponsor))
    # A sponsor viewer sees aggregates only, never a subject's values.
    response = client.get(f"{BASE}/endpoints/subjects", headers=sponsor)
    check(doc, SUBJECTS, "get", response)
    assert response.status_code == 403


def test_a_study_without_endpoints_is_a_clear_404(client, doc, make_user, make_study):
    from tests.api import setup_study

    setup_study(make_study)
    dm = bearer(token_for(make_user("dm2", role="data_manager", study="CAPTURE")))
    response = client.get(f"{API}/studies/CAPTURE/endpoints", headers=dm)
    check(doc, SUMMARY, "get", response)
    assert response.status_code == 404
    assert "recovery_endpoints" in response.get_json()["message"]


# --- overall survival ---------------------------------------------------------------------

SURVIVAL = "/studies/{study_oid}/survival"
SURVIVAL_SUBJECTS = "/studies/{study_oid}/survival/subjects"


def test_survival_through_the_api(client, doc, make_user, make_study, inv_surv):
    dm = bearer(token_for(make_user("dm-s", role="data_manager", study="SURV")))
    body = check(doc, SURVIVAL, "get", client.get(f"{API}/studies/SURV/survival", headers=dm))
    pooled = body["summary"][-1]
    # Six randomised subjects with an origin, two deaths (see tests/safety/test_survival).
    assert (pooled["n"], pooled["events"], pooled["censored"]) == (6, 2, 4)
    assert body["at_risk"]["groups"]["All"] == [6, 4, 2, 0]
    assert body["rule"].startswith("Overall survival: time from randomization to death")
    assert "subjects" not in body
    page = check(doc, SURVIVAL_SUBJECTS, "get",
                 client.get(f"{API}/studies/SURV/survival/subjects?per_page=2", headers=dm))
    assert (page["total"], len(page["items"])) == (7, 2)
    a1 = page["items"][0]
    assert (a1["subject"], a1["days"], a1["status"]) == ("S01-A1", 60, "event")


def test_survival_permissions(client, doc, make_user, inv_surv):
    sponsor = bearer(token_for(make_user("sv-s", role="sponsor_viewer", study="SURV")))
    body = check(doc, SURVIVAL, "get", client.get(f"{API}/studies/SURV/survival",
                                                  headers=sponsor))
    assert body["summary"][-1]["n"] == 6
    response = client.get(f"{API}/studies/SURV/survival/subjects", headers=sponsor)
    check(doc, SURVIVAL_SUBJECTS, "get", response)
    assert response.status_code == 403
    crc = bearer(token_for(make_user("crc-s", role="coordinator", study="SURV", site="S02")))
    response = client.get(f"{API}/studies/SURV/survival", headers=crc)
    check(doc, SURVIVAL, "get", response)
    assert response.status_code == 403
    page = client.get(f"{API}/studies/SURV/survival/subjects", headers=crc).get_json()
    assert [row["subject"] for row in page["items"]] == ["S02-B4"]


def test_a_study_without_survival_is_a_clear_404(client, doc, make_user, two_subjects):
    dm = headers(make_user, "dm1", "data_manager")
    response = client.get(f"{BASE}/survival", headers=dm)
    check(doc, SURVIVAL, "get", response)
    assert response.status_code == 404 and "survival" in response.get_json()["message"]


@pytest.fixture
def inv_surv(app, make_study, make_user):
    from tests.safety import test_survival

    surv = test_survival.load(make_study)
    actor = test_survival.actor_for(make_user("inv-s", role="investigator", study="SURV",
                                              site="S01"))
    return test_survival.cohort.__wrapped__(actor, surv)
