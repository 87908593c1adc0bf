"""Folders, data delivery (list, paging, download redirect, delete) and data ingestion."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from local.sagex3_emulator.models import iso_time
from tests.component.emulator.conftest import FakeClock, Sage


@pytest.fixture
def tokens(sage: Sage) -> dict[str, Any]:
    return sage.pair(folders=["SEED", "X3"], scope="api.dataDelivery api.dataIngestion")


def test_folders_lists_only_granted_ones_with_urls_from_the_base(sage: Sage, tokens: dict[str, Any]) -> None:
    reply = sage.call("GET", sage.url("/folders"), token=tokens["access_token"])
    assert reply.status == 200
    base = sage.emu.base_url()
    assert reply.json() == {
        "folders": [
            {
                "name": name,
                "$urls": {
                    "dataIngestion": f"{base}/dataingestion/{name}/",
                    "dataDelivery": f"{base}/datadelivery/{name}/",
                    "dataService": f"{base}/service/X3CLOUDV2_{name}/api",
                },
            }
            for name in ("SEED", "X3")
        ]
    }


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer a.b.c"},
    ],
)
def test_folders_without_a_good_token_is_401(sage: Sage, headers: dict[str, str]) -> None:
    reply = sage.call("GET", sage.url("/folders"), headers=headers)
    assert reply.status == 401 and reply.json() == {"message": "Unauthorised"}


def test_access_token_is_refused_by_another_region(sage: Sage, tokens: dict[str, Any]) -> None:
    assert sage.call("GET", sage.url("/folders", "us-prod"), token=tokens["access_token"]).status == 401


def test_delivery_listing_pages_and_links(sage: Sage, tokens: dict[str, Any], clock: FakeClock) -> None:
    for index in range(120):
        sage.emu.put_delivery_file(sage.ACME, "SEED", f"file-{index:03}.txt", f"line {index}\n".encode())
    first = sage.call("GET", sage.url("/datadelivery/SEED/"), token=tokens["access_token"]).json()
    assert first["isTruncated"] is True and first["maxItems"] == "50" and first["itemsCount"] == 50
    assert first["$next"] == "SEED?page=2" and "$previous" not in first
    item = first["items"][0]
    assert item["key"] == "file-000.txt"
    assert item["downloadUrl"] == "SEED?filename=file-000.txt" and item["deleteUrl"] == item["downloadUrl"]
    assert item["size"] == len(b"line 0\n") and len(item["checksum"]) == 32
    assert item["lastModified"].endswith("Z") and item["lastModified"].startswith("2023-11-14T")
    second = sage.call("GET", sage.url("/datadelivery/SEED/?page=2"), token=tokens["access_token"]).json()
    assert second["$previous"] == "SEED?page=1" and second["$next"] == "SEED?page=3"
    third = sage.call("GET", sage.url("/datadelivery/SEED?page=3"), token=tokens["access_token"]).json()
    assert third["isTruncated"] is False and third["itemsCount"] == 20 and "$next" not in third
    assert third["items"][-1]["key"] == "file-119.txt"
    empty = sage.call("GET", sage.url("/datadelivery/X3/"), token=tokens["access_token"]).json()
    assert empty["items"] == [] and empty["itemsCount"] == 0
    bad = sage.call("GET", sage.url("/datadelivery/SEED/?page=zero"), token=tokens["access_token"])
    assert bad.status == 400


def test_download_redirects_to_a_presigned_like_url_then_delete(
    sage: Sage, tokens: dict[str, Any], clock: FakeClock
) -> None:
    sage.emu.put_delivery_file(sage.ACME, "SEED", "orders 1.csv", b"a;b\n1;2\n")
    reply = sage.call(
        "GET", sage.url("/datadelivery/SEED/?filename=orders%201.csv"), token=tokens["access_token"]
    )
    assert reply.status == 302
    location = reply.header("Location")
    assert location is not None
    assert location.startswith(sage.emu.base_url().removesuffix("/v1") + "/_files/")
    download = sage.call("GET", location)  # no token needed
    assert download.status == 200 and download.body == b"a;b\n1;2\n"
    missing = sage.call("GET", sage.url("/datadelivery/SEED/?filename=nope"), token=tokens["access_token"])
    assert missing.status == 404
    deleted = sage.call(
        "DELETE", sage.url("/datadelivery/SEED/?filename=orders%201.csv"), token=tokens["access_token"]
    )
    assert deleted.status == 204 and deleted.body == b""
    assert sage.emu.delivery_files(sage.ACME, "SEED") == {}
    again = sage.call(
        "DELETE", sage.url("/datadelivery/SEED/?filename=orders%201.csv"), token=tokens["access_token"]
    )
    assert again.status == 404
    assert sage.call("GET", location).status == 404  # the link names a key that is gone
    # The presigned-like link lives one hour; after that S3 would refuse it.
    clock.advance(3601)
    assert sage.call("GET", location).status == 403


def test_folder_not_granted_is_403(sage: Sage, tokens: dict[str, Any]) -> None:
    sage.emu.put_delivery_file(sage.ACME, "DEMO", "x.txt", b"x")
    for method, path in (
        ("GET", "/datadelivery/DEMO/"),
        ("GET", "/datadelivery/DEMO/?filename=x.txt"),
        ("DELETE", "/datadelivery/DEMO/?filename=x.txt"),
        ("POST", "/dataingestion/DEMO?filename=y.txt"),
    ):
        reply = sage.call(method, sage.url(path), token=tokens["access_token"])
        assert reply.status == 403 and set(reply.json()) == {"message"}
    assert sage.call("GET", sage.url("/datadelivery/SEED/")).status == 401


def test_ingestion_flow_and_tracking(sage: Sage, tokens: dict[str, Any]) -> None:
    reply = sage.call("POST", sage.url("/dataingestion/SEED?filename=in.csv"), token=tokens["access_token"])
    assert reply.status == 200
    body = reply.json()
    assert set(body) == {"uploadUrl", "trackingUrl"}
    origin = sage.emu.base_url().removesuffix("/v1")
    assert body["uploadUrl"].startswith(f"{origin}/_upload/")
    assert body["trackingUrl"].startswith(f"{sage.emu.base_url()}/dataingestion/tracking/")
    tracking = sage.call("GET", body["trackingUrl"], token=tokens["access_token"]).json()
    assert tracking["status"] == "awaiting_upload"
    assert tracking["$url"] == body["trackingUrl"] and tracking["fileName"] == "in.csv"
    acme = sage.emu.get_customer(sage.ACME)
    assert acme is not None
    assert tracking["folder"] == "SEED" and tracking["customerCode"] == acme.config_id
    assert {"createdAt", "statusMessage", "lastStatusUpdate"} <= set(tracking)

    put = sage.call("PUT", body["uploadUrl"], body=b"a;b\n1;2\n")
    assert put.status == 200
    assert sage.emu.ingested(sage.ACME, "SEED") == {"in.csv": b"a;b\n1;2\n"}
    assert (
        sage.call("GET", body["trackingUrl"], token=tokens["access_token"]).json()["status"]
        == "awaiting_scan"
    )
    exists = sage.call("POST", sage.url("/dataingestion/SEED?filename=in.csv"), token=tokens["access_token"])
    assert exists.status == 403 and exists.json() == {"message": "File already exists"}
    other = sage.pair(customer=sage.GLOBEX)
    foreign = sage.call(
        "GET",
        body["trackingUrl"].replace(sage.emu.base_url(), sage.emu.base_url("us-prod")),
        token=other["access_token"],
    )
    assert foreign.status == 404


def test_ingestion_refusals(sage: Sage, tokens: dict[str, Any]) -> None:
    missing = sage.call("POST", sage.url("/dataingestion/SEED"), token=tokens["access_token"])
    assert missing.status == 400 and missing.json() == {"message": "Missing required request parameters"}
    sage.emu.configure(upload_limit=16)
    body = sage.call(
        "POST", sage.url("/dataingestion/X3?filename=big.txt"), token=tokens["access_token"]
    ).json()
    assert sage.call("PUT", body["uploadUrl"], body=b"x" * 17).status == 413
    assert sage.call("PUT", body["uploadUrl"], body=b"\x00\xff binary").status == 400
    assert sage.emu.ingested(sage.ACME, "X3") == {}
    assert sage.call("PUT", body["uploadUrl"], body=b"small\n").status == 200
    assert sage.call("PUT", body["uploadUrl"].replace("/_upload/", "/_upload/x"), body=b"a").status == 403


def _upload(sage: Sage, token: str, filename: str, content: bytes) -> str:
    body = sage.call("POST", sage.url(f"/dataingestion/SEED?filename={filename}"), token=token).json()
    assert sage.call("PUT", body["uploadUrl"], body=content).status == 200
    tracking_url: str = body["trackingUrl"]
    return tracking_url


@pytest.mark.parametrize(
    ("filename", "content", "final"),
    [
        ("clean.csv", b"a;b\n", "integrated"),
        ("eicar-sample.txt", b"harmless\n", "virus_detected"),
        ("carrier.txt", b"prefix EICAR-STANDARD-ANTIVIRUS-TEST-FILE suffix\n", "virus_detected"),
    ],
)
def test_tracking_reaches_a_final_status_once_the_scan_delay_passed(
    sage: Sage, tokens: dict[str, Any], clock: FakeClock, filename: str, content: bytes, final: str
) -> None:
    sage.emu.configure(scan_delay=2)
    tracking_url = _upload(sage, tokens["access_token"], filename, content)
    uploaded_at = clock.now

    def tracked() -> dict[str, Any]:
        document: dict[str, Any] = sage.call("GET", tracking_url, token=tokens["access_token"]).json()
        return document

    clock.advance(1.9)
    assert tracked()["status"] == "awaiting_scan"
    clock.advance(0.2)
    done = tracked()
    assert done["status"] == final and done["statusMessage"]
    assert done["lastStatusUpdate"] == iso_time(uploaded_at + 2)  # when the scan ended, not when it was read
    sage.emu.set_tracking_status(tracking_url.rsplit("/", 1)[1], "imported", "set by a test")
    assert tracked()["status"] == "imported"  # a final status stays what it was set to


def test_presigned_links_say_until_when_they_work(
    sage: Sage, tokens: dict[str, Any], clock: FakeClock
) -> None:
    sage.emu.put_delivery_file(sage.ACME, "SEED", "a.txt", b"a")
    sage.emu.configure(link_lifetime=900, download_redirect_status=307)
    reply = sage.call("GET", sage.url("/datadelivery/SEED/?filename=a.txt"), token=tokens["access_token"])
    assert reply.status == 307
    location = reply.header("Location")
    assert location is not None
    query = parse_qs(urlsplit(location).query)
    stamp = datetime.fromtimestamp(clock.now, UTC).strftime("%Y%m%dT%H%M%SZ")
    assert (query["X-Amz-Date"], query["X-Amz-Expires"]) == ([stamp], ["900"])
    upload = sage.call("POST", sage.url("/dataingestion/SEED?filename=b.txt"), token=tokens["access_token"])
    assert parse_qs(urlsplit(upload.json()["uploadUrl"]).query)["X-Amz-Expires"] == ["900"]


def test_a_spent_daily_quota_is_429_until_the_next_utc_day(
    sage: Sage, tokens: dict[str, Any], clock: FakeClock
) -> None:
    sage.emu.configure(daily_quota=2)
    listing = sage.url("/datadelivery/SEED/")
    for _ in range(2):
        assert sage.call("GET", listing, token=tokens["access_token"]).status == 200
    spent = sage.call("GET", listing, token=tokens["access_token"])
    assert spent.status == 429 and spent.json() == {"message": "Daily request quota exceeded"}
    midnight = (int(clock.now // 86400) + 1) * 86400
    assert spent.header("Retry-After") == str(math.ceil(midnight - clock.now))
    other = sage.pair(customer=sage.GLOBEX)  # another customer's quota is its own
    assert sage.call("GET", listing, token=other["access_token"]).status != 429
    clock.now = midnight
    fresh = sage.pair(folders=["SEED"])  # the access token of the day before has expired
    assert sage.call("GET", listing, token=fresh["access_token"]).status == 200
