"""The whole local stack, started as `make run` starts it: in-process through `LocalStack`, and as the
`python -m local.run` subprocess that `make invoke` talks to."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aws_lambda_powertools.utilities import parameters

from local import ports
from local.stack import LocalStack, StackSettings
from local.template import ROOT
from tests.e2e.local.conftest import deliver_callback, open_pairing_link, run_module
from x3link import wiring

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    """One stack for the module, on ephemeral ports (a developer's `make run` may hold 3000 and 4566)."""
    with LocalStack(StackSettings(port=0, moto_port=0)) as stack:
        # Layer services are built once per process; this process may have built them for other tests.
        wiring.reset()
        parameters.clear_caches()
        yield stack
    wiring.reset()
    parameters.clear_caches()


def test_a_pairing_goes_round_through_the_emulator(local_stack: LocalStack) -> None:
    started = local_stack.call(
        "POST", "/pairings", json_body={"tenant": "round", "customer": "https://x3.round.example"}
    )
    assert started.status == 201, started.body
    link, cookie = open_pairing_link(local_stack, started.json()["pairing_url"])
    assert link.startswith(f"{local_stack.sage_x3_url}/token/authorise?")
    assert parse_qs(urlsplit(link).query)["redirect_uri"] == [local_stack.redirect_uri]

    callback = local_stack.emulator.approve(link, folders=["SEED"])
    answer = deliver_callback(local_stack, callback, cookie)
    assert answer.status == 200, answer.body
    assert b"SEED" in answer.body

    tenant = local_stack.call("GET", "/tenants/round")
    assert tenant.status == 200
    assert tenant.json()["status"] == "active"
    assert tenant.json()["folders"] == ["SEED"]
    folders = local_stack.call("GET", "/tenants/round/folders")
    assert folders.status == 200
    assert [folder["name"] for folder in folders.json()["folders"]] == ["SEED"]
    assert local_stack.call("DELETE", "/tenants/round").status == 204


def test_protected_routes_need_a_signature(local_stack: LocalStack) -> None:
    refused = local_stack.call("GET", "/tenants/round", signed=False)
    assert refused.status == 403
    assert refused.json() == {"message": "Missing Authentication Token"}


def test_the_regional_endpoint_is_allowed(local_stack: LocalStack) -> None:
    assert local_stack.emulator_urls["us-prod"] in local_stack.allowed_endpoints
    assert os.environ["SAGE_X3_ALLOWED_ENDPOINTS"] == ",".join(local_stack.allowed_endpoints)
    assert os.environ["AWS_ENDPOINT_URL"] == local_stack.aws_endpoint_url


def _get(port: int, path: str) -> http.client.HTTPResponse:
    """An unsigned GET, its redirect not followed; the response, read."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def _lines(stream: object, sink: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        sink.put(line)


def _wait_for(lines: queue.Queue[str], prefix: str, seen: list[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting with {prefix!r} in:\n{''.join(seen)}")


def test_make_run_then_make_invoke(tmp_path: Path) -> None:
    api_port, moto_port = ports.free_port(), ports.free_port()
    stack_file = tmp_path / "stack.json"
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "SAGE_X3_URL")}
    env.update(PORT=str(api_port), MOTO_PORT=str(moto_port), LOCAL_STACK_FILE=str(stack_file))
    process = subprocess.Popen(
        [sys.executable, "-m", "local.run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        ready = _wait_for(lines, "Ready", seen)
        assert f"http://127.0.0.1:{api_port}" in ready
        output = "".join(seen)
        printed = re.search(rf"^  (http://127\.0\.0\.1:{api_port}/pair/\S+)$", output, re.M)
        assert printed, output
        assert "It opens once, in one browser, until " in output
        # The printed link opens (once) on to the emulator, with the redirect URI on the real port.
        opened = _get(api_port, urlsplit(printed.group(1)).path)
        assert opened.status == 303
        location = opened.getheader("Location") or ""
        assert parse_qs(urlsplit(location).query)["redirect_uri"] == [f"http://127.0.0.1:{api_port}/callback"]
        assert (opened.getheader("Set-Cookie") or "").startswith("__Host-")
        assert _get(api_port, urlsplit(printed.group(1)).path).status == 404
        curl_example = 'curl --aws-sigv4 "aws:amz:us-east-1:execute-api" --user testing:testing'
        assert f"{curl_example} http://127.0.0.1:{api_port}/tenants/demo" in output
        assert json.loads(stack_file.read_text())["pid"] == process.pid

        if shutil.which("curl"):
            curl = subprocess.run(
                ["curl", "-s", "--aws-sigv4", "aws:amz:us-east-1:execute-api", "--user", "testing:testing",
                 f"http://127.0.0.1:{api_port}/tenants/demo"],
                capture_output=True, text=True, timeout=10, check=False,
            )  # fmt: skip
            assert json.loads(curl.stdout)["error"] == "not_paired"

        invoked = run_module("local.invoke", "TokenRefreshFunction", "events/scheduled.json", env=env)
        assert invoked.returncode == 0, invoked.stderr
        summary = json.loads(invoked.stdout)
        assert {"refreshed", "expired", "failed"} <= summary.keys()
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    assert code == 0
    assert not stack_file.exists()
