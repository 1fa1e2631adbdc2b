"""The coordinator's laboratory import page: upload, preview, confirm (Flask test client)."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from ecrf.capture import ItemValue
from ecrf.core import db
from ecrf.core.audit import AuditEvent
from tests.capture.grid_setup import counts_subject, load_ucmsc

from .lab_setup import TODAY, counts_csv, row_counts

FILES = Path(__file__).parent / "files"
PAGE = "/studies/UCMSCEXO/labs"


@pytest.fixture
def subject(app, make_study, make_site):
    make_site("PEK")
    make_study("UCMSCEXO", sites=("WUH", "PEK"))
    load_ucmsc(db.session)
    counts_subject(db.session, "PEK-001", site="PEK", today=TODAY)
    return counts_subject(db.session, "WUH-101", today=TODAY)


@pytest.fixture
def crc(subject, login_as):
    return login_as("coordinator", site="WUH", study="UCMSCEXO", username="crc1")


def html(response) -> str:
    return response.get_data(as_text=True)


def preview(client, data: bytes, name: str = "counts.csv", fmt: str = ""):
    return client.post(f"{PAGE}/preview", data={"file": (io.BytesIO(data), name),
                                               "format": fmt},
                       content_type="multipart/form-data")


def hidden(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input id="(name|format|content|sha256)" name="\1" type="hidden" '
                           r'value="([^"]*)"', page))


def values() -> dict[tuple[int, str], str]:
    return {(v.row, v.item_oid): v.value for v in db.session.scalars(
        select(ItemValue).where(ItemValue.form_oid == "COUNTS")) if v.value is not None}


def test_upload_preview_confirm(client, crc):
    page = client.get(PAGE)
    assert page.status_code == 200 and 'type="file"' in html(page)
    shown = preview(client, (FILES / "counts.hl7").read_bytes(), "counts.hl7")
    assert shown.status_code == 200, html(shown)
    text = html(shown)
    assert ("HL7 v2 ORU^R01 messages, 8 result(s): 6 new, 0 unchanged, 0 differ from entry, "
            "2 skipped, 0 cannot be imported.") in text
    assert "message 2, OBX 4: result status P is not final (F) or corrected (C)" in text
    assert values() == {}  # the preview stored nothing
    done = client.post(f"{PAGE}/import", data=hidden(text))
    assert done.status_code == 302, html(done)
    assert "6 value(s) from counts.hl7 stored in 1 form(s); 0 entered value(s) kept." in html(
        client.get(done.headers["Location"]))
    assert values()[(1, "HGB")] == "104" and values()[(2, "ANC")] == "0.80"
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.path.like("%[2]/ANC")))
    assert audit.username == "crc1" and audit.reason.startswith(
        "source: laboratory file counts.hl7 (sha256 ") and audit.reason.endswith(
        "message 2, OBX 2")


def test_a_conflict_is_replaced_only_when_ticked(client, crc):
    data = counts_csv(range(1, 2))
    client.post(f"{PAGE}/import", data=hidden(html(preview(client, data))))
    changed = data.replace(b"751-8;1,05;", b"751-8;1,25;")
    assert changed != data
    text = html(preview(client, changed))
    assert "0 new, 4 unchanged, 1 differ from entry" in text
    assert 'name="accept" value="line 3"' in text
    kept = client.post(f"{PAGE}/import", data=hidden(text))
    assert "0 value(s) from counts.csv stored in 0 form(s); 1 entered value(s) kept." in html(
        client.get(kept.headers["Location"]))
    assert values()[(1, "ANC")] == "1.05"
    replaced = client.post(f"{PAGE}/import", data={**hidden(text), "accept": "line 3"})
    assert replaced.status_code == 302
    assert values()[(1, "ANC")] == "1.25"


def test_a_file_with_problems_offers_no_confirmation(client, crc):
    data = counts_csv(range(1, 2)) + b"WUH-101;2026-05-01;751-8;1;G/L\r\n"
    shown = preview(client, data)
    assert shown.status_code == 422
    assert "line 7: WUH-101: no occurrence of the lab events has a window holding " \
           "2026-05-01" in html(shown)
    assert 'id="lab-confirm"' not in html(shown)
    before = row_counts(db.session)
    forced = client.post(f"{PAGE}/import", data=hidden(html(shown)))
    assert forced.status_code == 422
    assert row_counts(db.session) == before


def test_subjects_of_other_sites_are_not_matched(client, crc):
    data = counts_csv(range(1, 2), key="PEK-001")
    text = html(preview(client, data))
    assert "0 new" in text and "5 skipped" in text
    assert "patient PEK-001 is not a subject of UCMSCEXO at your sites" in text


@pytest.mark.parametrize("change, status", [
    ({"content": "not base64!"}, 400),
    ({"sha256": "0" * 64}, 400),
    ({"format": "xml"}, 400),
])
def test_a_tampered_confirmation_is_refused(client, crc, change, status):
    text = html(preview(client, counts_csv(range(1, 2))))
    response = client.post(f"{PAGE}/import", data={**hidden(text), **change})
    assert response.status_code == status
    assert "did not come back intact" in html(response)
    assert values() == {}


@pytest.mark.parametrize("data, name, message", [
    (b"", "empty.csv", "the file is empty"),
    (b'{"resourceType": "Patient"}', "p.json", "a FHIR Patient, not a Bundle of Observations"),
    (b"x" * (5 * 1024 * 1024 + 1), "big.csv", "larger than 5 MB"),
], ids=["empty", "fhir-patient", "over-5-MB"])
def test_unreadable_files_are_named(client, crc, data, name, message):
    response = preview(client, data, name)
    assert response.status_code == 400
    assert message in html(response)


def test_a_monitor_may_not_import(client, subject, login_as):
    login_as("monitor", study="UCMSCEXO", username="mon1")
    assert client.get(PAGE).status_code == 403
    encoded = base64.b64encode(b"x").decode()
    assert client.post(f"{PAGE}/import", data={"content": encoded}).status_code == 403
