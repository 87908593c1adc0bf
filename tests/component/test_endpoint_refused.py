"""Nothing read from the table decides where secrets go (issue 14): every call to Sage X3 is held to the
allow-list as it is sent, on every route that calls Sage and in the keep-alive worker.

Two ways a pairing's endpoint ends up off the list: its `endpoint` attribute is changed to another host (a
recording sink on loopback, so the list is proven, not the https rule), or its gateway is dropped from
`SAGE_X3_ALLOWED_ENDPOINTS` after it was paired (its tokens still open: only the check at sending stands in
the way). Either way neither the sink nor Sage receives a thing; the second answers 502 endpoint_not_allowed
with a critical log line and the EndpointRefused metric."""

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
from local.sagex3_emulator import Customer, Emulator
from tests.support.api import Answer, call
from tests.support.keeper import sweep
from tests.support.sage import pair
from x3link import wiring
from x3link.sage.client import REFUSED_METRIC

ACME = "https://x3.acme.example"
GLOBEX = "https://x3.globex.example"  # homed in us-prod, the allowed other region
TRACKING_ID = "3f2b8c1e-7d4a-4b6e-9c0f-1a2b3c4d5e6f"
SCOPE = "api.dataDelivery api.graphQL"  # the GraphQL route needs it before it would call Sage at all
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


def _point_the_row_at(stack: Stack, tenant: str, endpoint: str | None, *, expired: bool) -> None:
    """What an operator with write access to the table, or a function that may update pairings, can do."""
    values: dict[str, Any] = {}
    sets = []
    if endpoint is not None:
        sets.append("endpoint = :endpoint")
        values[":endpoint"] = {"S": endpoint}
    if expired:
        sets.append("access_token_expires_epoch = :now")
        values[":now"] = {"N": str(time.time())}
    if sets:
        boto3.client("dynamodb").update_item(
            TableName=stack.refs["PairingsTable"],
            Key={"tenant": {"S": tenant}},
            UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeValues=values,
        )


def _notification(sage: Emulator, tenant: str, customer: str, detail_url: str | None) -> Answer:
    """Sage's signed notification for the tenant's customer (its detailUrl on the row's host when given)."""
    sent = sage.notify(customer, "SEED", send=False, detail_url=detail_url)
    assert sent.signature is not None
    headers = {"Content-Type": "application/json", "HMAC_SHA256": sent.signature}
    return call("POST", "/notifications", body=sent.body, headers=headers)


def _routes(tenant: str) -> dict[str, tuple[str, str, Any]]:
    base = f"/tenants/{tenant}"
    return {
        "folders": ("GET", f"{base}/folders", None),
        "list": ("GET", f"{base}/folders/SEED/files", None),
        "download": ("GET", f"{base}/folders/SEED/files/x.txt", None),
        "delete": ("DELETE", f"{base}/folders/SEED/files/x.txt", None),
        "upload": ("POST", f"{base}/folders/SEED/uploads", {"filename": "x.txt"}),
        "graphql": ("POST", f"{base}/folders/SEED/graphql", {"query": "{ __typename }"}),
        "tracking": ("GET", f"{base}/uploads/{TRACKING_ID}", None),
        "refresh": ("POST", f"{base}/refresh", None),
    }


ROUTES = [*_routes("acme"), "notification"]


def _call(sage: Emulator, route: str, tenant: str, customer: str, detail_url: str | None) -> Answer:
    if route == "notification":
        return _notification(sage, tenant, customer, detail_url)
    method, path, body = _routes(tenant)[route]
    return call(method, path, json_body=body)


def _critical(logs: Lines) -> list[dict[str, Any]]:
    return [line for line in logs.lines if line["level"] == "CRITICAL"]


def _assert_refused_here(
    answer: Answer, capsys: pytest.CaptureFixture[str], logs: Lines, origin: str, tenant: str | None
) -> None:
    """502 endpoint_not_allowed, the metric, and a critical line naming the origin (and the tenant)."""
    assert (answer.status, answer.json["error"]) == (502, "endpoint_not_allowed"), answer.body
    assert "operator" in answer.json["message"] and "127.0.0.1" not in answer.json["message"]
    assert emitted(capsys, REFUSED_METRIC) >= 1
    critical = _critical(logs)
    assert critical and all(line["origin"] == origin for line in critical), critical
    if tenant is not None:
        assert all(line.get("tenant") == tenant for line in critical), critical


