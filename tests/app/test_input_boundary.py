"""The input boundary: text no field may hold (NUL, lone surrogates), over-long text, huge
numbers, deep or huge JSON and dates at the ends of the calendar are refused with a clear
error naming the field, on the screens, the API and the command line; never a 500."""

from __future__ import annotations

import json

import pytest

from ecrf.core import MAX_ID, MAX_JSON_DEPTH, json_depth, load_json, text_problem, whole_number
from tests.api import (
    API,
    STUDY,
    form_url,
)
from tests.api.test_openapi import check
from tests.conftest import PASSWORD, sign_in

HUGE = "9" * 30  # beyond 64 bits
NUL = "a\x00b"
LONE = "a\ud800b"
SUBJECT_WEB = "/studies/CAPTURE/subjects/S01-001"
FORM_WEB = SUBJECT_WEB + "/events/SCREEN/1/forms/VITALS"


def _save(world, **body) -> dict:
    return {"version": world["version"], "partial": True, **body}


def _raw(body: str) -> dict:
    return {"data": body.encode("utf-8", "surrogatepass"), "content_type": "application/json"}


# --- pure rules -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, refused", [
    ("plain", False), ("accentué 中文 😀", False), ("", False), ("\t\n", False),
    ("\x00", True), ("a\x00", True), ("\ud800", True), ("x\udfff", True),
    ("\ud83d\ude00", True),  # a surrogate pair in a Python str is two lone surrogates
    ("\ufffd", False),
])
def test_text_no_field_may_hold(text, refused):
    assert (text_problem(text) is not None) is refused


@pytest.mark.parametrize("text, expected", [
    ("0", 0), ("1", 1), (" 42 ", 42), (str(MAX_ID), MAX_ID), (str(MAX_ID + 1), None),
    (HUGE, None), ("-1", None), ("+1", None), ("²", None), ("١٢", None), ("1e3", None),
    ("", None), ("9" * 5000, None), ("0x10", None),
])
def test_whole_numbers_are_ascii_digits_within_the_database(text, expected):
    assert whole_number(text) == expected


@pytest.mark.parametrize("text, depth", [
    ("{}", 1), ("[]", 1), ("1", 0), ('"[[[["', 0), ('["\\"[[["]', 1), ('["\\\\", [1]]', 2),
    ('{"a": {"b": [1, {"c": "]]]"}]}}', 4), ("[" * 10 + "]" * 10, 10),
    ('"\\\\\\"[["', 0), ('{"k\\"{": [[]]}', 3),
])
def test_json_depth_is_read_without_recursion(text, depth):
    assert json_depth(text) == depth


def test_deep_json_is_refused_before_the_parser_recurses():
    assert load_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    for depth in (MAX_JSON_DEPTH + 1, 100_000):
        with pytest.raises(ValueError, match="nested more than"):
            load_json("[" * depth + "]" * depth)


# --- API ------------------------------------------------------------------------------------

QUERY = "/studies/{study_oid}/queries/{query_id}"
FORM = "/studies/{study_oid}/subjects/{subject_key}/events/{event_oid}/{repeat}/forms/{form_oid}"
AUDIT = "/studies/{study_oid}/subjects/{subject_key}/audit"
STUDY_AUDIT = "/studies/{study_oid}/audit"
SUBJECTS = "/studies/{study_oid}/subjects"
SUBJECT = "/studies/{study_oid}/subjects/{subject_key}"

