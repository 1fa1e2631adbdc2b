"""The OpenAPI document: well formed, public, in step with the app's real routes, and
describing the responses the API really gives (validated against its schemas)."""

from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator
from werkzeug.routing import IntegerConverter

from ecrf.accounts.permissions import ROUTES, Public
from tests.api import (
    API,
    STUDY,
    VITALS_VALUES,
    bearer,
    form_url,
    setup_study,
    start_event,
    token_for,
)

METHODS = {"get", "put", "post", "patch", "delete"}
HTTP_METHODS = METHODS | {"head", "options", "trace"}


@pytest.fixture
def doc(client) -> dict:
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def resolve(doc: dict, node: dict) -> dict:
    while "$ref" in node and len(node) == 1:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target = doc
        for part in ref[2:].split("/"):
            assert part in target, f"unresolved reference {ref}"
            target = target[part]
        node = target
    return node


def all_refs(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in all_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in all_refs(v)]
    return []


def operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                yield path, method, op


# --- structure ----------------------------------------------------------------------------


def test_the_document_is_public_and_costs_no_audit_row(client, doc):
    from ecrf.core.audit.models import AuditEvent
    from ecrf.core.extensions import db

    assert isinstance(ROUTES["api.openapi"], Public)
    assert client.get(f"{API}/openapi.json", headers=bearer("nonsense")).status_code == 200
    assert db.session.query(AuditEvent).count() == 0  # not even the refused token


def test_the_document_has_the_structure_of_openapi_3_1(doc):
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["servers"] == [{"url": API}]
    assert set(doc) <= {"openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks",
                        "components", "security", "tags", "externalDocs"}
    components = doc["components"]
    assert set(components) <= {"schemas", "responses", "parameters", "examples",
                               "requestBodies", "headers", "securitySchemes", "links",
                               "callbacks", "pathItems"}
    assert components["securitySchemes"]["bearerAuth"] == {
        **components["securitySchemes"]["bearerAuth"], "type": "http", "scheme": "bearer"}
    for requirement in doc["security"]:
        assert set(requirement) <= set(components["securitySchemes"])
    tags = {t["name"] for t in doc["tags"]}
    seen_ids = set()
    for path, method, op in operations(doc):
        assert path.startswith("/") and not path.startswith(API), path
        assert method in METHODS, (path, method)
        assert op["operationId"] not in seen_ids, op["operationId"]
        seen_ids.add(op["operationId"])
        assert op["summary"] and set(op["tags"]) <= tags
        assert op["responses"], (path, method)
        assert any(code.startswith("2") for code in op["responses"]), (path, method)
        for code, response in op["responses"].items():
            assert re.fullmatch(r"[1-5][0-9][0-9]", code), code
            response = resolve(doc, response)
            assert response["description"]
            for media, content in response.get("content", {}).items():
                # JSON everywhere; the reference for people is the one HTML page, and a
                # job's file is a file.
                expected = {"text/html"} if path == "/docs" else {"application/json"}
                if path.endswith("/download") and code == "200":
                    expected = {"application/zip", "application/xml", "application/pdf"}
                assert media in expected and "schema" in content
        if "requestBody" in op:
            assert method in ("put", "post", "patch")
            assert "application/json" in op["requestBody"]["content"]
        template_params = set(re.findall(r"\{([^}]+)\}", path))
        params = [resolve(doc, p) for p in op.get("parameters", [])]
        names = [(p["name"], p["in"]) for p in params]
        assert len(names) == len(set(names)), (path, method, names)
        for p in params:
            assert p["in"] in ("path", "query", "header", "cookie") and "schema" in p
            if p["in"] == "path":
                assert p["required"] is True
        assert {p["name"] for p in params if p["in"] == "path"} == template_params, path
        for requirement in op.get("security", []):
            assert set(requirement) <= set(components["securitySchemes"])
    for ref in all_refs(doc):
        resolve(doc, {"$ref": ref})  # every reference resolves inside the document


def test_every_schema_is_valid_json_schema_2020_12(doc):
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema({**schema, "components": doc["components"]})
    json.dumps(doc)  # plain JSON, nothing the encoder had to guess


# --- in step with the app -----------------------------------------------------------------


def _template(rule) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule[len(API):])


