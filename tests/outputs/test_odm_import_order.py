"""The order a subject's forms are imported in: after the forms their calculated items read."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from ecrf.crf import load_study
from ecrf.outputs.odm.importer.order import dependency_order, read_forms

FORMS = Path(__file__).resolve().parents[2] / "forms"


@cache
def dexaml03():
    return load_study(FORMS / "dexaml03").definition


@dataclass
class Form:
    form: str


@pytest.mark.parametrize(("form", "reads"), [
    ("ELIG", "HEMATO"),  # PBBLDISP = HEMATO.PBBLAST
    ("RAND", "ELIG"),  # ELIGCONF = ELIG.ELIGIBLE
])
def test_calculated_items_name_the_forms_they_read(form, reads):
    assert reads in read_forms(dexaml03(), form)


@pytest.mark.parametrize(("file_order", "imported"), [
    (["ELIG", "HEMATO"], ["HEMATO", "ELIG"]),
    (["RAND", "ELIG", "HEMATO"], ["HEMATO", "ELIG", "RAND"]),
    (["CONSENT", "HEMATO"], ["CONSENT", "HEMATO"]),  # no reads between them: file order
])
def test_forms_come_after_the_forms_they_read(file_order, imported):
    ordered = dependency_order(dexaml03(), [Form(f) for f in file_order])
    assert [f.form for f in ordered] == imported
