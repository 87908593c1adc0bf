"""What `make run` shows: one short line per thing a developer watches for (a request, a pairing, a refresh
and its outcome, an event, a warning); the functions' full JSON logs and Powertools' metric blobs go to a
log file instead, whose path it prints.

How: the functions print to stdout (Powertools' Logger and Metrics both do, as on Lambda), so `capture()`
puts a `LogFile` in sys.stdout's place, and `say()` keeps writing to the real console. Each JSON line the
file receives is read once more by `summary()`, which picks the few a person should see.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

# Log messages worth a console line at INFO, and the word that starts it. Any WARNING or above gets one too.
MILESTONES: dict[str, str] = {
    "Pairing started": "pairing",
    "Pairing link opened": "pairing",
    "Pairing completed": "pairing",
    "Customer refused the pairing": "pairing",
    "Pairing deleted": "pairing",
    "Pairing retried by an operator": "pairing",
    "Tokens refreshed": "refresh",
    "Keep-alive run queued": "refresh",
    "Refresh queued again": "refresh",
    "Parked tokens applied before refreshing": "refresh",
    "Rescued tokens applied": "refresh",
}
# The fields a short line names: identifiers and outcomes, never a token (the logs hold none either).
SHOWN = ("tenant", "status", "reason", "error", "folders", "version", "run", "queued", "why")
_PROBLEM_LEVELS = {"WARNING": "warning", "ERROR": "error", "CRITICAL": "error"}

_lock = threading.Lock()
_terminal: TextIO | None = None  # the console, while stdout goes to the log file


def say(line: str = "") -> None:
    """One line on the console (the terminal, even while stdout is captured)."""
    with _lock:
        print(line, file=_terminal or sys.stdout, flush=True)


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    text = str(value)
    return json.dumps(text) if any(char.isspace() for char in text) else text


def summary(line: str) -> str | None:
    """The console line for one line of the functions' output, or None when it stays in the file only:
    `refresh  Tokens refreshed  tenant=demo  version=3`."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, Mapping) or "_aws" in record:  # not a log record, or a metric blob
        return None
    message = record.get("message")
    if not isinstance(message, str):
        return None
    kind = MILESTONES.get(message) or _PROBLEM_LEVELS.get(str(record.get("level", "")).upper())
    if kind is None:
        return None
    parts = [kind, message.splitlines()[0] if message else message]
    parts += [f"{key}={_value(record[key])}" for key in SHOWN if record.get(key) not in (None, "", [])]
    return "  ".join(parts)


class LogFile(io.TextIOBase):
    """A text stream that appends to `path`, and says `summary()` of each complete line it receives."""

    def __init__(self, path: Path, show: Callable[[str], None]) -> None:
        super().__init__()
        self.path = path
        self._show = show
        self._file = path.open("a", encoding="utf-8")
        self._pending = ""
        self._guard = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._guard:
            self._file.write(text)
            self._file.flush()
            self._pending += text
            *complete, self._pending = self._pending.split("\n")
        for line in complete:
            if shown := summary(line):
                self._show(shown)
        return len(text)

    def flush(self) -> None:
        with self._guard:
            if not self._file.closed:
                self._file.flush()

    def close(self) -> None:
        with self._guard:
            self._file.close()
        super().close()


def capture(path: Path) -> LogFile:
    """From now on what is printed to stdout goes to `path` (the previous run's log is kept beside it, as
    `<name>.previous`); `say()` still reaches the console. `release()` undoes it."""
    global _terminal
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.replace(path.with_name(f"{path.name}.previous"))
    log_file = LogFile(path, say)
    with _lock:
        _terminal = sys.stdout
        sys.stdout = log_file
    return log_file


def release() -> None:
    global _terminal
    with _lock:
        if _terminal is None:
            return
        captured, sys.stdout, _terminal = sys.stdout, _terminal, None
    captured.close()
