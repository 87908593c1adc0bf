"""Issue 15, typed all the way: boto3's clients are typed by dev-only stubs the layer never imports when it
runs, and each `Any` left in the layer says why."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
LAYER = ROOT / "layers" / "common" / "x3link"
MODULES = sorted(LAYER.rglob("*.py"))
STUBS = ("mypy_boto3_", "botocore.response", "boto3-stubs", "botocore-stubs", "mypy-boto3-")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _runtime_imports(nodes: Iterable[ast.AST]) -> list[str]:
    """The modules the import statements among `nodes` load, outside every `if TYPE_CHECKING:` block."""
    found: list[str] = []
    for node in nodes:
        if isinstance(node, ast.If) and _is_type_checking(node):
            found += _runtime_imports(node.orelse)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        else:
            found += _runtime_imports(ast.iter_child_nodes(node))
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(LAYER)))
def test_the_layer_imports_the_boto3_stubs_for_mypy_only(path: Path) -> None:
    """The stubs are dev dependencies: a module that loaded one when it runs would fail in Lambda."""
    assert [name for name in _runtime_imports([_tree(path)]) if name.startswith(STUBS)] == []


def test_the_layers_requirements_never_list_the_stubs() -> None:
    lines = (ROOT / "layers" / "common" / "requirements.txt").read_text().lower().splitlines()
    assert [line for line in lines if line.startswith(STUBS)] == []
    assert any(
        line.startswith("boto3-stubs[") for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
    )


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(LAYER)))
def test_a_module_that_uses_any_says_why(path: Path) -> None:
    """`Any` only where a boundary truly is untyped (JSON from outside, an untyped library): the module says
    which, in a `# Any: ...` comment."""
    uses_any = any(isinstance(node, ast.Name) and node.id == "Any" for node in ast.walk(_tree(path)))
    if uses_any:
        assert "# Any: " in path.read_text(), f"{path.name} uses Any without a `# Any: reason` comment"


def test_the_guard_sees_a_stub_loaded_at_run_time() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from mypy_boto3_s3 import S3Client\nelse:\n    import mypy_boto3_kms\n"
        "def build():\n    from mypy_boto3_sqs import SQSClient\n"
    )
    assert _runtime_imports([ast.parse(source)]) == ["typing", "mypy_boto3_kms", "mypy_boto3_sqs"]
