"""The translation catalogs: every user-facing string extracted, each catalog's entries
keeping the placeholders and markup of their English original, the complete languages
translating every string, and the pages served in the user's language."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import g

from ecrf.accounts.models import User
from ecrf.core import PROJECT_ROOT
from ecrf.core.extensions import db
from ecrf.core.i18n import format_day, format_local, html_lang, match_language
from tests.conftest import sign_in

TRANSLATIONS = PROJECT_ROOT / "translations"
SHIPPED = ("fr", "zh_Hans")
# The languages every user-facing string must be translated into. A new language joins once
# its catalog is complete; until then FLOOR (its share translated, 0 to 1) keeps that share
# from going down.
COMPLETE = {"fr", "zh_Hans"}
FLOOR: dict[str, float] = {}
PLURAL_FORMS = {"fr": "nplurals=2; plural=(n > 1);", "zh_Hans": "nplurals=1; plural=0;"}

PLACEHOLDER = re.compile(r"%(?:\([a-z_]+\))?[-#0 +]*\d*(?:\.\d+)?[sdifr%]")
TAG = re.compile(r"</?[a-zA-Z][^>]*>")


def _read(path: Path):
    with path.open("rb") as f:
        return read_po(f)


def _template():
    return _read(TRANSLATIONS / "messages.pot")


def _catalog(language: str):
    return _read(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po")


def _texts(value) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)


def _translated(message) -> bool:
    return not message.fuzzy and all(_texts(message.string))


def _extracted_ids() -> set[str]:
    """The strings the sources mark for translation now, as `make messages-extract` finds."""
    with (PROJECT_ROOT / "babel.cfg").open(encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None,
                "lazy_gettext": None, "_l": None}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(PROJECT_ROOT), method_map, options_map, keywords=keywords):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_the_template_holds_every_string_of_the_sources():
    # A string added to the code or the templates needs `make messages` (and translating).
    template = {m.id if isinstance(m.id, str) else m.id[0] for m in _template() if m.id}
    extracted = _extracted_ids()
    assert sorted(extracted - template) == [], "run `make messages` and translate"
    assert sorted(template - extracted) == [], "run `make messages` to drop stale strings"


@pytest.mark.parametrize("language", SHIPPED)
def test_catalog_speaks_its_language_with_its_plural_rule(language):
    catalog = _catalog(language)
    assert str(catalog.locale) == language
    assert catalog.plural_forms == PLURAL_FORMS[language]


@pytest.mark.parametrize("language", SHIPPED)
def test_translations_keep_placeholders_and_markup(language):
    catalog = _catalog(language)
    wrong = []
    for message in catalog:
        if not message.id or not _translated(message):
            continue
        originals = _texts(message.id)
        for index, text in enumerate(_texts(message.string)):
            original = originals[min(index, len(originals) - 1)]
            if language == "zh_Hans":  # one form: it says the plural's placeholders
                original = originals[-1]
            if sorted(PLACEHOLDER.findall(text)) != sorted(PLACEHOLDER.findall(original)) \
                    and not (len(originals) > 1 and "%(num)" not in text
                             and set(PLACEHOLDER.findall(text)) <= set(
                                 PLACEHOLDER.findall(original))):
                wrong.append((original, text))
            if sorted(TAG.findall(text)) != sorted(TAG.findall(original)):
                wrong.append((original, text))
    assert wrong == []


@pytest.mark.parametrize("language", SHIPPED)
def test_every_string_is_translated_in_a_complete_language(language):
    template = [m for m in _template() if m.id]
    catalog = _catalog(language)
    missing = [m.id for m in template
               if catalog.get(m.id) is None or not _translated(catalog.get(m.id))]
    share = 1 - len(missing) / len(template)
    if language in COMPLETE:
        assert missing == []
    else:
        assert share >= FLOOR[language], f"{language}: {share:.1%} translated"


@pytest.mark.parametrize(("tag", "expected"), [
    ("fr", "fr"), ("fr-FR", "fr"), ("FR-ca", "fr"), ("zh", "zh_Hans"), ("zh-CN", "zh_Hans"),
    ("zh-Hans", "zh_Hans"), ("zh_Hans", "zh_Hans"), ("zh-Hans-CN", "zh_Hans"), ("en-GB", "en"),
    ("de", None), ("", None), (None, None),
])
def test_a_language_tag_finds_its_interface_language(tag, expected):
    assert match_language(tag, ["en", "fr", "zh_Hans"]) == expected


@pytest.mark.parametrize(("locale", "expected"), [
    ("en", "en"), ("fr", "fr"), ("zh_Hans", "zh-Hans")])
def test_html_lang_is_a_bcp47_tag(locale, expected):
    assert html_lang(locale) == expected


@pytest.fixture
def compiled(app_factory, tmp_path):
    """An app serving the catalogs as they are in the repository, compiled here."""
    for language in SHIPPED:
        target = tmp_path / "translations" / language / "LC_MESSAGES"
        target.mkdir(parents=True)
        with (target / "messages.mo").open("wb") as f:
            write_mo(f, _catalog(language))
    application = app_factory(BABEL_TRANSLATION_DIRECTORIES=str(tmp_path / "translations"))
    with application.app_context():
        yield application


CLOCK = dt.datetime(2026, 3, 2, 13, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(("language", "day", "when"), [
    ("en", "2026-03-02", "2026-03-02 14:05 CET (Europe/Paris)"),
    ("fr", "2 mars 2026", "2 mars 2026 14:05 CET (Europe/Paris)"),
    ("zh_Hans", "2026年3月2日", "2026年3月2日 14:05 CET (Europe/Paris)"),
])
def test_dates_and_times_in_the_readers_language(compiled, language, day, when):
    with compiled.test_request_context(headers={"Accept-Language": language}):
        g.display_tz = "Europe/Paris"
        assert format_day(dt.date(2026, 3, 2)) == day
        assert format_local(CLOCK) == when


def _visible(html: str) -> list[str]:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return [t.strip() for t in re.split(r"<[^>]+>", html) if t.strip()]


def _study_texts(folder: Path) -> set[str]:
    """The names and labels a study's own definition gives (its content, not the interface)."""
    texts = set()
    for path in folder.rglob("*.yaml"):
        for match in re.finditer(r"^\s*-?\s*(?:name|label|question):\s*(.+?)\s*$",
                                 path.read_text(encoding="utf-8"), flags=re.M):
            texts.add(match.group(1).strip("'\""))
    return texts


