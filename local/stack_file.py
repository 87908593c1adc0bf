"""`.local/stack.json`: how `make invoke`, in another process, finds the stack that `make run` serves."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from local import template as tpl

DEFAULT_PATH = tpl.ROOT / ".local" / "stack.json"


class NoRunningStack(Exception):
    """`make run` is not running (no file, or the process that wrote it is gone)."""


def path() -> Path:
    """The file's location; LOCAL_STACK_FILE moves it (tests use it to stay apart from a real run)."""
    return Path(os.environ.get("LOCAL_STACK_FILE") or DEFAULT_PATH)


def write(data: dict[str, Any]) -> Path:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    # Owner-only: it may hold the local AWS credentials.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    temporary.replace(target)
    return target


def remove(pid: int | None = None) -> None:
    """Delete the file, unless it now belongs to another process."""
    target = path()
    try:
        if pid is not None and json.loads(target.read_text(encoding="utf-8")).get("pid") != pid:
            return
        target.unlink()
    except (FileNotFoundError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read() -> dict[str, Any]:
    target = path()
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NoRunningStack(
            f"no local stack is running ({target} does not exist): "
            "start one with `make run` in another terminal"
        ) from None
    except ValueError:
        raise NoRunningStack(f"{target} is not valid JSON: restart `make run`") from None
    pid = data.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        raise NoRunningStack(
            f"no local stack is running (the `make run` that wrote {target} has exited): "
            "start one with `make run`"
        )
    return data
