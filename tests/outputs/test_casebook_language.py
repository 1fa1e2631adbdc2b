"""Casebooks in the reader's language: a Chinese casebook of a UCMSC-Exo subject prints the
study's Chinese texts and the application's Chinese words in a CJK font (glyphs, not empty
boxes), a French casebook of a DEXAML-03 subject prints French; the CLI, the casebooks job
and the API take the language."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from ecrf import capture
from ecrf.capture import Submission, subjects
from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.jobs import runner as jobs
from ecrf.jobs.models import Job
from ecrf.outputs.pdf.casebook import CasebookError, casebook_html, casebook_pdf
from ecrf.outputs.pdf.render import write_pdf
from ecrf.studies import get_site, require_study
from ecrf.studies import store as studies
from ecrf.studies.models import Site
from tests.capture.grid_setup import LOADER, load_ucmsc
from tests.outputs import pdf_text

FORMS = Path(__file__).resolve().parents[2] / "forms"
ENROLLED = dt.date(2026, 3, 2)
# French abbreviated month names (CLDR, the "medium" date: "2 mars 2026").
MOIS = ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.",
        "nov.", "déc."]
FR_ACTOR = Actor(user_id=None, username="crc", role="coordinator", site_code="S01")


def compact(text: str) -> str:
    """Text without white space: a line wrap inside a Chinese label adds a space."""
    return re.sub(r"\s+", "", text)


def fonts_of(path: Path) -> str:
    return subprocess.run(["pdffonts", str(path)], capture_output=True, check=True,
                          text=True).stdout


def first_page_png(path: Path, stem: Path) -> Path:
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", "-singlefile",
                    str(path), str(stem)], check=True)
    return stem.with_suffix(".png")


@pytest.fixture
def wuhan(app, make_study):
    """A UCMSC-Exo subject of Wuhan with its consolidation course recorded."""
    make_study("UCMSCEXO", sites=("WUH",))
    load_ucmsc(db.session)
    study = require_study(db.session, "UCMSCEXO")
    subject = subjects.enrol_subject(db.session, LOADER, study, get_site(db.session, "WUH"),
                                     "WUH-001", ENROLLED, today=ENROLLED)
    day1 = ENROLLED + dt.timedelta(days=3)
    capture.open_event(db.session, LOADER, subject, "CHEMO_D1", 1, day1, today=day1)
    result = capture.save_form(
        db.session, LOADER, subject, "CHEMO_D1", 1, "CHEMO",
        Submission(values={("CHEMO_COURSE", 1, "CHEMOD1"): day1.isoformat(),
                           ("CHEMO_COURSE", 1, "CONSNO"): "1",
                           ("CHEMO_COURSE", 1, "REGIMEN"): "HIDAC"}),
        base_version=None, complete=False, today=day1)
    assert result.saved, result.errors
    db.session.commit()
    return subject


@pytest.fixture
def toulouse(app, make_study):
    """A DEXAML-03 subject of S01 whose death is recorded."""
    study = make_study("DEXAML03", sites=("S01",))
    studies.load_folder(db.session, FR_ACTOR, FORMS / "dexaml03")
    db.session.commit()
    site = db.session.scalar(select(Site).where(Site.code == "S01"))
    subject = subjects.enrol_subject(db.session, FR_ACTOR, study, site, "S01-001", ENROLLED,
                                     today=ENROLLED)
    death = ENROLLED + dt.timedelta(days=40)
    capture.open_event(db.session, FR_ACTOR, subject, "DEATH_LOG", 1, None, today=death)
    values = {"DTHDT": death.isoformat(), "DTHCAUSE": "AML", "DTHAE": "N",
              "DTHSRC": "RECORDS", "AUTOPSY": "N"}
    result = capture.save_form(
        db.session, FR_ACTOR, subject, "DEATH_LOG", 1, "DEATH",
        Submission(values={("DEATH_MAIN", 1, k): v for k, v in values.items()}),
        base_version=None, complete=True, today=death)
    assert result.saved, (result.errors, result.form_errors, result.blockers)
    db.session.commit()
    return subject


def timed_casebook(subject, path: Path, language: str | None) -> float:
    started = time.perf_counter()
    casebook_pdf(db.session, subject, generated_by="Dr Li (li)", language=language,
                 target=path)
    elapsed = time.perf_counter() - started
    print(f"casebook {subject.subject_key} language={language}: {elapsed:.1f} s")
    return elapsed


def test_a_chinese_casebook_prints_chinese(wuhan, tmp_path):
    path = tmp_path / "zh.pdf"
    timed_casebook(wuhan, path, "zh")
    text = compact(pdf_text(path))
    # The study's texts: event, form, group, item labels, a code-list decode.
    for shown in ("巩固化疗（第1天）", "巩固化疗", "疗程", "巩固化疗第1天（研究第1天）",
                  "CR1后第几次巩固", "大剂量阿糖胞苷单药（每次≥2g/m²）(HIDAC)"):
        assert shown in text, shown
    # The application's words: cover, table heads, audit trail, the dates in Chinese.
    for shown in ("受试者病例报告表", "生成人", "入组日期", "目录", "稽查轨迹", "时间（UTC）",
                  "人员", "条目", "2026年3月2日"):
        assert shown in text, shown
    assert "Subject casebook" not in text and "Audit trail" not in text
    assert "Noto-Sans-CJK-SC" in fonts_of(path)
    assert first_page_png(path, tmp_path / "zh-page1").read_bytes().startswith(b"\x89PNG")


def test_the_html_says_its_language(wuhan):
    assert '<html lang="zh-Hans">' in casebook_html(db.session, wuhan, generated_by="x",
                                                    language="zh_Hans")
    assert '<html lang="en">' in casebook_html(db.session, wuhan, generated_by="x")


# --- glyphs, not boxes -----------------------------------------------------------------------
# A character no font has prints as a "tofu" box: a rectangle whose four sides are ink. The
# detector is checked on private-use characters (boxes in any set-up), then applied to the
# Chinese words of the casebook printed with the stylesheet's font chain.

def _glyphs(png: Path) -> list[Image.Image]:
    """The glyphs of the page's tallest line (the words, not the small page margins' texts),
    split at the blank columns between them."""
    image = Image.open(png).convert("L").point(lambda v: 255 if v < 128 else 0)
    width, height = image.size
    pixels = image.load()
    rows = [any(pixels[x, y] for x in range(width)) for y in range(height)]
    bands, start = [], None
    for y, ink in enumerate([*rows, False]):
        if ink and start is None:
            start = y
        elif not ink and start is not None:
            bands.append((start, y))
            start = None
    top, bottom = max(bands, key=lambda band: band[1] - band[0])
    image = image.crop((0, top, width, bottom))
    height = bottom - top
    pixels = image.load()
    inked = [any(pixels[x, y] for y in range(height)) for x in range(width)]
    found, start = [], None
    for x, ink in enumerate([*inked, False]):
        if ink and start is None:
            start = x
        elif not ink and start is not None:
            glyph = image.crop((start, 0, x, height))
            found.append(glyph.crop(glyph.getbbox()))
            start = None
    return found


def _is_box(glyph: Image.Image) -> bool:
    """All four sides of the glyph's bounding box are (almost) entirely ink."""
    width, height = glyph.size
    pixels = glyph.load()
    sides = [[pixels[x, 0] for x in range(width)], [pixels[x, height - 1] for x in range(width)],
             [pixels[0, y] for y in range(height)], [pixels[width - 1, y] for y in range(height)]]
    return width > 3 and height > 3 and all(sum(1 for p in side if p) >= 0.85 * len(side)
                                            for side in sides)


