"""Jobs through the API: start an export, let the worker run it, poll it, download its
file; cancel a queued job; another user's job is not there. Every response as the
OpenAPI document says."""

from __future__ import annotations

import io
import zipfile

import pytest

from ecrf import jobs
from ecrf.api.jobs import DATA_FORMATS
from ecrf.core.extensions import db
from ecrf.outputs.jobs import DATA_FORMATS as PAGE_FORMATS
from tests.api import (
    API,
    STUDY,
    VITALS_VALUES,
    audit_rows,
    bearer,
    form_url,
    setup_study,
    start_event,
    token_for,
)
from tests.api.test_openapi import check

JOBS = "/studies/{study_oid}/jobs"
JOB = JOBS + "/{job_id}"


@pytest.fixture
def doc(client) -> dict:
    return client.get(f"{API}/openapi.json").get_json()


@pytest.fixture
def people(app, client, make_study, make_user):
    setup_study(make_study)
    crc = bearer(token_for(make_user("crc1", role="coordinator", study="CAPTURE", site="S01")))
    start_event("S01-001")
    saved = client.put(form_url("S01-001"), headers=crc,
                       json={"version": None, "values": VITALS_VALUES})
    assert saved.status_code == 200, saved.get_json()
    return {"crc": crc,
            "dm": bearer(token_for(make_user("dm1", role="data_manager", study="CAPTURE"))),
            "dm2": bearer(token_for(make_user("dm2", role="data_manager", study="CAPTURE")))}


def test_the_formats_are_those_of_the_exports_page():
    assert DATA_FORMATS == PAGE_FORMATS


def test_export_run_poll_download(app, client, doc, people):
    dm = people["dm"]
    started = client.post(f"{STUDY}/jobs/data", headers=dm, json={"format": "csv",
                                                                  "site": "S01"})
    body = check(doc, JOBS + "/data", "post", started)
    assert started.status_code == 201 and started.headers["Location"] == body["url"]
    assert (body["kind"], body["status"], body["params"]) == \
        ("clinical_data", "queued", {"format": "csv", "site": "S01"})
    assert audit_rows(action="export.requested")[0].username == "dm1"
    url = f"{API}{body['url'][len(API):]}"
    early = client.get(f"{url}/download", headers=dm)
    assert check(doc, JOB + "/download", "get", early) and early.status_code == 409

    jobs.work(app, once=True)
    db.session.expire_all()
    for _ in range(20):
        polled = check(doc, JOB, "get", client.get(url, headers=dm))
        if polled["finished"]:
            break
    assert (polled["status"], polled["progress"]) == ("done", 100), polled
    listed = check(doc, JOBS, "get", client.get(f"{STUDY}/jobs", headers=dm))
    assert [j["id"] for j in listed["items"]] == [body["id"]]

    download = client.get(f"{API}{polled['download_url'][len(API):]}", headers=dm)
    assert download.status_code == 200 and download.mimetype == "application/zip"
    assert "attachment" in download.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(download.data)) as archive:
        assert any(name.endswith(".csv") for name in archive.namelist())
    [row] = audit_rows(action="export.downloaded")
    assert row.username == "dm1" and f"\"job\": {body['id']}" in str(row.details)


