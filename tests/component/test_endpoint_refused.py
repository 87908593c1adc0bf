"""Nothing read from the table decides where secrets go (issue 14): a pairing whose stored `endpoint` was
changed to another host gets 502 endpoint_not_allowed on every route that calls Sage X3, and from the
keep-alive worker, with a critical log line and the EndpointRefused metric; neither that host (a recording
sink on loopback, so the allow-list is proven, not the https rule) nor Sage receives a thing."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import Answer, call
from tests.support.keeper import sweep
from tests.support.sage import pair
from x3link.sage_client import REFUSED_METRIC

ACME = "https://x3.acme.example"
TRACKING_ID = "3f2b8c1e-7d4a-4b6e-9c0f-1a2b3c4d5e6f"
FUNCTIONS = (
    "PairingStartFunction",
    "PairLinkFunction",
    "CallbackFunction",
    "FoldersFunction",
    "DataDeliveryFunction",
    "DataIngestionFunction",
    "NotificationsFunction",
    "PairingRefreshFunction",
    "TokenRefreshFunction",
    "RefreshWorkerFunction",
)
for _function in FUNCTIONS:
    tpl.load_handler(_function)


@dataclass
class Sink:
    """A host that is not on the allow-list: counts every connection and every request it receives."""

    port: int
    connections: int = 0
    requests: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture
def sink() -> Iterator[Sink]:
    recorded = Sink(port=0)

    class Recording(BaseHTTPRequestHandler):
        def _any(self) -> None:
            recorded.requests.append(f"{self.command} {self.path}")
            body = b'{"access_token": "x", "refresh_token": "y", "expires_in": 300, "folders": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = do_PUT = _any

        def log_message(self, *args: Any) -> None:
            pass

    class Counting(ThreadingHTTPServer):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            recorded.connections += 1
            return True

    server = Counting(("127.0.0.1", 0), Recording)
    recorded.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorded
    finally:
        server.shutdown()
        server.server_close()


class Lines(logging.Handler):
    """The functions' log lines as Powertools writes them (the handler's appended keys included)."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def logs() -> Iterator[Lines]:
    service = logging.getLogger("sage-x3-link")
    (powertools,) = service.handlers[:1]
    lines = Lines(powertools.formatter)
    service.addHandler(lines)
    try:
        yield lines
    finally:
        service.removeHandler(lines)


def emitted(capsys: pytest.CaptureFixture[str], name: str) -> float:
    """The sum of metric `name` in the EMF documents the handlers flushed to stdout since the last read."""
    total = 0.0
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            value = json.loads(line).get(name, 0)
            total += sum(value) if isinstance(value, list) else value
    return total


def _point_the_row_at(stack: Stack, endpoint: str, *, expired: bool) -> None:
    """What an operator with write access to the table, or a function that may update pairings, can do."""
    values: dict[str, Any] = {":endpoint": {"S": endpoint}}
    update = "SET endpoint = :endpoint"
    if expired:
        update += ", access_token_expires_epoch = :now"
        values[":now"] = {"N": str(time.time())}
    boto3.client("dynamodb").update_item(
        TableName=stack.refs["PairingsTable"],
        Key={"tenant": {"S": "acme"}},
        UpdateExpression=update,
        ExpressionAttributeValues=values,
    )


def _notification(sage: Emulator, sink: Sink) -> Answer:
    """Sage's signed notification for acme's customer, its detailUrl on the host the row now names."""
    sent = sage.notify(ACME, "SEED", send=False, detail_url=f"{sink.base_url}/notification/n-1")
    assert sent.signature is not None
    headers = {"Content-Type": "application/json", "HMAC_SHA256": sent.signature}
    return call("POST", "/notifications", body=sent.body, headers=headers)


