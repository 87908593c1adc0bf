"""The data routes over HTTP, on a stack started as `make run` starts it, with Sage X3 played by an emulator
of this process: files listed a page at a time, fetched through Sage's presigned links and deleted, files
sent in and tracked to a final status, and a folder the customer did not grant refused without Sage."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import urllib3

from local.sagex3_emulator import Emulator
from tests.e2e.conftest import RunningStack, names
from tests.support.contract import TENANT_FIELDS

pytestmark = pytest.mark.e2e


def _files_path(tenant: str, folder: str = "SEED", cursor: str | None = None) -> str:
    path = f"/tenants/{tenant}/folders/{folder}/files"
    return f"{path}?{urlencode({'cursor': cursor})}" if cursor else path


def test_a_folder_is_listed_across_pages(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("pages")
    stack.pair(tenant, customer, folders=["SEED"])
    files = {f"export-{index:03}.csv": f"{index}\n".encode() for index in range(120)}
    for name, content in files.items():
        sage.put_delivery_file(customer, "SEED", name, content)
    sage.clear_requests()

    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        answer = stack.call("GET", _files_path(tenant, cursor=cursor))
        assert answer.status == 200, answer.body
        pages.append(answer.json()["files"])
        cursor = answer.json().get("cursor")
        if not cursor:
            break

    assert [len(page) for page in pages] == [50, 50, 20]
    assert [item["name"] for page in pages for item in page] == sorted(files)
    assert sage.count("datadelivery") == 3 and sage.count("token") == 0


def test_a_file_is_downloaded_then_deleted(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("download")
    stack.pair(tenant, customer, folders=["SEED"])
    sage.put_delivery_file(customer, "SEED", "orders 2025.csv", b"id;qty\n1;3\n")
    path = f"{_files_path(tenant)}/{quote('orders 2025.csv')}"

    link = stack.call("GET", path)

    assert link.status == 200, link.body
    assert set(link.json()) == {"url", "expires_at"}
    fetched = urllib3.request("GET", link.json()["url"], redirect=False)
    assert (fetched.status, fetched.data) == (200, b"id;qty\n1;3\n")

    deleted = stack.call("DELETE", path)

    assert (deleted.status, deleted.body) == (204, b"")
    assert stack.call("GET", _files_path(tenant)).json() == {"files": []}
    assert (stack.call("GET", path).status, sage.delivery_files(customer, "SEED")) == (404, {})


def test_a_file_is_uploaded_and_tracked_to_a_final_status(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("upload")
    stack.pair(tenant, customer, folders=["SEED"])
    sage.configure(scan_delay=0.5)

    requested = stack.call(
        "POST", f"/tenants/{tenant}/folders/SEED/uploads", json_body={"filename": "in.csv"}
    )

    assert requested.status == 201, requested.body
    upload = requested.json()
    assert urllib3.request("PUT", upload["upload_url"], body=b"item;qty\nA;1\n").status == 200
    assert sage.ingested(customer, "SEED") == {"in.csv": b"item;qty\nA;1\n"}
    statuses = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tracked = stack.call("GET", f"/tenants/{tenant}/uploads/{upload['tracking_id']}")
        assert tracked.status == 200, tracked.body
        statuses.append(tracked.json()["status"])
        if statuses[-1] not in ("awaiting_upload", "awaiting_scan"):
            break
        time.sleep(0.2)
    assert statuses[0] == "awaiting_scan" and statuses[-1] == "integrated", statuses
    assert tracked.json()["filename"] == "in.csv" and tracked.json()["folder"] == "SEED"

    again = stack.call("POST", f"/tenants/{tenant}/folders/SEED/uploads", json_body={"filename": "in.csv"})
    assert (again.status, again.json()["error"]) == (409, "file_exists")


def test_a_folder_not_granted_is_403_and_sage_is_not_called(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("grant")
    stack.pair(tenant, customer, folders=["SEED"])
    sage.put_delivery_file(customer, "DEMO", "secret.csv", b"x\n")
    sage.clear_requests()

    for method, path, body in [
        ("GET", _files_path(tenant, "DEMO"), None),
        ("GET", f"{_files_path(tenant, 'DEMO')}/secret.csv", None),
        ("DELETE", f"{_files_path(tenant, 'DEMO')}/secret.csv", None),
        ("POST", f"/tenants/{tenant}/folders/DEMO/uploads", {"filename": "x.csv"}),
    ]:
        answer = stack.call(method, path, json_body=body)
        assert (answer.status, answer.json()["error"]) == (403, "folder_not_granted"), (method, path)

    assert sage.requests == []
    assert sage.delivery_files(customer, "DEMO") == {"secret.csv": b"x\n"}


def test_a_name_that_leaves_its_folder_is_400(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("names")
    stack.pair(tenant, customer, folders=["SEED"])
    sage.clear_requests()
    for name in ("%2E%2E", "a%2Fb", "%2F", "a%5Cb", "%00"):  # a signed ".." is read as a dot-segment
        answer = stack.call("GET", f"{_files_path(tenant)}/{name}")
        assert (answer.status, answer.json()["error"]) == (400, "bad_request"), name
    assert sage.requests == []


def test_tenants_are_listed_without_tokens(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("listed")
    stack.pair(tenant, customer)
    views: list[dict[str, Any]] = []
    path = "/tenants?limit=1&status=active"
    while path:
        answer = stack.call("GET", path)
        assert answer.status == 200, answer.body
        views += answer.json()["tenants"]
        cursor = answer.json().get("cursor")
        path = f"/tenants?{urlencode({'limit': 1, 'status': 'active', 'cursor': cursor})}" if cursor else ""
    (mine,) = [view for view in views if view["tenant"] == tenant]
    assert set(mine) == TENANT_FIELDS and mine["status"] == "active"
    assert all(view["tenant"] != "~app" for view in views)
