"""`python -m local.run` refuses, in one sentence and before starting anything, what it cannot do."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from local import ports
from tests.local.conftest import run_module


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
