"""The schedule's notes said in the reader's language.

The schedule engine (``ecrf.domain.schedule``) writes its notes as plain English clauses
joined by "; " ("done 2025-06-15", "planned after death on 2026-04-11"); the API and the CLI
give them as they are. Here each clause is recognised and said again through gettext, with
its dates in the reader's format, its condition and stop anchor by their labels. A clause
not recognised stays as the engine wrote it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from flask_babel import gettext as _
from flask_babel import ngettext

from ecrf.core import format_day

DATE = r"\d{4}-\d{2}-\d{2}"


def _day(text: str) -> str:
    return format_day(dt.date.fromisoformat(text))


def _days(count: str) -> str:
    n = int(count)
    return ngettext("%(num)d day", "%(num)d days", n)


def _clauses(stop: Callable[[str, str], str]) -> list[tuple[re.Pattern, Callable]]:
    return [
        (r"done; date not recorded", lambda m: _("done; date not recorded")),
        (rf"done (?P<a>{DATE}), (?P<n>\d+) days? before the window opened (?P<s>{DATE})",
         lambda m: _("done %(actual)s, %(days)s before the window opened %(start)s",
                     actual=_day(m["a"]), days=_days(m["n"]), start=_day(m["s"]))),
        (rf"done (?P<a>{DATE}), (?P<n>\d+) days? after the window closed (?P<e>{DATE})",
         lambda m: _("done %(actual)s, %(days)s after the window closed %(end)s",
                     actual=_day(m["a"]), days=_days(m["n"]), end=_day(m["e"]))),
        (rf"done (?P<a>{DATE})", lambda m: _("done %(actual)s", actual=_day(m["a"]))),
        (rf"in progress; window closes (?P<e>{DATE})",
         lambda m: _("in progress; window closes %(end)s", end=_day(m["e"]))),
        (rf"in progress; window closed (?P<e>{DATE})",
         lambda m: _("in progress; window closed %(end)s", end=_day(m["e"]))),
        (r"declared not done", lambda m: _("declared not done")),
        (rf"planned after (?P<l>.+?) on (?P<o>{DATE})",
         lambda m: _("planned after %(stop)s", stop=stop(m["l"], m["o"]))),
        (rf"not done before (?P<l>.+?) on (?P<o>{DATE}) \(window opened (?P<s>{DATE})\)",
         lambda m: _("not done before %(stop)s (window opened %(start)s)",
                     stop=stop(m["l"], m["o"]), start=_day(m["s"]))),
        (rf"window opens (?P<s>{DATE})", lambda m: _("window opens %(start)s", start=_day(m["s"]))),
        (rf"window closes (?P<e>{DATE})", lambda m: _("window closes %(end)s", end=_day(m["e"]))),
        (rf"window closed (?P<e>{DATE})", lambda m: _("window closed %(end)s", end=_day(m["e"]))),
        (r"beyond the (?P<n>\d+) planned occurrences",
         lambda m: _("beyond the %(n)s planned occurrences", n=m["n"])),
    ]


def say_note(note: str | None, condition: str | None, condition_label: str,
             anchors: dict[str, str]) -> str:
    """``note`` in the reader's language. ``condition``: the event's condition as the engine
    quotes it, ``condition_label`` the same said by its labels; ``anchors``: the engine's name
    of each stop anchor ("death") -> its label."""
    if not note:
        return ""
    unmet = f"condition not met: {condition}" if condition else None

    def stop(label: str, on: str) -> str:
        if label == "study end":
            label = _("study end")
        return _("%(anchor)s on %(day)s", anchor=anchors.get(label, label), day=_day(on))

    clauses = [(re.compile(pattern), say) for pattern, say in _clauses(stop)]
    said, rest = [], note
    while rest:
        if unmet and rest.startswith(unmet):
            said.append(_("condition not met: %(condition)s", condition=condition_label))
            rest = rest[len(unmet):]
        else:
            for pattern, say in clauses:
                match = pattern.match(rest)
                if match:
                    said.append(say(match))
                    rest = rest[match.end():]
                    break
            else:  # not recognised: as the engine wrote it, its anchors by their labels
                for name, label in anchors.items():
                    for word in ("before", "after"):
                        rest = rest.replace(f"{word} {name} on ", f"{word} {label} on ")
                said.append(rest)
                rest = ""
        rest = rest.removeprefix("; ")
    return _("; ").join(said)
