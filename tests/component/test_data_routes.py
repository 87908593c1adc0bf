"""The data routes (issue 8): Sage X3's data delivery and data ingestion with the tokens handled, and the
pairings listed a page at a time. Each route runs in-process as API Gateway would call it, against the
template's resources in moto and the Sage X3 emulator."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import quote

import boto3
import botocore.client
import pytest
import urllib3

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import Answer, call
from tests.support.contract import TENANT_FIELDS
from tests.support.keeper import stored, tune
from tests.support.sage import pair
from x3link.data import delivery, ingestion
from x3link.data.integration import PRESIGNED_LIFETIME, file_name, link_expiry
from x3link.endpoints import normalise
from x3link.errors import BadRequest
from x3link.refresh.breaker import gateway_key

ACME = "https://x3.acme.example"
FILES = "/tenants/acme/folders/SEED/files"
TRACKING_ID = "3f2b8c1e-7d4a-4b6e-9c0f-1a2b3c4d5e6f"

for _function in (
    "PairingStartFunction",
    "PairLinkFunction",
    "CallbackFunction",
    "TenantsFunction",
    "FoldersFunction",
    "DataDeliveryFunction",
    "DataIngestionFunction",
):
    tpl.load_handler(_function)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _seed(sage: Emulator, count: int, folder: str = "SEED", customer: str = ACME) -> dict[str, bytes]:
    files = {f"orders-{index:03}.csv": f"order;{index}\n".encode() for index in range(count)}
    for name, content in files.items():
        sage.put_delivery_file(customer, folder, name, content)
    return files


def _paired(sage: Emulator, folders: list[str] | None = None) -> None:
    pair(sage, "acme", ACME, folders=folders or ["SEED", "X3"])
    sage.clear_requests()


def _sage_data_requests(sage: Emulator) -> int:
    return sage.count("datadelivery") + sage.count("dataingestion") + sage.count("token")


def _upload(filename: str = "items.csv", folder: str = "SEED") -> Answer:
    return call("POST", f"/tenants/acme/folders/{folder}/uploads", json_body={"filename": filename})


@contextmanager
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Every AWS API call any boto3 client makes in the block, by `service:Operation` (as bench.py counts)."""
    calls: Counter[str] = Counter()
    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def counting(self: Any, operation: str, params: Any) -> Any:
        calls[f"{self.meta.service_model.service_name}:{operation}"] += 1
        return original(self, operation, params)

    with monkeypatch.context() as patched:
        patched.setattr(botocore.client.BaseClient, "_make_api_call", counting)
        yield calls


