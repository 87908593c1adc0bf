"""`python -m local.invoke` explains, on stderr and with exit code 1, why it cannot invoke."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.local.conftest import run_module

EVENT = "events/scheduled.json"


def env_for(stack_file: Path) -> dict[str, str]:
    return {**os.environ, "LOCAL_STACK_FILE": str(stack_file)}


def test_no_running_stack(stack_file: Path) -> None:
    completed = run_module("local.invoke", "TokenRefreshFunction", EVENT, env=env_for(stack_file))
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert "no local stack is running" in completed.stderr
    assert "make run" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_stack_file_left_by_a_dead_run(stack_file: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stack_file.write_text(json.dumps({"pid": int(finished.stdout), "aws_endpoint_url": "http://127.0.0.1:1"}))
    completed = run_module("local.invoke", "TokenRefreshFunction", EVENT, env=env_for(stack_file))
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert "has exited" in completed.stderr


def test_unknown_function(stack_file: Path) -> None:
    completed = run_module("local.invoke", "NoSuchFunction", EVENT, env=env_for(stack_file))
    assert completed.returncode == 1
    assert "template.yaml has no function 'NoSuchFunction'" in completed.stderr
    assert "TokenRefreshFunction" in completed.stderr


def test_missing_event_file(stack_file: Path) -> None:
    completed = run_module(
        "local.invoke", "TokenRefreshFunction", "events/nope.json", env=env_for(stack_file)
    )
    assert completed.returncode == 1
    assert "event file 'events/nope.json' does not exist" in completed.stderr


def test_missing_arguments_print_the_usage(stack_file: Path) -> None:
    completed = run_module("local.invoke", "", "", env=env_for(stack_file))
    assert completed.returncode == 1
    assert completed.stderr.startswith("usage: make invoke FUNCTION=<LogicalId> EVENT=<file>")
