"""Page objects of the trial walk: a signed-in role, the subject and event pages, and a
generic form filler driven by the study definition.

Everything here acts as a user would: it reads what the page shows and clicks what the
page offers (roles and labels first; the stable field ids of the entry form, named
GROUP-ROW-ITEM, where one label repeats across rows).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Browser, Locator, Page, expect
from playwright.sync_api import Error as PlaywrightError

from ecrf.crf import ItemType
from tests.browser.conftest import VIEWPORT
from tests.browser.session import sign_in
from tests.browser.walk.lang import Catalog
from tests.browser.walk.values import Planned, ValueOracle

ACK = "Confirmed against the source document."


class WalkError(AssertionError):
    pass


def choose(radio: Locator) -> None:
    """Tick a radio button with the mouse; when a question appearing above moves it under
    the pointer (the click then lands elsewhere), choose it from the keyboard instead."""
    try:
        radio.check(timeout=5000)
    except PlaywrightError:
        radio.focus()
        radio.page.keyboard.press("Space")
    expect(radio).to_be_checked()


@dataclass
class Timings:
    """Page timings the walk reports (seconds), by label."""

    seen: dict[str, list[float]] = field(default_factory=dict)

    def add(self, label: str, seconds: float) -> None:
        self.seen.setdefault(label, []).append(seconds)

    def summary(self) -> str:
        """The counts grid and exports, then the slowest form fills and their total."""
        shown = [k for k in self.seen if not k.startswith(("fill ", "rows "))]
        fills = sorted((k for k in self.seen if k.startswith("fill ")),
                       key=lambda k: -max(self.seen[k]))
        total = sum(sum(self.seen[k]) for k in fills)
        parts = [f"{k} {max(self.seen[k]):.2f}s" for k in shown]
        parts += [f"{k} {max(self.seen[k]):.1f}s" for k in fills[:4]]
        count = sum(len(self.seen[k]) for k in fills)
        rows = [k for k in self.seen if k.startswith("rows ")]
        parts.append(f"{count} forms filled in {total:.0f}s")
        if rows:  # a row edited and one removed in each repeating group
            spent = sum(sum(self.seen[k]) for k in rows)
            parts.append(f"rows edited and removed in {len(rows)} groups in {spent:.0f}s")
        return ", ".join(parts)


class Role:
    """One person, signed in in their own browser context (cookies are not shared)."""

    def __init__(self, browser: Browser, base_url: str, username: str, study_oid: str,
                 problems: list[str], catalog: Catalog | None = None,
                 untranslated: dict[str, str] | None = None,
                 content: frozenset[str] = frozenset()) -> None:
        self.username, self.study_oid = username, study_oid
        self.t = catalog or Catalog("en")
        # English application phrases seen while the page spoke another language: phrase ->
        # the page it was first seen on.
        self.untranslated = untranslated if untranslated is not None else {}
        self.content = content
        self.context = browser.new_context(viewport=VIEWPORT, base_url=base_url,
                                           accept_downloads=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.page.on("pageerror", lambda exc: problems.append(f"{username}: {exc}"))
        self.sign_in()

    @property
    def base(self) -> str:
        return f"/studies/{self.study_oid}"

    def sign_in(self) -> None:
        sign_in(self.page, self.username)
        if self.t.language != "en":
            # The person picks their language in the footer; the account remembers it.
            with self.page.expect_navigation():
                self.page.locator(
                    f"footer button[name=lang][value={self.t.language}]").click()
            expect(self.page.locator("html")).to_have_attribute("lang", self.t.html_lang)
            self.check_language()

    def visit(self, path: str) -> Page:
        response = self.page.goto(path)
        assert response is not None and response.status == 200, (
            path, response and response.status)
        self.check_language()
        return self.page

    def submit(self, button: Locator) -> None:
        """Click a submit button and wait for the page it leads to."""
        with self.page.expect_navigation():
            button.click()
        self.check_language()

    def check_language(self) -> None:
        """Record the English application phrases the page shows in another language."""
        if self.t.language == "en":
            return
        lang = self.page.locator("html").get_attribute("lang")
        if lang != self.t.html_lang:
            self.untranslated.setdefault(f"<html lang={lang}>", self.page.url)
        text = self.page.locator("body").inner_text()
        for phrase in self.t.english_left(text, self.content):
            self.untranslated.setdefault(phrase, self.page.url)

    def close(self) -> None:
        self.context.close()


# --- subject and events ----------------------------------------------------------------------


class SubjectPages:
    """A subject's pages, for one role."""

    def __init__(self, role: Role, key: str) -> None:
        self.role, self.key = role, key

    @property
    def page(self) -> Page:
        return self.role.page

    @property
    def url(self) -> str:
        return f"{self.role.base}/subjects/{self.key}"

    def open(self) -> Page:
        self.role.visit(self.url)
        expect(self.page.get_by_role("heading", level=1)).to_contain_text(self.key)
        return self.page

    def schedule_row(self, event_name: str, occurrence: int = 1) -> Locator:
        table = self.page.locator("table.schedule-table")
        return table.locator("tbody tr").filter(
            has=self.page.get_by_role("rowheader", name=event_name, exact=True)).filter(
            has=self.page.locator("td:nth-child(2)", has_text=re.compile(rf"^{occurrence}$")))

    def status(self) -> str:
        dl = self.page.locator("dl").first
        return dl.locator("dt").filter(has_text=re.compile(
            f"^{re.escape(self.role.t('Status'))}$")).locator("+ dd").inner_text().strip()

    def event_url(self, event_oid: str, repeat: int = 1) -> str:
        return f"{self.url}/events/{event_oid}/{repeat}"

    def open_event(self, event_oid: str, repeat: int = 1) -> EventPage:
        self.role.visit(self.event_url(event_oid, repeat))
        return EventPage(self.role, self.key, event_oid, repeat)

    def open_log(self, name: str, event_oid: str) -> EventPage:
        """A log from the subject page's Logs table (AE, CM, DV, death, end of study...)."""
        self.open()
        logs = self.page.locator("section[aria-labelledby='logs-title']")
        self.role.submit(logs.get_by_role("link", name=name, exact=True))
        return EventPage(self.role, self.key, event_oid, 1)


