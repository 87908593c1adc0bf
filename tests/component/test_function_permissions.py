"""Every AWS call a function's code makes is allowed by that function's own inline policy in template.yaml.

moto allows everything, so a call a role may not make passes every other test and fails on AWS with
AccessDenied. Here each real flow runs through the handlers, every call through the clients the layer
builds is recorded with the function whose handler made it, and each is judged against that function's
policy as IAM would: action, resource (the stack's ARNs) and the template's conditions (KMS encryption
context, `kms:ViaService`). The KMS permissions AWS requires for an encrypted table, queue or secret, which
no call names, are checked the same way, and every use of the key must be allowed by the key's policy too.
The polling Lambda itself does for a stream or queue trigger is not the code's, and is not recorded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from local.triggers import Triggers
from tests.support.api import call, invoke
from tests.support.aws_faults import ERROR, AwsCalls, Call, Fault
from tests.support.iam import Request, Resources, allowed, inline_statements
from tests.support.keeper import PARKING, keeper, put_credentials, stored, sweep, tune
from tests.support.sage import callback, open_link, pair, start_browser, start_pairing

CUSTOMER = "https://x3.acme.example"
LOAD_HANDLER = tpl.load_handler


def triggers(stack: Stack, calls: AwsCalls, kind: str) -> Triggers:
    loader = calls.handler_loader(LOAD_HANDLER, own_environments=True)
    return Triggers(stack, types=(kind,), load_handler=loader)


def is_commit(params: dict[str, Any]) -> bool:
    return "refreshed_at = :now" in str(params.get("UpdateExpression", ""))


def park_rotated_tokens(calls: AwsCalls, tenant: str) -> None:
    """Refresh outside any function with a table that refuses the commit: Sage rotates, the new tokens
    are parked in the rescue queue, the table keeps the old (now dead) refresh token."""
    commit = calls.fail(Fault("dynamodb", "UpdateItem", ERROR, is_commit, times=None))
    worker = keeper(**PARKING)
    worker.refresh(stored(tenant))
    calls.heal()
    assert commit.injected >= 1
    lease_until = stored(tenant).lease_until or 0
    time.sleep(max(0.0, lease_until - time.time()) + 0.05)  # the parking worker's lease lapses


def poison(stack: Stack) -> None:
    """A body no keeper wrote: it is set aside in the dead-letter queue by whoever drains it."""
    boto3.client("sqs").send_message(QueueUrl=stack.refs["TokenRescueQueue"], MessageBody="{not json")


# ---------------------------------------------------------------------- the flows
def flow_pairing(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    browser = start_browser("acme", CUSTOMER)
    params = sage.approve(browser.authorise_url)
    assert callback(params).status == 400  # another browser: the state is read back to say why
    assert callback(params, browser).status == 200
    assert callback(params, browser).status == 200  # a reload


def flow_describe_and_delete(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER)
    assert call("GET", "/tenants/acme").status == 200
    assert call("DELETE", "/tenants/acme").status == 204
    assert call("GET", "/tenants/acme").status == 404


def flow_tenants_listed(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    for tenant in ("acme", "globex"):
        pair(sage, tenant, f"https://x3.{tenant}.example")
    assert len(call("GET", "/tenants").json["tenants"]) == 2  # a scan
    for status in ("active", "expired"):  # the index, then the pairings it names
        assert call("GET", "/tenants", query={"status": status, "limit": "1"}).status == 200


def flow_data_delivery(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER)
    sage.put_delivery_file(CUSTOMER, "SEED", "orders.csv", b"1;10\n")
    assert call("GET", "/tenants/acme/folders/SEED/files").status == 200
    assert call("GET", "/tenants/acme/folders/SEED/files/orders.csv").status == 200
    sage.invalidate_access_tokens()  # the delete meets a 401 and refreshes
    assert call("DELETE", "/tenants/acme/folders/SEED/files/orders.csv").status == 204
    assert sage.count("refresh") == 1


def flow_data_ingestion(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER)
    upload = call("POST", "/tenants/acme/folders/SEED/uploads", json_body={"filename": "items.csv"})
    assert upload.status == 201, upload.body
    sage.invalidate_access_tokens()  # the tracking read meets a 401 and refreshes
    assert call("GET", f"/tenants/acme/uploads/{upload.json['tracking_id']}").status == 200
    assert sage.count("refresh") == 1


def flow_folders_fresh_token(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER)
    assert call("GET", "/tenants/acme/folders").status == 200


def flow_folders_401_then_refresh(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER)
    sage.invalidate_access_tokens()
    assert call("GET", "/tenants/acme/folders").status == 200
    assert sage.count("refresh") == 1


def flow_folders_refused_grant_drains_the_rescue_queue(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER)
    sage.invalidate_access_tokens()  # the stored access token: the query meets a 401 and refreshes
    park_rotated_tokens(calls, "acme")
    poison(stack)

    answer = call("GET", "/tenants/acme/folders")

    assert answer.status == 200, answer.body  # the refusal sent it to the parked tokens
    assert stored("acme").refresh_token == sage.current_refresh_token(CUSTOMER)
    dead = boto3.client("sqs").receive_message(QueueUrl=stack.refs["TokenRescueDeadLetterQueue"])
    assert len(dead.get("Messages", [])) == 1


def flow_folders_commit_refused_parks_the_tokens(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER)
    sage.invalidate_access_tokens()
    calls.cold_start_hooks.append(lambda: tune(**PARKING))
    calls.fail(Fault("dynamodb", "UpdateItem", ERROR, is_commit, times=None))

    answer = call("GET", "/tenants/acme/folders")

    calls.heal()
    assert answer.status == 200, answer.body  # served from the tokens it parked
    assert stored("acme").refresh_token != sage.current_refresh_token(CUSTOMER)


def flow_folders_app_refused(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER)
    put_credentials(stack, client_secret="a-typo-during-rotation")
    sage.invalidate_access_tokens()
    answer = call("GET", "/tenants/acme/folders")
    assert (answer.status, answer.json["error"]) == (503, "app_unavailable")
    put_credentials(stack)


def flow_operator_retry(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER)
    sage.invalidate_access_tokens()
    sage.fail_next("refresh", status=400, body={"message": "Something Sage never documented"}, count=2)
    assert call("GET", "/tenants/acme/folders").json["error"] == "app_unavailable"  # held: alone, no witness
    boto3.client("dynamodb").update_item(  # held for the whole hour, with no other pairing to speak
        TableName=stack.refs["PairingsTable"],
        Key={"tenant": {"S": "acme"}},
        UpdateExpression="SET held_at = :hour_ago",
        ExpressionAttributeValues={":hour_ago": {"N": str(time.time() - 3600)}},
    )
    assert call("GET", "/tenants/acme/folders").json["error"] == "pairing_suspended"
    answer = call("POST", "/tenants/acme/refresh")
    assert answer.status == 200, answer.body


def flow_sweep(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    sage.configure(refresh_lifetime=3 * 86400)  # every pairing is due
    for tenant in ("acme", "globex"):
        pair(sage, tenant, f"https://x3.{tenant}.example")
    park_rotated_tokens(calls, "acme")
    poison(stack)
    calls.cold_start_hooks.append(lambda: tune(**PARKING))

    def globex_commit(params: dict[str, Any]) -> bool:
        return is_commit(params) and params["Key"]["tenant"]["S"] == "globex"

    globex = calls.fail(Fault("dynamodb", "UpdateItem", ERROR, globex_commit, times=None))

    summary = sweep()

    calls.heal()
    assert globex.injected >= 1  # the sweep parked globex's tokens itself
    assert (summary["rescued"], summary["refreshed"], summary["failed"]) == (1, 2, 0), summary


def flow_sweep_judges_a_refused_grant(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    for tenant in ("acme", "globex"):
        pair(sage, tenant, f"https://x3.{tenant}.example")
    sage.revoke(CUSTOMER)

    summary = sweep()

    assert (summary["refreshed"], summary["suspended"], summary["failed"]) == (1, 1, 0), summary


def flow_rescue_trigger(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER)
    park_rotated_tokens(calls, "acme")
    poison(stack)

    deliveries = triggers(stack, calls, "SQS").pump()

    assert sum(len(delivery.records) for delivery in deliveries) == 2
    assert stored("acme").refresh_token == sage.current_refresh_token(CUSTOMER)


def flow_stream_trigger(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER)
    assert call("DELETE", "/tenants/acme").status == 204

    deliveries = triggers(stack, calls, "DynamoDB").pump()

    assert deliveries and all(delivery.ok for delivery in deliveries)


def flow_notification(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER)
    sage.put_delivery_file(CUSTOMER, "SEED", "orders.csv", b"1;10\n")
    sage.invalidate_access_tokens()  # reading the details meets a 401 and refreshes
    sent = sage.notify(CUSTOMER, "SEED", send=False)
    assert sent.signature is not None
    headers = {"Content-Type": "application/json", "HMAC_SHA256": sent.signature}
    for _ in range(2):  # the second is a duplicate: found recorded, nothing fetched
        assert call("POST", "/notifications", body=sent.body, headers=headers).status == 200

    deliveries = triggers(stack, calls, "DynamoDB").pump()

    assert deliveries and all(delivery.ok for delivery in deliveries)


def flow_exports(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER, folders=["SEED"])
    assert call("PUT", "/tenants/acme/folders/SEED/sync", json_body={"enabled": True}).status == 200
    sage.put_delivery_file(CUSTOMER, "SEED", "orders.csv", b"1;10\n")
    sent = sage.notify(CUSTOMER, "SEED", send=False)
    assert sent.signature is not None
    headers = {"Content-Type": "application/json", "HMAC_SHA256": sent.signature}
    assert call("POST", "/notifications", body=sent.body, headers=headers).status == 200  # queues a scan
    invoke("ExportPollFunction", {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})

    deliveries = triggers(stack, calls, "SQS").pump()  # the scans, then the file (twice: one waits)
    deliveries += triggers(stack, calls, "DynamoDB").pump()  # FileDelivered

    assert deliveries and all(delivery.ok for delivery in deliveries)
    assert sage.delivery_files(CUSTOMER, "SEED") == {}
    assert call("GET", "/tenants/acme/folders/SEED/sync").json["files_delivered"] == 1


def flow_keep_alive_runs(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    pair(sage, "acme", CUSTOMER)
    run = sweep()["run"]
    assert [listed["id"] for listed in call("GET", "/keep-alive/runs").json["runs"]] == [run]
    assert call("GET", f"/keep-alive/runs/{run}").json["refreshed"] == 1


def flow_activity(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER)
    assert call("DELETE", "/tenants/acme").status == 204
    deliveries = triggers(stack, calls, "DynamoDB").pump()
    assert deliveries and all(delivery.ok for delivery in deliveries)
    activity = call("GET", "/tenants/acme/activity").json["activity"]
    assert [entry["type"] for entry in activity] == ["deleted", "paired"]


def flow_pairing_links(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    waiting = start_pairing("acme", CUSTOMER)["pairing_url"]
    opened = start_pairing("globex", "https://x3.globex.example")["pairing_url"]
    open_link(opened)
    listed = {link["tenant"]: link["id"] for link in call("GET", "/pairings").json["pairings"]}
    assert call("GET", "/pairings", query={"status": "opened"}).json["pairings"][0]["tenant"] == "globex"
    assert call("DELETE", f"/pairings/{listed['acme']}").status == 204
    assert call("DELETE", f"/pairings/{listed['globex']}").status == 409  # read back to say why
    assert call("GET", "/pair/" + waiting.rsplit("/pair/", 1)[1]).status == 404


def flow_outbox(sage: Emulator, stack: Stack, calls: AwsCalls) -> None:
    pair(sage, "acme", CUSTOMER, folders=["SEED"])
    sage.configure(scan_delay=0)
    environment = {**stack.function_environment("OutboxWorkerFunction"), "OUTBOX_TRACK_SECONDS": "0"}
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=stack.refs["OutboxBucket"], Key="acme/SEED/items.csv", Body=b"a;1\n")
    s3.put_object(Bucket=stack.refs["OutboxBucket"], Key="acme/SEED/logo.png", Body=b"\x89PNG\x00\x00")
    try:
        deliveries = triggers(stack, calls, "SQS").pump(max_rounds=50)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    assert deliveries and all(delivery.ok for delivery in deliveries)
    listed = call("GET", "/tenants/acme/uploads").json["uploads"]
    assert sorted(upload["outcome"] for upload in listed) == ["ingested", "rejected"]


Flow = Callable[[Emulator, Stack, AwsCalls], None]
# Each flow, and the calls it must show its function making (so that no flow passes by doing nothing).
FLOWS: dict[str, tuple[Flow, dict[str, set[str]]]] = {
    "pairing": (
        flow_pairing,
        {
            "PairingStartFunction": {"dynamodb:PutItem", "secretsmanager:GetSecretValue"},
            "PairLinkFunction": {"dynamodb:UpdateItem", "dynamodb:PutItem", "secretsmanager:GetSecretValue"},
            "CallbackFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem", "kms:GenerateDataKey"},
        },
    ),
    "describe-and-delete": (
        flow_describe_and_delete,
        {"TenantsFunction": {"dynamodb:GetItem", "dynamodb:DeleteItem"}},
    ),
    "tenants-listed": (
        flow_tenants_listed,
        {"TenantsFunction": {"dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchGetItem"}},
    ),
    "data-delivery": (
        flow_data_delivery,
        {
            "DataDeliveryFunction": {
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:UpdateItem",
                "secretsmanager:GetSecretValue",
                "kms:Decrypt",
            }
        },
    ),
    "data-ingestion": (
        flow_data_ingestion,
        {
            "DataIngestionFunction": {
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:UpdateItem",
                "secretsmanager:GetSecretValue",
                "kms:Decrypt",
            }
        },
    ),
    "folders-fresh-token": (
        flow_folders_fresh_token,
        {"FoldersFunction": {"dynamodb:BatchGetItem", "kms:Decrypt"}},  # opens the sealed tokens
    ),
    "folders-401-then-refresh": (
        flow_folders_401_then_refresh,
        {"FoldersFunction": {"dynamodb:UpdateItem", "secretsmanager:GetSecretValue", "kms:Decrypt"}},
    ),
    "folders-refused-grant-drains-rescue": (
        flow_folders_refused_grant_drains_the_rescue_queue,
        {
            "FoldersFunction": {
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:SendMessage",
                "kms:Decrypt",
            }
        },
    ),
    "folders-commit-refused-parks-tokens": (
        flow_folders_commit_refused_parks_the_tokens,
        {"FoldersFunction": {"sqs:SendMessage"}},  # sealed with the data key prepared: no KMS call
    ),
    "folders-app-refused": (flow_folders_app_refused, {"FoldersFunction": {"dynamodb:UpdateItem"}}),
    "operator-retry": (
        flow_operator_retry,
        {"PairingRefreshFunction": {"dynamodb:UpdateItem", "secretsmanager:GetSecretValue"}},
    ),
    "activity": (
        flow_activity,
        {"ActivityRecorderFunction": {"dynamodb:PutItem"}, "ActivityFunction": {"dynamodb:Query"}},
    ),
    "pairing-links": (
        flow_pairing_links,
        {"PairingLinksFunction": {"dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:GetItem"}},
    ),
    "keep-alive-runs": (
        flow_keep_alive_runs,
        {"KeepAliveRunsFunction": {"dynamodb:Query", "dynamodb:GetItem"}},
    ),
    "sweep": (
        flow_sweep,
        {
            "TokenRefreshFunction": {
                "dynamodb:Query",
                "dynamodb:BatchGetItem",  # the due pairings' data keys, for their orders
                "dynamodb:UpdateItem",
                "sqs:ReceiveMessage",
                "sqs:SendMessage",
                "kms:Decrypt",
            },
            "RefreshWorkerFunction": {
                "dynamodb:GetItem",
                "dynamodb:UpdateItem",
                "sqs:SendMessage",
                "kms:Decrypt",
            },
        },
    ),
    "sweep-judges-a-refused-grant": (
        flow_sweep_judges_a_refused_grant,
        {
            "RefreshWorkerFunction": {
                "dynamodb:UpdateItem",
                "secretsmanager:GetSecretValue",
                "sqs:ReceiveMessage",
                "sqs:GetQueueAttributes",
            }
        },
    ),
    "rescue-trigger": (
        flow_rescue_trigger,
        {
            "TokenRescueFunction": {
                # The parked set's data key, opened once, seals the tokens it stores too.
                "kms:Decrypt",
                "dynamodb:UpdateItem",
                "sqs:SendMessage",
            }
        },
    ),
    "exports": (
        flow_exports,
        {
            "ExportSyncFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
            "NotificationsFunction": {"sqs:SendMessage"},
            "ExportPollFunction": {"dynamodb:Query", "sqs:SendMessage"},
            "ExportWorkerFunction": {
                "dynamodb:GetItem",
                "dynamodb:UpdateItem",
                "sqs:SendMessage",
            },
            "PairingEventsFunction": {"events:PutEvents"},
        },
    ),
    "stream-trigger": (flow_stream_trigger, {"PairingEventsFunction": {"events:PutEvents"}}),
    "notification": (
        flow_notification,
        {
            "NotificationsFunction": {
                "secretsmanager:GetSecretValue",
                "dynamodb:Query",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:BatchGetItem",
                "dynamodb:UpdateItem",
                "kms:Decrypt",
            },
            "PairingEventsFunction": {"events:PutEvents"},
        },
    ),
    "outbox": (
        flow_outbox,
        {
            "OutboxWorkerFunction": {
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "s3:GetObject",
                "s3:PutObjectTagging",
                "sqs:SendMessage",
                "kms:Decrypt",  # the object's data key, through S3, and the pairing's sealed tokens
            },
            "DataIngestionFunction": {"dynamodb:Query"},
        },
    ),
}


def judge(calls: list[Call], stack: Stack) -> tuple[dict[str, set[str]], list[str]]:
    """The IAM actions each function used, and every request its own policy would refuse."""
    resources = Resources.of(stack)
    used: dict[str, set[str]] = {}
    refused: list[str] = []
    for made in calls:
        if made.function is None:
            continue
        requests = resources.requests(made)
        if not requests:
            refused.append(f"{made.function}: {made.service}:{made.operation} (no IAM mapping in iam.py)")
            continue
        statements = inline_statements(made.function, stack)
        for request in requests:
            used.setdefault(made.function, set()).add(request.action)
            if not resources.allows(statements, request):
                refused.append(f"{made.function}: {request}")
        for request in resources.implied(made):
            if not resources.allows(statements, request):
                refused.append(f"{made.function}: {request}")
    return used, sorted(set(refused))


@pytest.mark.parametrize("flow", list(FLOWS))
def test_every_call_a_function_makes_is_allowed_by_its_own_policy(
    flow: str, sage: Emulator, stack: Stack, calls: AwsCalls
) -> None:
    run, must_use = FLOWS[flow]

    run(sage, stack, calls)

    used, refused = judge(calls.calls, stack)
    for function, actions in must_use.items():
        assert actions <= used.get(function, set()), (function, sorted(used.get(function, set())))
    assert refused == [], "AWS would answer AccessDenied:\n" + "\n".join(refused)


# ---------------------------------------------------------------------- the judge itself
def test_the_judge_refuses_what_a_policy_does_not_allow(stack: Stack) -> None:
    """Without this, a judge that allowed everything would pass every flow."""
    resources = Resources.of(stack)
    queue, dead_letters = stack.refs["TokenRescueQueue"], stack.refs["TokenRescueDeadLetterQueue"]
    table, key = stack.refs["PairingsTable"], stack.refs["DataKey"]
    tenants = inline_statements("TenantsFunction", stack)
    folders = inline_statements("FoldersFunction", stack)
    events = inline_statements("PairingEventsFunction", stack)

    def request(service: str, operation: str, **params: Any) -> Request:
        return resources.requests(Call("x", service, operation, params))[0]

    # The folders role before this issue: no access to the rescue queue at all.
    assert not allowed(tenants, request("sqs", "ReceiveMessage", QueueUrl=queue))
    assert not allowed(tenants, request("dynamodb", "UpdateItem", TableName=table))
    assert allowed(tenants, request("dynamodb", "GetItem", TableName=table))
    # Right action, wrong resource: the index is not the table, the rescue queue is not the dead letters.
    assert not allowed(folders, request("dynamodb", "Query", TableName=table, IndexName="by-customer"))
    assert not allowed(events, request("sqs", "SendMessage", QueueUrl=dead_letters))
    # kms:Encrypt under no context at all: parking seals with the tokens' data key; the rescue's own context
    # only opens what was parked before.
    sealed = {"purpose": "token-rescue", "tenant": "acme", "generation": "g", "version": "1"}
    assert not allowed(folders, request("kms", "Encrypt", KeyId=key, EncryptionContext=sealed))
    assert allowed(
        folders, request("kms", "Decrypt", CiphertextBlob=b"x", KeyId=key, EncryptionContext=sealed)
    )
    assert not allowed(folders, request("kms", "Encrypt", KeyId=key, EncryptionContext={"purpose": "other"}))
    assert not allowed(folders, request("kms", "Encrypt", KeyId=key))
    # What the encrypted rescue queue requires of a sender, beyond sqs:SendMessage.
    send = Call("x", "sqs", "SendMessage", {"QueueUrl": queue})
    implied = resources.implied(send)
    assert {r.action for r in implied} == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert all(resources.allows(folders, r) for r in implied)
    assert not any(resources.allows(events, r) for r in implied)  # it decrypts via DynamoDB only (its stream)


def test_the_judge_holds_each_key_grant_to_its_service_and_context(stack: Stack) -> None:
    """A key grant serves the calls of one service (kms:ViaService) or of the code under one context."""
    resources = Resources.of(stack)
    table, key = stack.refs["PairingsTable"], stack.refs["DataKey"]
    secret, queue = stack.refs["ClientCredentialsSecret"], stack.refs["TokenRescueQueue"]
    tenants = inline_statements("TenantsFunction", stack)
    folders = inline_statements("FoldersFunction", stack)
    region = stack.refs["AWS::Region"]
    rescue = {"purpose": "token-rescue", "tenant": "acme", "generation": "g", "version": "1"}

    def kms(operation: str, context: dict[str, str] | None = None, via: str | None = None) -> Request:
        """A request on the key: the code's own call, or one a service (`via`) makes for the role."""
        pairs = tuple((f"kms:EncryptionContext:{k}", v) for k, v in sorted((context or {}).items()))
        if via:
            pairs += (("kms:ViaService", f"{via}.{region}.amazonaws.com"),)
        return Request(f"kms:{operation}", resources.arn(key), pairs)

    # The table's encryption: what DynamoDB asks of KMS for a read is allowed through DynamoDB only.
    (via_table,) = resources.implied(Call("x", "dynamodb", "GetItem", {"TableName": table}))
    assert dict(via_table.context)["kms:ViaService"] == f"dynamodb.{region}.amazonaws.com"
    assert resources.allows(tenants, via_table)
    assert not resources.allows(tenants, kms("Decrypt", {"aws:dynamodb:tableName": table}))  # not via it
    assert not resources.allows(tenants, kms("Decrypt", {"aws:dynamodb:tableName": table}, via="sqs"))
    # The secret's encryption: this secret only, through Secrets Manager only.
    (via_secret,) = resources.implied(Call("x", "secretsmanager", "GetSecretValue", {"SecretId": secret}))
    assert resources.allows(folders, via_secret) and not resources.allows(tenants, via_secret)
    assert not resources.allows(folders, kms("Decrypt", {"SecretARN": secret}))
    other_secret = {"SecretARN": f"{secret}-other"}
    assert not resources.allows(folders, kms("Decrypt", other_secret, via="secretsmanager"))
    # The rescue queues' encryption: through SQS, for these queues only.
    (_, via_queue) = resources.implied(Call("x", "sqs", "SendMessage", {"QueueUrl": queue}))
    assert resources.allows(folders, via_queue)
    assert not resources.allows(folders, kms("Decrypt", {"aws:sqs:arn": "arn:aws:sqs:x:1:other"}, via="sqs"))
    # The code's own calls: under the rescue's context, never through a service with another.
    assert resources.allows(folders, kms("Decrypt", rescue))
    assert not resources.allows(folders, kms("Decrypt"))
    assert not resources.allows(tenants, kms("Decrypt", rescue))  # TenantsFunction opens nothing itself
    # The pairings' sealed tokens: data keys under this table's context, for the functions that use them.
    sealed = {"purpose": "pairing-tokens", "table": table, "tenant": "acme"}
    callback = inline_statements("CallbackFunction", stack)
    events = inline_statements("PairingEventsFunction", stack)
    for operation in ("GenerateDataKey", "Decrypt"):
        assert resources.allows(folders, kms(operation, sealed))
        assert not resources.allows(folders, kms(operation, {**sealed, "table": f"{table}-other"}))
        assert not resources.allows(folders, kms(operation, {"purpose": "pairing-tokens", "tenant": "acme"}))
        assert not resources.allows(tenants, kms(operation, sealed))  # metadata only
        assert not resources.allows(events, kms(operation, sealed))  # the stream's images stay sealed
    assert resources.allows(callback, kms("GenerateDataKey", sealed))
    assert not resources.allows(callback, kms("Decrypt", sealed))  # it seals, and never opens
    assert not resources.allows(folders, kms("Encrypt", sealed))  # envelope keys only

    # The key policy bounds every role: a role that allowed any use of the key gets only what it names.
    everything = [{"Effect": "Allow", "Action": "kms:*", "Resource": resources.arn(key)}]
    assert not resources.allows(everything, kms("Encrypt", rescue))  # parked sets are opened, never sealed
    assert resources.allows(everything, kms("Decrypt", rescue))
    assert resources.allows(everything, via_table)
    assert not resources.allows(everything, kms("Encrypt", {"purpose": "anything-else"}))
    assert not resources.allows(everything, kms("Decrypt"))
    assert not resources.allows(everything, kms("GenerateDataKey", {"purpose": "token-rescue"}))
    assert resources.allows(everything, kms("GenerateDataKey", sealed))
    assert resources.allows(everything, kms("Decrypt", sealed))
    assert not resources.allows(everything, kms("Encrypt", sealed))
    assert not resources.allows(everything, kms("Decrypt", {"x": "y"}, via="lambda"))
