"""One background loop for `make run`'s pollers (event source mappings, the event log): call a function
every interval in a daemon thread until stopped, and say once, not on every poll, when it fails.

An idle poller slows down: each poll that found nothing doubles the wait, up to `idle_interval`, and one
that found work brings it back to `interval`; `wake()` (a request through the gateway) brings it back at
once. So a stack nobody uses asks moto four times less often, and one in use answers as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from botocore.config import Config

# A poll that the local AWS does not answer quickly is abandoned, so stopping the stack never waits long.
POLLING = Config(connect_timeout=1, read_timeout=5, retries={"mode": "standard", "max_attempts": 2})
STOP_WAIT_SECONDS = 5
IDLE_SECONDS = 1.0  # the slowest an idle poller goes: what a change nothing announces may wait at most


class Repeating:
    def __init__(self, poll: Callable[[], object], log: Callable[[str], None], *, name: str, failing: str):
        """`poll` answers something truthy when it found work (a delivery, an event), falsy when idle."""
        self._poll = poll
        self._log = log
        self._name = name
        self._failing = failing  # what the log line says before the error, e.g. "trigger  polling failed"
        self._stopping = threading.Event()
        self._woken = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, interval: float, *, idle_interval: float | None = None) -> None:
        """Poll every `interval` seconds; while idle, every `idle_interval` at most (None: never slower)."""
        if self._thread is None:
            self._stopping.clear()
            slowest = max(interval, idle_interval if idle_interval is not None else interval)
            self._thread = threading.Thread(
                target=self._run, args=(interval, slowest), name=self._name, daemon=True
            )
            self._thread.start()

    def wake(self) -> None:
        """Poll now, and at the busy pace again: something may have been sent."""
        self._woken.set()

    def _run(self, interval: float, slowest: float) -> None:
        last_error, wait = "", interval
        while True:
            woken = self._woken.wait(wait)
            if self._stopping.is_set():
                return
            if woken:
                self._woken.clear()
            try:
                found = self._poll()
                last_error = ""
            except Exception as exc:  # the endpoint went away, a stream was deleted: say so once, go on
                found = None
                error = f"{type(exc).__name__}: {exc}"
                if error != last_error:
                    self._log(f"{self._failing}: {error}")
                last_error = error
            wait = interval if found or woken else min(wait * 2, slowest)

    def stop(self) -> None:
        self._stopping.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_SECONDS)  # a daemon thread: it ends with the process
            self._thread = None
