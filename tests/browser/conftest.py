"""Real-browser fixtures: the app served over HTTP in a thread, driven by headless Chromium.

Chromium is Debian's package (/usr/bin/chromium), never a Playwright download: test machines
and hospital networks are often offline. Every test under this folder is marked ``browser``.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from ecrf.accounts.models import RoleGrant, User
from ecrf.accounts.passwords import hash_password
from ecrf.accounts.roles import Role
from ecrf.core.extensions import db
from ecrf.jobs.runner import stop_in_process_worker
from ecrf.studies.models import Site, Study, StudySite
from tests.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
VIEWPORT = {"width": 1280, "height": 800}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # The page fixture reads this at teardown to decide whether to keep a screenshot.
    setattr(item, f"rep_{report.when}", report)
    return report


@dataclass
class LiveServer:
    url: str
    app: Flask
    server: BaseWSGIServer
    thread: threading.Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()
        # A job worker the app started (JOBS_IN_PROCESS) must not outlive the test: on
        # PostgreSQL it would still poll the run's database while the next test resets it.
        stop_in_process_worker(self.app)


@pytest.fixture
def live_server_config() -> dict:
    """App config for ``live_server``; override this fixture in a module to change it.

    CSRF is on, as in production: the browser submits the real forms with their tokens.
    """
    return {"WTF_CSRF_ENABLED": True}


@pytest.fixture
def live_server(app_factory, live_server_config) -> Iterator[LiveServer]:
    """The app on this test's own database, served on 127.0.0.1 at a free port."""
    app = app_factory(**live_server_config)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    live = LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app,
                      server=server, thread=thread)
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install chromium`. "
                    "Browser tests use the system Chromium, not a Playwright download.",
                    pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed in this environment: install the project's "
                    "test extras (pip install -e '.[test]').", pytrace=False)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server, request):
    """A fresh context and page per test; relative URLs go to the live server.

    On failure the page is saved to test-artifacts/<test name>.png.
    """
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    tab = context.new_page()
    try:
        yield tab
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed and not tab.is_closed():
            ARTIFACTS.mkdir(exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
            try:
                tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            except Exception as exc:  # a broken page must not hide the test's own failure
                print(f"screenshot of {request.node.nodeid} failed: {exc}")
        context.close()


@pytest.fixture
def live_user(live_server) -> Callable[..., User]:
    """Create a user in the live server's database.

    ``live_user("coord", role="coordinator", site="S01", full_name="Clara Coord")``; the
    password is tests.conftest.PASSWORD unless given. Returns a detached User (id, username).
    """

    def make(username: str | None = None, *, role: str | Role | None = None,
             study: str = "TRIAL1", site: str | None = None, password: str = PASSWORD,
             must_change: bool = False, full_name: str | None = None) -> User:
        username = username or f"user{uuid.uuid4().hex[:6]}"
        with live_server.app.app_context():
            user = User(username=username, full_name=full_name or f"Test {username}",
                        password_hash=hash_password(password), must_change_password=must_change,
                        active=True, failed_logins=0)
            db.session.add(user)
            db.session.flush()
            if role is not None:
                role = Role(role)
                site_code = site or ("S01" if role in (Role.INVESTIGATOR, Role.COORDINATOR)
                                     else None)
                site_row = _site(site_code) if site_code else None
                study_row = None if role is Role.ADMIN else _study(study, _site(site or "S01"))
                db.session.add(RoleGrant(user=user, role=role.value, study=study_row,
                                         site=site_row))
            db.session.commit()
            db.session.refresh(user)
            db.session.expunge(user)
            return user

    return make


def _site(code: str) -> Site:
    site = db.session.scalar(sa.select(Site).where(Site.code == code))
    if site is None:
        site = Site(code=code, name=f"Site {code}", timezone="Europe/Paris", active=True)
        db.session.add(site)
        db.session.flush()
    return site


def _study(oid: str, site: Site) -> Study:
    study = db.session.scalar(sa.select(Study).where(Study.oid == oid))
    if study is None:
        study = Study(oid=oid, name=f"Trial {oid}", status="active")
        db.session.add(study)
        db.session.flush()
    linked = db.session.scalar(sa.select(StudySite).where(
        StudySite.study_id == study.id, StudySite.site_id == site.id))
    if linked is None:
        db.session.add(StudySite(study=study, site=site, active=True))
        db.session.flush()
    return study