# ---------------------------------------------------------------------------------------------- listing
def test_a_folder_is_listed_a_page_at_a_time_following_sages_next(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    seeded = _seed(sage, 120)

    pages, cursor = [], None
    while True:
        answer = call("GET", FILES, query={"cursor": cursor} if cursor else None)
        assert answer.status == 200, answer.body
        pages.append(answer.json["files"])
        cursor = answer.json.get("cursor")
        if cursor is None:
            break

    assert [len(page) for page in pages] == [50, 50, 20]  # Sage's own pages, one Sage call each
    listed = [item for page in pages for item in page]
    assert [item["name"] for item in listed] == sorted(seeded)
    first = listed[0]
    assert set(first) == {"name", "size", "last_modified", "checksum"}  # Sage's relative URLs stay behind
    assert first["size"] == len(seeded[first["name"]]) and len(first["checksum"]) == 32
    assert first["last_modified"].endswith("Z")
    assert sage.count("datadelivery") == 3
    queries = [entry["query"] for entry in sage.requests if entry["route"] == "datadelivery"]
    assert queries == [{}, {"page": "2"}, {"page": "3"}]  # Sage's `$next`, followed as given


def test_an_empty_folder_is_one_page_with_no_cursor(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    answer = call("GET", "/tenants/acme/folders/X3/files")
    assert (answer.status, answer.json) == (200, {"files": []})


def _cursor(document: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


TAMPERED = [
    "not a cursor!",
    "",
    "e30",  # {}
    _cursor({"next": "X3?page=2"}),  # another folder
    _cursor({"next": "../X3?page=2"}),
    _cursor({"next": "SEED/../X3?page=2"}),
    _cursor({"next": "https://evil.example/v1/datadelivery/SEED?page=2"}),
    _cursor({"next": "//evil.example/v1/datadelivery/SEED?page=2"}),
    _cursor({"next": "/v1/datadelivery/SEED?page=2"}),  # not as handed out: relative to the gateway
    _cursor({"next": "SEED?filename=orders-000.csv"}),  # a download, not a page
    _cursor({"next": "SEED?page=2#x"}),
    _cursor({"next": "SEED?page=2 "}),
    _cursor({"next": 2}),
    _cursor({"next": "SEED?page=2", "more": 1}),
    _cursor(["SEED?page=2"]),
    base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="),
    "A" * 3000,
]


@pytest.mark.parametrize("cursor", TAMPERED, ids=range(len(TAMPERED)))
def test_a_tampered_cursor_is_400_and_nothing_is_called(sage: Emulator, stack: Stack, cursor: str) -> None:
    _paired(sage)
    _seed(sage, 60)

    answer = call("GET", FILES, query={"cursor": cursor})

    assert (answer.status, answer.json["error"]) == (400, "bad_request"), answer.body
    assert sage.requests == []


def test_a_cursor_is_for_its_folder_only(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    _seed(sage, 60)
    _seed(sage, 60, folder="X3")
    cursor = call("GET", FILES).json["cursor"]

    other = call("GET", "/tenants/acme/folders/X3/files", query={"cursor": cursor})

    assert (other.status, other.json["error"]) == (400, "bad_request")
    assert call("GET", FILES, query={"cursor": cursor}).status == 200


def test_a_next_page_outside_the_folder_is_refused_as_sages_failure(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    sage.fail_next(
        "datadelivery",
        status=200,
        body={"isTruncated": True, "items": [], "$next": "https://evil.example/v1/datadelivery/SEED?page=2"},
    )
    answer = call("GET", FILES)
    assert (answer.status, answer.json["error"]) == (502, "upstream_error")


# ---------------------------------------------------------------------------------------------- download
@pytest.mark.parametrize("redirect", [301, 302, 303, 307, 308])
def test_download_hands_out_sages_presigned_link_and_the_bytes_arrive(
    sage: Emulator, stack: Stack, redirect: int
) -> None:
    _paired(sage)
    sage.put_delivery_file(ACME, "SEED", "orders 1.csv", b"a;b\n1;2\n")
    sage.configure(download_redirect_status=redirect, link_lifetime=900)

    before = time.time()
    answer = call("GET", f"{FILES}/{quote('orders 1.csv')}")

    assert answer.status == 200, answer.body
    assert set(answer.json) == {"url", "expires_at"}
    # The redirect was read, not followed: one Sage call, and the link is Sage's own.
    assert sage.count("datadelivery") == 1 and sage.count("files") == 0
    (asked,) = [entry for entry in sage.requests if entry["route"] == "datadelivery"]
    assert asked["query"] == {"filename": "orders 1.csv"}
    # Its expiry is what the link's signature says (X-Amz-Date + X-Amz-Expires), not a fixed hour.
    assert before - 1 <= _epoch(answer.json["expires_at"]) - 900 <= time.time() + 1
    fetched = urllib3.request("GET", answer.json["url"], redirect=False)
    assert (fetched.status, fetched.data) == (200, b"a;b\n1;2\n")


def test_a_missing_file_is_404_file_not_found(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    for method in ("GET", "DELETE"):
        answer = call(method, f"{FILES}/nope.csv")
        assert (answer.status, answer.json["error"]) == (404, "file_not_found"), method


def test_a_link_expires_when_its_signature_says_else_in_sages_documented_hour() -> None:
    signed = "https://b.s3.amazonaws.com/k?X-Amz-Date=20250102T030405Z&X-Amz-Expires=600&X-Amz-Signature=ab"
    assert link_expiry(signed, 0) == _epoch("2025-01-02T03:14:05Z")
    assert link_expiry("https://cdn.example/k?Expires=1735787045&Signature=x", 0) == 1735787045
    for unsigned in (
        "https://x.example/file",
        "https://x.example/f?X-Amz-Expires=60",
        "https://x.example/f?X-Amz-Date=zz&X-Amz-Expires=1",
    ):
        assert link_expiry(unsigned, 1000.0) == 1000.0 + PRESIGNED_LIFETIME


# ---------------------------------------------------------------------------------------------- delete
def test_delete_is_204_and_the_file_leaves_the_listing(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    _seed(sage, 3)
    link = call("GET", f"{FILES}/orders-001.csv").json["url"]
    assert urllib3.request("GET", link).status == 200  # downloaded first, as Sage asks

    answer = call("DELETE", f"{FILES}/orders-001.csv")

    assert (answer.status, answer.body) == (204, "")
    names = [item["name"] for item in call("GET", FILES).json["files"]]
    assert names == ["orders-000.csv", "orders-002.csv"]
    assert "orders-001.csv" not in sage.delivery_files(ACME, "SEED")


@pytest.mark.parametrize(
    "name",
    ["price €.csv", 'say "hi".csv', "a#b.csv", "what?.csv", "tick`.csv", "no\u00a0break.csv", "café.csv"],
)
def test_any_file_sage_lists_can_be_downloaded_and_deleted(sage: Emulator, stack: Stack, name: str) -> None:
    """Names the resolver's own route pattern refuses still reach their route: API Gateway matched it."""
    _paired(sage)
    sage.put_delivery_file(ACME, "SEED", name, b"x\n")
    assert [item["name"] for item in call("GET", FILES).json["files"]] == [name]

    download = call("GET", f"{FILES}/{quote(name, safe='')}")

    assert download.status == 200, download.body
    assert urllib3.request("GET", download.json["url"]).data == b"x\n"
    assert call("DELETE", f"{FILES}/{quote(name, safe='')}").status == 204
    assert sage.delivery_files(ACME, "SEED") == {} or name not in sage.delivery_files(ACME, "SEED")


# ---------------------------------------------------------------------------------------------- ingestion
def _track(tracking_id: str, until: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = call("GET", f"/tenants/acme/uploads/{tracking_id}")
        assert answer.status == 200, answer.body
        if answer.json["status"] == until or time.monotonic() > deadline:
            return dict(answer.json)
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("filename", "content", "final"),
    [("items.csv", b"item;qty\nA;1\n", "integrated"), ("eicar-test.txt", b"harmless\n", "virus_detected")],
)
def test_upload_then_put_then_track_to_a_final_status(
    sage: Emulator, stack: Stack, filename: str, content: bytes, final: str
) -> None:
    _paired(sage)
    sage.configure(scan_delay=0.3)

    answer = _upload(filename)

    assert answer.status == 201, answer.body
    upload = answer.json
    assert set(upload) == {"upload_url", "expires_at", "tracking_id"}
    assert _epoch(upload["expires_at"]) == pytest.approx(time.time() + 3600, abs=5)
    (asked,) = [entry for entry in sage.requests if entry["route"] == "dataingestion"]
    assert (asked["method"], asked["query"]) == ("POST", {"filename": filename})
    waiting = call("GET", f"/tenants/acme/uploads/{upload['tracking_id']}").json
    assert waiting["status"] == "awaiting_upload"

    put = urllib3.request("PUT", upload["upload_url"], body=content)

    assert put.status == 200
    assert sage.ingested(ACME, "SEED") == {filename: content}
    scanning = call("GET", f"/tenants/acme/uploads/{upload['tracking_id']}").json
    assert scanning["status"] == "awaiting_scan"
    done = _track(upload["tracking_id"], final)
    assert done["status"] == final
    assert set(done) == {
        "tracking_id",
        "filename",
        "folder",
        "status",
        "status_message",
        "created_at",
        "last_status_update",
    }
    assert (done["tracking_id"], done["filename"], done["folder"]) == (
        upload["tracking_id"],
        filename,
        "SEED",
    )
    assert done["status_message"] and done["created_at"].endswith("Z")


def test_a_file_that_exists_is_409_file_exists(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    upload = _upload().json
    assert urllib3.request("PUT", upload["upload_url"], body=b"a\n").status == 200

    again = _upload()

    assert (again.status, again.json["error"]) == (409, "file_exists"), again.body


def test_file_exists_said_with_a_401_is_409_and_no_refresh(sage: Emulator, stack: Stack) -> None:
    """Sage says "File already exists" with a 403, or elsewhere a 401: that 401 refuses no token."""
    _paired(sage)
    sage.fail_next("dataingestion", status=401, body={"message": "File already exists"})

    answer = _upload()

    assert (answer.status, answer.json["error"]) == (409, "file_exists"), answer.body
    assert sage.count("refresh") == 0 and sage.count("dataingestion") == 1


def test_an_unknown_tracking_id_is_404(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    answer = call("GET", f"/tenants/acme/uploads/{TRACKING_ID}")
    assert (answer.status, answer.json["error"]) == (404, "upload_not_found"), answer.body


def test_an_upload_request_is_sent_once_even_when_sage_fails(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    sage.fail_next("dataingestion", status=503)
    answer = _upload()
    assert (answer.status, answer.json["error"]) == (502, "upstream_error")
    assert sage.count("dataingestion") == 1  # a POST is never retried
    sage.fail_next("datadelivery", status=503)
    assert call("GET", FILES).status == 200  # a GET is
    assert sage.count("datadelivery") == 2


@pytest.mark.parametrize(
    "body",
    [{}, {"filename": ""}, {"filename": 3}, {"filename": "a/b"}, {"filename": "x", "folder": "X3"}, ["x"]],
)
def test_a_bad_upload_body_is_400(sage: Emulator, stack: Stack, body: Any) -> None:
    _paired(sage)
    answer = call("POST", "/tenants/acme/folders/SEED/uploads", json_body=body)
    assert (answer.status, answer.json["error"]) == (400, "bad_request"), answer.body
    assert sage.requests == []


# ---------------------------------------------------------------------------------------------- grants
def _every_folder_route(folder: str) -> list[tuple[str, str, Any]]:
    base = f"/tenants/acme/folders/{folder}"
    return [
        ("GET", f"{base}/files", None),
        ("GET", f"{base}/files/x.txt", None),
        ("DELETE", f"{base}/files/x.txt", None),
        ("POST", f"{base}/uploads", {"filename": "x.txt"}),
    ]


@pytest.mark.parametrize("route", range(4), ids=["list", "download", "delete", "upload"])
def test_a_folder_not_granted_is_403_without_calling_sage(sage: Emulator, stack: Stack, route: int) -> None:
    sage.configure(access_lifetime=60)  # below the refresh margin: any call to Sage would refresh first
    _paired(sage, folders=["SEED"])
    sage.put_delivery_file(ACME, "DEMO", "x.txt", b"x")
    method, path, body = _every_folder_route("DEMO")[route]

    answer = call(method, path, json_body=body)

    assert (answer.status, answer.json["error"]) == (403, "folder_not_granted"), answer.body
    assert sage.requests == []  # not even a refresh


def test_sage_refusing_a_folder_is_403_folder_not_granted(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    sage.fail_next("datadelivery", status=403, body={"message": "Forbidden"})
    answer = call("GET", FILES)
    assert (answer.status, answer.json["error"]) == (403, "folder_not_granted")


# ---------------------------------------------------------------------------------------------- bad names
BAD_FILE_NAMES = ["..", ".", "a%2Fb", "%2F", "a%5Cb", "%00", "a%01b", "a%0Ab", "x" * 256]


@pytest.mark.parametrize(
    "name",
    BAD_FILE_NAMES,
    ids=["dotdot", "dot", "slash", "lone-slash", "backslash", "nul", "ctrl", "newline", "256"],
)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_file_name_that_leaves_its_folder_is_400(
    sage: Emulator, stack: Stack, name: str, method: str
) -> None:
    _paired(sage)
    answer = call(method, f"{FILES}/{name}")
    assert (answer.status, answer.json["error"]) == (400, "bad_request"), answer.body
    assert sage.requests == []


@pytest.mark.parametrize("name", ["..", "a/b", "/", "a\\b", "\x00", "a\x7fb", "x" * 256, "\u2028"])
def test_an_upload_name_that_leaves_its_folder_is_400(sage: Emulator, stack: Stack, name: str) -> None:
    _paired(sage)
    answer = _upload(name)
    assert (answer.status, answer.json["error"]) == (400, "bad_request"), answer.body
    assert sage.requests == []


@pytest.mark.parametrize("folder", ["..", ".hidden", "a%2Fb", "%00", "SE ED", "x" * 65, "-SEED"])
def test_a_bad_folder_is_400(sage: Emulator, stack: Stack, folder: str) -> None:
    _paired(sage)
    for method, path, body in _every_folder_route(folder):
        answer = call(method, path, json_body=body)
        assert (answer.status, answer.json["error"]) == (400, "bad_request"), (method, path, answer.body)
    assert sage.requests == []


@pytest.mark.parametrize("tracking_id", ["nope", TRACKING_ID + "0", "{" + TRACKING_ID + "}", "..", "%2F"])
def test_a_tracking_id_that_is_no_uuid_is_400(sage: Emulator, stack: Stack, tracking_id: str) -> None:
    _paired(sage)
    answer = call("GET", f"/tenants/acme/uploads/{tracking_id}")
    assert (answer.status, answer.json["error"]) == (400, "bad_request"), answer.body
    assert sage.requests == []


def test_names_reach_sage_encoded_and_whole() -> None:
    """Validated, then percent-encoded as one path segment or query value: nothing is read as syntax."""
    name = "a b&c=d?e#f%25+ü.csv"
    assert file_name(name) == name
    url = delivery.file_url("https://api.eu-prod-sagex3.com/v1", "SEED", name)
    assert url == (
        "https://api.eu-prod-sagex3.com/v1/datadelivery/SEED/?filename=a%20b%26c%3Dd%3Fe%23f%2525%2B%C3%BC.csv"
    )
    upload = ingestion.upload_request_url("https://api.eu-prod-sagex3.com/v1", "X3", "a&b")
    assert upload == "https://api.eu-prod-sagex3.com/v1/dataingestion/X3?filename=a%26b"
    with pytest.raises(BadRequest):
        file_name("a/../../b")


# ---------------------------------------------------------------------------------------------- quota
def test_sages_quota_429_is_passed_on_with_its_retry_after(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    sage.fail_next("datadelivery", status=429, retry_after=3600)

    answer = call("GET", FILES)

    assert (answer.status, answer.json["error"]) == (429, "quota_exceeded"), answer.body
    assert answer.headers["retry-after"] == "3600"
    assert answer.json["message"].strip()
    assert sage.count("datadelivery") == 1 and sage.count("refresh") == 0  # never retried


def test_a_spent_daily_quota_is_429_on_every_data_route(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    sage.configure(daily_quota=1)
    assert call("GET", FILES).status == 200

    for method, path, body in [
        *_every_folder_route("SEED"),
        ("GET", f"/tenants/acme/uploads/{TRACKING_ID}", None),
    ]:
        answer = call(method, path, json_body=body)
        assert (answer.status, answer.json["error"]) == (429, "quota_exceeded"), (method, path)
        assert 0 < int(answer.headers["retry-after"]) <= 86400


def test_a_retry_after_that_is_no_delay_or_date_is_not_passed_on(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    sage.fail_next("datadelivery", status=429, body={"message": "slow down"})
    answer = call("GET", FILES)
    assert answer.status == 429 and "retry-after" not in answer.headers


# ---------------------------------------------------------------------------------------------- tokens
def test_a_401_refreshes_once_and_retries_once(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    _seed(sage, 2)
    sage.invalidate_access_tokens()

    answer = call("GET", FILES)

    assert answer.status == 200, answer.body
    assert sage.count("refresh") == 1 and sage.count("datadelivery") == 2
    routes = [entry["route"] for entry in sage.requests]
    assert routes == ["datadelivery", "refresh", "datadelivery"]
    used = [e["headers"]["Authorization"] for e in sage.requests if e["route"] == "datadelivery"]
    assert used[1] == f"Bearer {stored('acme').access_token}" != used[0]


@pytest.mark.parametrize("route", range(5), ids=["list", "download", "delete", "upload", "tracking"])
def test_warm_requests_cost_one_table_read_and_one_sage_call(
    sage: Emulator, stack: Stack, monkeypatch: pytest.MonkeyPatch, route: int
) -> None:
    _paired(sage)
    _seed(sage, 2)
    assert call("GET", FILES).status == 200  # warm: clients built, the table's data key opened
    tracking_id = _upload("warm.csv").json["tracking_id"]
    method, path, body = [
        *_every_folder_route("SEED"),
        ("GET", f"/tenants/acme/uploads/{tracking_id}", None),
    ][route]
    path = path.replace("x.txt", "orders-000.csv")
    sage.clear_requests()

    with aws_calls(monkeypatch) as calls:
        answer = call(method, path, json_body=body)

    assert answer.status < 300, answer.body
    expected = Counter({"dynamodb:BatchGetItem": 1})  # the pairing and the app's breaker
    if route == 3:
        expected["dynamodb:PutItem"] = 1  # the link handed out, recorded for GET /tenants/{tenant}/uploads
    assert calls == expected, calls
    assert len(sage.requests) == 1


def test_an_unknown_tenant_is_404_not_paired(sage: Emulator, stack: Stack) -> None:
    for method, path, body in [
        *_every_folder_route("SEED"),
        ("GET", f"/tenants/acme/uploads/{TRACKING_ID}", None),
    ]:
        answer = call(method, path, json_body=body)
        assert (answer.status, answer.json["error"]) == (404, "not_paired"), (method, path)
    assert sage.requests == []


def test_a_refused_grant_is_409_pairing_suspended(sage: Emulator, stack: Stack) -> None:
    tune(hold_seconds=0.0)  # alone on its gateway: judged at once, as after the hour a refusal is held
    _paired(sage)
    sage.revoke(ACME)
    sage.invalidate_access_tokens()

    first = call("GET", FILES)

    assert (first.status, first.json["error"]) == (409, "pairing_suspended"), first.body
    assert sage.count("refresh") == 1
    requests = len(sage.requests)
    for method, path, body in _every_folder_route("SEED"):
        answer = call(method, path, json_body=body)
        assert (answer.status, answer.json["error"]) == (409, "pairing_suspended"), (method, path)
    assert len(sage.requests) == requests  # known at once while the backoff runs


def test_sage_failing_is_502_and_a_timeout_504(
    sage: Emulator, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGE_X3_TIMEOUT_SECONDS", "0.5")
    _paired(sage)
    sage.fail_next("datadelivery", status=500)
    answer = call("DELETE", f"{FILES}/x.txt")
    assert (answer.status, answer.json["error"]) == (502, "upstream_error")
    sage.configure(timeout_sleep=1.5)
    sage.fail_next("datadelivery", timeout=True)
    answer = call("DELETE", f"{FILES}/x.txt")
    assert (answer.status, answer.json["error"]) == (504, "upstream_timeout")


# ---------------------------------------------------------------------------------------------- GET /tenants
def _all_pages(query: dict[str, str]) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        answer = call("GET", "/tenants", query={**query, **({"cursor": cursor} if cursor else {})})
        assert answer.status == 200, answer.body
        assert set(answer.json) <= {"tenants", "cursor"}
        pages.append(answer.json["tenants"])
        cursor = answer.json.get("cursor")
        if cursor is None:
            return pages


def _table(stack: Stack) -> tuple[Any, str]:
    return boto3.client("dynamodb"), stack.refs["PairingsTable"]


def test_tenants_are_listed_a_page_at_a_time_without_tokens_or_the_breaker(
    sage: Emulator, stack: Stack
) -> None:
    tenants = [f"t{index}" for index in range(5)]
    for tenant in tenants:
        pair(sage, tenant, f"https://x3.{tenant}.example")
    sage.invalidate_access_tokens()
    assert call("GET", "/tenants/t0/folders").status == 200  # a refresh: the app's breaker item is written
    dynamodb, table = _table(stack)
    gateway = {"S": gateway_key(normalise(sage.base_url("eu-prod")))}
    assert "Item" in dynamodb.get_item(TableName=table, Key={"tenant": gateway})

    pages = _all_pages({"limit": "2"})

    assert all(len(page) <= 2 for page in pages) and len(pages) >= 3
    listed = [view for page in pages for view in page]
    assert sorted(view["tenant"] for view in listed) == tenants  # each once, never a gateway's record
    for view in listed:
        assert set(view) == TENANT_FIELDS
        assert view == call("GET", f"/tenants/{view['tenant']}").json  # the tenant view, as described
    body = json.dumps(pages)
    for tenant in tenants:
        kept = stored(tenant)
        assert kept.access_token and kept.access_token not in body
        assert kept.refresh_token and kept.refresh_token not in body
    assert "sealed" not in body and 'token"' not in body


def test_tenants_are_listed_by_status(sage: Emulator, stack: Stack) -> None:
    for tenant in ("good", "lapsed", "refused"):
        pair(sage, tenant, f"https://x3.{tenant}.example")
    tune(hold_seconds=0.0)  # alone on its gateway: judged at once, as after the hour a refusal is held
    sage.revoke("https://x3.refused.example")
    sage.invalidate_access_tokens("https://x3.refused.example")
    assert call("GET", "/tenants/refused/folders").json["error"] == "pairing_suspended"
    dynamodb, table = _table(stack)
    dynamodb.update_item(  # still `active` in the table, but its refresh token ran out: it shows `expired`
        TableName=table,
        Key={"tenant": {"S": "lapsed"}},
        UpdateExpression="SET refresh_token_expires_epoch = :past",
        ExpressionAttributeValues={":past": {"N": str(time.time() - 60)}},
    )

    def listed(status: str, limit: str = "50") -> list[str]:
        views = [v for page in _all_pages({"status": status, "limit": limit}) for v in page]
        assert all(view["status"] == status for view in views)
        return sorted(view["tenant"] for view in views)

    assert listed("active") == ["good"]
    assert listed("suspended") == ["refused"]
    assert listed("expired") == ["lapsed"]
    assert listed("expired", limit="1") == ["lapsed"]
    assert sorted(v["tenant"] for page in _all_pages({}) for v in page) == ["good", "lapsed", "refused"]


@pytest.mark.parametrize(
    "query",
    [
        {"status": "deleted"},
        {"status": "ACTIVE"},
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"limit": "-1"},
        {"limit": "٣"},
        {"cursor": "garbage!"},
        {"cursor": _cursor({"status": None, "part": 0, "key": {"tenant": {"S": "a"}, "x": 1}})},
        {"cursor": _cursor({"status": None, "part": 1, "key": None})},
        {"cursor": _cursor({"status": None, "part": 0, "key": None})},
        {"cursor": _cursor({"status": "active", "part": 0, "key": {"tenant": {"S": "a"}}})},
        {"cursor": _cursor({"status": None, "part": True, "key": {"tenant": {"S": "a"}}})},
    ],
)
def test_a_bad_tenants_query_is_400(sage: Emulator, stack: Stack, query: dict[str, str]) -> None:
    answer = call("GET", "/tenants", query=query)
    assert (answer.status, answer.json["error"]) == (400, "bad_request"), answer.body


def test_a_cursor_is_for_the_listing_that_handed_it_out(sage: Emulator, stack: Stack) -> None:
    for tenant in ("a1", "a2", "a3"):
        pair(sage, tenant, f"https://x3.{tenant}.example")
    cursor = call("GET", "/tenants", query={"status": "active", "limit": "1"}).json["cursor"]
    answer = call("GET", "/tenants", query={"cursor": cursor})
    assert (answer.status, answer.json["error"]) == (400, "bad_request")
    assert call("GET", "/tenants", query={"status": "active", "cursor": cursor}).status == 200
