"""GET /tenants/{tenant}/activity: a pairing's history, written from the change streams by
ActivityRecorderFunction, newest first, a page at a time; never a token in the table or the answer."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from local.triggers import Triggers
from tests.support.api import call, invoke
from tests.support.keeper import stored
from tests.support.sage import CLIENT_SECRET, pair
from x3link.web import cursors

ACME = "https://x3.acme.example"
SCHEDULED = json.loads((Path(__file__).parents[2] / "events" / "scheduled.json").read_text())

for _function in (
    "PairingStartFunction",
    "CallbackFunction",
    "TenantsFunction",
    "ActivityFunction",
    "FoldersFunction",
    "ExportPollFunction",
    "ExportWorkerFunction",
    "OutboxWorkerFunction",
):
    tpl.load_handler(_function)


def _recorded(stack: Stack) -> None:
    """Hand the streams' records so far to ActivityRecorderFunction, as Lambda's mappings would."""
    deliveries = Triggers(stack, types=("DynamoDB",), functions=("ActivityRecorderFunction",)).pump()
    assert all(delivery.ok for delivery in deliveries)


def _activity(tenant: str, **query: str) -> dict[str, Any]:
    answer = call("GET", f"/tenants/{tenant}/activity", query=query)
    assert answer.status == 200, answer.body
    listed: dict[str, Any] = answer.json
    return listed


def _table(stack: Stack) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = boto3.client("dynamodb").scan(TableName=stack.refs["ActivityTable"])[
        "Items"
    ]
    return items


def test_a_pairings_history_is_listed_newest_first_and_holds_no_token(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME)
    tokens = {stored("acme").access_token, stored("acme").refresh_token}
    assert call("POST", "/tenants/acme/refresh").status == 200
    tokens |= {stored("acme").access_token, stored("acme").refresh_token}
    assert call("DELETE", "/tenants/acme").status == 204

    _recorded(stack)
    activity = _activity("acme")["activity"]

    assert [entry["type"] for entry in activity] == ["deleted", "refresh", "paired"]
    assert activity[1]["outcome"] == "refreshed"
    assert activity[2]["reason"] == "paired" and activity[2]["endpoint"].endswith("/v1")
    assert all(entry["at"].endswith("Z") for entry in activity)
    dumped = json.dumps(_table(stack))
    secrets = {token for token in tokens if token} | {CLIENT_SECRET}
    assert len(secrets) >= 3
    for secret in secrets:
        assert secret not in dumped
    for name in ("access_token", "refresh_token", "sealed_tokens", "lease_owner"):
        assert name not in dumped


def _worked(stack: Stack, function: str) -> None:
    """Hand a file pipeline's queue to its worker until none is left, as Lambda's queue trigger would."""
    deliveries = Triggers(stack, types=("SQS",), functions=(function,)).pump(max_rounds=50)
    assert deliveries and all(delivery.ok for delivery in deliveries), [d.error for d in deliveries]


def test_an_export_delivered_then_an_outbox_file_rejected_are_listed_newest_first(
    sage: Emulator, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for function in ("ExportWorkerFunction", "OutboxWorkerFunction"):
        for key, value in stack.function_environment(function).items():
            monkeypatch.setenv(key, value)
    pair(sage, "acme", ACME, folders=["SEED"])
    tokens = {stored("acme").access_token, stored("acme").refresh_token}
    assert call("PUT", "/tenants/acme/folders/SEED/sync", json_body={"enabled": True}).status == 200
    sage.put_delivery_file(ACME, "SEED", "orders.csv", b"order;1\n")
    invoke("ExportPollFunction", SCHEDULED)
    _worked(stack, "ExportWorkerFunction")
    assert sage.delivery_files(ACME, "SEED") == {}  # stored in the bucket, then deleted at Sage
    time.sleep(0.2)  # the outbox's times are whole milliseconds: the rejection comes clearly after
    binary = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    boto3.client("s3").put_object(Bucket=stack.refs["OutboxBucket"], Key="acme/SEED/photo.png", Body=binary)
    _worked(stack, "OutboxWorkerFunction")

    _recorded(stack)
    _recorded(stack)  # every stream record delivered again: the same entries, no more
    activity = _activity("acme")["activity"]

    assert [entry["type"] for entry in activity] == ["file_rejected", "file_delivered", "paired"]
    rejected, delivered = activity[0], activity[1]
    assert {k: rejected.get(k) for k in ("folder", "filename", "key", "reason", "size")} == {
        "folder": "SEED",
        "filename": "photo.png",
        "key": "acme/SEED/photo.png",
        "reason": "not_text",
        "size": len(binary),
    }
    assert {k: delivered.get(k) for k in ("folder", "filename", "key", "size")} == {
        "folder": "SEED",
        "filename": "orders.csv",
        "key": "acme/SEED/orders.csv",
        "size": len(b"order;1\n"),
    }
    assert "reason" not in delivered
    assert _activity("globex") == {"activity": []}
    dumped = json.dumps(_table(stack))
    for secret in {token for token in tokens if token} | {CLIENT_SECRET}:
        assert secret not in dumped
    for name in ("access_token", "refresh_token", "sealed_tokens", "lease_owner", "checksum"):
        assert name not in dumped


def test_a_redelivered_record_rewrites_the_same_entries(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME)
    _recorded(stack)
    _recorded(stack)  # a second reader from the streams' start: every record delivered again

    assert [entry["type"] for entry in _activity("acme")["activity"]] == ["paired"]
    assert len(_table(stack)) == 1


def test_the_activity_pages_with_a_cursor_of_its_own_tenant(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME)
    for _ in range(3):
        assert call("POST", "/tenants/acme/refresh").status == 200
    _recorded(stack)

    first = _activity("acme", limit="3")
    rest = _activity("acme", limit="3", cursor=first["cursor"])

    assert [entry["type"] for entry in first["activity"]] == ["refresh"] * 3
    assert [entry["type"] for entry in rest["activity"]] == ["paired"]
    assert "cursor" not in rest or _activity("acme", cursor=rest["cursor"])["activity"] == []
    other = call("GET", "/tenants/globex/activity", query={"cursor": first["cursor"]})
    assert (other.status, other.json["error"]) == (400, "bad_request")


def test_an_unknown_tenant_has_no_activity(stack: Stack) -> None:
    assert _activity("nobody") == {"activity": []}


@pytest.mark.parametrize(
    "query",
    [
        {"cursor": "***"},
        {"cursor": cursors.encode({"tenant": {"S": "acme"}, "at_id": {"S": "x"}})},
        {"cursor": cursors.encode({"tenant": {"S": "acme"}})},
        {"limit": "0"},
        {"limit": "101"},
    ],
)
def test_a_bad_cursor_or_limit_is_a_bad_request(stack: Stack, query: dict[str, str]) -> None:
    answer = call("GET", "/tenants/acme/activity", query=query)

    assert answer.status == 400
    assert answer.json["error"] == "bad_request"


def test_a_bad_tenant_is_a_bad_request(stack: Stack) -> None:
    answer = call("GET", "/tenants/%20x/activity")

    assert (answer.status, answer.json["error"]) == (400, "bad_request")
