"""Laboratory files through the API, as on the import page: a dry run previews, a
post stores through data capture (all or nothing, audited with the file), a conflict keeps
the entered value unless accepted, another site's patient is not matched; every answer
as the OpenAPI document says."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from ecrf.capture.models import ItemValue
from ecrf.core.extensions import db
from tests.api import API, audit_rows, bearer, token_for
from tests.api.test_openapi import check
from tests.capture.grid_setup import counts_subject, load_ucmsc
from tests.esource.lab_setup import TODAY, counts_csv, row_counts

FILES = Path(__file__).resolve().parents[1] / "esource" / "files"
LABS = "/studies/{study_oid}/labs"
URL = f"{API}/studies/UCMSCEXO/labs"


@pytest.fixture
def doc(client) -> dict:
    return client.get(f"{API}/openapi.json").get_json()


@pytest.fixture
def crc(app, make_study, make_site, make_user):
    make_site("PEK")
    make_study("UCMSCEXO", sites=("WUH", "PEK"))
    load_ucmsc(db.session)
    counts_subject(db.session, "PEK-001", site="PEK", today=TODAY)
    counts_subject(db.session, "WUH-101", today=TODAY)
    return bearer(token_for(make_user("crc1", role="coordinator", study="UCMSCEXO",
                                      site="WUH")))


def stored() -> dict[tuple[int, str], str]:
    return {(r, i): v for r, i, v in db.session.execute(
        select(ItemValue.row, ItemValue.item_oid, ItemValue.value)
        .where(ItemValue.group_oid == "CNT_DAY")) if v is not None}


def test_a_dry_run_previews_and_a_post_stores(client, doc, crc):
    data = counts_csv(range(1, 4))
    before = row_counts(db.session)
    preview = client.post(f"{URL}?dry_run=true&name=counts.csv", headers=crc, data=data,
                          content_type="text/csv")
    body = check(doc, LABS, "post", preview)
    assert preview.status_code == 200 and body["dry_run"] is True and body["stored"] is None
    assert (body["format"], body["counts"]["new"], body["counts"]["problems"]) == ("csv", 15, 0)
    assert row_counts(db.session)["item_value"] == before["item_value"]
    done = client.post(f"{URL}?name=counts.csv", headers=crc, data=data,
                       content_type="text/csv")
    body = check(doc, LABS, "post", done)
    assert done.status_code == 200 and body["stored"]["values"] == 15
    values = stored()
    assert (values[(1, "HGB")], values[(1, "PLT")], values[(2, "ANC")]) == ("90", "51", "1.10")
    reasons = {r.reason for r in audit_rows() if r.action == "item.changed"
               or r.action == "item.entered"}
    assert any(r and r.startswith("source: laboratory file counts.csv (sha256 ")
               for r in reasons)
    again = check(doc, LABS, "post", client.post(URL, headers=crc, data=data,
                                                 content_type="text/csv"))
    assert (again["counts"]["unchanged"], again["stored"]["values"]) == (15, 0)


def test_a_conflict_is_kept_unless_accepted(client, doc, crc):
    client.post(URL, headers=crc, data=counts_csv(range(1, 2)), content_type="text/csv")
    changed = counts_csv(range(1, 2)).replace(b";751-8;1,05;", b";751-8;1,40;")
    kept = check(doc, LABS, "post", client.post(URL, headers=crc, data=changed,
                                                content_type="text/csv"))
    assert (kept["counts"]["conflict"], kept["stored"]["kept"]) == (1, 1)
    assert stored()[(1, "ANC")] == "1.05"
    replaced = check(doc, LABS, "post", client.post(f"{URL}?accept_conflicts=true",
                                                    headers=crc, data=changed,
                                                    content_type="text/csv"))
    assert replaced["stored"]["values"] == 1 and stored()[(1, "ANC")] == "1.40"


def test_a_file_with_problems_stores_nothing(client, doc, crc):
    bad = counts_csv(range(1, 3)).replace(b";g/dL", b";mmol/L", 1)
    before = row_counts(db.session)
    refused = client.post(URL, headers=crc, data=bad, content_type="text/csv")
    body = check(doc, LABS, "post", refused)
    assert refused.status_code == 422 and body["counts"]["problems"] == 1
    assert "mmol/L" in body["problems"][0]["reason"]
    after = row_counts(db.session)
    # nothing but the API request's own audit row
    assert {**after, "audit_event": after["audit_event"] - 1} == before
    assert audit_rows()[-1].action == "api.request"


def test_another_sites_patient_is_not_matched(client, doc, crc):
    data = counts_csv(range(1, 2), key="PEK-001")
    body = check(doc, LABS, "post", client.post(URL, headers=crc, data=data,
                                                content_type="text/csv"))
    assert body["lines"] == [] and body["counts"]["skipped"] == 5


def test_fhir_and_hl7_files_are_read(client, doc, crc):
    fhir = client.post(f"{URL}?dry_run=true", headers=crc, content_type="application/fhir+json",
                       data=(FILES / "counts.fhir.json").read_bytes())
    assert check(doc, LABS, "post", fhir)["format"] == "fhir"
    hl7 = client.post(f"{URL}?dry_run=true&format=hl7", headers=crc, content_type="text/plain",
                      data=(FILES / "counts.hl7").read_bytes())
    assert check(doc, LABS, "post", hl7)["format"] == "hl7"


@pytest.mark.parametrize(("query", "data", "status", "message"), [
    ("", b"", 400, "empty"),
    ("?format=xls", b"x", 400, "format"),
    ("?dry_run=yes", b"x", 400, "dry_run"),
    ("?format=fhir", b"{not json", 400, "cannot be read"),
    ("?name=" + "n" * 300, b"x", 400, "name"),
])
def test_bad_requests_are_named(client, doc, crc, query, data, status, message):
    response = client.post(URL + query, headers=crc, data=data, content_type="text/csv")
    body = check(doc, LABS, "post", response)
    assert response.status_code == status and message in body["message"], body


def test_a_monitor_may_not_import(client, doc, crc, make_user):
    monitor = bearer(token_for(make_user("mon1", role="monitor", study="UCMSCEXO")))
    response = client.post(URL, headers=monitor, data=counts_csv(range(1, 2)),
                           content_type="text/csv")
    assert check(doc, LABS, "post", response) and response.status_code == 403


@pytest.mark.parametrize("bad", [b";751-8;1\x00,05;", b"WUH-101\x00;"])
def test_a_nul_byte_in_the_file_is_named_not_a_500(client, doc, crc, bad):
    data = counts_csv(range(1, 2)).replace(b";751-8;1,05;" if b"751" in bad else b"WUH-101;",
                                           bad, 1)
    before = row_counts(db.session)
    response = client.post(URL, headers=crc, data=data, content_type="text/csv")
    body = check(doc, LABS, "post", response)
    assert response.status_code in (400, 422), body
    after = row_counts(db.session)
    assert {**after, "audit_event": after["audit_event"] - 1} == before


def test_an_escaped_nul_in_a_fhir_bundle_is_named_not_a_500(client, doc, crc):
    data = (FILES / "counts.fhir.json").read_bytes().replace(b"WUH-101", b"WUH-101\\u0000")
    assert b"\\u0000" in data
    response = client.post(URL, headers=crc, data=data, content_type="application/fhir+json")
    body = check(doc, LABS, "post", response)
    assert response.status_code == 400 and "NUL" in body["message"], body


def test_a_deeply_nested_json_is_named_not_a_500(client, doc, crc):
    data = b'{"resourceType": "Bundle", "entry": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = client.post(URL, headers=crc, data=data, content_type="application/fhir+json")
    body = check(doc, LABS, "post", response)
    assert response.status_code == 400, body
