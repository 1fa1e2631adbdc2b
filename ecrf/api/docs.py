"""The API's reference for people: the OpenAPI document rendered as one HTML page by the
server, from local assets only (no CDN, no script), so it works on an isolated network
and always matches the document the API serves."""

from __future__ import annotations

import re

from flask import render_template, request
from markupsafe import Markup, escape

from ecrf.accounts import PUBLIC
from ecrf.accounts import register_route as register
from ecrf.api.blueprint import bp
from ecrf.api.openapi import build_document

register("api.docs", PUBLIC)

METHODS = ("get", "post", "put", "patch", "delete")


_CODE = re.compile(r"`([^`]+)`")


def inline_code(text: str) -> Markup:
    """The document's texts mark code with backticks: escaped first, then shown as code."""
    return Markup(_CODE.sub(r"<code>\1</code>", str(escape(text or ""))))


def _ref_name(node: dict) -> str | None:
    ref = node.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def type_text(schema: dict) -> str:
    """A schema in a few words: ``string (date)``, ``integer 1-500``, ``array of Issue``,
    ``one of: open, closed``, ``Subject or null``."""
    if not isinstance(schema, dict):
        return ""
    name = _ref_name(schema)
    if name:
        return name
    if "anyOf" in schema or "oneOf" in schema:
        return " or ".join(type_text(s) for s in schema.get("anyOf") or schema.get("oneOf"))
    if "enum" in schema:
        return "one of: " + ", ".join("null" if v is None else str(v) for v in schema["enum"])
    kind = schema.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    words = " or ".join(kinds) or "any"
    if "array" in kinds and isinstance(schema.get("items"), dict):
        words = words.replace("array", f"array of {type_text(schema['items'])}")
    if schema.get("format"):
        words += f" ({schema['format']})"
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None or high is not None:
        words += f" {'' if low is None else low}-{'' if high is None else high}"
    if schema.get("maxLength"):
        words += f", at most {schema['maxLength']} characters"
    if schema.get("pattern"):
        words += f", pattern {schema['pattern']}"
    return words


def _content_schema(node: dict) -> str:
    for media in (node.get("content") or {}).values():
        return type_text(media.get("schema") or {})
    return ""


def operations(doc: dict) -> list[dict]:
    parameters = doc["components"]["parameters"]
    responses = doc["components"]["responses"]
    found = []
    for path, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = []
            for param in op.get("parameters", []):
                param = parameters.get(_ref_name(param) or "", param)
                params.append({"name": param["name"], "in": param["in"],
                               "required": param.get("required", False),
                               "type": type_text(param.get("schema", {})),
                               "description": param.get("description", "")})
            answers = []
            for code, answer in sorted(op.get("responses", {}).items()):
                answer = responses.get(_ref_name(answer) or "", answer)
                answers.append({"code": code, "description": answer.get("description", ""),
                                "schema": _content_schema(answer),
                                "headers": sorted(answer.get("headers", {}))})
            body = op.get("requestBody")
            found.append({
                "id": op.get("operationId", f"{method}-{path}"), "method": method.upper(),
                "path": doc["servers"][0]["url"] + path, "tag": (op.get("tags") or [""])[0],
                "summary": op.get("summary", ""), "description": op.get("description", ""),
                "params": params, "body": _content_schema(body) if body else "",
                "responses": answers, "public": op.get("security") == []})
    return found


def schemas(doc: dict) -> list[dict]:
    found = []
    for name, schema in sorted(doc["components"]["schemas"].items()):
        required = set(schema.get("required", []))
        found.append({"name": name, "description": schema.get("description", ""),
                      "type": "" if schema.get("properties") else type_text(schema),
                      "properties": [{"name": prop, "type": type_text(sub),
                                      "required": prop in required,
                                      "description": sub.get("description", "")
                                      if isinstance(sub, dict) else ""}
                                     for prop, sub in (schema.get("properties") or {}).items()]})
    return found


@bp.get("/docs", endpoint="docs")
def docs_page():
    doc = build_document()
    ops = operations(doc)
    tags = [t["name"] for t in doc.get("tags", [])]
    by_tag = {tag: [op for op in ops if op["tag"] == tag] for tag in tags}
    return render_template("api/docs.html", doc=doc, by_tag=by_tag, schemas=schemas(doc),
                           base=request.url_root.rstrip("/"), code=inline_code)