# (case, who, method, url, request, status, field named in the answer, documented path)
API_CASES = [
    ("NUL in an item value", "crc", "put", "form", lambda w: {"json": _save(
        w, values={"VS.1.WEIGHT": "7\x002"}, reasons={"VS.1.WEIGHT": "typo"})},
     400, "values.VS.1.WEIGHT", FORM),
    ("NUL in a reason", "crc", "put", "form", lambda w: {"json": _save(
        w, values={"VS.1.WEIGHT": "73"}, reasons={"VS.1.WEIGHT": NUL})},
     400, "reasons.VS.1.WEIGHT", FORM),
    ("NUL in a key", "crc", "put", "form", lambda w: {"json": _save(
        w, values={"VS.1.WEIGHT\x00": "73"})}, 400, "values.VS.1.WEIGHT\\u0000", FORM),
    ("lone surrogate in a value", "crc", "put", "form", lambda w: _raw(json.dumps(_save(
        w, values={"VS.1.WEIGHT": "x"})).replace('"x"', '"\\ud800"')),
     400, "values.VS.1.WEIGHT", FORM),
    ("raw lone surrogate bytes", "crc", "put", "form", lambda w: _raw(
        '{"version": 1, "values": {"VS.1.WEIGHT": "\ud800"}}'), 400, None, FORM),
    ("reason over 2000", "crc", "put", "form", lambda w: {"json": _save(
        w, values={"VS.1.WEIGHT": "73"}, reasons={"VS.1.WEIGHT": "r" * 2001})},
     422, "reasons.VS.1.WEIGHT", FORM),
    ("reason of 10 MB", "crc", "put", "form", lambda w: {"json": _save(
        w, values={"VS.1.WEIGHT": "73"}, reasons={"VS.1.WEIGHT": "r" * 10_000_000})},
     413, None, FORM),
    ("row beyond the database", "crc", "put", "form", lambda w: {"json": _save(
        w, removed_rows={f"VS.{HUGE}": "gone"}, values={f"VS.{HUGE}.WEIGHT": "1"})},
     422, f"values.VS.{HUGE}.WEIGHT", FORM),
    ("JSON 100,000 deep", "crc", "put", "form", lambda w: _raw(
        '{"values": ' + "[" * 100_000 + "]" * 100_000 + "}"), 400, None, FORM),
    ("JSON 65 deep", "crc", "put", "form", lambda w: _raw(
        '{"values": ' + "{\"a\": " * 64 + "1" + "}" * 64 + "}"), 400, None, FORM),
    ("NUL in a query answer", "crc", "post", "answer", lambda w: {"json": {"text": NUL}},
     400, "text", QUERY + "/answer"),
    ("query answer over 4000", "crc", "post", "answer", lambda w: {"json": {
        "text": "a" * 4001}}, 422, "text", QUERY + "/answer"),
    ("surrogate in a query answer", "crc", "post", "answer", lambda w: _raw(
        '{"text": "\\udc00"}'), 400, "text", QUERY + "/answer"),
    ("huge page", "crc", "get", f"{STUDY}/subjects?page={HUGE}", None, 400, None, SUBJECTS),
    ("huge per_page", "crc", "get", f"{STUDY}/subjects?per_page={HUGE}", None, 400, None,
     SUBJECTS),
    ("page in other digits", "crc", "get", f"{STUDY}/subjects?page=²", None, 400, None,
     SUBJECTS),
    ("huge after", "mon", "get", f"{STUDY}/subjects/S01-001/audit?after={HUGE}", None, 400,
     None, AUDIT),
    ("huge repeat", "crc", "get", f"{STUDY}/subjects/S01-001/events/SCREEN/{HUGE}/forms/VITALS",
     None, 404, None, FORM),
    ("huge query id", "crc", "get", f"{STUDY}/queries/{HUGE}", None, 404, None, QUERY),
    ("NUL in a subject key", "crc", "get", f"{STUDY}/subjects/S01%00001", None, 400,
     "subject_key", SUBJECT),
    ("NUL in a query argument", "crc", "get", f"{STUDY}/subjects?site=S%0001", None, 400,
     "site", SUBJECTS),
    ("argument over 4000", "crc", "get", f"{STUDY}/subjects?site={'S' * 4001}", None, 400,
     "site", SUBJECTS),
    ("audit to the last day", "mon", "get", f"{STUDY}/subjects/S01-001/audit?to=9999-12-31",
     None, 200, None, AUDIT),
    ("audit from year 1 at +14:00", "mon", "get",
     f"{STUDY}/subjects/S01-001/audit?from=0001-01-01T00:00:00%2B14:00", None, 400, None,
     AUDIT),
    ("audit to the end of 9999 at -10:00", "mon", "get",
     f"{STUDY}/subjects/S01-001/audit?to=9999-12-31T23:00:00-10:00", None, 400, None, AUDIT),
    ("audit from year 1", "mon", "get", f"{STUDY}/subjects/S01-001/audit?from=0001-01-01",
     None, 400, None, AUDIT),
    ("study audit to the last day", "mon", "get", f"{STUDY}/audit?to=9999-12-31", None, 200,
     None, STUDY_AUDIT),
]


@pytest.mark.parametrize("case, who, method, url, request_, status, field, path", API_CASES,
                         ids=[c[0] for c in API_CASES])
