"""The request log, `count()`, and `python -m local.sagex3_emulator`."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.component.emulator.conftest import FakeClock, Sage

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_requests_log_records_every_request(sage: Sage, clock: FakeClock) -> None:
    tokens = sage.pair()
    sage.refresh(tokens["refresh_token"])
    sage.call("GET", sage.url("/folders"), token=tokens["access_token"])
    sage.call("GET", sage.url("/token/authorise?client_id=demo-app"))
    log = sage.emu.requests
    assert [entry["route"] for entry in log] == ["code", "refresh", "folders", "authorise"]
    code, refresh, folders, authorise = log
    assert code["method"] == "POST" and code["path"] == "/v1/token" and code["region"] == "eu-prod"
    assert code["grant_type"] == "authorization_code" and code["json"]["client_id"] == "demo-app"
    assert refresh["grant_type"] == "refresh_token"
    assert folders["headers"]["Authorization"] == f"Bearer {tokens['access_token']}"
    assert folders["json"] is None and folders["form"] is None and folders["time"] == clock.now
    assert authorise["query"] == {"client_id": "demo-app"}
    assert sage.emu.count("token") == 2 and sage.emu.count("code") == 1 and sage.emu.count("refresh") == 1
    assert sage.emu.count("folders") == 1 and sage.emu.count("root") == 0
    log.clear()
    assert len(sage.emu.requests) == 4  # a copy
    sage.emu.clear_requests()
    assert sage.emu.requests == []


def test_decision_form_is_logged_with_repeated_fields(sage: Sage) -> None:
    sage.call(
        "POST",
        sage.url("/token/authorise/decision"),
        form={"request_id": "x", "decision": "accept", "folder": ["A", "B"]},
    )
    (entry,) = sage.emu.requests
    assert entry["route"] == "decision"
    assert entry["form"] == {"request_id": "x", "decision": "accept", "folder": ["A", "B"]}


def test_unknown_paths_and_methods(sage: Sage) -> None:
    assert sage.call("GET", sage.url("/nowhere")).status == 404
    reply = sage.call("DELETE", sage.url("/folders"))
    assert reply.status == 405 and set(reply.json()) == {"message"}


def test_cli_prints_one_line_per_region_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "local.sagex3_emulator", "--regions", "eu-prod,us-prod", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None  # both are pipes
        lines = [process.stdout.readline().split() for _ in range(2)]
        assert [line[0] for line in lines] == ["eu-prod", "us-prod"]
        host_port = lines[1][1].removeprefix("http://").removesuffix("/v1")
        conn = http.client.HTTPConnection(host_port, timeout=5)
        conn.request("GET", "/v1")
        assert conn.getresponse().status == 200
        conn.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stderr.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_serves_the_control_api_when_asked() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.sagex3_emulator",
            "--regions",
            "eu-prod",
            "--port",
            "0",
            "--control-port",
            "0",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None  # a pipe
        region, control = (process.stdout.readline().split() for _ in range(2))
        assert region[0] == "eu-prod" and control[0] == "control"
        conn = http.client.HTTPConnection(control[1].removeprefix("http://").split("/")[0], timeout=5)
        conn.request("GET", "/control")
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["regions"] == {"eu-prod": region[1]}
        conn.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
