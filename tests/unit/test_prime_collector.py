"""wiring.prime on Lambda: what init builds is built with the cycle collector paused, then frozen out of its
reach, so that neither init nor a later request walks it again; elsewhere the collector is left alone.
The pause starts when x3link.wiring is imported, so every handler must end it: each calls prime at import."""

from __future__ import annotations

import ast
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from x3link import wiring
from x3link.long_lived import pause_for_init

FUNCTIONS = Path(__file__).parents[2] / "functions"


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Whatever a test froze goes back to the collector, and the collector is left as it was."""
    enabled = gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


def test_on_lambda_init_is_built_uncollected_then_frozen(
    monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    seen: list[bool] = []
    built: list[object] = []

    def build() -> None:
        seen.append(gc.isenabled())
        built.append({"a service": ["with", "containers"]})

    wiring.prime(build, build)
    assert seen == [False, False]  # no collection while the SDK's models pile up
    assert gc.isenabled()  # requests collect as usual
    assert gc.get_freeze_count() > 0
    assert not any(tracked is built[0] for tracked in gc.get_objects())  # out of every collection's walk
    gc.unfreeze()
    assert any(tracked is built[0] for tracked in gc.get_objects())
    assert gc.get_freeze_count() == 0


def test_a_failing_build_still_gives_the_collector_back(
    monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")

    def broken() -> None:
        raise RuntimeError("no table name")

    with pytest.raises(RuntimeError, match="no table name"):
        wiring.prime(broken)
    assert gc.isenabled()


def test_elsewhere_the_collector_is_left_alone(monkeypatch: pytest.MonkeyPatch, unfrozen: None) -> None:
    monkeypatch.delenv("AWS_LAMBDA_RUNTIME_API", raising=False)
    gc.unfreeze()
    seen: list[bool] = []
    wiring.prime(lambda: seen.append(gc.isenabled()))
    assert seen == [True]
    assert gc.get_freeze_count() == 0


def test_a_collector_switched_off_before_init_stays_off(
    monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    gc.disable()
    wiring.prime(lambda: None)
    assert not gc.isenabled()


def test_the_pause_begun_at_import_ends_with_prime_and_what_came_between_is_frozen(
    monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    pause_for_init()  # what importing x3link.wiring does on Lambda
    assert not gc.isenabled()  # the layer's modules a handler imports next are not walked
    imported = {"a module's": ["constants"]}
    seen: list[bool] = []
    wiring.prime(lambda: seen.append(gc.isenabled()))
    assert seen == [False]
    assert gc.isenabled()
    assert not any(tracked is imported for tracked in gc.get_objects())
    wiring.prime(lambda: seen.append(gc.isenabled()))  # a second prime pauses and gives back as the first
    assert seen == [False, False]
    assert gc.isenabled()


def test_a_build_raising_after_the_import_pause_still_gives_the_collector_back(
    monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    pause_for_init()

    def broken() -> None:
        raise RuntimeError("no table name")

    with pytest.raises(RuntimeError, match="no table name"):
        wiring.prime(broken)
    assert gc.isenabled()


def test_elsewhere_the_import_pause_does_nothing(monkeypatch: pytest.MonkeyPatch, unfrozen: None) -> None:
    monkeypatch.delenv("AWS_LAMBDA_RUNTIME_API", raising=False)
    gc.unfreeze()
    pause_for_init()
    assert gc.isenabled()
    wiring.prime(lambda: None)
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_collector_switched_off_before_the_import_pause_stays_off(
    monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    gc.disable()
    pause_for_init()
    wiring.prime(lambda: None)
    assert not gc.isenabled()


def _primes_at_import(tree: ast.Module) -> bool:
    """A top-level statement (not in a function, a branch or a try) calls wiring.prime."""
    for statement in tree.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            called = statement.value.func
            if (
                isinstance(called, ast.Attribute)
                and called.attr == "prime"
                and isinstance(called.value, ast.Name)
                and called.value.id == "wiring"
            ):
                return True
    return False


@pytest.mark.parametrize("handler", sorted(FUNCTIONS.glob("*/app.py")), ids=lambda path: path.parent.name)
def test_every_handler_that_imports_the_wiring_primes_at_import(handler: Path) -> None:
    """Importing x3link.wiring pauses the collector on Lambda; only prime gives it back: a handler that
    imported the one without calling the other would run its requests with the collector off."""
    tree = ast.parse(handler.read_text())
    imports_wiring = any(
        isinstance(node, ast.ImportFrom)
        and (
            node.module == "x3link.wiring"
            or (node.module == "x3link" and any(a.name == "wiring" for a in node.names))
        )
        for node in ast.walk(tree)
    )
    assert imports_wiring, f"{handler.parent.name} never imports x3link.wiring"
    assert _primes_at_import(tree), (
        f"{handler.parent.name} imports x3link.wiring but never calls wiring.prime at import"
    )
