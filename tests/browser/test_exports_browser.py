"""The exports page in Chromium: a data manager chooses the SDTM package, follows the job's
progress on the page and downloads a zip whose manifest checks out."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest
from playwright.sync_api import expect

from ecrf.core.extensions import db
from tests.browser.session import sign_in
from tests.capture.grid_setup import counts_subject, load_ucmsc


@pytest.fixture
def live_server_config(tmp_path) -> dict:
    return {"WTF_CSRF_ENABLED": True, "JOBS_IN_PROCESS": True,
            "EXPORTS_DIR": str(tmp_path / "exports")}


def test_data_manager_downloads_the_sdtm_package(page, live_server, live_user, tmp_path):
    with live_server.app.app_context():
        load_ucmsc(db.session)
        live_user("clara", role="coordinator", study="UCMSCEXO", site="WUH")
        live_user("dora", role="data_manager", study="UCMSCEXO")
        counts_subject(db.session, "WUH-901")
        db.session.remove()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    sign_in(page, "dora")
    page.goto("/studies/UCMSCEXO/jobs")
    page.get_by_label("SDTM package (XPT, define.xml, manifest)").check()
    page.get_by_role("button", name="Export the data").click()
    expect(page.get_by_text("queued: it runs in the background")).to_be_visible()
    expect(page.locator("#jobs .js-job-progress").first).to_be_visible()
    download_link = page.locator("#jobs").get_by_role("link", name="Download").first
    expect(download_link).to_be_visible(timeout=120_000)
    with page.expect_download() as info:
        download_link.click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert path.name == "UCMSCEXO_all_sdtm_package.zip"
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        for entry in manifest["files"]:
            assert hashlib.sha256(archive.read(entry["name"])).hexdigest() == entry["sha256"]
        names = set(archive.namelist())
    assert {"define.xml", "acrf.pdf", "dm.xpt", "ts.xpt", "manifest.json"} <= names
    assert manifest["study"] == "UCMSCEXO" and problems == []