def _english_left(html: str, language: str, content: set[str] = frozenset()) -> list[str]:
    """Text nodes of a page that are an English string the catalog translates otherwise
    (the study's own texts aside: a study may not be written in every language)."""
    catalog = _catalog(language)
    english = {m.id: m.string for m in catalog
               if isinstance(m.id, str) and m.id and _translated(m) and m.string != m.id
               and "%" not in m.id and re.search(r"[a-z]{3}", m.id)}
    return sorted({text for text in _visible(html) if text in english and text not in content})


@pytest.mark.parametrize(("language", "lang_attr", "sign_in_label"), [
    ("fr", "fr", "Se connecter"),
    ("zh_Hans", "zh-Hans", "登录"),
])
def test_login_page_in_the_browsers_language(compiled, language, lang_attr, sign_in_label):
    page = compiled.test_client().get("/login", headers={"Accept-Language": lang_attr})
    html = page.get_data(as_text=True)
    assert f'<html lang="{lang_attr}">' in html
    assert '<button class="btn btn-link btn-sm p-0 me-2" type="submit" name="lang" ' \
           'value="zh_Hans" lang="zh-Hans">中文</button>' in html
    assert sign_in_label in html
    if language in COMPLETE:
        assert _english_left(html, language) == []


@pytest.mark.parametrize("path", ["/", "/account", "/account/tokens"])
def test_main_pages_have_no_english_left_in_a_complete_language(compiled, make_user, path):
    user = make_user("dm1", role="data_manager")
    client = compiled.test_client()
    assert sign_in(client, user.username).status_code == 302
    for language in sorted(COMPLETE):
        client.post("/language", data={"lang": language})
        page = client.get(path)
        assert page.status_code == 200
        assert _english_left(page.get_data(as_text=True), language) == []


