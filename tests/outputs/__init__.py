"""Shared helpers of the export tests (ODM metadata, ODM import, CRF PDFs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lxml import etree

from ecrf.core.audit.trail import Actor
from ecrf.core.extensions import db
from ecrf.studies import store as studies

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "odm"
STUDY_FOLDER = FIXTURES / "ecrf_study"
LOADER = Actor(user_id=None, username="test-loader")
NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}


def load_fixture_study(folder: Path = STUDY_FOLDER):
    """Store the fixture study as a version; returns (study, version)."""
    result = studies.load_folder(db.session, LOADER, folder)
    db.session.commit()
    return result.study, result.version


def canonical_mdv(xml: bytes) -> bytes:
    """The MetaDataVersion in canonical form, without its own OID, Name and Description
    (they name the stored version, which differs between two loads)."""
    root = etree.fromstring(xml)
    mdv = root.find(".//odm:MetaDataVersion", NS)
    for attr in ("OID", "Name", "Description"):
        mdv.attrib.pop(attr, None)
    return etree.tostring(mdv, method="c14n")


def pdf_text(path: Path) -> str:
    """The text of a PDF as pdftotext (poppler-utils) extracts it, in reading order, with
    runs of white space (line wraps) made single spaces."""
    done = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, check=True,
                          text=True)
    return " ".join(done.stdout.split())
