"""GET and DELETE /tenants/{tenant}: the public view of a pairing, never its tokens."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import boto3
import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import call
from tests.support.contract import TENANT_FIELDS
from tests.support.keeper import stored, tune
from tests.support.sage import CLIENT_SECRET, pair
from x3link import wiring

ACME = "https://x3.acme.example"

for _function in ("PairingStartFunction", "CallbackFunction", "TenantsFunction", "FoldersFunction"):
    tpl.load_handler(_function)


def _epoch(text: str) -> float:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _item(stack: Stack, tenant: str) -> dict[str, Any] | None:
    return (
        boto3.client("dynamodb")
        .get_item(TableName=stack.refs["PairingsTable"], Key={"tenant": {"S": tenant}}, ConsistentRead=True)
        .get("Item")
    )


def _secrets_seen(sage: Emulator, stack: Stack, tenants: list[str]) -> set[str]:
    """Every code, token and Authorization value that went to Sage, what is stored, and the client secret."""
    found = {CLIENT_SECRET}
    for entry in sage.requests:
        body = entry["json"] if isinstance(entry["json"], dict) else {}
        for name in ("code", "refresh_token", "client_secret"):
            if isinstance(body.get(name), str):
                found.add(body[name])
        authorization = entry["headers"].get("Authorization")
        if authorization:
            found.add(authorization)
            found.add(authorization.partition(" ")[2])
    for tenant in tenants:
        if _item(stack, tenant):  # the tokens it holds sealed, opened as the functions open them
            kept = stored(tenant)
            found |= {kept.access_token or "", kept.refresh_token or ""}
    current = sage.current_refresh_token(ACME)
    if current:
        found.add(current)
    return {value for value in found if value}


def test_describe_has_exactly_the_contract_fields(sage: Emulator, stack: Stack) -> None:
    before = time.time()
    pair(sage, "acme", ACME, folders=["SEED", "X3"])
    after = time.time()

    answer = call("GET", "/tenants/acme")

    assert answer.status == 200, answer.body
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json
    assert set(body) == TENANT_FIELDS
    assert body["tenant"] == "acme"
    assert body["customer"] == ACME
    assert body["status"] == "active"
    assert body["scope"].split() == ["api.dataDelivery", "folder.SEED", "folder.X3"]
    assert body["folders"] == ["SEED", "X3"]
    assert body["endpoint"] == sage.base_url("eu-prod")
    assert before - 1 <= _epoch(body["paired_at"]) <= after + 1
    assert before + 300 - 2 <= _epoch(body["access_token_expires_at"]) <= after + 300 + 1
    # The emulator's refresh tokens live 30.4 days; the JWT exp is what the app must have read.
    refresh_expiry = _epoch(body["refresh_token_expires_at"])
    assert before + 30.4 * 86400 - 2 <= refresh_expiry <= after + 30.4 * 86400 + 1
    assert body["refreshed_at"] is None


def test_describe_shows_no_token_material(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME)
    sage.invalidate_access_tokens()
    assert call("GET", "/tenants/acme/folders").status == 200  # one refresh: two token generations exist

    answer = call("GET", "/tenants/acme")

    assert answer.status == 200
    assert answer.json["refreshed_at"] is not None
    secrets = _secrets_seen(sage, stack, ["acme"])
    assert len(secrets) >= 6  # code, two access and two refresh tokens, the client secret, ...
    for secret in secrets:
        assert secret not in answer.body
    assert "eyJ" not in answer.body  # no JWT of any kind


def test_refreshed_at_follows_a_refresh(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME)
    first = call("GET", "/tenants/acme").json
    sage.invalidate_access_tokens()
    before = time.time()
    assert call("GET", "/tenants/acme/folders").status == 200

    second = call("GET", "/tenants/acme").json
    assert second["refreshed_at"] is not None
    assert before - 1 <= _epoch(second["refreshed_at"]) <= time.time() + 1
    assert second["paired_at"] == first["paired_at"]
    assert second["status"] == "active"


def test_status_is_suspended_with_sages_refusal_once_sage_refuses_the_grant(
    sage: Emulator, stack: Stack
) -> None:
    pair(sage, "acme", ACME)
    tune(hold_seconds=0.0)  # alone on its gateway: judged at once, as after the hour a refusal is held
    sage.revoke(ACME)
    assert call("GET", "/tenants/acme/folders").status == 409

    answer = call("GET", "/tenants/acme")

    assert answer.status == 200
    assert answer.json["status"] == "suspended"
    assert answer.json["tenant"] == "acme"
    assert set(answer.json) == TENANT_FIELDS | {"last_refusal", "next_attempt_at"}
    assert answer.json["last_refusal"]["status"] == 401
    assert answer.json["last_refusal"]["message"] == "Unauthorised"
    assert answer.json["last_refusal"]["at"].endswith("Z")
    assert answer.json["next_attempt_at"] > answer.json["last_refusal"]["at"]
    item = _item(stack, "acme")
    assert item is not None
    assert "sealed_tokens" in item and stored("acme").refresh_token  # kept: Sage may yet honour it


def test_status_is_expired_past_the_grace_period_and_the_last_refresh_token_is_kept(
    sage: Emulator, stack: Stack
) -> None:
    pair(sage, "acme", ACME)
    pair(sage, "globex", "https://x3.globex.example")
    sage.revoke(ACME)
    tune(grace_seconds=0, hold_seconds=0.0)
    wiring.app_breaker().success_write_interval = 0.0
    assert call("GET", "/tenants/acme/folders").json["error"] == "pairing_suspended"
    # Another pairing refreshes through the same gateway meanwhile: the gateway is healthy, the grant refused.
    sage.invalidate_access_tokens("https://x3.globex.example")
    assert call("GET", "/tenants/globex/folders").status == 200

    assert call("POST", "/tenants/acme/refresh").json["error"] == "pairing_expired"
    answer = call("GET", "/tenants/acme")

    assert answer.json["status"] == "expired"
    assert set(answer.json) == TENANT_FIELDS | {"last_refusal", "next_attempt_at"}
    assert answer.json["next_attempt_at"] is None
    item = _item(stack, "acme")
    assert item is not None and "sealed_tokens" in item and stored("acme").refresh_token
    assert call("GET", "/tenants/acme/folders").json["error"] == "pairing_expired"


@pytest.mark.parametrize("tenant", ["demo%2Ffolders", "..%2F..%2Fdemo", "demo%00", "~app", "-x"])
def test_a_tenant_that_could_never_be_paired_is_400(sage: Emulator, stack: Stack, tenant: str) -> None:
    for method, path in (("GET", f"/tenants/{tenant}"), ("DELETE", f"/tenants/{tenant}")):
        answer = call(method, path)
        assert (answer.status, answer.json["error"]) == (400, "bad_request"), (method, path)
    assert call("GET", f"/tenants/{tenant}/folders").status == 400
    assert call("POST", f"/tenants/{tenant}/refresh").status == 400


def test_status_is_expired_when_the_refresh_token_has_run_out(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME)
    boto3.client("dynamodb").update_item(
        TableName=stack.refs["PairingsTable"],
        Key={"tenant": {"S": "acme"}},
        UpdateExpression="SET refresh_token_expires_epoch = :past",
        ExpressionAttributeValues={":past": {"N": str(time.time() - 1)}},
    )
    requests_before = len(sage.requests)

    answer = call("GET", "/tenants/acme")

    assert answer.status == 200
    assert answer.json["status"] == "expired"
    assert len(sage.requests) == requests_before  # describing never calls Sage


def test_unknown_tenant_is_404_not_paired(sage: Emulator, stack: Stack) -> None:
    answer = call("GET", "/tenants/nobody")
    assert answer.status == 404
    assert answer.json["error"] == "not_paired"
    assert set(answer.json) == {"error", "message"}
    assert answer.json["message"].strip()


def test_a_started_but_unfinished_pairing_is_not_paired(sage: Emulator, stack: Stack) -> None:
    assert call("POST", "/pairings", json_body={"tenant": "acme", "customer": ACME}).status == 201
    assert call("GET", "/tenants/acme").status == 404


def test_delete_forgets_the_tokens(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME)
    pair(sage, "other", "https://x3.other.example")

    answer = call("DELETE", "/tenants/acme")

    assert answer.status == 204
    assert answer.body == ""
    assert _item(stack, "acme") is None
    described = call("GET", "/tenants/acme")
    assert described.status == 404 and described.json["error"] == "not_paired"
    folders = call("GET", "/tenants/acme/folders")
    assert folders.status == 404 and folders.json["error"] == "not_paired"
    # Only that tenant
    assert call("GET", "/tenants/other").json["status"] == "active"
    assert call("GET", "/tenants/other/folders").status == 200


def test_delete_twice_is_404_the_second_time(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME)
    assert call("DELETE", "/tenants/acme").status == 204
    again = call("DELETE", "/tenants/acme")
    assert again.status == 404
    assert again.json == {"error": "not_paired", "message": again.json["message"]}


def test_delete_unknown_tenant_is_404(sage: Emulator, stack: Stack) -> None:
    answer = call("DELETE", "/tenants/nobody")
    assert answer.status == 404
    assert answer.json["error"] == "not_paired"


def test_a_deleted_tenant_can_pair_again(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", ACME, folders=["SEED"])
    assert call("DELETE", "/tenants/acme").status == 204
    pair(sage, "acme", ACME, folders=["X3"])
    assert call("GET", "/tenants/acme").json["folders"] == ["X3"]
