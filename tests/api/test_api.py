"""The API through the test client with bearer tokens: studies, subjects and schedules,
forms read and saved (parity with the entry screen), reasons for change, stale saves,
site scoping, permissions, cookies refused for writes, malformed bodies, audit trails."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from ecrf.capture.models import FormInstance, ItemValue
from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from tests.api import (
    API,
    STUDY,
    VITALS_VALUES,
    audit_rows,
    bearer,
    form_url,
    setup_study,
    start_event,
    subject,
    token_for,
)
from tests.conftest import sign_in


@dataclass
class Caller:
    user: object
    headers: dict

    @property
    def username(self) -> str:
        return self.user.username


@pytest.fixture
def study(app, make_study):
    setup_study(make_study)


@pytest.fixture
def caller(study, make_user):
    def make(username: str, role: str, site: str | None = None) -> Caller:
        user = make_user(username, role=role, study="CAPTURE", site=site)
        return Caller(user, bearer(token_for(user)))

    return make


@pytest.fixture
def crc(caller):
    return caller("crc1", "coordinator", "S01")


def put(client, url: str, who: Caller, body: dict, **kwargs):
    return client.put(url, headers=who.headers, json=body, **kwargs)


def values(key: str) -> dict[tuple[str, int, str], str | None]:
    found = subject(key)
    return {(iv.group_oid, iv.row, iv.item_oid): iv.value for iv in db.session.scalars(
        select(ItemValue).where(ItemValue.subject_id == found.id))}


# --- studies and subjects -----------------------------------------------------------------


def test_the_users_studies_with_their_current_version(client, crc):
    body = client.get(f"{API}/studies", headers=crc.headers).get_json()
    [only] = body["items"]
    assert only["oid"] == "CAPTURE" and only["roles"] == ["coordinator"]
    assert only["current_version"]["number"] == 1
    assert only["current_version"]["label"] == "v1 (protocol 1.0)"
    assert only["url"] == f"{STUDY}"
    detail = client.get(STUDY, headers=crc.headers).get_json()
    assert detail["name"] == "Capture test study" and detail["status"] == "active"
    assert {e["oid"] for e in detail["events"]} == {"SCREEN", "CYCLE", "UNSCHED", "AE_LOG"}
    assert {"oid": "VITALS", "name": "Vital signs and demographics"} in detail["forms"]
    assert [s["code"] for s in detail["sites"]] == ["S01", "S02"]


def test_an_unknown_study_is_404_and_another_study_403(client, crc, make_study):
    response = client.get(f"{API}/studies/NOPE", headers=crc.headers)
    assert response.status_code == 404
    assert response.get_json()["message"] == "There is no study NOPE."
    make_study("OTHER")
    response = client.get(f"{API}/studies/OTHER/subjects", headers=crc.headers)
    assert response.status_code == 403
    assert "subjects.view" in response.get_json()["message"]


def test_subjects_are_site_scoped_and_paged(client, crc, caller):
    body = client.get(f"{STUDY}/subjects", headers=crc.headers).get_json()
    assert [s["subject_key"] for s in body["items"]] == ["S01-001", "S01-002"]
    assert body["total"] == 2 and body["pages"] == 1
    assert body["items"][0]["enrolled_on"] == "2025-05-01"
    dm = caller("dm1", "data_manager")
    body = client.get(f"{STUDY}/subjects?per_page=2&page=2", headers=dm.headers).get_json()
    assert [s["subject_key"] for s in body["items"]] == ["S02-001"]
    assert (body["total"], body["pages"], body["page"]) == (3, 2, 2)
    body = client.get(f"{STUDY}/subjects?site=s02", headers=dm.headers).get_json()
    assert body["total"] == 1
    for query, message in (("per_page=0", "'per_page' must be a whole number from 1 to 500"),
                           ("page=x", "'page' must be a whole number"),
                           ("status=gone", "Unknown subject status 'gone'")):
        response = client.get(f"{STUDY}/subjects?{query}", headers=dm.headers)
        assert response.status_code == 400 and message in response.get_json()["message"]


def test_a_subject_with_its_schedule(client, crc):
    start_event("S01-001")
    body = client.get(f"{STUDY}/subjects/S01-001", headers=crc.headers).get_json()
    assert body["site"] == "S01" and body["site_timezone"] == "Europe/Paris"
    screen = next(r for r in body["schedule"] if r["event_oid"] == "SCREEN")
    assert screen["planned"] == "2025-05-01"
    assert screen["window"] == {"start": "2025-05-01", "end": "2025-05-29"}
    assert screen["actual_date"] == "2025-05-02" and screen["status"] in ("due", "done",
                                                                           "overdue")
    assert screen["event_name"] == "Screening"
    [event] = body["events"]
    assert event["event_oid"] == "SCREEN" and event["state"] == "in_progress"


def test_a_coordinator_cannot_see_another_sites_subject(client, crc):
    start_event("S02-001")
    for url in (f"{STUDY}/subjects/S02-001", form_url("S02-001")):
        response = client.get(url, headers=crc.headers)
        assert response.status_code == 404, url
        assert "no subject S02-001" in response.get_json()["message"]
    response = put(client, form_url("S02-001"), crc, {"version": None,
                                                      "values": VITALS_VALUES})
    assert response.status_code == 404
    assert values("S02-001") == {}


# --- reading and saving a form ------------------------------------------------------------


def test_a_form_before_its_event_is_started_is_a_conflict(client, crc):
    response = client.get(form_url("S01-001"), headers=crc.headers)
    assert response.status_code == 409
    assert "Screening has not been started" in response.get_json()["message"]
    response = client.get(form_url("S01-001", form="NOPE"), headers=crc.headers)
    assert response.status_code == 404 and "has no form NOPE" in response.get_json()["message"]


def test_a_form_is_saved_and_read_back_as_typed_json(client, crc):
    start_event("S01-001")
    empty = client.get(form_url("S01-001"), headers=crc.headers).get_json()
    assert empty["status"] == "not_started" and empty["version"] is None
    assert empty["values"]["VS.1.WEIGHT"] is None and "VS.1.BMI" in empty["values"]
    text = json.dumps({"version": None, "values": VITALS_VALUES})
    text = text[:-2] + ', "VS.1.NEUT": 1.10}}'  # the literal a float would turn into 1.1
    response = client.put(form_url("S01-001"), headers=crc.headers, data=text,
                          content_type="application/json")
    assert response.status_code == 200, response.get_json()
    saved = response.get_json()
    assert saved["status"] == "in_progress" and saved["version"] == 1
    assert saved["study_version"] == "v1 (protocol 1.0)"
    assert "VS.1.WEIGHT" in saved["changed"] and saved["blockers"] == []
    got = client.get(form_url("S01-001"), headers=crc.headers).get_json()
    assert got["values"]["VS.1.WEIGHT"] == "72.5"  # numbers as exact strings
    assert got["values"]["VS.1.NEUT"] == "1.10"  # a JSON number read exactly, not as 1.1
    assert got["values"]["VS.1.HEIGHT"] == "180"
    assert got["values"]["VS.1.BRTHDT"] == "1970-03"  # partial date: truncated ISO
    assert got["values"]["VS.1.VSDT"] == "2025-05-02"
    assert got["values"]["VS.1.RACE"] == ["ASIAN"]  # multiple choice: a list
    assert got["values"]["VS.1.BMI"] == "22.4"  # calculated
    assert got["values"]["VS.1.PREGNANT"] is None
    assert got["updated_at"].endswith("Z") and got["event"]["actual_date"] == "2025-05-02"
    assert values("S01-001")[("VS", 1, "NEUT")] == "1.10"
    grade = got["grades"]["VS.1.NEUT"]
    assert grade["grade"] == 2 and "CTCAE" in grade["version"]  # graded as on the screen


def test_a_form_read_can_be_sent_back_unchanged(client, crc):
    start_event("S01-001")
    put(client, form_url("S01-001"), crc, {"version": None, "values": VITALS_VALUES})
    got = client.get(form_url("S01-001"), headers=crc.headers).get_json()
    before = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.category == "clinical"))
    response = put(client, form_url("S01-001"), crc, {"version": got["version"],
                                                      "values": got["values"]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["version"] == 1 and response.get_json()["changed"] == []
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.category == "clinical")) == before


def _ui_post(client, values: dict) -> None:
    data = {"action": "save", "base_version": ""}
    for key, value in values.items():
        group, row, item = key.split(".")
        if item == "BRTHDT":
            year, month = value.split("-")
            data.update({f"{group}-{row}-{item}-y": year, f"{group}-{row}-{item}-m": month,
                         f"{group}-{row}-{item}-d": "UK"})
        else:
            data[f"{group}-{row}-{item}"] = value
    response = client.post(form_url("S01-002").removeprefix(API), data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]


def _shape(row: AuditEvent, key: str) -> tuple:
    details = json.loads(row.details) if row.details else None
    return (row.category, row.action, row.username, row.role, row.site_code,
            row.path.replace(key, "<subject>"), row.old_value, row.new_value, row.reason,
            row.study_version, details)


def test_the_api_and_the_entry_screen_store_the_same_thing(app, client, crc):
    """Parity: one save through the screen, the same through the API, for two subjects."""
    start_event("S01-001")
    start_event("S01-002")
    ui = app.test_client()
    sign_in(ui, "crc1")
    _ui_post(ui, VITALS_VALUES)
    response = put(client, form_url("S01-001"), crc, {"version": None, "values": VITALS_VALUES})
    assert response.status_code == 200, response.get_json()
    assert values("S01-001") == values("S01-002")
    assert len(values("S01-001")) >= len(VITALS_VALUES)
    by_ui = [_shape(r, "S01-002") for r in audit_rows(subject_key="S01-002", category="clinical")
             if r.action != "event.started"]
    by_api = [_shape(r, "S01-001") for r in audit_rows(subject_key="S01-001", category="clinical")
              if r.action != "event.started"]
    assert by_api == by_ui and len(by_api) > len(VITALS_VALUES)
    assert {r[1] for r in by_api} >= {"form.status", "item.entered"}
    # the API call itself is on record too, next to the clinical rows
    assert audit_rows(action="api.request")[-1].username == "crc1"


def test_a_change_needs_a_reason_through_the_api_too(client, crc):
    start_event("S01-001")
    put(client, form_url("S01-001"), crc, {"version": None, "values": VITALS_VALUES})
    changed = {**VITALS_VALUES, "VS.1.WEIGHT": "74.0"}
    response = put(client, form_url("S01-001"), crc, {"version": 1, "values": changed})
    assert response.status_code == 422
    body = response.get_json()
    assert body["reasons_needed"] == ["VS.1.WEIGHT"]
    assert body["errors"] == {"reasons.VS.1.WEIGHT": [
        "Give a reason for changing Weight (saved value: 72.5)."]}
    assert body["message"] == "Nothing was saved: 1 problem."
    assert values("S01-001")[("VS", 1, "WEIGHT")] == "72.5"
    response = put(client, form_url("S01-001"), crc, {
        "version": 1, "values": changed, "reasons": {"VS.1.WEIGHT": "scale error"}})
    assert response.status_code == 200 and response.get_json()["version"] == 2
    [row] = [r for r in audit_rows(action="item.changed") if r.path.endswith("/WEIGHT")]
    assert (row.old_value, row.new_value, row.reason) == ("72.5", "74.0", "scale error")
    assert row.username == "crc1" and row.role == "coordinator" and row.site_code == "S01"


def test_partial_saves_keep_the_items_not_sent(client, crc):
    start_event("S01-001")
    put(client, form_url("S01-001"), crc, {"version": None, "values": VITALS_VALUES})
    response = put(client, form_url("S01-001"), crc, {
        "version": 1, "partial": True, "values": {"VS.1.NOTES": "fasting"}})
    assert response.status_code == 200, response.get_json()
    stored = values("S01-001")
    assert stored[("VS", 1, "NOTES")] == "fasting" and stored[("VS", 1, "WEIGHT")] == "72.5"
    assert response.get_json()["changed"] == ["VS.1.NOTES"]


def test_a_stale_save_is_refused_with_what_changed(client, crc, caller):
    other = caller("crc2", "coordinator", "S01")
    start_event("S01-001")
    put(client, form_url("S01-001"), crc, {"version": None, "values": VITALS_VALUES})
    first = {**VITALS_VALUES, "VS.1.WEIGHT": "73.0"}
    response = put(client, form_url("S01-001"), other, {
        "version": 1, "values": first, "reasons": {"VS.1.WEIGHT": "re-weighed"}})
    assert response.status_code == 200
    second = {**VITALS_VALUES, "VS.1.HEIGHT": "181"}
    response = put(client, form_url("S01-001"), crc, {
        "version": 1, "values": second, "reasons": {"VS.1.HEIGHT": "re-measured"}})
    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "Conflict" and body["current_version"] == 2
    assert "This form was saved by crc2" in body["message"]
    assert [(c["username"], c["item"], c["old_value"], c["new_value"])
            for c in body["changes"]] == [("crc2", "WEIGHT", "72.5", "73.0"),
                                          ("crc2", "BMI", "22.4", "22.5")]
    assert values("S01-001")[("VS", 1, "HEIGHT")] == "180"
    response = put(client, form_url("S01-001"), crc, {"version": 2, "values": {
        **first, "VS.1.HEIGHT": "181"}, "reasons": {"VS.1.HEIGHT": "re-measured"}})
    assert response.status_code == 200 and response.get_json()["version"] == 3


def test_a_version_is_required_so_that_no_save_overwrites_another(client, crc):
    start_event("S01-001")
    response = put(client, form_url("S01-001"), crc, {"values": VITALS_VALUES})
    assert response.status_code == 422
    assert "version" in response.get_json()["errors"]
    response = put(client, form_url("S01-001"), crc, {"version": 4, "values": VITALS_VALUES})
    assert response.status_code == 409 and response.get_json()["current_version"] is None


def test_completion_is_refused_with_its_reasons(client, crc):
    start_event("S01-001")
    body = {"version": None, "values": {**VITALS_VALUES, "VS.1.SEX": "F"}, "complete": True}
    response = put(client, form_url("S01-001"), crc, body)
    assert response.status_code == 422
    refused = response.get_json()
    assert refused["missing"] == ["VS.1.PREGNANT"] and refused["errors"] == {}
    assert "cannot be marked complete" in refused["message"]
    assert db.session.scalar(select(FormInstance)) is None
    body["values"]["VS.1.PREGNANT"] = "N"
    response = put(client, form_url("S01-001"), crc, body)
    assert response.status_code == 200 and response.get_json()["status"] == "complete"


def test_warnings_are_acknowledged_by_key(client, crc):
    start_event("S01-001")
    body = {"version": None, "values": {**VITALS_VALUES, "VS.1.WEIGHT": "160.0"},
            "complete": True}
    refused = put(client, form_url("S01-001"), crc, body).get_json()
    assert {i["key"] for i in refused["unacknowledged"]} == {"WEIGHT.soft_range.0", "VS_BMI.0"}
    body["acknowledgements"] = {"WEIGHT.soft_range.0": "checked twice", "VS_BMI": "obese"}
    response = put(client, form_url("S01-001"), crc, body)
    assert response.status_code == 200, response.get_json()
    saved = response.get_json()
    assert saved["acknowledgements"]["WEIGHT.soft_range.0"]["justification"] == "checked twice"
    assert saved["acknowledgements"]["VS_BMI.0"]["justification"] == "obese"
    assert {i["key"]: i["acknowledged"] for i in saved["issues"]} == {
        "WEIGHT.soft_range.0": "checked twice", "VS_BMI.0": "obese"}


def test_repeating_rows_are_added_and_removed_with_a_reason(client, crc):
    start_event("S01-001", "AE_LOG", day=None)
    url = form_url("S01-001", "AE_LOG", form="AE")
    rows = {"AE_LINE.1.AETERM": "Nausea", "AE_LINE.1.AESTDTC": "2025-05",
            "AE_LINE.2.AETERM": "Headache", "AE_LINE.2.AESTDTC": "2025-05-03"}
    response = put(client, url, crc, {"version": None, "values": rows})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["rows"] == {"AE_LINE": [1, 2]}
    response = put(client, url, crc, {"version": 1, "values": rows,
                                      "removed_rows": {"AE_LINE.2": ""}})
    assert response.status_code == 422
    assert "removed_rows.AE_LINE.2" in response.get_json()["errors"]
    response = put(client, url, crc, {"version": 1, "values": rows,
                                      "removed_rows": {"AE_LINE.2": "entered twice"}})
    assert response.status_code == 200, response.get_json()
    saved = response.get_json()
    assert saved["rows"] == {"AE_LINE": [1]}
    assert saved["removed_rows"]["AE_LINE.2"]["reason"] == "entered twice"
    assert saved["removed_rows"]["AE_LINE.2"]["values"]["AETERM"] == "Headache"
    assert "AE_LINE.2.AETERM" not in saved["values"]


# --- permissions and authentication of writes ---------------------------------------------


def test_a_monitor_may_read_but_not_save(client, crc, caller):
    monitor = caller("mon1", "monitor")
    start_event("S01-001")
    put(client, form_url("S01-001"), crc, {"version": None, "values": VITALS_VALUES})
    assert client.get(form_url("S01-001"), headers=monitor.headers).status_code == 200
    response = put(client, form_url("S01-001"), monitor, {"version": 1, "values": {
        **VITALS_VALUES, "VS.1.WEIGHT": "80.0"}, "reasons": {"VS.1.WEIGHT": "x"}})
    assert response.status_code == 403
    assert "data.enter" in response.get_json()["message"]
    assert values("S01-001")[("VS", 1, "WEIGHT")] == "72.5"
    sponsor = caller("sp1", "sponsor_viewer")
    assert client.get(form_url("S01-001"), headers=sponsor.headers).status_code == 403


def test_a_browser_session_cookie_cannot_write(client, crc):
    start_event("S01-001")
    sign_in(client, "crc1")
    assert client.get(f"{STUDY}/subjects").status_code == 200  # same-origin reads are fine
    response = client.put(form_url("S01-001"), json={"version": None, "values": VITALS_VALUES})
    assert response.status_code == 401
    assert "a browser session cannot write" in response.get_json()["message"]
    assert values("S01-001") == {}


def test_with_csrf_on_tokens_write_and_cookies_still_cannot(app_factory):
    app = app_factory(WTF_CSRF_ENABLED=True)
    with app.app_context():
        from ecrf.accounts.models import RoleGrant, User
        from ecrf.accounts.passwords import hash_password
        from ecrf.studies import store as studies
        from ecrf.studies.models import Site, Study, StudySite
        from tests.capture.capture_setup import CAPTURE_STUDY, LOADER, enrol
        from tests.conftest import PASSWORD

        site = Site(code="S01", name="Site 1", timezone="Europe/Paris")
        study = Study(oid="CAPTURE", name="Capture", status="active")
        user = User(username="crc1", full_name="C", password_hash=hash_password(PASSWORD),
                    must_change_password=False, active=True, failed_logins=0)
        db.session.add_all([site, study, user, StudySite(study=study, site=site),
                            RoleGrant(user=user, role="coordinator", study=study, site=site)])
        db.session.commit()
        studies.load_folder(db.session, LOADER, CAPTURE_STUDY)
        db.session.commit()
        enrol(study, "S01-001")
        start_event("S01-001")
        headers = bearer(token_for(user))
        client = app.test_client()
        response = client.put(form_url("S01-001"), headers=headers,
                              json={"version": None, "values": VITALS_VALUES})
        assert response.status_code == 200, response.get_json()
        browser = app.test_client()
        login_page = browser.get("/login").get_data(as_text=True)
        csrf = login_page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        signed = browser.post("/login", data={"username": "crc1", "password": PASSWORD,
                                              "csrf_token": csrf})
        assert signed.status_code == 302
        response = browser.put(form_url("S01-001"), json={"version": 1, "values": {}})
        assert response.status_code == 401


def test_a_bearer_token_decides_even_with_a_session_cookie(client, crc, caller):
    monitor = caller("mon1", "monitor")
    start_event("S01-001")
    sign_in(client, "crc1")
    response = put(client, form_url("S01-001"), monitor, {"version": None,
                                                          "values": VITALS_VALUES})
    assert response.status_code == 403  # acting as the token's monitor, not the cookie's crc
    response = client.get(f"{API}/studies", headers=bearer("forged"))
    assert response.status_code == 401


# --- malformed requests -------------------------------------------------------------------


@pytest.mark.parametrize("data, content_type, status, message", [
    ('{"version": null, "values": {', "application/json", 400, "The body is not valid JSON"),
    ("[1, 2]", "application/json", 400, "must be a JSON object, not an array"),
    ("", "application/json", 400, "The body is empty"),
    ('{"version": NaN}', "application/json", 400, "NaN is not a JSON number"),
    (b"\xff\xfe", "application/json", 400, "not UTF-8"),
    ("version=1", "application/x-www-form-urlencoded", 415, "application/json"),
])
def test_malformed_bodies_are_400_naming_the_problem(client, crc, data, content_type, status,
                                                     message):
    start_event("S01-001")
    response = client.put(form_url("S01-001"), headers=crc.headers, data=data,
                          content_type=content_type)
    assert response.status_code == status
    body = response.get_json()
    assert message in body["message"] and body["error"]
    assert values("S01-001") == {}


@pytest.mark.parametrize("body, where, message", [
    ({"version": None, "values": {}, "colour": "red"}, "colour", "Unknown field"),
    ({"version": None, "values": {"VS.WEIGHT": "70"}}, "values.VS.WEIGHT", "GROUP.ROW.ITEM"),
    ({"version": None, "values": {"XX.1.WEIGHT": "70"}}, "values.XX.1.WEIGHT",
     "VITALS has no group XX"),
    ({"version": None, "values": {"VS.1.AETERM": "x"}}, "values.VS.1.AETERM",
     "Group VS has no item AETERM"),
    ({"version": None, "values": {"VS.2.WEIGHT": "70"}}, "values.VS.2.WEIGHT",
     "not a repeating group"),
    ({"version": None, "values": {"VS.1.SMOKER": True}}, "values.VS.1.SMOKER",
     "not a boolean"),
    ({"version": None, "values": {"VS.1.RACE": [1]}}, "values.VS.1.RACE",
     "a list holding something other than strings"),
    ({"version": None, "values": []}, "values", "Give an object, not an array"),
    ({"version": "1", "values": {}}, "version", "not a string"),
    ({"version": None, "complete": "yes"}, "complete", "Give true or false"),
    ({"version": None, "reasons": {"VS.1.WEIGHT": 5}}, "reasons.VS.1.WEIGHT",
     "as a string"),
    ({"version": None, "acknowledgements": {"NOPE.0": "x"}}, "acknowledgements.NOPE.0",
     "no warning NOPE"),
    ({"version": None, "removed_rows": {"VS.1": "x"}}, "removed_rows.VS.1",
     "GROUP.ROW"),
    ({"version": None, "values": {"VS.1.WEIGHT": "12"}}, "values.VS.1.WEIGHT",
     "12 kg is impossible: enter a value from 20 kg to 300 kg."),
    ({"version": None, "values": {"VS.1.WEIGHT": 72.55}}, "values.VS.1.WEIGHT",
     "At most 1 decimal place"),
    ({"version": None, "values": {"VS.1.BMI": "99.9"}}, "values.VS.1.BMI", "is calculated"),
    ({"version": None, "values": {**VITALS_VALUES, "VS.1.PREGNANT": "N"}},
     "values.VS.1.PREGNANT", "is not asked here"),
])
def test_unknown_fields_and_refused_values_are_422_where_they_were_sent(client, crc, body,
                                                                        where, message):
    start_event("S01-001")
    response = put(client, form_url("S01-001"), crc, body)
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]
    assert where in errors, errors
    assert any(message in m for m in errors[where]), errors
    assert values("S01-001") == {}


def test_data_entry_into_an_event_not_done_is_a_conflict(client, crc):
    from ecrf.capture import operations as capture
    from ecrf.core.audit.trail import Actor

    found = subject("S01-001")
    capture.declare_not_done(db.session, Actor(None, "crc", "coordinator"), found,
                             "SCREEN", 1, "moved away")
    db.session.commit()
    response = put(client, form_url("S01-001"), crc, {"version": None, "values": VITALS_VALUES})
    assert response.status_code == 409
    assert "declared not done (moved away)" in response.get_json()["message"]


# --- audit -------------------------------------------------------------------------------


def test_every_token_use_is_audited_once_even_when_the_request_fails(client, crc):
    start_event("S01-001")
    calls = [("GET", f"{API}/studies", None),
             ("PUT", form_url("S01-001"), {"values": {}}),  # 422: rolled back
             ("PUT", form_url("S01-001"), {"version": None, "values": VITALS_VALUES}),
             ("GET", f"{STUDY}/subjects/S02-001", None)]  # 404
    for method, url, body in calls:
        client.open(url, method=method, headers=crc.headers, json=body)
    rows = audit_rows(action="api.request")
    assert [(json.loads(r.details)["method"], json.loads(r.details)["path"]) for r in rows] \
        == [(m, u) for m, u, _ in calls]
    assert {json.loads(r.details)["token_prefix"] for r in rows} == {crc.headers[
        "Authorization"][7:15]}


def test_the_subject_audit_trail_with_filters_and_pages(client, crc, caller):
    start_event("S01-001")
    put(client, form_url("S01-001"), crc, {"version": None, "values": VITALS_VALUES})
    inv = caller("inv1", "investigator", "S01")
    url = f"{STUDY}/subjects/S01-001/audit"
    body = client.get(url, headers=inv.headers).get_json()
    actions = [r["action"] for r in body["items"]]
    assert actions[0] == "subject.enrolled" and "item.entered" in actions
    assert body["next_after"] is None
    entered = client.get(f"{url}?action=item.entered&user=crc1",
                         headers=inv.headers).get_json()["items"]
    assert entered and all(r["action"] == "item.entered" for r in entered)
    weight = next(r for r in entered if r["path"].endswith("/WEIGHT"))
    assert weight["new_value"] == "72.5" and weight["details"] == {"form_version": 1}
    assert weight["occurred_at"].endswith("Z") and weight["site"] == "S01"
    first = client.get(f"{url}?limit=2", headers=inv.headers).get_json()
    assert len(first["items"]) == 2 and first["next_after"] == first["items"][-1]["seq"]
    second = client.get(f"{url}?limit=2&after={first['next_after']}",
                        headers=inv.headers).get_json()
    assert second["items"][0]["seq"] > first["next_after"]
    assert client.get(f"{url}?form=CONSENT", headers=inv.headers).get_json()["items"] == []
    assert client.get(f"{url}?from=2000-01-01&to=2000-01-02",
                      headers=inv.headers).get_json()["items"] == []
    response = client.get(f"{url}?from=yesterday", headers=inv.headers)
    assert response.status_code == 400 and "'from' must be a date" in \
        response.get_json()["message"]
    response = client.get(url, headers=crc.headers)  # a coordinator has no audit.view
    assert response.status_code == 403


def test_the_study_audit_trail_is_site_scoped(client, caller):
    start_event("S01-001")
    start_event("S02-001")
    inv = caller("inv1", "investigator", "S01")
    monitor = caller("mon1", "monitor")
    mine = client.get(f"{STUDY}/audit", headers=inv.headers).get_json()["items"]
    assert {r["site"] for r in mine} == {"S01"}
    assert {r["subject_key"] for r in mine} == {"S01-001", "S01-002"}
    everything = client.get(f"{STUDY}/audit?limit=5000", headers=monitor.headers).get_json()
    keys = {r["subject_key"] for r in everything["items"]}
    assert {"S01-001", "S02-001"} <= keys
    assert any(r["action"] == "study.version_loaded" for r in everything["items"])
    only = client.get(f"{STUDY}/audit?subject=S02-001&action=event.started",
                      headers=monitor.headers).get_json()["items"]
    assert [r["subject_key"] for r in only] == ["S02-001"]
    assert client.get(f"{STUDY}/audit?subject=S02-001", headers=inv.headers
                      ).get_json()["items"] == []


def test_row_numbers_are_checked(client, crc):
    start_event("S01-001", "AE_LOG", day=None)
    url = form_url("S01-001", "AE_LOG", form="AE")
    response = put(client, url, crc, {"version": None, "values": {"AE_LINE.0.AETERM": "x"}})
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"values.AE_LINE.0.AETERM": [
        "Rows are numbered from 1."]}
    response = put(client, url, crc, {"version": None, "values": {
        "AE_LINE.10000.AETERM": "x", "AE_LINE.10000.AESTDTC": "2025"}})
    assert response.status_code == 422
    assert "Row numbers run from 1 to 9999." in response.get_json()["form_errors"]
    assert values("S01-001") == {}


def test_locked_data_is_refused_with_423(app):
    from ecrf.api.forms import _capture_problem
    from ecrf.review.locks import DataLockedError

    with app.test_request_context("/api/v1/studies"):
        problem = _capture_problem(DataLockedError("Study %(study)s is frozen.",
                                                   study="CAPTURE"))
    assert problem.status == 423 and problem.message == "Study CAPTURE is frozen."
