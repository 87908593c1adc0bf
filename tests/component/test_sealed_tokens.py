"""Pairing tokens sealed per tenant (tokens/sealing.py): a dump of every table and queue shows no token,
a blob moved to another tenant does not open (and is never overwritten for it), warm reads and refreshes
make no KMS call, TenantsFunction never opens tokens, and items from before sealing keep working until
their next write seals them."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import boto3
import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from local.triggers import Triggers
from tests.support.api import call
from tests.support.aws_faults import ERROR, AwsCalls, Fault
from tests.support.iam import Request, Resources, inline_statements
from tests.support.keeper import PARKING, keeper, stored, sweep, tune
from tests.support.sage import callback, pair, start_browser
from x3link import wiring
from x3link.errors import ConfigurationError
from x3link.tokens.sealing import PURPOSE, encryption_context

ACME = "https://x3.acme.example"
GLOBEX = "https://x3.globex.example"


def item(stack: Stack, tenant: str) -> dict[str, Any]:
    found: dict[str, Any] = (
        boto3.client("dynamodb")
        .get_item(TableName=stack.refs["PairingsTable"], Key={"tenant": {"S": tenant}}, ConsistentRead=True)
        .get("Item", {})
    )
    return found


def kms_by_function(calls: AwsCalls, since: int = 0, purpose: str = PURPOSE) -> Counter[str]:
    """`<function> <operation>` of each KMS call under `purpose` made by a function since call `since`."""
    return Counter(
        f"{made.function} {made.operation}"
        for made in calls.calls[since:]
        if made.service == "kms"
        and made.function is not None
        and (made.params.get("EncryptionContext") or {}).get("purpose") == purpose
    )


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every access and refresh token that Sage's token answers brought to the bundle."""
    from x3link.sage.client import SageX3Client

    tokens: list[str] = []
    original = SageX3Client.token

    def token(self: SageX3Client, *args: Any, **kwargs: Any) -> Any:
        answer = original(self, *args, **kwargs)
        for name in ("access_token", "refresh_token"):
            if isinstance(answer, dict) and isinstance(answer.get(name), str):
                tokens.append(answer[name])
        return answer

    monkeypatch.setattr(SageX3Client, "token", token)
    return tokens


def park_rotated_tokens(calls: AwsCalls, tenant: str) -> None:
    """A refresh whose commit the table refuses: Sage rotates, the new tokens wait in the rescue queue."""
    commit = calls.fail(
        Fault(
            "dynamodb",
            "UpdateItem",
            ERROR,
            lambda p: "refreshed_at = :now" in p["UpdateExpression"],
            times=None,
        )
    )
    keeper(**PARKING).refresh(stored(tenant))
    calls.heal()
    assert commit.injected >= 1
    time.sleep(max(0.0, (stored(tenant).lease_until or 0) - time.time()) + 0.05)


def dump(stack: Stack) -> tuple[str, int]:
    """Every item of every table of template.yaml and every message of every queue, as text; and how many
    messages there were."""
    dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
    parts: list[str] = []
    messages = 0
    for logical_id, resource in tpl.created_resources(stack.refs).items():
        if resource["Type"] == "AWS::DynamoDB::Table":
            for page in dynamodb.get_paginator("scan").paginate(TableName=stack.refs[logical_id]):
                for found in page["Items"]:
                    parts.append(repr(found))
                    parts += [v["B"].decode("latin-1") for v in found.values() if "B" in v]
        elif resource["Type"] == "AWS::SQS::Queue":
            answer = sqs.receive_message(
                QueueUrl=stack.refs[logical_id],
                MaxNumberOfMessages=10,
                VisibilityTimeout=0,
                MessageAttributeNames=["All"],
            )
            parts += [json.dumps(message) for message in answer.get("Messages", [])]
            messages += len(answer.get("Messages", []))
    return "\n".join(parts), messages


def pieces(tokens: list[str]) -> set[str]:
    """The tokens, and each JWT's payload and signature on their own (its header is the same for all)."""
    found = set(tokens)
    for token in tokens:
        found |= {part for part in token.split(".") if len(part) >= 16 and not part.startswith("eyJhbGciOi")}
    return found


