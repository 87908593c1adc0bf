"""The layer keeps its shape: packages in floors, modules a reader can hold in mind, one home per helper.

A module over 400 lines or a class over 250 is doing more than one thing; a helper defined twice drifts; an
import that runs back up a floor ties a low concern to a high one, and `ls` stops telling where a change goes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAYER = Path(__file__).parents[2] / "layers" / "common" / "x3link"
MODULES = sorted(LAYER.rglob("*.py"))
PACKAGES = sorted(path.parent for path in LAYER.glob("*/__init__.py"))

# Each floor may import its own package and the floors below; `wiring` builds everything, so it sits on top.
FLOORS: tuple[frozenset[str], ...] = tuple(
    frozenset(floor.split())
    for floor in (
        "root",
        "aws",
        "web",
        "sage",
        "tokens",
        "refresh",
        "keep_alive pairing data",
        "exports outbox events",
        "wiring",
    )
)
MAX_MODULE_LINES, MAX_CLASS_LINES = 400, 250


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _name(path: Path) -> str:
    return str(path.relative_to(LAYER))


def _unit(module: str) -> str:
    """The floor unit of a dotted module name: its package, `wiring`, or `root` for the other root modules."""
    parts = module.split(".")[1:]
    if not parts:
        return "root"
    if parts[0] == "wiring" or (LAYER / parts[0]).is_dir():
        return parts[0]
    return "root"


def _floor(unit: str) -> int:
    return next(index for index, floor in enumerate(FLOORS) if unit in floor)


def _imports(path: Path) -> set[str]:
    """Every x3link module `path` imports, `from x3link.pkg import module` counted as `x3link.pkg.module`."""
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "x3link":
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "x3link")
    return found


def test_every_package_is_on_a_floor_and_says_what_it_owns() -> None:
    units = {path.name for path in PACKAGES}
    assert units <= set().union(*FLOORS)
    assert all(ast.get_docstring(_tree(path / "__init__.py")) for path in PACKAGES)


def test_a_package_init_imports_nothing() -> None:
    """A handler that needs one module of a package must not pay for the others at its cold start."""
    assert {
        _name(path): _imports(path) for path in PACKAGES for path in [path / "__init__.py"] if _imports(path)
    } == {}


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_import_runs_back_up_a_floor(path: Path) -> None:
    here = _unit("x3link." + ".".join(path.relative_to(LAYER).with_suffix("").parts))
    upward = sorted(module for module in _imports(path) if _floor(_unit(module)) > _floor(here))
    assert upward == []


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_module_of_the_layer_is_over_400_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES


@pytest.mark.parametrize("path", MODULES, ids=_name)
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
        _name(path)
        for path in MODULES
        for node in _tree(path).body
        if isinstance(node, ast.FunctionDef) and node.name == helper
    ]
    assert len(homes) <= 1, homes


def test_no_module_imports_the_table_adapter_for_a_record_type() -> None:
    """The pairing's model lives in tokens/model.py: the store's module exports the store, nothing else."""
    offenders = [
        f"{_name(path)}: {', '.join(alias.name for alias in node.names)}"
        for path in MODULES
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.ImportFrom)
        and node.module == "x3link.tokens.store"
        and any(alias.name != "TokenStore" for alias in node.names)
    ]
    assert offenders == []
