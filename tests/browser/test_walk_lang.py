"""The trial walk's language helper: strings looked up as the server shows them, and the
English check it runs on every page (tests/browser/walk/lang.py)."""

from __future__ import annotations

import re

import pytest

from tests.browser.walk.lang import Catalog, english_phrases, study_texts


@pytest.mark.parametrize(("language", "msgid", "values", "expected"), [
    ("en", "Save and mark complete", {}, "Save and mark complete"),
    ("fr", "Save and mark complete", {}, "Enregistrer et marquer comme complet"),
    ("zh_Hans", "Save and mark complete", {}, "保存并标记完成"),
    ("fr", "Reason for changing %(label)s (saved value: %(value)s)",
     {"label": "Poids", "value": "80"}, "Motif de modification de Poids (valeur enregistrée : 80)"),
])
def test_lookup(language, msgid, values, expected):
    assert Catalog(language)(msgid, **values) == expected


@pytest.mark.parametrize(("language", "n", "expected"), [
    ("en", 1, "1 removed row"),
    ("en", 2, "2 removed rows"),
    ("fr", 1, "1 ligne supprimée"),
    ("fr", 2, "2 lignes supprimées"),
    ("zh_Hans", 2, "2 行已删除"),
])
def test_plural(language, n, expected):
    assert Catalog(language).plural("%(num)s removed row", "%(num)s removed rows", n) == expected


@pytest.mark.parametrize(("language", "values", "text", "matches"), [
    ("fr", {"label": "Poids"}, "Motif de modification de Poids (valeur enregistrée : 80)", True),
    ("fr", {"label": "Taille"}, "Motif de modification de Poids (valeur enregistrée : 80)",
     False),
    ("zh_Hans", {"label": "体重"}, "修改 体重 的原因（已保存值：80）", True),
    ("en", {}, "Reason for changing Weight (saved value: 80)", True),
])
def test_regex_fills_given_placeholders(language, values, text, matches):
    pattern = Catalog(language).regex(
        "Reason for changing %(label)s (saved value: %(value)s)", **values)
    assert bool(re.fullmatch(pattern, text)) is matches


@pytest.mark.parametrize(("language", "text", "content", "expected"), [
    # A button left in English on a French or Chinese page.
    ("fr", "Enregistrer Save and mark complete", (), ["Save and mark complete"]),
    ("zh_Hans", "保存 Save and mark complete", (), ["Save and mark complete"]),
    # The same page translated.
    ("fr", "Enregistrer et marquer comme complet", (), []),
    ("zh_Hans", "保存并标记完成", (), []),
    # The three words or more around a placeholder count; shorter parts do not.
    ("fr", "Reason for changing Poids", (), ["Reason for changing"]),
    ("fr", "Subject TLS-101 enrolled at TLS.", (), []),
    # A phrase also written in the study's own texts is study content.
    ("fr", "Save and mark complete", ("Please Save and mark complete today",), []),
    # An English page is not checked.
    ("en", "Save and mark complete", (), []),
])
def test_english_left(language, text, content, expected):
    assert Catalog(language).english_left(text, frozenset(content)) == expected


@pytest.mark.parametrize("language", ["fr", "zh_Hans"])
def test_phrases_are_translated_msgid_parts(language):
    phrases = english_phrases(language)
    assert "Save and mark complete" in phrases
    assert "The event is started: enter its forms" in phrases
    assert all(len(p.split()) >= 3 for p in phrases)
    assert not any("%(" in p or "<" in p for p in phrases)


def test_study_texts_hold_the_definition_labels():
    assert "labels: {fr: \"Administration de la dexaméthasone\"}" in study_texts("dexaml03")
