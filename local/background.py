"""One background loop for `make run`'s pollers (event source mappings, the event log): call a function
every interval in a daemon thread until stopped, and say once, not on every poll, when it fails."""

from __future__ import annotations

import threading
from collections.abc import Callable

from botocore.config import Config

# A poll that the local AWS does not answer quickly is abandoned, so stopping the stack never waits long.
POLLING = Config(connect_timeout=1, read_timeout=5, retries={"mode": "standard", "max_attempts": 2})
STOP_WAIT_SECONDS = 5


class Repeating:
    def __init__(self, poll: Callable[[], object], log: Callable[[str], None], *, name: str, failing: str):
        self._poll = poll
        self._log = log
        self._name = name
        self._failing = failing  # what the log line says before the error, e.g. "trigger  polling failed"
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, interval: float) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, args=(interval,), name=self._name, daemon=True)
            self._thread.start()

    def _run(self, interval: float) -> None:
        last_error = ""
        while not self._stopping.wait(interval):
            try:
                self._poll()
                last_error = ""
            except Exception as exc:  # the endpoint went away, a stream was deleted: say so once, go on
                error = f"{type(exc).__name__}: {exc}"
                if error != last_error:
                    self._log(f"{self._failing}: {error}")
                last_error = error

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_SECONDS)  # a daemon thread: it ends with the process
            self._thread = None