# ---------------------------------------------------------------------------------------------- the stack
def test_a_dump_of_every_table_and_queue_holds_no_token(
    sage: Emulator, stack: Stack, calls: AwsCalls, received: list[str]
) -> None:
    sage.configure(refresh_lifetime=3 * 86400)  # due for the sweep
    pair(sage, "acme", ACME)
    pair(sage, "globex", GLOBEX)
    sage.invalidate_access_tokens(ACME)
    assert call("GET", "/tenants/acme/folders").status == 200  # a 401, a refresh, a commit
    tune(hold_seconds=0.0)  # alone on its gateway: judged at once, as after the hour a refusal is held
    sage.revoke(GLOBEX)
    sage.invalidate_access_tokens(GLOBEX)
    assert call("GET", "/tenants/globex/folders").json["error"] == "pairing_suspended"
    park_rotated_tokens(calls, "acme")
    parked, parked_messages = dump(stack)

    deliveries = Triggers(stack, types=("SQS",), load_handler=tpl.load_handler).pump()  # stored now
    summary = sweep()
    after, _ = dump(stack)

    assert sum(len(d.records) for d in deliveries) == 1
    assert stored("acme").refresh_token == sage.current_refresh_token(ACME)
    assert summary["refreshed"] == 1, summary
    secrets = pieces(received)
    assert len(received) >= 10, received  # 2 pairings, the query's refresh, the parked one, the sweep's
    assert "sealed_tokens" in parked and parked_messages == 1  # there was something to look at
    for where, text in (("with tokens parked", parked), ("after the rescue and a sweep", after)):
        leaked = [secret[:12] + "..." for secret in secrets if secret in text]
        assert not leaked, f"a dump {where} holds tokens: {leaked}"
    for tenant in ("acme", "globex"):
        assert {"access_token", "refresh_token"}.isdisjoint(item(stack, tenant)), tenant


def test_a_blob_copied_to_another_tenant_is_refused_clearly_and_left_as_it_is(
    sage: Emulator, stack: Stack, calls: AwsCalls
) -> None:
    pair(sage, "acme", ACME)
    pair(sage, "globex", GLOBEX)
    assert call("GET", "/tenants/acme/folders").status == 200  # FoldersFunction holds acme's data key
    copied = item(stack, "acme")["sealed_tokens"]
    boto3.client("dynamodb").update_item(
        TableName=stack.refs["PairingsTable"],
        Key={"tenant": {"S": "globex"}},
        UpdateExpression="SET sealed_tokens = :copied",
        ExpressionAttributeValues={":copied": copied},
    )
    before = item(stack, "globex")
    sage.clear_requests()

    answer = call("GET", "/tenants/globex/folders")  # warm: acme's key is cached, and not for globex
    wiring.reset()
    cold = call("GET", "/tenants/globex/folders")  # cold: KMS refuses it
    boto3.client("dynamodb").update_item(  # due for a refresh: still refused before any lease or Sage call
        TableName=stack.refs["PairingsTable"],
        Key={"tenant": {"S": "globex"}},
        UpdateExpression="SET access_token_expires_epoch = :now",
        ExpressionAttributeValues={":now": {"N": str(time.time())}},
    )
    due = call("GET", "/tenants/globex/folders")
    retried = call("POST", "/tenants/globex/refresh")

    for refused in (answer, cold, due, retried):
        assert (refused.status, refused.json["error"]) == (500, "tokens_unreadable"), refused.body
        assert "tokens" in refused.json["message"] and "globex" not in refused.json["message"]
    assert sage.requests == []  # nothing was sent to Sage for globex
    after = item(stack, "globex")
    assert after["sealed_tokens"] == copied
    assert {k: v for k, v in after.items() if k != "access_token_expires_epoch"} == {
        k: v for k, v in before.items() if k != "access_token_expires_epoch"
    }
    assert call("GET", "/tenants/globex").json["status"] == "active"  # its state is still readable
    assert call("GET", "/tenants/acme/folders").status == 200  # and acme's blob still works for acme