class EventPage:
    def __init__(self, role: Role, key: str, event_oid: str, repeat: int) -> None:
        self.role, self.key, self.event_oid, self.repeat = role, key, event_oid, repeat

    @property
    def page(self) -> Page:
        return self.role.page

    @property
    def url(self) -> str:
        return f"{self.role.base}/subjects/{self.key}/events/{self.event_oid}/{self.repeat}"

    def planned(self) -> dt.date | None:
        planned = self.page.locator("#planned time")
        if not planned.count():
            return None
        return dt.date.fromisoformat(planned.first.get_attribute("datetime"))

    def started(self) -> bool:
        return self.page.get_by_role("heading", name=self.role.t("Forms"),
                                     exact=True).count() > 0

    def start(self, on: dt.date | None) -> None:
        """Start the event on ``on`` (a log may have no date)."""
        if self.started():
            return
        section = self.page.locator("section[aria-labelledby='start-title']")
        t = self.role.t
        section.get_by_label(re.compile(f"^{re.escape(t('Date it took place'))}")).fill(
            on.isoformat() if on else "")
        self.role.submit(section.get_by_role("button", name=t("Start"), exact=True))
        expect(self.page.get_by_text(t("The event is started: enter its forms."))
               ).to_be_visible()

    def form_names(self) -> list[str]:
        return [t.strip() for t in self.page.locator(
            "table.entry-forms tbody th[scope=row]").all_inner_texts()]

    def form_status(self, name: str) -> str:
        row = self.page.locator("table.entry-forms tbody tr").filter(
            has=self.page.get_by_role("rowheader", name=name, exact=True))
        return row.locator(".form-status").inner_text().strip()

    def open_form(self, form_oid: str) -> FormPage:
        self.role.visit(f"{self.url}/forms/{form_oid}")
        return FormPage(self.role, self)


# --- the form filler -------------------------------------------------------------------------


def field_name(group: str, row: int, item: str) -> str:
    return f"{group}-{row}-{item}"


