"""Port checks done before anything starts, so a busy port is one clear sentence instead of a hang or a
traceback from deep inside a server thread."""

from __future__ import annotations

import socket
from collections.abc import Iterable


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on host:port now (SO_REUSEADDR, as our servers bind)."""
    if port == 0:
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral port that is free right now (tests hand it to a subprocess)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def free_ports_near(start: int, count: int, host: str = "127.0.0.1", avoid: Iterable[int] = ()) -> list[int]:
    """`count` free ports from `start` upwards (within 100), ephemeral ones (0) for any not found."""
    taken = set(avoid)
    found: list[int] = []
    for port in range(start, start + 100):
        if len(found) == count:
            break
        if port not in taken and is_free(port, host):
            found.append(port)
    return found + [0] * (count - len(found))
