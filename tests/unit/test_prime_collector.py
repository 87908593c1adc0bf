"""wiring.prime on Lambda: what init builds is built with the cycle collector paused, then frozen out of its
reach, so that neither init nor a later request walks it again; elsewhere the collector is left alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from x3link import wiring


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
