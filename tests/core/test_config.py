"""Configuration layering and the generated secret key."""

from __future__ import annotations

import os
import stat

from ecrf import create_app
from ecrf.core.config import _instance_secret


def test_environment_overrides_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("ECRF_SESSION_IDLE_MINUTES", "5")
    monkeypatch.setenv("ECRF_DATABASE_URL", f"sqlite:///{tmp_path}/x.db")
    monkeypatch.setenv("ECRF_SECRET_KEY", "from-env")
    app = create_app()
    assert app.config["SESSION_IDLE_MINUTES"] == 5
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/x.db"
    assert app.config["SECRET_KEY"] == "from-env"


def test_postgres_urls_use_psycopg3(monkeypatch):
    monkeypatch.setenv("ECRF_DATABASE_URL", "postgres://u:p@db/ecrf")
    monkeypatch.setenv("ECRF_SECRET_KEY", "k")
    assert create_app().config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db/ecrf"


def test_default_database_is_sqlite_in_instance(monkeypatch):
    monkeypatch.delenv("ECRF_DATABASE_URL", raising=False)
    monkeypatch.setenv("ECRF_SECRET_KEY", "k")
    uri = create_app().config["SQLALCHEMY_DATABASE_URI"]
    assert uri.startswith("sqlite:///") and uri.endswith("instance/ecrf.db")


def test_secret_key_is_generated_once_and_kept(tmp_path):
    first = _instance_secret(tmp_path)
    second = _instance_secret(tmp_path)
    assert first == second and len(first) == 64
    mode = stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode)
    assert mode == 0o600


def test_no_hard_coded_secret_in_the_code():
    from ecrf.core.config import Defaults

    assert Defaults.SECRET_KEY == ""


def test_security_defaults():
    from ecrf.core.config import Defaults

    assert Defaults.PASSWORD_MIN_LENGTH == 12
    assert Defaults.LOCKOUT_THRESHOLD == 5 and Defaults.LOCKOUT_MINUTES == 15
    assert Defaults.SESSION_IDLE_MINUTES == 30 and Defaults.SESSION_ABSOLUTE_HOURS == 12
    assert Defaults.SESSION_COOKIE_HTTPONLY and Defaults.SESSION_COOKIE_SAMESITE == "Lax"