def test_warm_folder_queries_and_refreshes_make_no_kms_call(
    sage: Emulator, stack: Stack, calls: AwsCalls
) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    mark = len(calls.calls)
    pair(sage, "acme", ACME)
    assert kms_by_function(calls, mark) == Counter({"CallbackFunction GenerateDataKey": 1})

    mark = len(calls.calls)
    assert call("GET", "/tenants/acme/folders").status == 200  # a cold FoldersFunction
    assert kms_by_function(calls, mark) == Counter({"FoldersFunction Decrypt": 1})

    mark = len(calls.calls)
    for _ in range(3):
        assert call("GET", "/tenants/acme/folders").status == 200
    sage.invalidate_access_tokens()
    assert call("GET", "/tenants/acme/folders").status == 200  # a 401, a refresh, a commit, a retry
    assert sage.count("refresh") == 1
    assert kms_by_function(calls, mark) == Counter()  # warm: neither query nor refresh asks KMS

    mark = len(calls.calls)
    assert sweep()["refreshed"] == 1  # a cold RefreshWorkerFunction: opens once, seals with that key
    assert kms_by_function(calls, mark) == Counter({"RefreshWorkerFunction Decrypt": 1})

    mark = len(calls.calls)
    assert call("GET", "/tenants/acme").status == 200
    assert call("DELETE", "/tenants/acme").status == 204
    assert [made for made in calls.calls[mark:] if made.service == "kms"] == []


def test_parking_asks_kms_nothing_and_the_rescue_stores_with_the_key_it_opened(
    sage: Emulator, stack: Stack, calls: AwsCalls
) -> None:
    pair(sage, "acme", ACME)
    mark = len(calls.calls)
    park_rotated_tokens(calls, "acme")
    # The data key prepared before the refresh token was spent seals the parked set: once the commit has
    # failed, parking (which happens just when AWS is failing) makes no KMS call at all.
    made = calls.calls[mark:]
    commit = next(
        i for i, c in enumerate(made) if c.operation == "UpdateItem" and "refreshed_at" in str(c.params)
    )
    park = next(i for i, c in enumerate(made) if c.operation == "SendMessage")
    assert commit < park and [c for c in made[commit:] if c.service == "kms"] == []
    mark = len(calls.calls)

    Triggers(stack, types=("SQS",), load_handler=tpl.load_handler).pump()

    assert stored("acme").refresh_token == sage.current_refresh_token(ACME)
    # A cold trigger opens the parked set's data key once, and seals what it stores with that same key.
    assert kms_by_function(calls, mark) == Counter({"TokenRescueFunction Decrypt": 1})
    assert kms_by_function(calls, mark, purpose="token-rescue") == Counter()


def test_tenants_function_reads_metadata_only_and_may_not_open_tokens(
    sage: Emulator, stack: Stack, calls: AwsCalls
) -> None:
    pair(sage, "acme", ACME)
    mark = len(calls.calls)

    answer = call("GET", "/tenants/acme")

    assert answer.status == 200 and answer.json["status"] == "active"
    assert [made for made in calls.calls[mark:] if made.service == "kms"] == []
    store = wiring.pairing_records()
    pairing = store.get("acme")
    assert pairing is not None and pairing.access_token is None and pairing.refresh_token is None
    with pytest.raises(ConfigurationError):  # its store has nothing to open tokens with
        store.open(pairing)
    # Nor does its role allow it, nor the stream's reader: only the functions that use tokens may.
    resources = Resources.of(stack)
    key = resources.arn(stack.refs["DataKey"])
    context = tuple(
        sorted(
            (f"kms:EncryptionContext:{k}", v)
            for k, v in encryption_context(stack.refs["PairingsTable"], "acme").items()
        )
    )
    for operation in ("Decrypt", "GenerateDataKey"):
        request = Request(f"kms:{operation}", key, context)
        for function in ("TenantsFunction", "PairingEventsFunction", "PairingStartFunction"):
            assert not resources.allows(inline_statements(function, stack), request), (function, operation)
        for function in ("FoldersFunction", "PairingRefreshFunction", "RefreshWorkerFunction"):
            assert resources.allows(inline_statements(function, stack), request), (function, operation)
    decrypt = Request("kms:Decrypt", key, context)
    assert not resources.allows(inline_statements("CallbackFunction", stack), decrypt)  # seals, never opens
    for function in ("TokenRescueFunction", "TokenRefreshFunction"):  # open what was parked, sealed so
        assert resources.allows(inline_statements(function, stack), decrypt), function


def _refused_everywhere(stack: Stack, tenant: str) -> list[Any]:
    """Every way a caller could make the bundle use a tenant's tokens: a query, a due one, a retry."""
    answers = [call("GET", f"/tenants/{tenant}/folders")]
    boto3.client("dynamodb").update_item(  # due for a refresh: still refused before any lease or Sage call
        TableName=stack.refs["PairingsTable"],
        Key={"tenant": {"S": tenant}},
        UpdateExpression="SET access_token_expires_epoch = :now",
        ExpressionAttributeValues={":now": {"N": str(time.time())}},
    )
    answers += [call("GET", f"/tenants/{tenant}/folders"), call("POST", f"/tenants/{tenant}/refresh")]
    return answers


