"""Blank and annotated CRF PDFs, and the PDF renderer's restricted URL fetcher."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest
from sqlalchemy import select

from ecrf.core.audit.models import AuditEvent
from ecrf.core.extensions import db
from ecrf.crf import load_study
from ecrf.outputs.odm.metadata import VersionRef
from ecrf.outputs.pdf import FetchRefused, crf_pdf, make_url_fetcher, write_pdf
from ecrf.outputs.pdf import render as pdf_render
from tests.outputs import STUDY_FOLDER, load_fixture_study, pdf_text

GENERATED = dt.datetime(2026, 3, 2, 14, 5, 7, tzinfo=dt.UTC)


@pytest.fixture
def loaded():
    return load_study(STUDY_FOLDER)


def _version(loaded) -> VersionRef:
    return VersionRef("ODMTEST", 3, "v3 (protocol 1.2)", loaded.content_hash, GENERATED)


def _render(app, loaded, tmp_path, *, annotated: bool, language=None):
    target = tmp_path / ("annotated.pdf" if annotated else "blank.pdf")
    steps = []
    crf_pdf(loaded.definition, loaded.content, _version(loaded), annotated=annotated,
            generated_by="Ada Lovelace (ada)", generated_at=GENERATED, language=language,
            target=target, progress=lambda percent, message: steps.append(percent))
    assert target.read_bytes().startswith(b"%PDF")
    assert steps == sorted(steps) and steps[-1] == 85
    return target, pdf_text(target)


def test_blank_crf_shows_every_form_for_writing(app, loaded, tmp_path):
    path, text = _render(app, loaded, tmp_path, annotated=False)
    for label in ("Informed consent", "Demographics", "Blood counts", "Adverse events",
                  "End of study", "Date of birth", "Weight", "Without shoes.", "CTCAE",
                  "Tick all that apply", "Calculated by the system", "DD / MMM / YYYY",
                  "write UK for an unknown day or month", "HH:MM (24 h)", "Female", "Male",
                  "Mild", "Life-threatening", "Schedule of forms", "kg"):
        assert label in text, label
    # The cover names the study, the version, its content hash, when and by whom.
    for fact in ("Blank CRF", "ODM test study", "v3 (protocol 1.2)", loaded.content_hash,
                 "2026-03-02 14:05:07 UTC", "Ada Lovelace (ada)", "NCT09999999"):
        assert fact in text, fact
    pages = int(subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True,
                               check=True).stdout.split("Pages:")[1].split()[0])
    assert f"Page 1 of {pages}" in text and f"Page {pages} of {pages}" in text
    # Nothing of the annotations in the blank CRF.
    assert "I.DEMOG.WEIGHT" not in text and "VS.VSORRES" not in text


def test_annotated_crf_shows_oids_sdtm_codes_ranges_and_conditions(app, loaded, tmp_path):
    _path, text = _render(app, loaded, tmp_path, annotated=True)
    for annotation in ("Annotated CRF", "I.DEMOG.WEIGHT", "WEIGHT", "VS.VSORRES", "DM.SEX",
                       "AE.AETERM", "LB.LBORRES", "CL.AEGRADE", "CL.NY", "CL.DEMOG.SEX",
                       "F.DEMOG", "IG.AE.AE_LINE", "SE.CYCLE", "Domain DM",
                       "20 – 300 kg", "35.5 – 150 kg", "≥ 100 cm",
                       'SEX = "F"', 'SEX = "F" and HEIGHT < 200', "not is_blank(LBDT)",
                       "round(WEIGHT / (HEIGHT * HEIGHT) * 10000, 1)",
                       "DEMOG_BMI", "BMI is implausible.", "AE_END_AFTER_START",
                       "NOT SUBMITTED", "CTCAE grading: NEUT", "Critical for SDV"):
        assert annotation in text, annotation


def test_user_typed_text_is_printed_as_text_not_markup(app, loaded, tmp_path):
    _path, text = _render(app, loaded, tmp_path, annotated=False)
    assert "Initials <b>only</b> & never the full name" in text


def test_translated_crf(app, loaded, tmp_path):
    _path, text = _render(app, loaded, tmp_path, annotated=False, language="fr")
    for label in ("Données démographiques", "Poids", "Sans chaussures.", "Femme", "Léger",
                  "Sélection"):
        assert label in text, label


def test_first_page_renders_to_png(app, loaded, tmp_path):
    path, _text = _render(app, loaded, tmp_path, annotated=True)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "2", str(path),
                    str(tmp_path / "page")], check=True)
    pngs = sorted(tmp_path.glob("page-*.png"))
    assert len(pngs) == 2 and all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)


@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "http://example.org/style.css",
    "https://example.org/logo.png",
    "ftp://example.org/x",
    "data:text/plain,hello",
])
def test_url_fetcher_refuses_anything_but_static_files(app, url):
    fetcher = make_url_fetcher()
    with pytest.raises(FetchRefused):
        fetcher(url)


def test_url_fetcher_refuses_escapes_from_the_static_folder(app):
    root = pdf_render.static_root()
    fetcher = make_url_fetcher()
    with pytest.raises(FetchRefused):
        fetcher((root / ".." / "pyproject.toml").as_uri().replace("/static/..", "/static/.."))
    with pytest.raises(FetchRefused):
        fetcher(root.as_uri() + "/../pyproject.toml")
    served = fetcher((root / "pdf.css").as_uri())
    assert b"@page" in served.read() and served.content_type == "text/css"


def test_rendering_hostile_html_fetches_nothing_outside(app, monkeypatch, tmp_path):
    asked = []
    real = pdf_render.make_url_fetcher

    def spying(root=None):
        fetcher = real(root)
        original = fetcher.fetch

        def fetch(url, headers=None):
            asked.append(url)
            return original(url, headers)

        fetcher.fetch = fetch
        return fetcher

    monkeypatch.setattr(pdf_render, "make_url_fetcher", spying)
    html = ('<html><head><link rel="stylesheet" href="pdf.css">'
            '<link rel="stylesheet" href="http://127.0.0.1:9/evil.css"></head><body>'
            '<p>hello</p><img src="file:///etc/passwd">'
            '<iframe src="file:///etc/hostname"></iframe>'
            '<img src="http://127.0.0.1:9/track.png"></body></html>')
    target = tmp_path / "hostile.pdf"
    write_pdf(html, target)
    text = pdf_text(target)
    assert "hello" in text and "root:" not in text
    assert any(url.endswith("/static/pdf.css") for url in asked)
    assert "file:///etc/passwd" in asked and "http://127.0.0.1:9/evil.css" in asked


def test_cli_export_crf_writes_the_pdf_and_audits_it(app, runner, tmp_path):
    load_fixture_study()
    target = tmp_path / "crf.pdf"
    result = runner.invoke(args=["export", "crf", "ODMTEST", "--annotated", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "annotated CRF of ODMTEST v1 (protocol 1.2)" in result.output
    text = pdf_text(target)
    assert "I.DEMOG.WEIGHT" in text and "Generated by" in text
    row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "export.created"))
    details = json.loads(row.details)
    assert (row.new_value, details["what"], details["annotated"]) == ("crf.pdf", "crf_pdf", True)


def test_cli_export_crf_refuses_an_unknown_language(app, runner, tmp_path):
    load_fixture_study()
    target = tmp_path / "crf.pdf"
    result = runner.invoke(args=["export", "crf", "ODMTEST", "--language", "zh", "-o",
                                 str(target)])
    assert result.exit_code != 0 and "has no 'zh' translation" in result.output
    assert not target.exists()
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "export.created")) \
        is None
