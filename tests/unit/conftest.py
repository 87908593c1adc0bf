"""tests/unit holds pure tests: no socket, no subprocess, no moto, no emulator, so `make test-fast` runs them
in seconds with no AWS and no network. A test here that reaches for any of them fails at once, naming the
folder a test that needs it belongs in (tests/component, or tests/e2e)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest

UNIT = Path(__file__).parent


def _refuse(what: str) -> Any:
    def refused(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError(
            f"a test in tests/unit {what}: tests/unit is pure; move the test to tests/component "
            "(moto, the emulator, loopback sockets) or tests/e2e (a subprocess stack over HTTP)"
        )

    return refused


@pytest.fixture(autouse=True)
def _pure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way out of the process raises: connecting or binding a socket, starting a subprocess."""
    for name in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, name, _refuse(f"called socket.{name}"))
    monkeypatch.setattr(socket, "create_connection", _refuse("opened a connection"))
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("started a subprocess"))
    moto = sys.modules.get("moto.core.models")
    if moto is not None:
        assert not moto.MockAWS._mocks_active, "a test in tests/unit runs inside moto's mock_aws"


def pytest_collection_finish(session: pytest.Session) -> None:
    """When only tests/unit runs (`make test-fast`), collecting it must not have imported moto."""
    if session.items and all(UNIT in Path(item.path).parents for item in session.items):
        imported = sorted(name for name in sys.modules if name == "moto" or name.startswith("moto."))
        if imported:
            raise pytest.UsageError(f"collecting tests/unit imported moto ({imported[0]}, ...): it must not")