def _line_png(text: str, path: Path) -> Path:
    html = (f'<!doctype html><html><head><meta charset="utf-8"><link rel="stylesheet" '
            f'href="pdf.css"></head><body><p style="font-size: 40pt; letter-spacing: 8pt">'
            f'{text}</p></body></html>')
    write_pdf(html, path)
    return first_page_png(path, path.with_suffix(""))


@pytest.mark.parametrize("words", ["不良事件", "受试者病例报告表"])
def test_chinese_words_print_as_glyphs_not_boxes(app, tmp_path, words):
    tofu = _glyphs(_line_png("".join(chr(0xE000 + n) for n in range(len(words))),
                             tmp_path / "tofu.pdf"))
    assert len(tofu) == len(words) and all(_is_box(g) for g in tofu)
    chinese = _glyphs(_line_png(words, tmp_path / "zh.pdf"))
    assert chinese and not any(_is_box(g) for g in chinese)
    # And the glyphs are not alike: each character has its own shape.
    assert len({g.tobytes() for g in chinese}) == len(chinese)


def test_a_french_casebook_prints_french(toulouse, tmp_path):
    path = tmp_path / "fr.pdf"
    timed_casebook(toulouse, path, "fr")
    text = pdf_text(path)
    for shown in ("Décès", "Date du décès", "Cause principale du décès",
                  "Leucémie (progression ou rechute) (AML)", "Autopsie réalisée", "Non (N)",
                  "CAHIER D'OBSERVATION DU PATIENT", "Généré par", "Inclus le 2 mars 2026",
                  "Sommaire", "Piste d'audit", "Quand (UTC)", "Page 1 sur"):
        assert shown in text, shown
    # The audit trail's times: today (UTC), the date in French.
    today = dt.datetime.now(dt.UTC).date()
    assert f"{today.day} {MOIS[today.month - 1]} {today.year}" in text
    assert "Generated by" not in text and "Audit trail" not in text
    first_page_png(path, tmp_path / "fr-page1")