@pytest.mark.parametrize("expired", [False, True], ids=["live-token", "expired-token"])
@pytest.mark.parametrize("route", ROUTES)
def test_a_row_pointed_at_another_host_sends_nothing_on_any_route(
    sage: Emulator,
    stack: Stack,
    sink: Sink,
    logs: Lines,
    capsys: pytest.CaptureFixture[str],
    route: str,
    expired: bool,
) -> None:
    pair(sage, "acme", ACME, folders=["SEED"], scope=SCOPE)
    sage.put_delivery_file(ACME, "SEED", "x.txt", b"x")
    _point_the_row_at(stack, "acme", sink.base_url, expired=expired)
    sage.clear_requests()
    capsys.readouterr()

    answer = _call(sage, route, "acme", ACME, f"{sink.base_url}/notification/n-1")

    assert (sink.connections, sink.requests) == (0, [])
    assert sage.requests == []  # nor was the token spent at the real gateway instead
    if answer.json.get("error") == "endpoint_not_allowed":
        origin = f"http://127.0.0.1:{sink.port}"
        # The keeper's token call passes no tenant, and the notifications handler's logger has none.
        tenant = None if route == "notification" and expired else "acme"
        _assert_refused_here(answer, capsys, logs, origin, tenant)
    else:  # tokens sealed for their gateway do not open for another host: refused sooner, at opening
        passed_over = route == "notification" and answer.json == {"status": "accepted"}
        assert passed_over or answer.json["error"] == "tokens_unreadable", answer.body
    # The pairing is untouched: still active, the refused URL was no verdict on its grant.
    assert call("GET", "/tenants/acme").json["status"] == "active"


@pytest.fixture
def narrowed(sage: Emulator, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> str:
    """globex paired on us-prod, which is then dropped from SAGE_X3_ALLOWED_ENDPOINTS: its row is as
    the callback stored it, its tokens open, and its gateway is no longer allowed. Returns that origin."""
    sage.add_customer(Customer(GLOBEX, ["SEED"], region="us-prod"))
    pair(sage, "globex", GLOBEX, folders=["SEED"], scope=SCOPE)
    sage.put_delivery_file(GLOBEX, "SEED", "x.txt", b"x")
    assert call("GET", "/tenants/globex").json["endpoint"] == sage.base_url("us-prod")
    monkeypatch.setenv("SAGE_X3_ALLOWED_ENDPOINTS", "")
    wiring.reset()
    sage.clear_requests()
    return sage.base_url("us-prod").removesuffix("/v1")


@pytest.mark.parametrize("expired", [False, True], ids=["live-token", "expired-token"])
@pytest.mark.parametrize("route", ROUTES)
def test_a_gateway_dropped_from_the_list_is_sent_nothing_on_any_route(
    sage: Emulator,
    stack: Stack,
    narrowed: str,
    sink: Sink,
    logs: Lines,
    capsys: pytest.CaptureFixture[str],
    route: str,
    expired: bool,
) -> None:
    _point_the_row_at(stack, "globex", None, expired=expired)
    capsys.readouterr()

    answer = _call(sage, route, "globex", GLOBEX, None)

    assert sage.requests == []  # the gateway the row names received nothing: neither token nor secret
    assert (sink.connections, sink.requests) == (0, [])
    _assert_refused_here(
        answer, capsys, logs, narrowed, None if route == "notification" and expired else "globex"
    )
    assert call("GET", "/tenants/globex").json["status"] == "active"


def test_the_keep_alive_worker_sends_nothing_to_a_gateway_off_the_list(
    sage: Emulator,
    stack: Stack,
    sink: Sink,
    logs: Lines,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sage.configure(refresh_lifetime=3 * 86400)  # due for a keep-alive refresh at once
    narrowed = sage.base_url("us-prod").removesuffix("/v1")
    sage.add_customer(Customer(GLOBEX, ["SEED"], region="us-prod"))
    pair(sage, "globex", GLOBEX, folders=["SEED"])
    pair(sage, "acme", ACME, folders=["SEED"])
    _point_the_row_at(stack, "acme", sink.base_url, expired=True)
    monkeypatch.setenv("SAGE_X3_ALLOWED_ENDPOINTS", "")
    wiring.reset()
    sage.clear_requests()
    capsys.readouterr()

    report = sweep()

    assert (report["queued"], report["refreshed"], report["failed"]) == (2, 0, 2), report
    assert (sink.connections, sink.requests) == (0, [])
    assert sage.requests == []
    assert emitted(capsys, REFUSED_METRIC) >= 1
    critical = _critical(logs)
    assert {line["origin"] for line in critical} <= {narrowed, f"http://127.0.0.1:{sink.port}"}
    assert narrowed in {line["origin"] for line in critical}
    assert call("GET", "/tenants/globex").json["status"] == "active"
    assert call("GET", "/tenants/acme").json["status"] == "active"


def test_the_same_row_on_an_allowed_gateway_is_served(sage: Emulator, stack: Stack, sink: Sink) -> None:
    """The control: the refusal is about the host, not the edit or the expiry."""
    pair(sage, "acme", ACME, folders=["SEED"])
    _point_the_row_at(stack, "acme", None, expired=True)
    sage.clear_requests()

    answer = call("GET", "/tenants/acme/folders")

    assert answer.status == 200, answer.body
    assert sage.count("refresh") == 1 and sink.connections == 0