def test_an_item_holding_tokens_in_plain_text_is_refused_and_nothing_reaches_sage(
    sage: Emulator, stack: Stack
) -> None:
    """Someone who may write the table replaces the sealed blob with plain-text tokens of their own (an
    attacker's X3): nothing in a row is used as a token unless it opens as this pairing's."""
    pair(sage, "acme", ACME)
    pair(sage, "globex", GLOBEX)
    planted = stored("globex")  # tokens the writer holds, for another X3
    boto3.client("dynamodb").update_item(
        TableName=stack.refs["PairingsTable"],
        Key={"tenant": {"S": "acme"}},
        UpdateExpression="SET access_token = :a, refresh_token = :r REMOVE sealed_tokens",
        ExpressionAttributeValues={":a": {"S": planted.access_token}, ":r": {"S": planted.refresh_token}},
    )
    sage.clear_requests()

    for refused in _refused_everywhere(stack, "acme"):
        assert (refused.status, refused.json["error"]) == (500, "tokens_unreadable"), refused.body
    assert sage.requests == []  # neither the planted access token nor the refresh token was sent
    assert item(stack, "acme")["refresh_token"] == {"S": planted.refresh_token}  # left as it is


def test_a_sealed_blob_of_an_earlier_pairing_of_the_same_tenant_is_refused(
    sage: Emulator, stack: Stack
) -> None:
    """A blob from a backup, written back over a later pairing (another X3) of the same tenant: it was sealed
    for the earlier pairing's generation, gateway and X3, so it does not open as the later one's."""
    pair(sage, "acme", ACME)
    earlier = item(stack, "acme")["sealed_tokens"]
    pair(sage, "acme", GLOBEX, replace=True)  # the tenant moves to another X3
    assert call("GET", "/tenants/acme/folders").status == 200
    boto3.client("dynamodb").update_item(
        TableName=stack.refs["PairingsTable"],
        Key={"tenant": {"S": "acme"}},
        UpdateExpression="SET sealed_tokens = :earlier",
        ExpressionAttributeValues={":earlier": earlier},
    )
    wiring.reset()  # a cold function as well as warm ones
    sage.clear_requests()

    for refused in _refused_everywhere(stack, "acme"):
        assert (refused.status, refused.json["error"]) == (500, "tokens_unreadable"), refused.body
    assert sage.requests == []


def test_kms_failing_before_a_refresh_costs_a_retry_never_a_spent_token(
    sage: Emulator, stack: Stack, calls: AwsCalls
) -> None:
    """The data key that will seal the new tokens is made before the refresh token is spent: a KMS that
    fails then answers 503 with nothing changed, instead of leaving Sage's new tokens to the rescue queue."""
    pair(sage, "acme", ACME)
    sage.invalidate_access_tokens()
    before = item(stack, "acme")
    # FoldersFunction starts cold, with keys that expire sooner than a refresh may take.
    calls.cold_start_hooks.append(lambda: setattr(wiring.token_sealer().cache, "ttl_seconds", 20))
    outage = calls.fail(Fault("kms", "GenerateDataKey", ERROR, times=None))

    answer = call("GET", "/tenants/acme/folders")

    assert (answer.status, answer.json["error"]) == (503, "service_unavailable"), answer.body
    assert outage.injected >= 1
    assert sage.count("refresh") == 0
    assert item(stack, "acme") == before  # no lease taken, nothing parked
    calls.heal()
    assert call("GET", "/tenants/acme/folders").status == 200
    assert sage.count("refresh") == 1


def test_kms_failing_before_a_code_exchange_leaves_the_code_unspent(
    sage: Emulator, stack: Stack, calls: AwsCalls
) -> None:
    """The callback makes its data key before it spends the single-use code: a KMS outage then fails the
    page with the code still unexchanged, instead of losing the tokens Sage would have issued."""
    browser = start_browser("acme", ACME)
    params = sage.approve(browser.authorise_url)
    outage = calls.fail(Fault("kms", "GenerateDataKey", ERROR, times=None))

    answer = callback(params, browser)

    assert answer.status == 503, answer.body
    assert outage.injected >= 1
    assert sage.count("code") == 0
    assert item(stack, "acme") == {}
