"""A webhook receiver on loopback: records every delivery (headers, event) and answers what it is told."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Delivery:
    headers: dict[str, str]
    event: dict[str, Any]
    answered: int


@dataclass
class Receiver:
    url: str = ""
    # The statuses to answer, in turn; once used up, `then` for every later delivery.
    answers: list[int] = field(default_factory=list)
    then: int = 200
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            return self.answers.pop(0) if self.answers else self.then

    def of_type(self, detail_type: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.event.get("detail-type") == detail_type]

    def wait_for(self, detail_type: str, count: int = 1, timeout: float = 20) -> list[Delivery]:
        """The deliveries of that type once there are `count` of them; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of_type(detail_type)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{len(self.of_type(detail_type))} {detail_type} deliveries, not {count}")


@contextmanager
def webhook_receiver(path: str = "/hooks/x3") -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = self.next_status() if self.path == path else 404
            with receiver.lock:
                receiver.deliveries.append(
                    Delivery({k.lower(): v for k, v in self.headers.items()}, json.loads(body), status)
                )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def next_status(self) -> int:
            return receiver.next_status()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
