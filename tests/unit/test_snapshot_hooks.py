"""The SnapStart hook seam: hooks kept locally and handed to the runtime's registry when there is one."""

from __future__ import annotations

from typing import Any

from x3link import snapshot
from x3link.snapshot import Hooks


class FakeRuntime:
    """What `snapshot_restore_py` offers: two registrars."""

    def __init__(self) -> None:
        self.before: list[Any] = []
        self.after: list[Any] = []

    def register_before_snapshot(self, hook: Any) -> None:
        self.before.append(hook)

    def register_after_restore(self, hook: Any) -> None:
        self.after.append(hook)


def test_hooks_run_in_the_runtimes_order() -> None:
    ran: list[str] = []
    hooks = Hooks(runtime=None)
    hooks.register(before_snapshot=lambda: ran.append("b1"), after_restore=lambda: ran.append("a1"))
    hooks.register(before_snapshot=lambda: ran.append("b2"), after_restore=lambda: ran.append("a2"))
    hooks.run_before_snapshot()
    hooks.run_after_restore()
    assert ran == ["b2", "b1", "a1", "a2"]


def test_hooks_are_handed_to_the_runtime_when_it_is_there() -> None:
    runtime = FakeRuntime()
    hooks = Hooks(runtime=runtime)

    def before() -> None:
        pass

    def after() -> None:
        pass

    hooks.register(before_snapshot=before)
    hooks.register(after_restore=after)
    assert runtime.before == [before]
    assert runtime.after == [after]
    assert hooks.before_snapshot == [before] and hooks.after_restore == [after]


def test_without_the_runtimes_module_the_hooks_are_only_kept_locally() -> None:
    # This interpreter is not Lambda's: the guarded import found nothing, and registering still works.
    assert snapshot._runtime() is None
    hooks = Hooks(runtime=snapshot._runtime())
    ran: list[str] = []
    hooks.register(after_restore=lambda: ran.append("after"))
    hooks.run_after_restore()
    assert ran == ["after"]


def test_the_wiring_registers_its_hooks_once_on_import() -> None:
    from x3link import wiring

    assert snapshot.hooks.before_snapshot.count(wiring.forget_warm_state) == 1
    assert snapshot.hooks.after_restore.count(wiring._after_restore) == 1
