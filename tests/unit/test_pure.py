"""tests/unit stays pure: its conftest refuses every socket and subprocess, so a test that needs one fails
here instead of slowing `make test-fast` down or reaching the network."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest


def test_a_socket_can_neither_bind_nor_connect() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(AssertionError, match="tests/unit is pure"):
            sock.bind(("127.0.0.1", 0))
        with pytest.raises(AssertionError, match="tests/unit is pure"):
            sock.connect(("127.0.0.1", 9))
    with pytest.raises(AssertionError, match="tests/unit is pure"):
        socket.create_connection(("127.0.0.1", 9))


def test_no_subprocess_starts() -> None:
    with pytest.raises(AssertionError, match="tests/unit is pure"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)
