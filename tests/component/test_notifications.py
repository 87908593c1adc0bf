"""POST /notifications: Sage X3's data delivery notification, checked by its HMAC_SHA256 signature (keyed with
the client id), deduplicated on notificationId, its details read only from the tenant's own gateway with the
tenant's token, and announced once as FilesAvailable by the notifications table's stream."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from local.sagex3_emulator.notifications import SentNotification
from tests.support.api import Answer, call
from tests.support.aws_faults import AwsCalls
from tests.support.events import lifecycle_events
from tests.support.sage import CLIENT_ID, pair
from x3link.events import lifecycle
from x3link.sage import notifications
from x3link.web import request_json

CUSTOMER = "https://x3.acme.example"
GRANTED = ["SEED", "X3"]


@pytest.fixture
def events(stack: Stack) -> Callable[[], list[dict[str, Any]]]:
    """What the bus received since the last call, the tables' streams delivered first."""
    return lifecycle_events(stack)


@pytest.fixture
def paired(sage: Emulator, stack: Stack, events: Callable[[], list[dict[str, Any]]]) -> Emulator:
    """acme paired with two folders, files delivered in SEED, its PairingCompleted drained."""
    pair(sage, "acme", CUSTOMER, folders=GRANTED)
    sage.put_delivery_file(CUSTOMER, "SEED", "orders.csv", b"id;amount\n1;10\n")
    sage.put_delivery_file(CUSTOMER, "SEED", "items.csv", b"id\n1\n")
    events()
    sage.clear_requests()
    return sage


