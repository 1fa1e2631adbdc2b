"""Fixtures shared by the whole suite.

Every run works on its own database: SQLite files under pytest's tmp dir, or, when
ECRF_TEST_DATABASE_URL names a PostgreSQL server, a database created for this run and
dropped at the end. The schema always comes from the migrations, never from create_all.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from flask import has_app_context
from flask.testing import FlaskClient
from flask_migrate import upgrade

from ecrf import create_app
from ecrf.accounts.models import RoleGrant, User
from ecrf.accounts.passwords import hash_password
from ecrf.accounts.roles import Role
from ecrf.core.base import Base
from ecrf.core.extensions import db
from ecrf.studies.models import Site, Study, StudySite

PG_URL = os.environ.get("ECRF_TEST_DATABASE_URL", "").strip()
PASSWORD = "Correct-Horse-42"

BASE_CONFIG = {
    "TESTING": True,
    "SECRET_KEY": "test-secret-key-not-for-production",
    "WTF_CSRF_ENABLED": False,
    "ARGON2_TIME_COST": 1,
    "ARGON2_MEMORY_COST": 1024,
    "ARGON2_PARALLELISM": 1,
    "SERVER_NAME": None,
}


def audit_files(folder) -> dict:
    """Config keeping a test database's audit key and anchor log in ``folder``, out of the
    project's instance folder (one key and one anchor log per database)."""
    return {"AUDIT_KEY_FILE": str(folder / "audit.key"),
            "AUDIT_ANCHOR_FILE": str(folder / "audit-anchors.log")}


def _psycopg_url(url: str) -> str:
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", url)


def is_postgres() -> bool:
    return bool(PG_URL)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """A migrated database for this run; its URL (a template file for SQLite)."""
    if PG_URL:
        server = _psycopg_url(PG_URL)
        name = f"ecrf_test_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
        _migrate(url)
        yield url
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("db") / "template.db"
        url = f"sqlite:///{path}"
        _migrate(url)
        yield url


def _migrate(url: str) -> None:
    app = create_app({**BASE_CONFIG, "DATABASE_URL": url})
    with app.app_context():
        upgrade()
        db.engine.dispose()


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    tables = [t.name for t in Base.metadata.sorted_tables]
    with engine.begin() as conn:
        # Replica mode skips the audit trail's append-only triggers for this cleanup only.
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        conn.execute(sa.text(
            "INSERT INTO audit_chain_head (id, last_seq, last_hash) VALUES (1, 0, :h)"
        ), {"h": "0" * 64})
    engine.dispose()


@pytest.fixture
def app_factory(database_url, tmp_path):
    """Build an app on this test's own copy of the database; extra config allowed."""
    if PG_URL:
        url = database_url
    else:
        template = database_url.removeprefix("sqlite:///")
        path = tmp_path / "test.db"
        shutil.copyfile(template, path)
        url = f"sqlite:///{path}"
    made = []

    def make(**config):
        application = create_app({**BASE_CONFIG, "DATABASE_URL": url,
                                  "PLOT_CACHE_DIR": str(tmp_path / "plot-cache"),
                                  **audit_files(tmp_path), **config})
        application.test_client_class = IsolatedClient
        made.append(application)
        return application

    yield make
    for application in made:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()
    if PG_URL:
        _reset_postgres(url)


class IsolatedClient(FlaskClient):
    """Runs each request in its own app context, as in production.

    Without this, a request made while the test holds an app context reuses it, sharing
    ``g`` (and the signed-in user cached there) and the database session with the test.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            response = super().open(*args, **kwargs)
            response.get_data()
        if has_app_context():
            db.session.expire_all()  # the test's own session sees what the request wrote
        return response


@pytest.fixture
def app(app_factory):
    application = app_factory()
    with application.app_context():
        yield application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_site(app) -> Callable[..., Site]:
    def make(code: str = "S01", *, name: str | None = None, timezone: str = "Europe/Paris") -> Site:
        site = db.session.scalar(sa.select(Site).where(Site.code == code))
        if site is None:
            site = Site(code=code, name=name or f"Site {code}", timezone=timezone, active=True)
            db.session.add(site)
            db.session.commit()
        return site

    return make


@pytest.fixture
def make_study(app, make_site) -> Callable[..., Study]:
    def make(oid: str = "TRIAL1", *, sites: tuple[str, ...] = ("S01",)) -> Study:
        study = db.session.scalar(sa.select(Study).where(Study.oid == oid))
        if study is None:
            study = Study(oid=oid, name=f"Trial {oid}", status="active")
            db.session.add(study)
            db.session.flush()
        for code in sites:
            site = make_site(code)
            exists = db.session.scalar(sa.select(StudySite).where(
                StudySite.study_id == study.id, StudySite.site_id == site.id))
            if exists is None:
                db.session.add(StudySite(study=study, site=site, active=True))
        db.session.commit()
        return study

    return make


@pytest.fixture
def make_user(app, make_study, make_site) -> Callable[..., User]:
    """make_user("inv1", role="investigator", study="TRIAL1", site="S01")."""

    def make(username: str | None = None, *, role: str | Role | None = None,
             study: str | None = "TRIAL1", site: str | None = None,
             password: str = PASSWORD, must_change: bool = False, full_name: str | None = None) -> User:
        username = username or f"user{uuid.uuid4().hex[:6]}"
        user = User(username=username, full_name=full_name or f"Test {username}",
                    password_hash=hash_password(password), must_change_password=must_change,
                    active=True, failed_logins=0)
        db.session.add(user)
        db.session.flush()
        if role is not None:
            role = Role(role)
            study_row = make_study(study, sites=(site,) if site else ("S01",)) if role is not Role.ADMIN else None
            site_row = make_site(site) if site else None
            if role in (Role.INVESTIGATOR, Role.COORDINATOR) and site_row is None:
                site_row = make_site("S01")
            db.session.add(RoleGrant(user=user, role=role.value, study=study_row, site=site_row))
        db.session.commit()
        return user

    return make


def sign_in(client, username: str, password: str = PASSWORD, *, address: str | None = None):
    """Post the sign-in form (from client address ``address``: 127.0.0.1 unless given)."""
    extra = {"environ_overrides": {"REMOTE_ADDR": address}} if address else {}
    return client.post("/login", data={"username": username, "password": password}, **extra)


@pytest.fixture
def login_as(client, make_user):
    """Sign the test client in as a new user holding ``role`` (at ``site`` for site roles)."""

    def login(role: str | Role, site: str | None = None, *, study: str = "TRIAL1", username: str | None = None):
        user = make_user(username, role=role, study=study, site=site)
        response = sign_in(client, user.username)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return user

    return login


@pytest.fixture
def wired_capture(app):
    """Data capture as the app wires it: review's receivers connected to its signals."""
    from ecrf.core import signals
    from ecrf.review import handlers

    assert handlers.sync_automatic_queries in signals.receivers_of(signals.form_saved)
    assert handlers.refuse_locked in signals.receivers_of(signals.form_changing)


class StatementCounter:
    """The statements run inside a ``count_statements`` block: ``n`` and their ``texts``."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    @property
    def n(self) -> int:
        return len(self.texts)


@contextmanager
def count_statements():
    """Count the SQL statements run inside the block (``.n``; ``.texts`` lists them)."""
    counter = StatementCounter()
    engine = db.engine

    def count(conn, cursor, statement, *args) -> None:
        counter.texts.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield counter
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