def test_the_chosen_language_is_kept_on_the_account(compiled, make_user):
    user = make_user("inv1", role="investigator", site="S01")
    client = compiled.test_client()
    assert sign_in(client, user.username).status_code == 302
    assert client.post("/language", data={"lang": "zh_Hans", "next": "/account"}).status_code == 302
    assert db.session.get(User, user.id).language == "zh_Hans"
    # A new session, a browser asking for French: the account's choice wins.
    other = compiled.test_client()
    assert sign_in(other, user.username).status_code == 302
    html = other.get("/account", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert '<html lang="zh-Hans">' in html
    assert '<option value="zh_Hans" lang="zh-Hans" selected>中文</option>' in html
    # An unknown language changes nothing.
    other.post("/language", data={"lang": "de"})
    assert db.session.get(User, user.id).language == "zh_Hans"
    # Switching back to French from the account page.
    other.post("/language", data={"lang": "fr"})
    assert db.session.get(User, user.id).language == "fr"
    assert "Mon compte" in other.get("/account").get_data(as_text=True)


SUBJECT = "/studies/UCMSCEXO/subjects/WUH-001"
STUDY_PAGES = [SUBJECT, SUBJECT + "/events/CHEMO_D1/1", SUBJECT + "/events/CHEMO_D1/1/forms/CHEMO",
               SUBJECT + "/events/HEMOBS/1/forms/COUNTS", "/studies/UCMSCEXO/subjects",
               "/studies/UCMSCEXO/dashboard", "/studies/UCMSCEXO/queries"]


@pytest.mark.parametrize("language", sorted(COMPLETE))
def test_subject_and_data_entry_pages_have_no_english_left(compiled, make_study, make_user,
                                                          language):
    from tests.capture.grid_setup import UCMSC, counts_subject, load_ucmsc

    make_study("UCMSCEXO", sites=("WUH",))
    load_ucmsc(db.session)
    counts_subject(db.session, "WUH-001")
    user = make_user("crc1", role="coordinator", study="UCMSCEXO", site="WUH")
    client = compiled.test_client()
    assert sign_in(client, user.username).status_code == 302
    client.post("/language", data={"lang": language})
    for url in STUDY_PAGES:
        page = client.get(url)
        assert page.status_code == 200, url
        html = page.get_data(as_text=True)
        assert f'<html lang="{html_lang(language)}">' in html
        assert _english_left(html, language, _study_texts(UCMSC)) == [], url


@pytest.mark.parametrize(("language", "note", "said"), [
    ("en", "done 2025-06-15", "done 2025-06-15"),
    ("fr", "done 2025-06-15", "réalisée le 15 juin 2025"),
    ("zh_Hans", "done 2025-06-15", "于 2025年6月15日 完成"),
    ("fr", "planned after death on 2026-04-11", "prévue après Décès le 11 avr. 2026"),
    ("fr", "not done before death on 2026-04-11 (window opened 2025-12-30)",
     "non réalisée avant Décès le 11 avr. 2026 (fenêtre ouverte le 30 déc. 2025)"),
    ("fr", "in progress; window closed 2026-04-26",
     "en cours ; la fenêtre s'est fermée le 26 avr. 2026"),
    ("zh_Hans", "in progress; window closed 2026-04-26", "进行中；时间窗已于 2026年4月26日 关闭"),
    ("fr", "done 2025-07-01, 1 day after the window closed 2025-06-30; planned after study end "
     "on 2026-01-01", "réalisée le 1 juil. 2025, 1 jour après la fermeture de la fenêtre le "
     "30 juin 2025 ; prévue après la fin de l'étude le 1 janv. 2026"),
    ("fr", "declared not done; condition not met: ARM == 'A'",
     "déclarée non réalisée ; condition non remplie : Bras vaut A"),
    ("fr", "something new", "something new"),  # not recognised: as the engine wrote it
])
def test_schedule_notes_in_the_readers_language(compiled, language, note, said):
    from ecrf.capture.notes import say_note

    with compiled.test_request_context(headers={"Accept-Language": language}):
        assert say_note(note, "ARM == 'A'", "Bras vaut A", {"death": "Décès"}) == said
