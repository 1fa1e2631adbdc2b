"""The walk's people and the steps every trial shares: enrolment, events, logs, rows added,
edited and removed, a correction, a query, SDV, a signature, a lock and the outputs."""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

from playwright.sync_api import Browser, expect

from ecrf.core import PROJECT_ROOT
from ecrf.crf import load_study
from tests.browser.walk.clock import ServerClock
from tests.browser.walk.lang import Catalog, study_texts
from tests.browser.walk.pages import (
    EventPage,
    Role,
    SubjectPages,
    Timings,
    WalkError,
    field_name,
    fill_form,
)
from tests.browser.walk.values import FOLDERS, Planned, ValueOracle
from tests.conftest import PASSWORD


class Walk:
    """One trial's walk: its people (each in their own browser context) and its subjects."""

    def __init__(self, browser: Browser, live_server, study_oid: str, site: str,
                 users: dict[str, str], clock: ServerClock, language: str = "en") -> None:
        self.browser, self.live_server, self.clock = browser, live_server, clock
        self.study_oid, self.site = study_oid, site
        self.t = Catalog(language)  # the language the walk's people read
        self.problems: list[str] = []
        # English application phrases met on pages shown in another language: phrase ->
        # the first page it was seen on.
        self.untranslated: dict[str, str] = {}
        self.timings = Timings()
        self.users = users  # role name in the walk -> username
        self.roles: dict[str, Role] = {}
        self.oracles: dict[str, ValueOracle] = {}
        self.filled: set[str] = set()  # forms marked complete through their page
        self.rows_walked: set[str] = set()  # repeating groups: a row edited, one removed

    def role(self, name: str) -> Role:
        """The person: "crc" (site coordinator), "inv" (investigator), "mon", "dm"."""
        if name not in self.roles:
            self.roles[name] = Role(self.browser, self.live_server.url, self.users[name],
                                    self.study_oid, self.problems, self.t, self.untranslated,
                                    study_texts(FOLDERS[self.study_oid]))
        return self.roles[name]

    def close(self) -> None:
        for role in self.roles.values():
            role.close()

    def oracle(self, key: str, index: int = 0) -> ValueOracle:
        if key not in self.oracles:
            self.oracles[key] = ValueOracle(self.live_server.app, self.study_oid, key,
                                            index=index)
        return self.oracles[key]

    # -- site: enrolment, events and forms -------------------------------------------------

    def enrol(self, key: str, on: dt.date) -> SubjectPages:
        crc = self.role("crc")
        page = crc.visit(f"{crc.base}/subjects/new")
        t = self.t
        page.get_by_label(t("Site"), exact=True).select_option(self.site)
        page.get_by_label(t("Screening number")).fill(key)
        page.get_by_label(t("Enrolment date")).fill(on.isoformat())
        crc.submit(page.get_by_role("button", name=t("Enrol"), exact=True))
        expect(page.get_by_text(t("Subject %(key)s enrolled at %(site)s.", key=key,
                                  site=self.site))).to_be_visible()
        return SubjectPages(crc, key)

    def visit(self, key: str, event_oid: str, repeat: int = 1, *, on: dt.date | None = None,
              lag: int = 0, forms: dict[str, dict] | None = None,
              skip: tuple[str, ...] = (), who: str = "crc") -> EventPage:
        """Start an event (on its planned day unless told) and fill each of its forms.

        ``forms`` gives a form's overrides (and ``rows``, and ``keep``: leave the values
        already there); forms in ``skip`` are left for the caller (filled another way).
        """
        role = self.role(who)
        event = SubjectPages(role, key).open_event(event_oid, repeat)
        if on is None:
            on = event.planned() or self.today()
        # The site enters the visit's data up to ``lag`` days after it.
        self.advance(on + dt.timedelta(days=lag))
        on = min(on, self.today())
        event.start(on)
        for form_oid in self.event_forms(event_oid):
            if form_oid in skip:
                continue
            spec = dict((forms or {}).get(form_oid, {}))
            rows = spec.pop("rows", None)
            keep = bool(spec.pop("keep", False))
            fill_form(role, self.oracle(key), event, form_oid, on, overrides=spec, rows=rows,
                      timings=self.timings, keep=keep)
            self.filled.add(form_oid)
            event = SubjectPages(role, key).open_event(event_oid, repeat)
        return event

    def log(self, key: str, event_oid: str, form_oid: str | None = None, *,
            overrides: dict | None = None, rows: int | None = None,
            day: dt.date | None = None, who: str = "crc") -> Planned:
        """Open a log from the subject page's Logs table and fill its form."""
        role = self.role(who)
        if day is not None:
            self.advance(day)
        pages = SubjectPages(role, key)
        name = self.event_name(event_oid)
        event = pages.open_log(name, event_oid)
        event.start(None)
        form_oid = form_oid or self.event_forms(event_oid)[0]
        planned = fill_form(role, self.oracle(key), event, form_oid, day or self.today(),
                            overrides=overrides, rows=rows, timings=self.timings)
        self.filled.add(form_oid)
        return planned

    def assert_every_form_filled(self) -> None:
        missing = sorted(set(self._definition().forms) - self.filled)
        assert not missing, f"forms of {self.study_oid} the walk never completed: {missing}"

    def today(self) -> dt.date:
        """The server's today at the site (the walk's clock)."""
        return self.clock.today()

    def advance(self, day: dt.date) -> None:
        """Let time pass until ``day`` (never backwards, never beyond the real today)."""
        if day > self.today():
            self.clock.travel(min(day, self.clock.real_today()))

    def randomize(self, key: str) -> str:
        """The coordinator randomizes from the subject page; returns the arm shown."""
        crc = self.role("crc")
        SubjectPages(crc, key).open()
        crc.submit(crc.page.get_by_role("link", name=self.t("Randomize"), exact=True))
        expect(crc.page.locator("#checks")).not_to_contain_text(self.t("not met"))
        crc.submit(crc.page.get_by_role("button", name=self.t("Randomize"), exact=True))
        result = crc.page.locator("#result")
        expect(result).to_contain_text(self.t("Allocated arm:"))
        return result.locator("strong").inner_text().strip()

    def event_forms(self, event_oid: str) -> list[str]:
        return list(self._definition().event(event_oid).forms)

    def event_name(self, event_oid: str) -> str:
        """The event's name as the walk's people read it."""
        return self._definition().event_name_in(event_oid, self.t.study_language)

    def item_label(self, form_oid: str, item_oid: str) -> str:
        return self._definition().form(form_oid).item(item_oid).label_in(
            self.t.study_language)

    def _definition(self):
        if not hasattr(self, "_defn"):
            folder = PROJECT_ROOT / "forms" / FOLDERS[self.study_oid]
            self._defn = load_study(folder).definition
        return self._defn

    # -- rows: added, edited with a reason, removed with a reason --------------------------

    def edit_and_remove_rows(self, key: str, event_oid: str, form_oid: str, group: str,
                             item_oid: str, new_value: str, *, who: str = "crc") -> None:
        """On a completed form with two rows or more: change a value of row 1 (with the
        reason), remove the last row (with the reason), and mark it complete again."""
        started = time.perf_counter()
        role = self.role(who)
        event = SubjectPages(role, key).open_event(event_oid, 1)
        form = event.open_form(form_oid)
        rows = form.page_rows(group)
        assert len(rows) >= 2, f"{form_oid}: expected two rows, found {rows}"
        first, last = rows[0], rows[-1]
        name = field_name(group, first, item_oid)
        item_type = self._definition().form(form_oid).item(item_oid).type
        form.set_value(name, item_type, new_value)
        # The reason box opens beside a saved value being changed.
        reason = form.page.locator(f"#reason-{name}")
        expect(reason).to_be_visible()
        reason.fill("Transcription error: corrected against the source document.")
        row = form.page.locator(f"#row-{group}-{last}")
        t = self.t
        row.get_by_label(t("Remove this row")).check()
        row.get_by_label(re.compile(
            "^" + re.escape(t("Reason for removing row %(n)s", n=last)))).fill(
            "Entered twice: duplicate of another row.")
        form.complete()
        form = event.open_form(form_oid)
        assert form.page_rows(group) == rows[:-1]
        expect(form.page.get_by_text(t.plural("%(num)s removed row", "%(num)s removed rows",
                                              1))).to_be_visible()
        assert form.current(name, item_type) == new_value
        self._rows_done(group, started)

    def edit_and_remove_grid_line(self, key: str, event_oid: str, form_oid: str, group: str,
                                  item_oid: str, new_value: str, *, line: int = 1,
                                  who: str = "crc") -> None:
        """The same on a grid (a table, a line per row), with the keyboard and the mouse:
        retype a saved cell of ``line`` and give the reason in the box that opens beside
        it, then remove the last line through its "⋯" menu, with the reason."""
        started = time.perf_counter()
        role = self.role(who)
        event = SubjectPages(role, key).open_event(event_oid, 1)
        form = event.open_form(form_oid)
        page = form.page
        before = _grid_lines(page, group)
        assert len(before) >= 2, f"{form_oid}: expected two lines, found {before}"
        last = before[-1]
        name = field_name(group, line, item_oid)
        page.locator(f"#{name}").click()
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.type(new_value)
        reason = page.locator(f"#reason-{name}")
        expect(reason).to_be_visible()
        reason.click()
        page.keyboard.type("Transcription error: corrected against the source document.")
        row = page.locator(f"#row-{group}-{last}")
        row.locator("details.grid-remove summary").click()
        t = self.t
        row.get_by_label(t("Remove this line")).check()
        row.get_by_label(t("Reason for removing row %(n)s", n=last), exact=True).click()
        page.keyboard.type("Entered twice: duplicate of another line.")
        form.complete()
        form = event.open_form(form_oid)
        assert _grid_lines(form.page, group) == before[:-1]
        expect(form.page.get_by_text(t.plural("%(num)s removed row", "%(num)s removed rows",
                                              1))).to_be_visible()
        expect(form.page.locator(f"#{name}")).to_have_value(new_value)
        self._rows_done(group, started)

    def _rows_done(self, group: str, started: float) -> None:
        self.rows_walked.add(group)
        self.timings.add(f"rows {group}", time.perf_counter() - started)

    def repeating_groups(self) -> set[str]:
        """Every repeating group of the study definition."""
        return {g.oid for f in self._definition().forms.values() for g in f.groups
                if g.repeating}

    def assert_every_repeating_group_walked(self, not_walked: dict[str, str]) -> None:
        """Each repeating group had a row edited and one removed, or is listed with the
        reason it could not be (``not_walked``: group -> why)."""
        groups = self.repeating_groups()
        missing = sorted(groups - self.rows_walked - set(not_walked))
        assert not missing, (f"repeating groups of {self.study_oid} the walk never edited "
                             f"nor removed a row of: {missing}")
        stale = sorted(set(not_walked) & self.rows_walked | set(not_walked) - groups)
        assert not stale, f"listed as not walked, yet walked or not in the study: {stale}"

    def correct(self, key: str, event_oid: str, form_oid: str, group: str, item_oid: str,
                new_value: str, reason: str, *, repeat: int = 1, who: str = "crc") -> None:
        """A correction of a completed form's value, with its reason."""
        role = self.role(who)
        event = SubjectPages(role, key).open_event(event_oid, repeat)
        form = event.open_form(form_oid)
        name = field_name(group, 1, item_oid)
        item_type = self._definition().form(form_oid).item(item_oid).type
        form.set_value(name, item_type, new_value)
        label = self.item_label(form_oid, item_oid)
        box = form.page.get_by_label(re.compile(
            "^" + self.t.regex("Reason for changing %(label)s (saved value: %(value)s)",
                               label=label)))
        expect(box).to_be_visible()
        box.fill(reason)
        form.complete()

    # -- review: query, SDV, signature, lock -----------------------------------------------

    def review_form_url(self, key: str, event_oid: str, form_oid: str, repeat: int = 1) -> str:
        return (f"/studies/{self.study_oid}/subjects/{key}/events/{event_oid}/{repeat}/forms/"
                f"{form_oid}/review")

    def query_round(self, key: str, event_oid: str, form_oid: str, item_oid: str,
                    question: str, answer: str) -> None:
        """The monitor raises a query on an item, the site answers it, the monitor closes it."""
        t = self.t
        mon = self.role("mon")
        page = mon.visit(self.review_form_url(key, event_oid, form_oid))
        # The item's own "Raise a query" link (its label is for screen readers only).
        mon.submit(page.locator(
            f"a[href*='/queries/new'][href*='item={item_oid}&'], "
            f"a[href*='/queries/new'][href$='item={item_oid}']").first)
        page.get_by_label(t("Question for the site")).fill(question)
        mon.submit(page.get_by_role("button", name=t("Raise the query")))
        expect(page.get_by_text(re.compile(t.regex("Query #%(id)s was raised.")))
               ).to_be_visible()

        crc = self.role("crc")
        page = crc.visit(f"/studies/{self.study_oid}/subjects/{key}/review")
        queries = page.locator("section[aria-labelledby='queries-title']")
        crc.submit(queries.get_by_role("link").first)
        expect(page.get_by_text(question)).to_be_visible()
        page.get_by_label(t("Your answer"), exact=True).fill(answer)
        crc.submit(page.get_by_role("button", name=t("Send the answer")))
        expect(page.get_by_text(answer)).to_be_visible()
        query_url = page.url

        page = mon.visit(query_url)
        page.get_by_label(t("Closing note (optional)")).fill("Answer accepted.")
        mon.submit(page.get_by_role("button", name=t("Close the query")))
        expect(page.locator(".query-thread")).to_contain_text("Answer accepted.")

    def sdv(self, key: str, event_oid: str, form_oid: str, repeat: int = 1) -> None:
        """The monitor verifies a whole form against the source."""
        mon = self.role("mon")
        page = mon.visit(self.review_form_url(key, event_oid, form_oid, repeat))
        mon.submit(page.get_by_role("button", name=self.t("Verify the whole form")))
        expect(page.locator("#sdv")).to_contain_text(
            re.compile(self.t.regex("Form verified by %(who)s, %(when)s")))

    def sign_casebook(self, key: str) -> None:
        """The investigator signs the subject's casebook, re-entering the password."""
        inv = self.role("inv")
        page = inv.visit(f"/studies/{self.study_oid}/subjects/{key}/review")
        t = self.t
        inv.submit(page.get_by_role("link", name=t("Sign the casebook")))
        problems = page.locator("#sign-problems")
        if problems.count():
            raise WalkError(f"the casebook cannot be signed: {problems.inner_text()}")
        user_id = page.get_by_label(t("User id"))
        if user_id.count():
            user_id.fill(inv.username)
        page.get_by_label(t("Password"), exact=True).fill(PASSWORD)
        inv.submit(page.get_by_role("button", name=t("Sign"), exact=True))
        expect(page.locator(".review-signatures .signature-valid").first).to_be_visible()

    def lock_subject(self, key: str) -> None:
        dm = self.role("dm")
        page = dm.visit(f"/studies/{self.study_oid}/subjects/{key}/review")
        page.get_by_label(self.t("Reason for locking (optional)")).fill(
            "Casebook clean and signed.")
        dm.submit(page.get_by_role("button", name=self.t("Lock the subject")))
        expect(page.locator("#lock-state")).to_be_visible()

    # -- outputs ---------------------------------------------------------------------------

    def export(self, kind: str) -> bytes:
        """The data manager's export from the exports page: "odm" or "casebooks"."""
        dm = self.role("dm")
        page = dm.visit(f"/studies/{self.study_oid}/jobs")
        started = time.perf_counter()
        if kind == "casebooks":
            section = page.locator("section[aria-labelledby='new-casebooks']")
            dm.submit(section.get_by_role("button", name=self.t("Create the casebooks")))
        else:
            section = page.locator("section[aria-labelledby='new-data-export']")
            section.locator(f"input[name=format][value={kind}]").check()
            dm.submit(section.get_by_role("button", name=self.t("Export the data")))
        first = page.locator("#jobs tbody tr").first
        download = first.get_by_role("link", name=self.t("Download"), exact=True)
        failed = first.get_by_text(self.t("Failed:"))
        # A casebook is a long WeasyPrint layout (a minute or more per subject on a busy
        # 2-core machine); the job's own progress is what the page shows meanwhile.
        expect(download.or_(failed)).to_be_visible(timeout=300_000)
        if failed.count():
            raise WalkError(f"{kind} export failed: {first.inner_text()}")
        with page.expect_download() as info:
            download.click()
        self.timings.add(f"export {kind}", time.perf_counter() - started)
        path = info.value.path()
        return Path(path).read_bytes()


def _grid_lines(page, group: str) -> list[int]:
    return [int(r) for r in page.locator(f"#grid-{group} tbody tr").evaluate_all(
        "trs => trs.map(tr => tr.dataset.row)")]


def odm_text(blob: bytes) -> str:
    """The ODM XML of an export (a zip holding it, or the XML itself)."""
    if blob[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            return "\n".join(archive.read(n).decode("utf-8") for n in archive.namelist()
                             if n.endswith(".xml"))
    return blob.decode("utf-8")


def casebook_text(blob: bytes, key: str) -> str:
    """The text of a subject's casebook PDF out of the casebooks zip."""
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        names = [n for n in archive.namelist() if key in n and n.endswith(".pdf")]
        assert names, f"no casebook of {key} in {archive.namelist()}"
        pdf = archive.read(names[0])
    return pdf_text(pdf)


def pdf_text(pdf: bytes) -> str:
    if shutil.which("pdftotext"):
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "casebook.pdf"
            source.write_bytes(pdf)
            return subprocess.run(["pdftotext", "-layout", str(source), "-"], check=True,
                                  capture_output=True, text=True).stdout
    from pypdf import PdfReader  # optional: only where poppler-utils is missing

    return "\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf)).pages)