def test_crf_and_casebooks_start(client, doc, people):
    dm = people["dm"]
    crf = client.post(f"{STUDY}/jobs/crf", headers=dm, json={"variant": "annotated"})
    assert check(doc, JOBS + "/crf", "post", crf)["params"]["annotated"] is True
    books = client.post(f"{STUDY}/jobs/casebooks", headers=dm, json={})
    assert check(doc, JOBS + "/casebooks", "post", books)["kind"] == "casebooks"
    for path, body, field in (
            ("/crf", {"language": "xx"}, "language"), ("/crf", {"version": 99}, "version"),
            ("/crf", {"version": "1"}, "version"), ("/crf", {"variant": "x"}, "variant"),
            ("/casebooks", {"site": "NOPE"}, "site"), ("/data", {"format": "xls"}, "format"),
            ("/data", {}, "format"), ("/data", {"format": "csv", "site": 3}, "site"),
            ("/data", {"format": "csv", "extra": 1}, "extra")):
        refused = client.post(f"{STUDY}/jobs{path}", headers=dm, json=body)
        assert check(doc, JOBS + path, "post", refused) and refused.status_code == 422, body
        assert field in refused.get_json()["errors"], (body, refused.get_json())
    malformed = client.post(f"{STUDY}/jobs/data", headers=dm, data="{",
                            content_type="application/json")
    assert check(doc, JOBS + "/data", "post", malformed) and malformed.status_code == 400
    assert len(audit_rows(action="export.requested")) == 2


@pytest.mark.parametrize(("sent", "stored"), [
    ({"language": "zh"}, "zh_Hans"), ({"language": "fr"}, "fr"), ({}, "en"),
    ({"language": None}, "en")])
def test_casebooks_take_a_language(client, doc, people, sent, stored):
    books = client.post(f"{STUDY}/jobs/casebooks", headers=people["dm"], json=sent)
    assert check(doc, JOBS + "/casebooks", "post", books)["params"] == \
        {"site": None, "language": stored}


def test_casebooks_default_to_the_users_language(client, doc, people):
    from ecrf.accounts.models import User

    db.session.scalar(db.select(User).where(User.username == "dm1")).language = "zh_Hans"
    db.session.commit()
    books = client.post(f"{STUDY}/jobs/casebooks", headers=people["dm"], json={})
    assert check(doc, JOBS + "/casebooks", "post", books)["params"]["language"] == "zh_Hans"
    refused = client.post(f"{STUDY}/jobs/casebooks", headers=people["dm"],
                          json={"language": "klingon"})
    assert check(doc, JOBS + "/casebooks", "post", refused) and refused.status_code == 422
    assert refused.get_json()["errors"]["language"] == [
        "no casebook language 'klingon' (languages: en, fr, zh_Hans)"]


def test_cancel_a_queued_job(client, doc, people):
    dm = people["dm"]
    body = check(doc, JOBS + "/data", "post", client.post(
        f"{STUDY}/jobs/data", headers=dm, json={"format": "odm"}))
    url = f"{API}{body['url'][len(API):]}"
    cancelled = client.post(f"{url}/cancel", headers=dm)
    assert check(doc, JOB + "/cancel", "post", cancelled)["status"] == "cancelled"
    assert audit_rows(action="export.cancel_requested")[0].username == "dm1"
    again = client.post(f"{url}/cancel", headers=dm)
    assert check(doc, JOB + "/cancel", "post", again) and again.status_code == 409


def test_jobs_are_their_creators_and_need_the_permission(client, doc, people):
    body = check(doc, JOBS + "/data", "post", client.post(
        f"{STUDY}/jobs/data", headers=people["dm"], json={"format": "csv"}))
    url = f"{API}{body['url'][len(API):]}"
    other = people["dm2"]
    for response, path, method in (
            (client.get(url, headers=other), JOB, "get"),
            (client.post(f"{url}/cancel", headers=other), JOB + "/cancel", "post"),
            (client.get(f"{url}/download", headers=other), JOB + "/download", "get"),
            (client.get(f"{STUDY}/jobs/{2**40}", headers=other), JOB, "get")):
        assert check(doc, path, method, response) and response.status_code == 404
    assert check(doc, JOBS, "get", client.get(f"{STUDY}/jobs", headers=other))["items"] == []
    crc = people["crc"]
    refused = client.post(f"{STUDY}/jobs/data", headers=crc, json={"format": "csv"})
    assert check(doc, JOBS + "/data", "post", refused) and refused.status_code == 403
    refused = client.get(url, headers=crc)
    assert check(doc, JOB, "get", refused) and refused.status_code == 403
