"""requirements/*.txt agree with pyproject.toml: the lock allows what pyproject.toml asks
for, and every lower bound is exactly the version `make test-lowest` runs the suite on.
Changing a dependency in pyproject.toml without `make lock` fails here."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
REFRESH = "pyproject.toml changed without `make lock`"


def declared(extras: tuple[str, ...] = ("test",)) -> list[Requirement]:
    """ecrf's dependencies and those of ``extras`` (the lock covers the bench extra too;
    the lowest versions cover what the suite runs on)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(line) for line in
            [*project["dependencies"],
             *(line for extra in extras for line in project["optional-dependencies"][extra])]]


def pins(name: str) -> dict[str, list[Version]]:
    """Versions pinned in ``requirements/<name>``, by canonical package name (a package
    pinned per Python version under markers has several)."""
    found: dict[str, list[Version]] = {}
    for line in (ROOT / "requirements" / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if line:
            package, _, version = line.partition("==")
            assert version, f"requirements/{name}: not an exact pin: {line!r}"
            found.setdefault(canonicalize_name(package), []).append(Version(version))
    return found


def lower_bound(requirement: Requirement) -> Version:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert len(bounds) == 1, f"{requirement} needs one >= lower bound"
    return bounds[0]


@pytest.mark.parametrize("requirement", declared(("test", "bench")), ids=str)
def test_the_lock_satisfies_pyproject(requirement):
    versions = pins("lock.txt").get(canonicalize_name(requirement.name))
    assert versions, f"{requirement.name} is not in requirements/lock.txt: {REFRESH}"
    for version in versions:
        assert requirement.specifier.contains(version, prereleases=True), \
            f"requirements/lock.txt pins {requirement.name}=={version}: {REFRESH}"


@pytest.mark.parametrize("requirement", declared(), ids=str)
def test_the_lower_bound_is_the_version_tested_by_make_test_lowest(requirement):
    versions = pins("lowest.txt").get(canonicalize_name(requirement.name), [])
    assert versions == [lower_bound(requirement)], (
        f"requirements/lowest.txt pins {requirement.name} at "
        f"{', '.join(map(str, versions)) or 'nothing'}, not at its lower bound "
        f"{lower_bound(requirement)}: {REFRESH}, or the lowest resolution cannot reach "
        "that bound (raise the bound to the version it picks)")