def test_an_unknown_language_is_refused_by_name(wuhan, tmp_path):
    with pytest.raises(CasebookError, match="no casebook language 'klingon'"):
        casebook_pdf(db.session, wuhan, generated_by="x", language="klingon",
                     target=tmp_path / "x.pdf")


def test_cli_casebook_language(wuhan, runner, tmp_path):
    target = tmp_path / "cb.pdf"
    done = runner.invoke(args=["export", "casebook", "UCMSCEXO", "WUH-001", "--language", "zh",
                               "-o", str(target)])
    assert done.exit_code == 0, done.output
    assert "稽查轨迹" in pdf_text(target)
    bad = runner.invoke(args=["export", "casebook", "UCMSCEXO", "WUH-001", "--language", "xx",
                              "-o", str(target)])
    assert bad.exit_code != 0 and "no casebook language 'xx'" in bad.output


def test_the_casebooks_job_takes_the_language(app, wuhan, make_user, tmp_path):
    user = make_user("dm-zh", role="data_manager", study="UCMSCEXO")
    actor = Actor(user_id=user.id, username=user.username, role="data_manager")
    study = require_study(db.session, "UCMSCEXO")
    with pytest.raises(jobs.JobError, match="no casebook language 'xx'"):
        jobs.enqueue(db.session, actor, "casebooks", study, {"language": "xx"})
    db.session.rollback()
    job = jobs.enqueue(db.session, actor, "casebooks", study, {"site": "WUH", "language": "zh"})
    db.session.commit()
    assert job.params["language"] == "zh_Hans"
    jobs.work(app, once=True)
    db.session.expire_all()
    done = db.session.get(Job, job.id)
    assert done.status == "done", done.error
    with zipfile.ZipFile(jobs.result_file(app, done)) as archive:
        book = archive.read("UCMSCEXO_WUH-001_casebook.pdf")
    pdf = tmp_path / "zh.pdf"
    pdf.write_bytes(book)
    assert "稽查轨迹" in pdf_text(pdf)


@pytest.mark.parametrize(("own", "sent", "stored"), [
    ("fr", None, "fr"), ("zh_Hans", None, "zh_Hans"), ("fr", "zh", "zh_Hans"),
    (None, None, "en")])
def test_the_casebooks_page_prints_in_the_users_language(wuhan, client, login_as, own, sent,
                                                          stored):
    user = login_as("data_manager", study="UCMSCEXO", username="dm-page")
    user.language = own
    db.session.commit()
    form = {"site": "WUH", **({"language": sent} if sent else {})}
    response = client.post("/studies/UCMSCEXO/jobs/casebooks", data=form)
    assert response.status_code == 302
    job = db.session.scalar(select(Job).order_by(Job.id.desc()))
    assert job.kind == "casebooks" and job.params == {"site": "WUH", "language": stored}