def test_every_api_route_is_documented_and_nothing_else(app, doc):
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API + "/"):
            continue
        path = _template(rule)
        routes.setdefault(path, set()).update(
            m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert path in doc["paths"], f"{rule.rule} is not documented"
            op = doc["paths"][path].get(method.lower())
            assert op is not None, f"{method} {rule.rule} is not documented"
            params = {p["name"]: p for p in map(lambda p: resolve(doc, p), op.get("parameters", []))
                      if p["in"] == "path"}
            assert set(params) == set(rule.arguments), rule.rule
            for name in rule.arguments:
                integer = isinstance(rule._converters[name], IntegerConverter)
                assert (params[name]["schema"]["type"] == "integer") == integer, name
    documented = {path: {m for m in item if m in METHODS} for path, item in doc["paths"].items()}
    assert documented == routes


def test_every_api_route_has_a_permission_decision(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API + "/"):
            assert rule.endpoint in ROUTES, rule.endpoint


# --- real responses match the document ----------------------------------------------------


def check(doc: dict, path: str, method: str, response) -> dict:
    op = doc["paths"][path][method]
    code = str(response.status_code)
    assert code in op["responses"], f"{method.upper()} {path} answered {code}, undocumented"
    described = resolve(doc, op["responses"][code])
    schema = described["content"]["application/json"]["schema"]
    body = response.get_json()
    validator = Draft202012Validator({**schema, "components": doc["components"]})
    problems = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not problems, f"{method.upper()} {path} {code}: " + "; ".join(
        f"{list(e.path)}: {e.message}" for e in problems[:5])
    return body


FORM = "/studies/{study_oid}/subjects/{subject_key}/events/{event_oid}/{repeat}/forms/{form_oid}"


def test_responses_match_their_schemas(app, client, doc, make_study, make_user):
    setup_study(make_study)
    crc = bearer(token_for(make_user("crc1", role="coordinator", study="CAPTURE", site="S01")))
    inv = bearer(token_for(make_user("inv1", role="investigator", study="CAPTURE",
                                     site="S01")))
    mon = bearer(token_for(make_user("mon1", role="monitor", study="CAPTURE")))
    start_event("S01-001")
    start_event("S01-001", "AE_LOG", day=None)
    url = form_url("S01-001")

    check(doc, "/studies", "get", client.get(f"{API}/studies", headers=crc))
    check(doc, "/studies", "get", client.get(f"{API}/studies"))  # 401
    check(doc, "/studies/{study_oid}", "get", client.get(STUDY, headers=crc))
    check(doc, "/studies/{study_oid}", "get", client.get(f"{API}/studies/NOPE", headers=crc))
    subjects = "/studies/{study_oid}/subjects"
    check(doc, subjects, "get", client.get(f"{STUDY}/subjects", headers=crc))
    check(doc, subjects, "get", client.get(f"{STUDY}/subjects?page=0", headers=crc))
    one = "/studies/{study_oid}/subjects/{subject_key}"
    check(doc, one, "get", client.get(f"{STUDY}/subjects/S01-001", headers=crc))
    check(doc, one, "get", client.get(f"{STUDY}/subjects/S02-001", headers=crc))

    check(doc, FORM, "get", client.get(form_url("S01-002"), headers=crc))  # 409 not started
    check(doc, FORM, "get", client.get(url, headers=crc))
    saved = check(doc, FORM, "put", client.put(url, headers=crc, json={
        "version": None, "values": {**VITALS_VALUES, "VS.1.WEIGHT": "160.0"}}))
    assert saved["issues"]
    check(doc, FORM, "get", client.get(url, headers=mon))
    check(doc, FORM, "put", client.put(url, headers=crc, json={"version": 1, "values": {
        **VITALS_VALUES, "VS.1.WEIGHT": "12"}}))  # 422
    check(doc, FORM, "put", client.put(url, headers=crc, json={"version": 1, "values": {},
                                                                "complete": True,
                                                                "partial": True}))  # 422
    check(doc, FORM, "put", client.put(url, headers=crc, json={"version": None}))  # 409
    check(doc, FORM, "put", client.put(url, headers=crc, data="{", content_type="application/json"))
    check(doc, FORM, "put", client.put(url, headers=crc, data="x", content_type="text/plain"))
    check(doc, FORM, "put", client.put(url, headers=mon, json={"version": 1}))  # 403
    ae = form_url("S01-001", "AE_LOG", form="AE")
    check(doc, FORM, "put", client.put(ae, headers=crc, json={"version": None, "values": {
        "AE_LINE.1.AETERM": "Rash", "AE_LINE.1.AESTDTC": "2025"}}))
    check(doc, FORM, "put", client.put(ae, headers=crc, json={
        "version": 1, "partial": True, "removed_rows": {"AE_LINE.1": "wrong subject"}}))
    check(doc, FORM, "get", client.get(ae, headers=crc))

    trail = "/studies/{study_oid}/subjects/{subject_key}/audit"
    body = check(doc, trail, "get", client.get(f"{STUDY}/subjects/S01-001/audit?limit=3",
                                               headers=inv))
    assert body["next_after"] is not None
    check(doc, trail, "get", client.get(f"{STUDY}/subjects/S01-001/audit", headers=crc))  # 403
    check(doc, "/studies/{study_oid}/audit", "get", client.get(f"{STUDY}/audit", headers=mon))
    check(doc, "/studies/{study_oid}/audit", "get",
          client.get(f"{STUDY}/audit?limit=99999", headers=mon))  # 400
