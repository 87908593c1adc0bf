"""The layer keeps the shape issue 15 asked for: modules a reader can hold in mind, one home per helper.

A module over 400 lines or a class over 250 is doing more than one thing; a helper defined twice drifts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAYER = Path(__file__).parents[2] / "layers" / "common" / "x3link"
MODULES = sorted(LAYER.glob("*.py"))
MAX_MODULE_LINES, MAX_CLASS_LINES = 400, 250


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_no_module_of_the_layer_is_over_400_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_no_class_of_the_layer_is_over_250_lines(path: Path) -> None:
    sizes = {
        node.name: (node.end_lineno or node.lineno) - node.lineno + 1
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.ClassDef)
    }
    assert {name: size for name, size in sizes.items() if size > MAX_CLASS_LINES} == {}


@pytest.mark.parametrize("helper", ["iso", "error_code", "_error_code", "_s", "_n", "_str", "_num", "_iso"])
def test_each_shared_helper_is_defined_once_at_most(helper: str) -> None:
    homes = [
        path.name
        for path in MODULES
        for node in _tree(path).body
        if isinstance(node, ast.FunctionDef) and node.name == helper
    ]
    assert len(homes) <= 1, homes


def test_no_module_imports_the_table_adapter_for_a_record_type() -> None:
    """The pairing's model lives in x3link/pairings.py: token_store exports the store, nothing else."""
    offenders = [
        f"{path.name}: {', '.join(alias.name for alias in node.names)}"
        for path in MODULES
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.ImportFrom)
        and node.module == "x3link.token_store"
        and any(alias.name != "TokenStore" for alias in node.names)
    ]
    assert offenders == []