ROUTES: dict[str, Any] = {
    "folders": lambda sage, sink: call("GET", "/tenants/acme/folders"),
    "list": lambda sage, sink: call("GET", "/tenants/acme/folders/SEED/files"),
    "download": lambda sage, sink: call("GET", "/tenants/acme/folders/SEED/files/x.txt"),
    "delete": lambda sage, sink: call("DELETE", "/tenants/acme/folders/SEED/files/x.txt"),
    "upload": lambda sage, sink: call(
        "POST", "/tenants/acme/folders/SEED/uploads", json_body={"filename": "x.txt"}
    ),
    "tracking": lambda sage, sink: call("GET", f"/tenants/acme/uploads/{TRACKING_ID}"),
    "refresh": lambda sage, sink: call("POST", "/tenants/acme/refresh"),
    "notification": _notification,
}


@pytest.mark.parametrize("expired", [False, True], ids=["live-token", "expired-token"])
@pytest.mark.parametrize("route", list(ROUTES))
def test_a_row_pointed_at_another_host_sends_nothing_on_any_route(
    sage: Emulator,
    stack: Stack,
    sink: Sink,
    logs: Lines,
    capsys: pytest.CaptureFixture[str],
    route: str,
    expired: bool,
) -> None:
    pair(sage, "acme", ACME, folders=["SEED"])
    sage.put_delivery_file(ACME, "SEED", "x.txt", b"x")
    _point_the_row_at(stack, sink.base_url, expired=expired)
    sage.clear_requests()
    capsys.readouterr()

    answer = ROUTES[route](sage, sink)

    assert (answer.status, answer.json["error"]) == (502, "endpoint_not_allowed"), answer.body
    assert "operator" in answer.json["message"] and str(sink.port) not in answer.json["message"]
    assert (sink.connections, sink.requests) == (0, [])
    assert sage.requests == []  # nor was the token spent at the real gateway instead
    assert emitted(capsys, REFUSED_METRIC) >= 1
    critical = [line for line in logs.lines if line["level"] == "CRITICAL"]
    assert critical and all(line["origin"] == f"http://127.0.0.1:{sink.port}" for line in critical)
    if not (route == "notification" and expired):  # the token call names no tenant: docs/operations.md
        assert all(line.get("tenant") == "acme" for line in critical), critical
    # The pairing is untouched: still active, the refused URL was no verdict on its grant.
    assert call("GET", "/tenants/acme").json["status"] == "active"


def test_the_keep_alive_worker_sends_nothing_to_a_row_pointed_at_another_host(
    sage: Emulator, stack: Stack, sink: Sink, logs: Lines, capsys: pytest.CaptureFixture[str]
) -> None:
    sage.configure(refresh_lifetime=3 * 86400)  # due for a keep-alive refresh at once
    pair(sage, "acme", ACME, folders=["SEED"])
    _point_the_row_at(stack, sink.base_url, expired=True)
    sage.clear_requests()
    capsys.readouterr()

    report = sweep()

    assert (report["queued"], report["refreshed"], report["failed"]) == (1, 0, 1), report
    assert (sink.connections, sink.requests) == (0, [])
    assert sage.requests == []
    assert emitted(capsys, REFUSED_METRIC) >= 1
    critical = [line for line in logs.lines if line["level"] == "CRITICAL"]
    assert critical and all(line["origin"] == f"http://127.0.0.1:{sink.port}" for line in critical)
    assert call("GET", "/tenants/acme").json["status"] == "active"


def test_the_same_row_on_an_allowed_gateway_is_served(sage: Emulator, stack: Stack, sink: Sink) -> None:
    """The control: the refusal is about the host, not the edit. Moved to the other allowed region's
    gateway, the same pairing's query goes there (and is refused by that gateway's own token check)."""
    pair(sage, "acme", ACME, folders=["SEED"])
    _point_the_row_at(stack, sage.base_url("eu-prod"), expired=True)
    sage.clear_requests()

    answer = call("GET", "/tenants/acme/folders")

    assert answer.status == 200, answer.body
    assert sage.count("refresh") == 1 and sink.connections == 0
