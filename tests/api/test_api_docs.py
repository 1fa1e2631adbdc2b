"""/api/v1/docs: the OpenAPI document for people, public, from local assets only, and
listing every operation and schema the document has."""

from __future__ import annotations

import re

from ecrf.api.docs import type_text
from tests.api import API


def test_the_reference_lists_every_operation_and_schema(client):
    doc = client.get(f"{API}/openapi.json").get_json()
    response = client.get(f"{API}/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert f'id="{op["operationId"]}"' in html, (method, path)
    for name in doc["components"]["schemas"]:
        assert f'id="schema-{name}"' in html, name
    # Nothing is fetched from elsewhere and nothing runs.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html.split("</main>")[0].split('id="main"')[-1]


def test_the_reference_costs_no_sign_in(client):
    assert client.get(f"{API}/docs").status_code == 200


def test_types_in_words():
    assert type_text({"$ref": "#/components/schemas/Subject"}) == "Subject"
    assert type_text({"type": ["string", "null"], "format": "date"}) == "string or null (date)"
    assert type_text({"type": "integer", "minimum": 1, "maximum": 500}) == "integer 1-500"
    assert type_text({"type": "array", "items": {"type": "string"}}) == "array of string"
    assert type_text({"enum": ["open", None]}) == "one of: open, null"
    assert type_text({"anyOf": [{"$ref": "#/x/Form"}, {"type": "null"}]}) == "Form or null"


def test_backticks_become_code_and_markup_is_escaped():
    from ecrf.api.docs import inline_code

    assert str(inline_code("Needs `study.view` <b>")) == "Needs <code>study.view</code> &lt;b&gt;"
