"""POST /notifications over HTTP, on a stack started as `make run` starts it, with the emulator of this
process sending notifications as Sage X3's gateway does (signed with the client id, POSTed to the stack's
notification URL). What reaches the bus is read from the stack's own event log lines
(`event  FilesAvailable  tenant=...`)."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from local.sagex3_emulator import Emulator
from tests.e2e.conftest import RunningStack, names
from tests.support.sage import CLIENT_ID

pytestmark = pytest.mark.e2e

EVENT_WAIT = 20.0


@pytest.fixture
def notifying(stack: RunningStack, sage: Emulator) -> Emulator:
    """The emulator, with the stack's notification URL entered as the App Registry's (reset after)."""
    sage.configure(notification_url=f"{stack.api_url}/notifications")
    return sage


def files_available(stack: RunningStack, tenant: str) -> int:
    """How many FilesAvailable events for `tenant` the stack has printed so far."""
    line = f"event  FilesAvailable  tenant={tenant}  folder=SEED"
    return sum(1 for printed in (stack.stdout.lines if stack.stdout else []) if printed.rstrip("\n") == line)


def wait_for_events(stack: RunningStack, tenant: str, count: int) -> None:
    deadline = time.monotonic() + EVENT_WAIT
    while files_available(stack, tenant) < count:
        assert time.monotonic() < deadline, f"{count} FilesAvailable for {tenant} never came:\n{stack.output}"
        time.sleep(0.1)


def paired(stack: RunningStack, sage: Emulator, name: str) -> tuple[str, str]:
    tenant, customer = names(name)
    stack.pair(tenant, customer, folders=["SEED"])
    sage.put_delivery_file(customer, "SEED", "orders.csv", b"order;amount\nSO1;10\n")
    sage.clear_requests()
    return tenant, customer


def test_a_signed_notification_is_announced_once_and_sent_again_announces_nothing(
    stack: RunningStack, notifying: Emulator
) -> None:
    tenant, customer = paired(stack, notifying, "NotifyOnce")

    sent = notifying.notify(customer, "SEED")

    assert (sent.status, sent.json()) == (200, {"status": "accepted"})
    wait_for_events(stack, tenant, 1)
    assert notifying.count("notification") == 1  # its details, read with the tenant's token

    again = notifying.resend(sent)  # Sage delivers the same notification twice
    assert (again.status, again.json()) == (200, {"status": "accepted"})
    marker = notifying.notify(customer, "SEED")  # the next one: once it is announced, so would be a second
    assert marker.status == 200
    wait_for_events(stack, tenant, 2)
    time.sleep(0.5)
    assert files_available(stack, tenant) == 2
    assert notifying.count("notification") == 2  # the duplicate fetched nothing


@pytest.mark.parametrize(
    ("name", "wrong"),
    [
        ("NotifyOtherKey", {"signed_with": "another-app"}),
        ("NotifyUnsigned", {"signature": ""}),
        ("NotifyWrongDigest", {"signature": "0" * 64}),
        ("NotifyTampered", {}),
    ],
)
def test_a_bad_signature_is_401_and_nothing_is_fetched(
    stack: RunningStack, notifying: Emulator, name: str, wrong: dict[str, Any]
) -> None:
    tenant, customer = paired(stack, notifying, name)
    if wrong:
        sent = notifying.notify(customer, "SEED", **wrong)
        status, error = sent.status, sent.json()["error"]
    else:  # signed as Sage signs it, then changed on the way
        good = notifying.notify(customer, "SEED", send=False)
        assert good.signature is not None
        answer = stack.call(
            "POST",
            "/notifications",
            body=good.body.replace(b'"dataDeliveryApi"', b'"dataDeliveryAPI"'),
            headers={"Content-Type": "application/json", "HMAC_SHA256": good.signature},
            signed=False,
        )
        status, error = answer.status, answer.json()["error"]

    assert (status, error) == (401, "bad_signature")
    assert notifying.requests == []  # nothing fetched
    time.sleep(0.5)
    assert files_available(stack, tenant) == 0


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def other_host() -> Iterator[tuple[str, list[str]]]:
    """A host that is not any tenant's gateway, which remembers every request it gets."""
    seen: list[str] = []
    server = HTTPServer(("127.0.0.1", 0), type("Seen", (_Recorder,), {"seen": seen}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_detail_url_on_another_host_is_refused_and_nothing_is_fetched(
    stack: RunningStack, notifying: Emulator, other_host: tuple[str, list[str]]
) -> None:
    tenant, customer = paired(stack, notifying, "NotifyElsewhere")
    url, seen = other_host
    another_region = notifying.base_url("us-prod")  # a real gateway, but not this tenant's

    for detail_url in (f"{url}/v1/notification/n1", f"{another_region}/notification/n2"):
        sent = notifying.notify(customer, "SEED", detail_url=detail_url)
        assert (sent.status, sent.json()) == (
            200,
            {"status": "accepted"},
        )  # signed, so accepted; not acted on

    assert seen == [] and notifying.requests == []  # the tenant's token went nowhere
    marker = notifying.notify(customer, "SEED")  # a good one after them: only it is announced
    assert marker.status == 200
    wait_for_events(stack, tenant, 1)
    time.sleep(0.5)
    assert files_available(stack, tenant) == 1


def test_the_signature_is_the_hmac_of_the_body_keyed_with_the_client_id(
    stack: RunningStack, notifying: Emulator
) -> None:
    """What the emulator sends is what the facts sheet says Sage sends: checked here independently."""
    _, customer = paired(stack, notifying, "NotifyHmac")
    sent = notifying.notify(customer, "SEED", send=False)

    assert sent.signature == hmac.new(CLIENT_ID.encode(), sent.body, hashlib.sha256).hexdigest()
    assert set(sent.payload) == {
        "notificationId",
        "source",
        "customerUrl",
        "customerID",
        "datetime",
        "detailUrl",
    }
    assert sent.payload["detailUrl"].startswith(notifying.base_url("eu-prod"))