def test_the_api_refuses_bad_input_clearly(client, world, case, who, method, url, request_,
                                           status, field, path):
    target = {"form": form_url("S01-001"),
              "answer": f"{STUDY}/queries/{world['query']}/answer"}.get(url, url)
    kwargs = request_(world) if request_ else {}
    response = getattr(client, method)(target, headers=world[who], **kwargs)
    assert response.status_code == status, (case, response.get_data(as_text=True)[:500])
    body = response.get_json()
    assert set(body) >= ({"error", "message"} if status >= 400 else set())
    if field is not None:
        assert field in body["errors"], body
        if " over " in case:  # the limit is named
            assert ("2000" if "reason" in field else "4000") in json.dumps(body), body
    if status != 413:  # the documented answer, with its schema
        check(client.get(f"{API}/openapi.json").get_json(), path, method, response)


def test_nothing_is_cut_or_saved_when_a_reason_is_too_long(client, world):
    from ecrf.capture import ItemValue
    from ecrf.core import db

    response = client.put(form_url("S01-001"), headers=world["crc"], json=_save(
        world, values={"VS.1.WEIGHT": "73"}, reasons={"VS.1.WEIGHT": "r" * 2001}))
    assert response.status_code == 422
    message = response.get_json()["errors"]["reasons.VS.1.WEIGHT"][0]
    assert "2001" in message and "2000" in message
    assert "73" not in {v.value for v in db.session.query(ItemValue)}


def test_a_nul_in_the_bearer_token_is_refused(client, world):
    response = client.get(f"{STUDY}/subjects", headers={"Authorization": "Bearer ab\x00c"})
    assert response.status_code == 400
    assert "Authorization" in response.get_json()["errors"]


def test_a_body_over_the_request_size_is_refused_as_json(client, world, app):
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    response = client.put(form_url("S01-001"), headers=world["crc"],
                          data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                          content_type="application/json")
    assert response.status_code == 413 and response.get_json()["error"]


def test_the_document_declares_the_bounds(client):
    doc = client.get(f"{API}/openapi.json").get_json()
    params = doc["components"]["parameters"]
    assert params["repeat"]["schema"]["maximum"] == MAX_ID
    assert params["page"]["schema"]["maximum"] == 10**6
    assert params["after"]["schema"]["maximum"] == 2**62
    assert params["subject_key"]["schema"]["maxLength"] == 4000
    assert {s.get("format") for s in params["to"]["schema"]["anyOf"]} == {"date", "date-time"}
    save = doc["components"]["schemas"]["FormSave"]["properties"]
    assert save["reasons"]["additionalProperties"]["maxLength"] == 2000
    assert save["version"]["maximum"] == MAX_ID
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if path not in ("/docs", "/openapi.json"):
                assert "400" in op["responses"], (method, path)
            if "requestBody" in op:
                assert "413" in op["responses"], (method, path)
            for param in op.get("parameters", []):
                schema = param.get("schema", {})
                if "$ref" not in param and schema.get("type") == "integer":
                    assert "maximum" in schema, (method, path, param["name"])


# --- screens --------------------------------------------------------------------------------

