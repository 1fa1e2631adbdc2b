"""Configuration: defaults here, then ``instance/config.py``, then ``ECRF_*`` variables."""

from __future__ import annotations

import os
import secrets
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

try:  # the installed distribution's version, written in files and documents ecrf produces
    VERSION = version("ecrf")
except PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0+unknown"


class Defaults:
    # DATABASE_URL empty means the embedded SQLite database in the instance folder.
    DATABASE_URL = ""
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    SECRET_KEY = ""

    PASSWORD_MIN_LENGTH = 12
    PASSWORD_REQUIRE_CLASSES = 3
    PASSWORD_MAX_AGE_DAYS = 180  # 0 disables ageing
    # Guesses (as a power of ten) zxcvbn must estimate for a new password; 0: no check.
    PASSWORD_MIN_GUESSES_LOG10 = 10
    # A browser without this user's device cookie is refused for LOCKOUT_MINUTES after
    # LOCKOUT_THRESHOLD consecutive failed sign-ins on the account.
    LOCKOUT_THRESHOLD = 5
    LOCKOUT_MINUTES = 15
    # Per client address: after THRESHOLD failed sign-ins (pauses shorter than WINDOW)
    # it waits BASE seconds, doubled after each further failure, at most MAX seconds.
    LOGIN_THROTTLE_THRESHOLD = 5
    LOGIN_THROTTLE_WINDOW_MINUTES = 15
    LOGIN_THROTTLE_BASE_SECONDS = 15
    LOGIN_THROTTLE_MAX_SECONDS = 900
    # The signed cookie that marks a browser where a user signed in before (days).
    DEVICE_COOKIE_DAYS = 180
    SESSION_IDLE_MINUTES = 30
    SESSION_ABSOLUTE_HOURS = 12

    SESSION_COOKIE_NAME = "ecrf_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Secure cookies and HSTS are switched on per request when it arrives over HTTPS
    # (directly or through a proxy that sets X-Forwarded-Proto and PROXY_FIX is on).
    PREFERRED_URL_SCHEME = "http"
    PROXY_FIX = False
    FORCE_HTTPS_COOKIES = False

    WTF_CSRF_TIME_LIMIT = None  # the session limits already bound a token's life
    BOOTSTRAP_SERVE_LOCAL = True
    BABEL_DEFAULT_LOCALE = "en"
    BABEL_DEFAULT_TIMEZONE = "UTC"
    # The interface languages, by their catalog names under translations/ (zh_Hans:
    # Simplified Chinese). A study's own texts are looked up by the language part ("zh").
    LANGUAGES = ["en", "fr", "zh_Hans"]
    BABEL_TRANSLATION_DIRECTORIES = str(PROJECT_ROOT / "translations")

    # SAE notifications: attempts per notification, and the wait after the first failed
    # one in seconds (then 4x, 16x... capped at 6 hours).
    NOTIFY_MAX_ATTEMPTS = 5
    NOTIFY_BACKOFF_SECONDS = 60

    # Charts (SVG) kept by the content hash of their data: None means
    # instance/cache/plots, shared by the workers; an empty string keeps them in memory only.
    PLOT_CACHE_DIR: str | None = None

    FORMS_DIR = str(PROJECT_ROOT / "forms")
    MAX_CONTENT_LENGTH = 32 * 1024 * 1024


def load_config(app, test_config: dict | None = None) -> None:
    app.config.from_object(Defaults)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("ECRF")
    if test_config:
        app.config.update(test_config)

    url = app.config.get("DATABASE_URL") or f"sqlite:///{Path(app.instance_path) / 'ecrf.db'}"
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    if url.startswith("sqlite"):
        # SQLite takes one writer at a time; wait for the lock rather than fail at once.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}

    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(Path(app.instance_path))


def _instance_secret(instance: Path) -> str:
    """Read the instance's secret key, creating it once; never a key written in code.

    O_EXCL makes the first of several starting workers the only writer; the others read.
    """
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if key:
            return key
        raise RuntimeError(f"{path} is empty: delete it to generate a new key") from None
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