def post(
    sent: SentNotification, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Answer:
    """The notification as the gateway POSTs it (its signature in HMAC_SHA256 unless `headers` say)."""
    sent_headers = {"Content-Type": "application/json"}
    if headers is not None:
        sent_headers.update(headers)
    elif sent.signature is not None:
        sent_headers["HMAC_SHA256"] = sent.signature
    return call("POST", "/notifications", body=sent.body if body is None else body, headers=sent_headers)


def built(sage: Emulator, customer: str = CUSTOMER, **options: Any) -> SentNotification:
    return sage.notify(customer, "SEED", send=False, **options)


def files_available(events: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [event["detail"] for event in events() if event["detail-type"] == lifecycle.FILES_AVAILABLE]


def detail_reads(sage: Emulator) -> int:
    return sage.count("notification")


# ---------------------------------------------------------------------------------------------- good
def test_a_signed_notification_is_accepted_and_announced_once_with_what_was_delivered(
    paired: Emulator, events: Callable[[], list[dict[str, Any]]]
) -> None:
    sent = built(paired)

    answer = post(sent)

    assert (answer.status, answer.json) == (200, {"status": "accepted"})
    assert detail_reads(paired) == 1
    (detail,) = files_available(events)
    assert detail["id"] == f"notification:{sent.notification_id}:acme"
    assert (detail["tenant"], detail["customer"], detail["folder"]) == ("acme", CUSTOMER, "SEED")
    assert detail["notification_id"] == sent.notification_id
    assert detail["sent_at"] == sent.payload["datetime"]
    assert [(f["name"], f["size"]) for f in detail["files"]] == [("items.csv", 5), ("orders.csv", 15)]
    assert all(f["checksum"] and f["last_modified"] for f in detail["files"])
    assert detail["truncated"] is False
    assert "token" not in json.dumps(detail).lower()


def test_the_same_notification_again_is_accepted_and_publishes_nothing(
    paired: Emulator, events: Callable[[], list[dict[str, Any]]]
) -> None:
    sent = built(paired)
    assert post(sent).status == 200
    assert len(files_available(events)) == 1

    again = post(sent)

    assert (again.status, again.json) == (200, {"status": "accepted"})
    assert files_available(events) == []
    assert detail_reads(paired) == 1  # recognised before anything was fetched


@pytest.mark.parametrize("name", ["HMAC_SHA256", "hmac_sha256", "Hmac_Sha256", "HMAC-SHA256"])
def test_the_signature_header_is_read_in_any_case(
    paired: Emulator, events: Callable[[], list[dict[str, Any]]], name: str
) -> None:
    sent = built(paired)
    assert sent.signature is not None
    assert post(sent, headers={name: sent.signature}).status == 200
    assert len(files_available(events)) == 1


@pytest.mark.parametrize("spelling", ["hex", "HEX", "base64", "base64url"])
def test_the_digest_is_read_in_hex_or_base64(
    paired: Emulator, events: Callable[[], list[dict[str, Any]]], spelling: str
) -> None:
    sent = built(paired)
    digest = hmac.new(CLIENT_ID.encode(), sent.body, hashlib.sha256).digest()
    value = {
        "hex": digest.hex(),
        "HEX": digest.hex().upper(),
        "base64": base64.b64encode(digest).decode(),
        "base64url": base64.urlsafe_b64encode(digest).decode().rstrip("="),
    }[spelling]
    assert post(sent, headers={"HMAC_SHA256": value}).status == 200
    assert len(files_available(events)) == 1


def test_the_emulator_signs_as_configured(
    paired: Emulator, events: Callable[[], list[dict[str, Any]]]
) -> None:
    paired.configure(notification_signature="base64")
    sent = built(paired)
    assert sent.signature is not None and sent.signature.endswith("=")
    assert post(sent).status == 200
    assert len(files_available(events)) == 1


# ---------------------------------------------------------------------------------------------- 401
def _unsigned(sent: SentNotification) -> dict[str, str]:
    return {}


def _other_key(sent: SentNotification) -> dict[str, str]:
    return {"HMAC_SHA256": hmac.new(b"another-app", sent.body, hashlib.sha256).hexdigest()}


def _the_secret_as_key(sent: SentNotification) -> dict[str, str]:
    key = b"test-app-secret-value-0123456789"  # the client secret is not what Sage signs with
    return {"HMAC_SHA256": hmac.new(key, sent.body, hashlib.sha256).hexdigest()}


def _garbage(sent: SentNotification) -> dict[str, str]:
    return {"HMAC_SHA256": "not-a-digest"}


def _empty(sent: SentNotification) -> dict[str, str]:
    return {"HMAC_SHA256": ""}


def _truncated(sent: SentNotification) -> dict[str, str]:
    assert sent.signature is not None
    return {"HMAC_SHA256": sent.signature[:-2]}


def _two_values(sent: SentNotification) -> dict[str, str]:
    assert sent.signature is not None
    return {"HMAC_SHA256": sent.signature, "hmac-sha256": "0" * 64}


@pytest.mark.parametrize(
    "headers", [_unsigned, _other_key, _the_secret_as_key, _garbage, _empty, _truncated, _two_values]
)
def test_a_bad_or_missing_signature_is_401_and_nothing_else(
    paired: Emulator,
    stack: Stack,
    events: Callable[[], list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    headers: Callable[[SentNotification], dict[str, str]],
) -> None:
    sent = built(paired)
    calls = AwsCalls.install(monkeypatch)

    answer = post(sent, headers=headers(sent))

    assert (answer.status, answer.json["error"]) == (401, "bad_signature")
    assert [c for c in calls.calls if c.service == "dynamodb"] == []  # no table read
    assert paired.requests == []  # nothing fetched
    assert files_available(events) == []


def test_a_body_changed_after_signing_is_401(
    paired: Emulator, events: Callable[[], list[dict[str, Any]]]
) -> None:
    sent = built(paired)
    tampered = sent.body.replace(CUSTOMER.encode(), b"https://x3.globex.example")
    assert tampered != sent.body

    answer = post(sent, body=tampered)

    assert answer.status == 401
    assert paired.requests == [] and files_available(events) == []


def test_a_body_too_large_is_refused_whether_signed_or_not(paired: Emulator, stack: Stack) -> None:
    sent = built(paired)
    padded = json.dumps({**sent.payload, "padding": "x" * request_json.MAX_BYTES}).encode()
    signature = hmac.new(CLIENT_ID.encode(), padded, hashlib.sha256).hexdigest()

    signed = post(sent, body=padded, headers={"HMAC_SHA256": signature})
    unsigned = post(sent, body=padded, headers={})

    assert (signed.status, signed.json["error"]) == (400, "bad_request")
    assert "larger than" in signed.json["message"]
    assert unsigned.status == 401
    assert paired.requests == []


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"source": "dataDeliveryApi"},
        {"notificationId": "n 1", "customerUrl": CUSTOMER, "detailUrl": "https://x"},
        {"notificationId": "n1", "customerUrl": "x3.acme.example", "detailUrl": "https://x"},
        {"notificationId": "n1", "customerUrl": CUSTOMER, "detailUrl": 7},
    ],
)
def test_a_signed_body_that_is_no_notification_is_a_400(paired: Emulator, stack: Stack, payload: Any) -> None:
    body = json.dumps(payload).encode()
    signature = hmac.new(CLIENT_ID.encode(), body, hashlib.sha256).hexdigest()
    answer = call("POST", "/notifications", body=body, headers={"HMAC_SHA256": signature})
    assert (answer.status, answer.json["error"]) == (400, "bad_request")
    assert paired.requests == []