def test_login_with_a_nul_username_is_refused_and_what_was_typed_shown(client, world):
    response = client.post("/login", data={"username": "ad\x00min", "password": "s3cret-pw"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "username" in page and "NUL" in page and "admin" in page
    assert "s3cret-pw" not in page  # a password is never shown back


WEB_CASES = [
    ("NUL in a subject key", "get", "/studies/CAPTURE/subjects/S01%00001", None, 400),
    ("NUL in the audit filter", "get", SUBJECT_WEB + "/audit?user=a%00", None, 400),
    ("audit to the last day", "get", SUBJECT_WEB + "/audit?to=9999-12-31", None, 200),
    ("audit from year 1", "get", SUBJECT_WEB + "/audit?from=0001-01-01", None, 200),
    ("audit CSV to the last day", "get", SUBJECT_WEB + "/audit.csv?to=9999-12-31", None, 200),
    ("audit in the last days", "get", SUBJECT_WEB + "/audit?from=9999-12-30&to=9999-12-30",
     None, 200),
    ("huge page of subjects", "get", f"/studies/CAPTURE/subjects?page={HUGE}", None, 200),
    ("huge repeat", "get", f"{SUBJECT_WEB}/events/SCREEN/{HUGE}/forms/VITALS", None, 404),
    ("huge query id", "get", f"/studies/CAPTURE/queries/{HUGE}", None, 404),
    ("NUL in a form value", "post", FORM_WEB, {"VS-1-WEIGHT": NUL, "action": "save"}, 400),
    ("NUL in a field name", "post", FORM_WEB, {"VS-1-WEIGHT\x00": "1"}, 400),
    ("NUL in a query answer", "post", "/studies/CAPTURE/queries/{query}/answer",
     {"text": NUL}, 400),
    ("NUL in a token name", "post", "/account/tokens", {"name": NUL, "days": "30"}, 400),
    ("argument over 4000", "get", f"/studies/CAPTURE/subjects?site={'S' * 4001}", None, 400),
]


@pytest.mark.parametrize("case, method, url, data, status", WEB_CASES,
                         ids=[c[0] for c in WEB_CASES])
def test_the_screens_refuse_bad_input_clearly(client, world, case, method, url, data, status):
    assert sign_in(client, "mon1" if "/audit" in url else "crc1").status_code == 302
    response = getattr(client, method)(url.format(query=world["query"]), data=data)
    assert response.status_code == status, (case, response.get_data(as_text=True)[:300])
    if status == 400:
        page = response.get_data(as_text=True)
        assert "Nothing was done" in page
        if data:  # what was typed is shown back, without the NUL
            assert "ab" in page or "VS-1-WEIGHT" in page


@pytest.mark.parametrize("case, url, data", [
    ("NUL in a site name", "/admin/sites/new",
     {"code": "S09", "name": NUL, "timezone": "UTC"}),
    ("NUL in a username", "/admin/users/new",
     {"username": NUL, "full_name": "X", "password": PASSWORD}),
    ("huge user id", f"/admin/users/{HUGE}/disable", {}),
])
def test_the_admin_screens_refuse_bad_input(client, world, case, url, data):
    assert sign_in(client, "root").status_code == 302
    response = client.post(url, data=data)
    assert response.status_code == (404 if "huge" in case else 400), case


def test_a_nul_in_an_uploaded_file_name_is_refused(client, world):
    import io

    assert sign_in(client, "crc1").status_code == 302
    response = client.post("/studies/CAPTURE/labs/preview",
                           data={"file": (io.BytesIO(b"x"), "lab\x00.csv")})
    assert response.status_code == 400 and "file" in response.get_data(as_text=True)


def test_a_surrogate_encoded_in_a_form_arrives_as_a_replacement_character(client, world):
    # A browser cannot send a lone surrogate; its UTF-8-like bytes are decoded as U+FFFD.
    assert sign_in(client, "root").status_code == 302
    response = client.post("/admin/sites/new", data=b"code=S09&name=a%ED%A0%80b&timezone=UTC",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code in (200, 302)


def test_the_admin_list_of_users_takes_any_page(client, world):
    assert sign_in(client, "root").status_code == 302
    assert client.get(f"/admin/users?page={HUGE}").status_code == 200


# --- command line ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["users", "create", NUL, "--name", "X", "--password-stdin"],
    ["users", "create", "u1", "--name", LONE, "--password-stdin"],
    ["sites", "create", "S09", NUL],
    ["tokens", "create", "crc1", "--name", NUL],
    ["users", "disable", "crc1", "--reason", NUL],
    ["tokens", "revoke", HUGE],
    ["study", "freeze", "CAPTURE", "--reason", NUL],
])
def test_commands_refuse_text_no_field_may_hold(runner, world, args):
    result = runner.invoke(args=args, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output
    assert "Traceback" not in result.output


# --- services: a long text is refused, never cut ---------------------------------------------

def test_services_refuse_a_long_reason_instead_of_cutting_it(world):
    from ecrf.capture import CaptureError, Submission
    from ecrf.capture import operations as capture
    from ecrf.core import db
    from ecrf.review import ReviewError
    from ecrf.review.support import clean_text
    from tests.api import ADMIN, subject

    found = subject("S01-001")
    key = ("VS", 1, "WEIGHT")
    result = capture.save_form(db.session, ADMIN, found, "SCREEN", 1, "VITALS", Submission(
        values={key: "74"}, reasons={key: "r" * 2001}, partial=True),
        base_version=world["version"], complete=False)
    assert not result.saved
    assert "2001" in str(result.errors[key][0]) and "2000" in str(result.errors[key][0])
    db.session.rollback()
    with pytest.raises(CaptureError, match="2001"):
        capture.declare_not_done(db.session, ADMIN, found, "AE_LOG", 1, "r" * 2001)
    db.session.rollback()
    with pytest.raises(ReviewError, match="4001"):
        clean_text("t" * 4001)
    assert clean_text("  kept whole  ") == "kept whole"
