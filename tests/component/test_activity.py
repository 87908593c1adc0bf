"""GET /tenants/{tenant}/activity: a pairing's history, written from the change streams by
ActivityRecorderFunction, newest first, a page at a time; never a token in the table or the answer."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from local.triggers import Triggers
from tests.support.api import call
from tests.support.keeper import stored
from tests.support.sage import CLIENT_SECRET, pair
from x3link import cursors

ACME = "https://x3.acme.example"

for _function in ("PairingStartFunction", "CallbackFunction", "TenantsFunction", "ActivityFunction"):
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