# ------------------------------------------------------------------------------------ never another host
class Recorder(BaseHTTPRequestHandler):
    """A host that is not the tenant's gateway: it answers everything and remembers it was asked."""

    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"folder": "SEED", "files": [{"key": "stolen.csv"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def other_host() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    handler = type("SeenRecorder", (Recorder,), {"seen": seen})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_detail_url_on_another_host_is_never_fetched(
    paired: Emulator,
    events: Callable[[], list[dict[str, Any]]],
    other_host: tuple[str, list[tuple[str, str | None]]],
) -> None:
    url, seen = other_host
    sent = built(paired, detail_url=f"{url}/v1/notification/n-elsewhere")

    answer = post(sent)

    assert (answer.status, answer.json) == (200, {"status": "accepted"})  # signed: accepted, not acted on
    assert seen == []  # the tenant's token went nowhere
    assert paired.requests == []
    assert files_available(events) == []


@pytest.mark.parametrize(
    "detail_url",
    [
        "{other}/v1/notification/{id}",  # another region's gateway: another origin
        "{scheme}://{authority}@127.0.0.1:1/v1/notification/{id}",  # userinfo: the host is 127.0.0.1:1
        "{scheme}://{authority}\\@127.0.0.1:1/v1/notification/{id}",
        "{scheme}://{host}:1/v1/notification/{id}",  # same host, another port
        "{base}/notification/{id} ",
        "ftp://{host}/v1/notification/{id}",
    ],
)
def test_only_the_tenants_own_gateway_origin_is_fetched(
    paired: Emulator, events: Callable[[], list[dict[str, Any]]], detail_url: str
) -> None:
    base = paired.base_url("eu-prod")
    scheme, _, rest = base.partition("://")
    authority = rest.split("/")[0]
    url = detail_url.format(
        other=paired.base_url("us-prod").removesuffix("/v1"),
        base=base,
        scheme=scheme,
        authority=authority,
        host=authority.split(":")[0],
        id="n-origin",
    )
    sent = built(paired, notification_id="n-origin", detail_url=url)

    assert post(sent).status == 200
    assert paired.requests == []
    assert files_available(events) == []


def test_origins_are_compared_as_scheme_host_and_port() -> None:
    endpoint = "https://api.eu-prod-sagex3.com/v1"
    assert notifications.on_gateway("https://API.eu-prod-sagex3.com:443/v1/notification/1", endpoint)
    assert notifications.on_gateway("https://api.eu-prod-sagex3.com/elsewhere?x=1", endpoint)
    for url in (
        "http://api.eu-prod-sagex3.com/v1/notification/1",
        "https://api.eu-prod-sagex3.com:8443/v1/notification/1",
        "https://api.eu-prod-sagex3.com.evil.example/v1",
        "https://evil.example/https://api.eu-prod-sagex3.com/v1",
        "https://api.eu-prod-sagex3.com@evil.example/v1",
        "https://api.eu-prod-sagex3.com#@evil.example/v1",
        "https://api.eu-prod-sagex3.com\\@evil.example/v1",
        "//api.eu-prod-sagex3.com/v1",
        "https://api.eu-prod-sagex3.com:99999/v1",
    ):
        assert not notifications.on_gateway(url, endpoint), url


# ---------------------------------------------------------------------------------------- whom it is for
def test_a_customer_no_tenant_is_paired_with_is_accepted_and_announces_nothing(
    paired: Emulator, events: Callable[[], list[dict[str, Any]]]
) -> None:
    sent = built(paired, "https://x3.stranger.example")
    assert (post(sent).status, detail_reads(paired)) == (200, 0)
    assert files_available(events) == []


def test_every_tenant_paired_with_the_customer_is_told_with_its_own_token(
    paired: Emulator, events: Callable[[], list[dict[str, Any]]]
) -> None:
    pair(paired, "acme-eu", CUSTOMER + "/", folders=["SEED"])  # the same customer, spelled with a slash
    events()
    sent = built(paired)

    assert post(sent).status == 200

    details = sorted(files_available(events), key=lambda detail: detail["tenant"])
    assert [d["id"] for d in details] == [
        f"notification:{sent.notification_id}:acme",
        f"notification:{sent.notification_id}:acme-eu",
    ]
    tokens = {
        entry["headers"]["Authorization"] for entry in paired.requests if entry["route"] == "notification"
    }
    assert len(tokens) == 2


def test_an_expired_pairing_is_passed_over(
    paired: Emulator, stack: Stack, events: Callable[[], list[dict[str, Any]]]
) -> None:
    import boto3

    boto3.client("dynamodb").update_item(
        TableName=stack.refs["PairingsTable"],
        Key={"tenant": {"S": "acme"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "expired"}},
    )
    events()
    assert post(built(paired)).status == 200
    assert detail_reads(paired) == 0 and files_available(events) == []


# ----------------------------------------------------------------------------------- reading the details
def test_a_refused_access_token_is_refreshed_once_and_the_details_read_again(
    paired: Emulator, events: Callable[[], list[dict[str, Any]]]
) -> None:
    paired.invalidate_access_tokens()

    assert post(built(paired)).status == 200

    assert detail_reads(paired) == 2  # 401, then again with the refreshed token
    assert paired.count("refresh") == 1
    assert len(files_available(events)) == 1


def test_details_sage_fails_to_give_are_not_recorded_and_a_retry_is_announced(
    paired: Emulator, events: Callable[[], list[dict[str, Any]]]
) -> None:
    sent = built(paired)
    paired.fail_next("notification", status=500)

    failed = post(sent)

    assert (failed.status, failed.json["error"]) == (502, "upstream_error")  # a sender that retries may
    assert files_available(events) == []
    assert post(sent).status == 200
    assert len(files_available(events)) == 1


def test_details_sage_does_not_know_are_passed_over(
    paired: Emulator, events: Callable[[], list[dict[str, Any]]]
) -> None:
    sent = built(paired, detail_url=f"{paired.base_url('eu-prod')}/notification/never-sent")
    assert post(sent).status == 200
    assert detail_reads(paired) == 1
    assert files_available(events) == []


def test_a_detail_document_is_read_leniently() -> None:
    details = notifications.parse_details(
        {
            "folderName": "SEED",
            "items": [
                {"fileName": "a.csv", "size": "12"},
                {"key": "b.csv", "size": True},
                "c.csv",
                {"no": "name"},
                7,
            ],
        }
    )
    assert details.folder == "SEED"
    assert [(f.name, f.size) for f in details.files] == [("a.csv", 12), ("b.csv", None), ("c.csv", None)]
    many = notifications.parse_details({"files": [{"key": f"{i}.csv"} for i in range(150)]})
    assert len(many.files) == notifications.MAX_FILES and many.truncated
    assert notifications.parse_details(None) == notifications.Details(folder=None, files=())
