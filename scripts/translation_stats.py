"""The share of the extracted strings (translations/messages.pot) each catalog translates.

    python scripts/translation_stats.py        (or: make messages-stats)

A string counts as translated when its catalog entry is non-empty and not fuzzy.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1] / "translations"


def translated_share(catalog_path: Path, template_ids: set) -> tuple[int, int]:
    """(translated, total) of the template's messages in one catalog."""
    with catalog_path.open("rb") as f:
        catalog = read_po(f)
    done = 0
    for message in catalog:
        if not message.id or message.id not in template_ids or message.fuzzy:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if all(strings):
            done += 1
    return done, len(template_ids)


def main() -> int:
    with (ROOT / "messages.pot").open("rb") as f:
        template_ids = {m.id for m in read_po(f) if m.id}
    for po in sorted(ROOT.glob("*/LC_MESSAGES/messages.po")):
        done, total = translated_share(po, template_ids)
        language = po.parent.parent.name
        print(f"{language:8} {done:5}/{total} translated ({100 * done / total:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
