"""Any value of the wrong shape anywhere is a reported problem, never a crash."""

import copy
import json

import pytest

from ecrf.crf import StudyDefinitionError, definition_from_content, load_study

from .conftest import FIXTURES

CONTENT = load_study(FIXTURES / "full").content


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*path, index))


def _set(content, path, value):
    target = content
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


PATHS = [p for p in _paths(CONTENT) if p]
WRONG_SHAPES = [None, [], {"x": 1}, 7, "TEXT"]


@pytest.mark.parametrize("wrong", WRONG_SHAPES, ids=repr)
def test_wrong_shapes_are_problems_not_crashes(wrong):
    crashes = []
    for path in PATHS:
        content = copy.deepcopy(CONTENT)
        _set(content, path, copy.deepcopy(wrong))
        try:
            definition_from_content(content)
        except StudyDefinitionError as exc:
            assert exc.problems
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            crashes.append(f"{path}: {type(exc).__name__}: {exc}")
    assert crashes == []


def test_every_mutation_point_is_meaningful():
    # The table above really walks the whole study, every file.
    files = {p[0] if p[0] != "crfs" else p[1] for p in PATHS if len(p) >= 2}
    assert {"study", "codelists", "AE", "DEMOG", "HEMATO"} <= files
    assert len(PATHS) > 300
    assert json.loads(json.dumps(CONTENT)) == CONTENT