class FormPage:
    """The data-entry page of one form."""

    def __init__(self, role: Role, event: EventPage) -> None:
        self.role, self.event = role, event

    @property
    def page(self) -> Page:
        return self.role.page

    def wrap(self, name: str) -> Locator:
        return self.page.locator(f"#wrap-{name}")

    def page_rows(self, group: str) -> list[int]:
        ids = self.page.locator(f"fieldset.entry-row[id^='row-{group}-']").evaluate_all(
            "els => els.map(e => e.id)")
        return [int(i.rsplit("-", 1)[1]) for i in ids]

    def add_row(self, group: str) -> int:
        """Click "Add a row" under a repeating group; the new row's number."""
        before = self.page_rows(group)
        section = self.page.locator(f"section[aria-labelledby='g-{group}']")
        self.role.submit(section.get_by_role("button", name=self.role.t("Add a row")))
        after = self.page_rows(group)
        added = [r for r in after if r not in before]
        if not added:
            raise WalkError(f"'Add a row' added no row to {group}")
        new = added[-1]
        # The new row is there to be filled: its first field is shown and enabled.
        first = self.page.locator(f"#row-{group}-{new} .entry-field").first
        expect(first).to_be_visible()
        return new

    def ensure_rows(self, group: str, count: int) -> list[int]:
        rows = self.page_rows(group)
        while len(rows) < count:
            self.add_row(group)
            rows = self.page_rows(group)
        return rows[:count]

    # -- typing values ---------------------------------------------------------------------

    def set_value(self, name: str, item_type: ItemType, value: Any) -> None:
        page = self.page
        if item_type is ItemType.PARTIAL_DATE:
            parts = (str(value).split("-") + ["UK", "UK"])[:3]
            page.locator(f"#{name}-y").fill(parts[0])
            page.locator(f"#{name}-m").select_option(parts[1])
            page.locator(f"#{name}-d").select_option(parts[2] if parts[1] != "UK" else "UK")
            return
        if item_type is ItemType.MULTIPLE_CHOICE:
            for box in page.locator(f"input[type=checkbox][name='{name}']").all():
                box.set_checked(box.get_attribute("value") in value)
            return
        if item_type in (ItemType.SINGLE_CHOICE, ItemType.YES_NO):
            select = page.locator(f"select#{name}")
            if select.count():
                select.select_option(str(value))
            else:
                choose(page.locator(f"input[type=radio][name='{name}'][value='{value}']"))
            return
        box = page.locator(f"#{name}")
        if item_type is ItemType.DATETIME:
            value = str(value)[:16]
        box.fill(str(value))

    def current(self, name: str, item_type: ItemType) -> Any:
        page = self.page
        if item_type is ItemType.PARTIAL_DATE:
            y = page.locator(f"#{name}-y").input_value()
            m = page.locator(f"#{name}-m").input_value()
            d = page.locator(f"#{name}-d").input_value()
            return "-".join(p for p in (y, m, d) if p and p != "UK")
        if item_type is ItemType.MULTIPLE_CHOICE:
            return [b.get_attribute("value") for b in page.locator(
                f"input[type=checkbox][name='{name}']:checked").all()]
        if item_type in (ItemType.SINGLE_CHOICE, ItemType.YES_NO):
            select = page.locator(f"select#{name}")
            if select.count():
                return select.input_value()
            checked = page.locator(f"input[type=radio][name='{name}']:checked")
            return checked.get_attribute("value") if checked.count() else ""
        value = page.locator(f"#{name}").input_value()
        return value

    def snapshot(self, names: list[str]) -> list[dict]:
        """What the page shows of many questions at once (one round trip, not dozens)."""
        return self.page.evaluate(SNAPSHOT, names)

    def fill(self, planned: Planned, *, skip_groups: tuple[str, ...] = (),
             keep: bool = False) -> list[str]:
        """Type every planned value whose question is shown; returns the fields left out.

        Repeating groups get their rows first ("Add a row"). Questions shown only after an
        answer elsewhere are shown by the page as the answers are typed (or by "Update" for
        those the server decides); the loop types them on the next pass. Values the system
        wrote (no input) are left alone, and with ``keep`` so is any value already there.
        """
        form = planned.form
        row_map: dict[str, dict[int, int]] = {}
        for group in form.groups:
            if group.repeating and group.oid not in skip_groups:
                wanted = planned.rows.get(group.oid, ())
                if wanted:
                    on_page = self.ensure_rows(group.oid, len(wanted))
                    row_map[group.oid] = dict(zip(wanted, on_page, strict=True))
        pending = []
        for (group_oid, row, item_oid), value in planned.values.items():
            if group_oid in skip_groups:
                continue
            page_row = row_map.get(group_oid, {}).get(row, row)
            pending.append((field_name(group_oid, page_row, item_oid),
                            form.item(item_oid).type, value))
        for attempt in range(3):
            left = []
            states = self.snapshot([name for name, _type, _value in pending])
            for (name, item_type, value), state in zip(pending, states, strict=True):
                if not state["shown"]:
                    left.append((name, item_type, value))
                    continue
                if not state["writable"]:
                    continue
                now = _current(state, item_type)
                if keep and now not in ("", []):
                    continue
                if now != value:
                    self.set_value(name, item_type, value)
            if not left or len(left) == len(pending) and attempt:
                pending = left
                break
            pending = left
            # Some conditions read other forms: the server shows those questions.
            self.role.submit(self.page.get_by_role(
                "button", name=self.role.t("Update (recalculate, show or hide questions)")))
        return [name for name, _type, _value in pending]

    # -- saving ----------------------------------------------------------------------------

    def complete(self, *, acknowledge: str = ACK) -> None:
        """Save and mark complete; acknowledge the warnings the page asks to confirm."""
        t = self.role.t
        for _attempt in range(3):
            self.role.submit(self.page.get_by_role("button", name=t("Save and mark complete")))
            if self.page.get_by_text(t("Saved. The form is complete.")).count():
                return
            empty = [box for box in self.page.get_by_label(
                t("Confirm the value: justification")).all() if not box.input_value()]
            if not empty or self.page.locator("#error-summary").count():
                break
            for box in empty:
                box.fill(acknowledge)
        self.raise_errors()
        raise WalkError(f"{self.page.url}: not complete: "
                        f"{self.page.locator('main').inner_text()[:1500]}")

    def save(self) -> None:
        self.role.submit(self.page.get_by_role("button", name=self.role.t("Save"),
                                               exact=True).last)
        self.raise_errors()

    def raise_errors(self) -> None:
        for selector in ("#error-summary", "#blockers", "#stale"):
            box = self.page.locator(selector)
            if box.count():
                issues = self.page.locator("#checks-title + ul").all_inner_texts()
                raise WalkError(f"{self.page.url}: {box.inner_text()}\n{issues}")


