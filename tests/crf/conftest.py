import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "studies"


@pytest.fixture
def study_copy(tmp_path):
    """Copy a fixture study into tmp_path and return its folder."""

    def copy(name: str = "full") -> Path:
        target = tmp_path / name
        shutil.copytree(FIXTURES / name, target)
        return target

    return copy


def line_of(text: str, marker: str) -> int:
    """1-based line where ``marker`` first occurs (it may span lines)."""
    index = text.find(marker)
    if index >= 0:
        return text.count("\n", 0, index) + 1
    raise AssertionError(f"marker {marker!r} not found")


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" YAML text: each line holds ``width`` aliases of the line before."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"
