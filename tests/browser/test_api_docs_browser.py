"""An integrator opens /api/v1/docs in Chromium without signing in and finds an operation
and the schema it answers with; nothing is fetched from outside the server."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

SHOTS = Path("/tmp/shots-api")


def test_the_api_reference_reads_in_a_browser(page, live_server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    outside = []
    page.on("request", lambda r: outside.append(r.url)
            if not r.url.startswith(live_server.url) else None)
    page.goto("/api/v1/docs")
    expect(page.get_by_role("heading", name="endpoints", exact=True)).to_be_visible()
    page.screenshot(path=str(SHOTS / "api-docs.png"))
    operation = page.locator("#getSubjectEndpoints")
    expect(operation).to_contain_text("/api/v1/studies/{study_oid}/subjects/{subject_key}/endpoints")
    operation.get_by_role("link", name="SubjectEndpoints").first.click()
    expect(page.locator("#schema-SubjectEndpoints")).to_be_in_viewport()
    assert outside == []
