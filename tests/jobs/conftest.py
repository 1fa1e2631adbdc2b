"""Fixtures of the job tests: an app whose jobs run only when a test runs them, and the
ODMTEST study."""

from __future__ import annotations

import pytest

from tests.outputs import load_fixture_study


@pytest.fixture
def app(app_factory, tmp_path):
    application = app_factory(EXPORTS_DIR=str(tmp_path / "exports"), JOBS_IN_PROCESS=False)
    with application.app_context():
        yield application


@pytest.fixture
def study(app):
    return load_fixture_study()[0]
