"""Data delivery notifications: signed with the client id, POSTed to the notification URL, their details
served from the customer's own gateway to its tokens only (docs/sage-x3.md#data-delivery-notifications)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from tests.component.emulator.conftest import CLIENT_ID, Sage


class _App(BaseHTTPRequestHandler):
    """The app's notification URL: answers 200 and keeps what it was sent."""

    received: list[tuple[str, dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.path, dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def app() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    received: list[tuple[str, dict[str, str], bytes]] = []
    server = HTTPServer(("127.0.0.1", 0), type("Received", (_App,), {"received": received}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/notifications", received
    finally:
        server.shutdown()
        server.server_close()


def test_delivering_files_notifies_the_app_signed_with_its_client_id(
    sage: Sage, app: tuple[str, list[tuple[str, dict[str, str], bytes]]]
) -> None:
    url, received = app
    sage.emu.configure(notification_url=url)

    sent = sage.emu.deliver(sage.ACME, "SEED", {"a.csv": b"1\n", "b.csv": b"22\n"})

    assert sent is not None and sent.status == 200
    ((path, headers, body),) = received
    assert path == "/notifications"
    assert headers["HMAC_SHA256"] == hmac.new(CLIENT_ID.encode(), body, hashlib.sha256).hexdigest()
    payload = json.loads(body)
    assert set(payload) == {"notificationId", "source", "customerUrl", "customerID", "datetime", "detailUrl"}
    assert payload["source"] == "dataDeliveryApi" and payload["customerUrl"] == sage.ACME
    assert payload["detailUrl"] == sage.url(f"/notification/{payload['notificationId']}", "eu-prod")


def test_no_notification_url_no_notification(sage: Sage) -> None:
    assert sage.emu.deliver(sage.ACME, "SEED", {"a.csv": b"1\n"}) is None
    assert sage.emu.delivery_files(sage.ACME, "SEED") == {"a.csv": b"1\n"}


def test_the_digest_can_be_written_in_base64(sage: Sage) -> None:
    sage.emu.configure(notification_signature="base64")
    sent = sage.emu.notify(sage.ACME, "SEED", send=False)
    digest = hmac.new(CLIENT_ID.encode(), sent.body, hashlib.sha256).digest()
    assert sent.signature == base64.b64encode(digest).decode()


def test_the_details_go_to_the_notified_customers_token_on_its_own_gateway(sage: Sage) -> None:
    sage.emu.put_delivery_file(sage.ACME, "SEED", "a.csv", b"1;2\n")
    tokens = sage.pair(folders=["SEED"])
    globex = sage.pair(sage.GLOBEX)
    sent = sage.emu.notify(sage.ACME, "SEED", send=False)
    detail = sent.payload["detailUrl"]

    reply = sage.call("GET", detail, token=tokens["access_token"])

    assert reply.status == 200
    document = reply.json()
    assert document["notificationID"] == sent.notification_id
    assert document["applicationId"] == CLIENT_ID
    assert document["folder"] == "SEED"
    ((entry),) = document["files"]
    assert (entry["key"], entry["size"], entry["downloadUrl"]) == ("a.csv", 4, "SEED?filename=a.csv")
    assert sage.call("GET", detail).status == 401
    assert sage.call("GET", detail, token=globex["access_token"]).status in (401, 404)  # another customer
    unknown = sage.url("/notification/never-sent")
    assert sage.call("GET", unknown, token=tokens["access_token"]).json() == {
        "message": "Notification not found"
    }
    assert sage.emu.count("notification") == 4


def test_the_details_route_takes_injected_faults(sage: Sage) -> None:
    tokens = sage.pair()
    sent = sage.emu.notify(sage.ACME, "SEED", send=False)
    sage.emu.fail_next("notification", status=503)
    assert sage.call("GET", sent.payload["detailUrl"], token=tokens["access_token"]).status == 503
    assert sage.call("GET", sent.payload["detailUrl"], token=tokens["access_token"]).status == 200


def test_a_notification_can_be_sent_wrong_on_purpose(
    sage: Sage, app: tuple[str, list[tuple[str, dict[str, str], bytes]]]
) -> None:
    url, received = app
    sage.emu.notify(sage.ACME, "SEED", url=url, signature="")
    sage.emu.notify(sage.ACME, "SEED", url=url, signed_with="another-app")
    sage.emu.notify(sage.ACME, "SEED", url=url, detail_url="https://elsewhere.example/v1/notification/x")
    (unsigned, other_key, elsewhere) = received
    assert "HMAC_SHA256" not in unsigned[1]
    assert other_key[1]["HMAC_SHA256"] == hmac.new(b"another-app", other_key[2], hashlib.sha256).hexdigest()
    assert json.loads(elsewhere[2])["detailUrl"] == "https://elsewhere.example/v1/notification/x"