# For each field name: is its question shown, can it be typed into (a value the system
# writes has no input), what does it hold.
SNAPSHOT = """names => names.map(name => {
  const wrap = document.getElementById('wrap-' + name);
  if (!wrap) { return {shown: false, writable: false}; }
  const shown = !wrap.closest('[hidden]') && wrap.getClientRects().length > 0;
  const controls = Array.from(wrap.querySelectorAll(
    'input:not([type=hidden]), select, textarea')).filter(el => !el.name.startsWith('reason-'));
  const value = id => { const el = document.getElementById(id); return el ? el.value : ''; };
  const radio = controls.find(el => el.type === 'radio' && el.checked);
  return {
    shown, writable: controls.length > 0,
    radio: radio ? radio.value : '',
    radios: controls.some(el => el.type === 'radio'),
    checks: controls.filter(el => el.type === 'checkbox' && el.checked).map(el => el.value),
    parts: [value(name + '-y'), value(name + '-m'), value(name + '-d')],
    value: value(name),
  };
})"""


def _current(state: dict, item_type: ItemType) -> Any:
    if item_type is ItemType.PARTIAL_DATE:
        return "-".join(p for p in state["parts"] if p and p != "UK")
    if item_type is ItemType.MULTIPLE_CHOICE:
        return state["checks"]
    if item_type in (ItemType.SINGLE_CHOICE, ItemType.YES_NO) and state["radios"]:
        return state["radio"]
    return state["value"]


def fill_form(role: Role, oracle: ValueOracle, event: EventPage, form_oid: str,
              day: dt.date | None, *, overrides: dict | None = None,
              rows: int | None = None, timings: Timings | None = None,
              keep: bool = False) -> Planned:
    """Open a form of a started event, type valid values for it and mark it complete."""
    form = event.open_form(form_oid)
    planned = oracle.plan(event.event_oid, event.repeat, form_oid, day, overrides=overrides,
                          rows=rows)
    started = time.perf_counter()
    left = form.fill(planned, keep=keep)
    assert not left, f"{form_oid}: questions never shown: {left}"
    form.complete()
    if timings is not None:
        timings.add(f"fill {form_oid}", time.perf_counter() - started)
    return planned
