"""`python -m local.run` refuses, in one sentence and before starting anything, what it cannot do."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local import ports
from local.template import ROOT
from tests.e2e.local.conftest import run_module


@pytest.fixture
def occupied_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def run_env(stack_file: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "SAGE_X3_URL")}
    env.update(LOCAL_STACK_FILE=str(stack_file), **values)
    return env


def test_busy_api_port_is_one_clear_sentence(occupied_port: int, stack_file: Path) -> None:
    env = run_env(stack_file, PORT=str(occupied_port), MOTO_PORT=str(ports.free_port()))
    completed = run_module("local.run", env=env)
    assert completed.returncode == 1
    message = completed.stderr.strip()
    assert message == (
        f"port {occupied_port} is already in use — is another `make run` running? set PORT=... to use another"
    )
    assert "Starting" not in completed.stdout
    assert not stack_file.exists()


def test_busy_moto_port_names_moto_port(occupied_port: int, stack_file: Path) -> None:
    env = run_env(stack_file, PORT=str(ports.free_port()), MOTO_PORT=str(occupied_port))
    completed = run_module("local.run", env=env)
    assert completed.returncode == 1
    assert f"port {occupied_port} (embedded AWS) is already in use" in completed.stderr
    assert "MOTO_PORT=" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_busy_moto_port_does_not_matter_with_an_external_endpoint(
    occupied_port: int, stack_file: Path
) -> None:
    busy_api = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy_api.bind(("127.0.0.1", 0))
    busy_api.listen()
    try:
        api_port = busy_api.getsockname()[1]
        env = run_env(
            stack_file,
            PORT=str(api_port),
            MOTO_PORT=str(occupied_port),
            AWS_ENDPOINT_URL="http://127.0.0.1:1",
        )
        completed = run_module("local.run", env=env)
    finally:
        busy_api.close()
    # Only the API port is reported: moto would not be started.
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"port {api_port} is already in use")


def test_invalid_port_value(stack_file: Path) -> None:
    completed = run_module("local.run", env=run_env(stack_file, PORT="three-thousand"))
    assert completed.returncode == 1
    assert completed.stderr.strip() == "PORT must be a port number (0-65535), not 'three-thousand'"


@pytest.mark.serial  # the whole stack must start within its deadline
def test_the_demo_shows_how_to_reach_its_files_once_paired(stack_file: Path) -> None:
    """After the pairing link: the signed commands that list, download, delete and upload the demo tenant's
    files (the emulator holds a few in its SEED folder), and where Sage's notifications go."""
    api_port = ports.free_port()
    env = run_env(stack_file, PORT=str(api_port), MOTO_PORT=str(ports.free_port()))
    process = subprocess.Popen(
        [sys.executable, "-m", "local.run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not (lines and lines[-1].startswith("Ready")):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    output = "".join(lines)
    assert code == 0 and lines[-1].startswith("Ready"), output

    api = f"http://127.0.0.1:{api_port}"
    assert f"notification URL {api}/notifications" in output
    signed = 'curl {}--aws-sigv4 "aws:amz:us-east-1:execute-api" --user testing:testing ' + api
    folder = "/tenants/demo/folders/SEED"
    expected = [
        "Its files in folder SEED, once paired with SEED ticked at Sage X3:",
        f"  list:      {signed.format('')}{folder}/files",
        f"  download:  {signed.format('')}{folder}/files/orders-2026-01.csv",
        f"  delete:    {signed.format('-X DELETE ')}{folder}/files/orders-2026-01.csv",
        "  upload:    "
        + signed.format("""-X POST -H 'Content-Type: application/json' -d '{"filename": "prices.csv"}' """)
        + f"{folder}/uploads",
    ]
    printed = [line.rstrip("\n") for line in lines]
    positions = [printed.index(line) for line in expected]
    assert positions == sorted(positions), output
    link = next(i for i, line in enumerate(printed) if re.match(rf"^  {re.escape(api)}/pair/\S+$", line))
    assert link < positions[0]  # after the pairing link
