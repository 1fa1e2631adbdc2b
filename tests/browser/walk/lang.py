"""The walk's language: the interface strings its people read, and the check that a page shown
in French or Chinese holds no English application sentence.

The strings are the catalog's own (translations/<language>/LC_MESSAGES/messages.mo, what
the server shows), so the walk finds buttons and messages in any language. The check
compares a page's visible text with the English msgids of translations/messages.pot that
have a translation: any part of a msgid (placeholders and markup cut out) of three words
or more, seen verbatim, is an English string the page should not show. Study content
(labels of forms/, which has its own French and Chinese texts) is left out.
"""

from __future__ import annotations

import gettext
import re
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

from ecrf.core import PROJECT_ROOT

TRANSLATIONS = PROJECT_ROOT / "translations"
# The study-definition language each interface language reads (forms/*/study.yaml).
STUDY_LANGUAGE = {"en": "en", "fr": "fr", "zh_Hans": "zh"}
HTML_LANG = {"en": "en", "fr": "fr", "zh_Hans": "zh-Hans"}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdfr]|%[sd]")
CUT = re.compile(r"%\(\w+\)[sdfr]|%[sd]|\{[^}]*\}|<[^>]*>|&\w+;")
MIN_WORDS = 3


class Catalog:
    """The interface strings in one language ("en", "fr", "zh_Hans")."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.study_language = STUDY_LANGUAGE[language]
        self.html_lang = HTML_LANG[language]
        if language == "en":
            self._t: gettext.NullTranslations = gettext.NullTranslations()
        else:
            mo = TRANSLATIONS / language / "LC_MESSAGES" / "messages.mo"
            assert mo.exists(), f"{mo} is missing: run `make messages-compile`"
            with mo.open("rb") as fh:
                self._t = gettext.GNUTranslations(fh)

    def __call__(self, msgid: str, **values: object) -> str:
        text = self._t.gettext(msgid)
        return text % values if values else text

    def plural(self, singular: str, plural: str, n: int, **values: object) -> str:
        return self._t.ngettext(singular, plural, n) % {"num": n, **values}

    def regex(self, msgid: str, **values: object) -> str:
        """The translated string as a regular expression: the placeholders given in
        ``values`` filled in, the others matching anything."""
        text = self._t.gettext(msgid)
        parts, last = [], 0
        for match in PLACEHOLDER.finditer(text):
            parts.append(re.escape(text[last:match.start()]))
            name = match[1]
            parts.append(re.escape(str(values[name])) if name in values else ".*?")
            last = match.end()
        parts.append(re.escape(text[last:]))
        return "".join(parts)

    def english_left(self, text: str, content: frozenset[str] = frozenset()) -> list[str]:
        """The English application phrases ``text`` shows (none when the language is
        English), except those also found in ``content`` (study texts, typed values)."""
        if self.language == "en":
            return []
        found = [p for p in english_phrases(self.language) if p in text]
        return [p for p in found if not any(p in c for c in content)]


@cache
def english_phrases(language: str) -> tuple[str, ...]:
    """The parts of three words or more of every translated msgid, whose translation is not
    the same words (a name kept as is)."""
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh)
    phrases = set()
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not any(strings):
            continue
        translated = " ".join(s for s in strings if s)
        for msgid in ids:
            for part in CUT.split(msgid):
                part = part.strip(" \n\t:;,.()·—-\x27\"")
                if len(part.split()) >= MIN_WORDS and part not in translated:
                    phrases.add(part)
    return tuple(sorted(phrases))


@cache
def study_texts(folder: str) -> frozenset[str]:
    """Every line of a study's definition files: its labels in any language."""
    lines = set()
    for path in sorted(Path(PROJECT_ROOT / "forms" / folder).rglob("*")):
        if path.is_file() and path.suffix in (".yaml", ".yml", ".csv", ".md"):
            lines.update(line.strip() for line in path.read_text("utf-8").splitlines())
    return frozenset(line for line in lines if line)
