"""Lambda SnapStart's runtime hooks, when the runtime has them (docs/deploy.md, "Cold starts").

A SnapStart function's init runs once, when a version is published; its memory is then restored into every
new execution environment, possibly hours later and many times over. What init or a request left behind must
therefore be dropped twice: before the snapshot (nothing secret goes into it) and after each restore (no two
environments share a data key, cached credentials, a breaker's view or a random sequence).

`snapshot_restore_py` exists only in Lambda's Python runtime: without it the hooks are still kept here, so
tests (and local runs) can run them as the runtime would.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

# Any: the SnapStart runtime's hooks module, which has no types.
from typing import Any

Hook = Callable[[], None]


def _runtime() -> ModuleType | None:
    try:
        import snapshot_restore_py  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # not on Lambda, or a runtime without SnapStart
        return None
    return snapshot_restore_py  # type: ignore[no-any-return,unused-ignore]


class Hooks:
    """The before-snapshot and after-restore hooks, in the runtime's order: before-snapshot hooks run in
    reverse order of registration, after-restore hooks in order of registration."""

    def __init__(self, runtime: Any | None) -> None:
        self._runtime = runtime
        self.before_snapshot: list[Hook] = []
        self.after_restore: list[Hook] = []

    def register(self, *, before_snapshot: Hook | None = None, after_restore: Hook | None = None) -> None:
        if before_snapshot is not None:
            self.before_snapshot.append(before_snapshot)
            if self._runtime is not None:
                self._runtime.register_before_snapshot(before_snapshot)
        if after_restore is not None:
            self.after_restore.append(after_restore)
            if self._runtime is not None:
                self._runtime.register_after_restore(after_restore)

    def run_before_snapshot(self) -> None:
        """What the runtime does before it takes the snapshot (tests call it; Lambda calls its own)."""
        for hook in reversed(self.before_snapshot):
            hook()

    def run_after_restore(self) -> None:
        """What the runtime does once a snapshot is restored into a new execution environment."""
        for hook in self.after_restore:
            hook()


hooks = Hooks(_runtime())
