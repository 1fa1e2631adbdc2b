"""People read labels, not OIDs: the signature list, the review pages, the sign page and
the casebook name events, forms and items in the user's language; OIDs appear beside
them only when the user switched them on (``?oids=1``)."""

from __future__ import annotations

import re
import shutil

import pytest

from ecrf.core.extensions import db
from ecrf.outputs.pdf.casebook import casebook_html
from ecrf.studies import store as studies
from tests.capture.capture_setup import LOADER, actor_for
from tests.conftest import sign_in
from tests.review.review_setup import REVIEW_STUDY, demog, save, start, subject_at

BASE = "/studies/REVIEW"
S1 = BASE + "/subjects/S01-001"
FRENCH = {
    "study.yaml": [("    name: Screening\n", "    name: Screening\n    labels: {fr: \"Sélection\"}\n"),
                   ("    name: Week 4\n", "    name: Week 4\n    labels: {fr: \"Semaine 4\"}\n")],
    "crfs/VITALS.yaml": [("name: Vital signs\n", "name: Vital signs\nlabels: {fr: \"Signes vitaux\"}\n")],
    "crfs/DEMOG.yaml": [("name: Demography\n", "name: Demography\nlabels: {fr: \"Démographie\"}\n")],
}


def french_review_study(tmp_path):
    folder = tmp_path / "review_study"
    shutil.copytree(REVIEW_STUDY, folder)
    for name, edits in FRENCH.items():
        path = folder / name
        text = path.read_text(encoding="utf-8")
        for old, new in edits:
            assert old in text, old
            text = text.replace(old, new, 1)
        path.write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def world(app, make_study, make_user, tmp_path):
    """Screening complete for S01-001 (vital signs, demography), and a subject at S02 with
    vital signs in progress."""
    study = make_study("REVIEW", sites=("S01", "S02"))
    studies.load_folder(db.session, LOADER, french_review_study(tmp_path))
    db.session.commit()
    users = {name: make_user(name, role=role, study="REVIEW", site=site)
             for name, role, site in [("crc1", "coordinator", "S01"),
                                      ("inv1", "investigator", "S01"),
                                      ("inv2", "investigator", "S02")]}
    crc = actor_for(users["crc1"])
    subject = subject_at(study, "S01-001")
    start(crc, subject)
    assert save(crc, subject, complete=True).status == "complete"
    assert save(crc, subject, "DEMOG", demog(), complete=True).status == "complete"
    other = subject_at(study, "S02-001", "S02")
    crc2 = actor_for(None, site="S02")
    start(crc2, other)
    save(crc2, other)
    return {"study": study, "subject": subject}


def as_user(app, username: str, language: str = "fr"):
    client = app.test_client()
    assert sign_in(client, username).status_code == 302
    with client.session_transaction() as session:
        session["lang"] = language
    return client


def text_of(response) -> str:
    """What a person reads: the page without its tags (and so without link targets)."""
    assert response.status_code == 200, response.status_code
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_signature_list_names_events_and_forms_in_the_users_language(app, world):
    inv = as_user(app, "inv1")
    text = text_of(inv.get(BASE + "/dashboard"))
    assert "S01-001 · Sélection · Signes vitaux" in text
    assert "S01-001 · Sélection · Démographie" in text
    assert "SCREEN" not in text and "VITALS" not in text
    # A data manager's switch: the OIDs beside the labels, until switched off again.
    text = text_of(inv.get(BASE + "/dashboard?oids=1"))
    assert "Sélection [SCREEN]" in text and "Signes vitaux [VITALS]" in text
    assert "VITALS" not in text_of(inv.get(BASE + "/dashboard?oids=0"))


def test_review_pages_show_labels(app, world):
    inv = as_user(app, "inv1")
    text = text_of(inv.get(S1 + "/review"))
    assert "Sélection" in text and "Signes vitaux" in text and "Démographie" in text
    assert "SCREEN" not in text and "VITALS" not in text and "DEMOG" not in text
    text = text_of(inv.get(S1 + "/events/SCREEN/1/forms/VITALS/review"))
    assert "Sélection · Signes vitaux" in text and "VITALS" not in text
    shown = text_of(inv.get(S1 + "/review?oids=1"))
    assert "VITALS" in shown and "DEMOG" in shown


def test_sign_page_says_what_is_not_complete_by_label(app, world):
    inv2 = as_user(app, "inv2")
    text = text_of(inv2.get(BASE + "/subjects/S02-001/sign?scope=event&event=SCREEN&repeat=1"))
    assert "Sélection · Signes vitaux" in text and "Sélection · Démographie" in text
    assert "SCREEN[1]" not in text and "VITALS" not in text


def test_casebook_names_the_subject_status_and_form_status(app, world):
    with app.test_request_context():
        html = casebook_html(db.session, world["subject"], generated_by="tester")
    text = re.sub(r"<[^>]+>", " ", html)
    assert re.search(r"Subject status\s+Screening", text)
    assert "screening" not in text.split("Subject status", 1)[1][:40]
    assert '<span class="status status-complete">Complete</span>' in html
    # Items by label; the OIDs stay in the audit trail, not beside every value.
    assert '<th class="c-item">Weight</th>' in html
