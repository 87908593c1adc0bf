"""Test files are imported by their base name (no packages under tests/): two files of one name in different
folders would make pytest refuse to collect the second, so every test file's name is unique."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parents[1]


def test_every_test_file_name_is_unique_across_the_folders() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
