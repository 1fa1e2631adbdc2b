"""The ODM clinical export writes ClinicalData as pre-formatted text: the same bytes as the
element-built writer it replaced (``odm_reference_writer``), escaping exactly as lxml
does, and a number of SQL statements that does not grow with the subjects exported."""

from __future__ import annotations

import datetime as dt
import io
import secrets

import pytest
from lxml import etree

from ecrf.core.extensions import db
from ecrf.outputs.odm.clinical import export_odm_clinical
from ecrf.outputs.odm.common import validate_odm, xml_attr, xml_text
from ecrf.outputs.rows import make_scope
from tests.conftest import count_statements
from tests.outputs.clinical_setup import DEMOG, LOADER, enrol, load_study, populate, save
from tests.outputs.odm_reference_writer import reference_export

AT = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

# Every character up to U+02FF (controls, XML specials, Latin), and the edges beyond.
CHARS = [chr(c) for c in range(0x300)] + [
    "\u2028", "\u3000", "\ufeff", "\ufffd", "\ufffe", "\uffff", "\U0001F600", "中"]


def lxml_writes(text: str) -> str | None:
    """How lxml serializes ``text`` as an attribute and as content; None if it refuses."""
    try:
        el = etree.Element("A", V=text)
        el.text = text
    except ValueError:
        return None
    return etree.tostring(el, encoding=str)


@pytest.mark.parametrize("char", CHARS, ids=[f"U+{ord(c):04X}" for c in CHARS])
def test_escaping_is_lxmls(char):
    text = f"a{char}b&{char}"
    expected = lxml_writes(text)
    if expected is None:
        with pytest.raises(ValueError, match="XML compatible"):
            xml_attr(text)
        with pytest.raises(ValueError, match="XML compatible"):
            xml_text(text)
    else:
        assert f'<A V="{xml_attr(text)}">{xml_text(text)}</A>' == expected


def both(study, **kwargs) -> tuple[bytes, bytes]:
    """The export of today's writer and of the reference writer, at the same instant."""
    found = []
    for write in (export_odm_clinical, reference_export):
        buffer = io.BytesIO()
        scope = make_scope(db.session, study, site=kwargs.get("site"),
                           subject=kwargs.get("subject"))
        with pytest.MonkeyPatch.context() as patch:  # the file OID's random part
            patch.setattr(secrets, "token_hex", lambda n=None: "0" * 8)
            write(db.session, scope, buffer, created_at=AT,
                  transactional=kwargs.get("transactional", False))
        found.append(buffer.getvalue())
    return found[0], found[1]


@pytest.mark.parametrize("transactional", [False, True], ids=["snapshot", "transactional"])
@pytest.mark.parametrize("scope", [{}, {"site": "S01"}, {"subject": "S01-001"},
                                   {"site": "S02"}], ids=["all", "site", "subject", "other"])
def test_same_bytes_as_the_element_writer(app, make_study, make_user, transactional,
                                          scope):
    cast = populate(make_study, make_user)
    new, old = both(cast.study, transactional=transactional, **scope)
    assert new == old
    assert validate_odm(new) == []


def test_same_bytes_for_an_empty_study_and_an_emptied_value(app, make_study):
    study = load_study(make_study)
    new, old = both(study)
    assert new == old and b"></ClinicalData>" not in new  # no version used yet
    subject = enrol(study, "S01-009")
    save(LOADER, subject, "SCREEN", "DEMOG", {("DEMOG_MAIN", 1, "WEIGHT"): "70"})
    save(LOADER, subject, "SCREEN", "DEMOG", {("DEMOG_MAIN", 1, "WEIGHT"): None},
         reasons={("DEMOG_MAIN", 1, "WEIGHT"): 'wrong "patient" <a&b>'})
    for transactional in (False, True):
        new, old = both(study, transactional=transactional)
        assert new == old
        assert validate_odm(new) == []
        # A snapshot's group left with no value is an empty element.
        assert (b'ItemGroupOID="IG.DEMOG.DEMOG_MAIN"/>' in new) is not transactional


def test_statements_do_not_grow_with_the_subjects(app, make_study):
    study = load_study(make_study)
    counts, made = {}, 0
    for n in (5, 20):
        for k in range(made, n):
            subject = enrol(study, f"S01-{k:03d}")
            save(LOADER, subject, "SCREEN", "DEMOG",
                 {("DEMOG_MAIN", 1, key): DEMOG[key] for key in ("SEX", "WEIGHT", "NOTES")})
        made = n
        for transactional in (False, True):
            with count_statements() as counted:
                summary = export_odm_clinical(db.session, make_scope(db.session, study),
                                              io.BytesIO(), transactional=transactional)
            assert summary.subjects == n
            counts[(n, transactional)] = counted.n
    assert counts[(5, False)] == counts[(20, False)]
    assert counts[(5, True)] == counts[(20, True)]
