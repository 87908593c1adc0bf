"""SECURITY.md names the test that covers each threat: every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
REFERENCE = re.compile(r"`((?:tests/[\w/]+\.py|test_\w+\.py)?)(?:::(\w+))?`")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def _resolve(name: str) -> Path:
    if name.startswith("tests/"):
        return ROOT / name
    found = [path for path in (ROOT / "tests").rglob(name)]
    assert len(found) == 1, (name, found)
    return found[0]


def test_every_test_security_md_names_exists() -> None:
    named = 0
    for line in (ROOT / "SECURITY.md").read_text().splitlines():
        current: Path | None = None
        for file_name, test in REFERENCE.findall(line):
            if file_name:
                current = _resolve(file_name)
                assert current.is_file(), file_name
            if test:
                assert current is not None, f"{test}: no file named before it on its line"
                assert test in _tests_in(current), f"{current.relative_to(ROOT)}::{test}"
                named += 1
    assert named >= 20
