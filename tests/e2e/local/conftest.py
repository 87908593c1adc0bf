"""Fixtures of the tests that run the local stack's commands (`python -m local.run`, `python -m local.invoke`)
or the whole stack in-process: a private stack file, and a browser's opening of a pairing link."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import pytest

from local.template import ROOT

if TYPE_CHECKING:
    from local.stack import LocalStack


def run_module(
    module: str, *args: str, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """`python -m module args` from the repository root, as make runs it."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def open_pairing_link(stack: LocalStack, pairing_url: str) -> tuple[str, dict[str, str]]:
    """Open a pairing link as a browser does (GET, unsigned): where the 303 sends it (Sage X3's authorise
    URL), and the `Cookie` header that browser then sends back with the callback."""
    assert pairing_url.startswith(f"{stack.api_url}/pair/"), pairing_url
    opened = stack.call("GET", urlsplit(pairing_url).path, signed=False)
    assert opened.status == 303, opened.body
    headers = {name.lower(): value for name, value in opened.headers.items()}
    return headers["location"], {"Cookie": headers["set-cookie"].split(";")[0]}


def deliver_callback(stack: LocalStack, params: dict[str, str], cookie: dict[str, str]) -> Any:
    """Sage X3's callback as the browser posts it (a form, unsigned, with the binding cookie)."""
    return stack.call(
        "POST",
        "/callback",
        body=urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", **cookie},
        signed=False,
    )


@pytest.fixture
def stack_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private .local/stack.json location, so tests never see (or clobber) a developer's `make run`."""
    target = tmp_path / "stack.json"
    monkeypatch.setenv("LOCAL_STACK_FILE", str(target))
    return target
