"""Which attributes of the pairings table each role may write, judged as IAM would (tests/support/iam.py).

A row's `endpoint` says where its refresh token and the app's secret are sent, and `x3_issuer`/`x3_subject`
which X3 it is: the functions that refresh may change a pairing's tokens and refresh state, never those;
only the callback creates pairings. The calls each function really makes are judged in
tests/component/test_function_permissions.py; here, the writes no function makes are refused.
"""

from __future__ import annotations

from typing import Any

import pytest

from local import template as tpl
from local.aws_resources import Stack
from tests.support.aws_faults import Call
from tests.support.iam import Request, Resources, allowed, expression_attributes, inline_statements

TABLE = "local-PairingsTable"
# The functions that refresh: tokens and refresh state, the gateways' records; the keep-alive's run reports.
KEEPERS = {
    "FoldersFunction",
    "DataDeliveryFunction",
    "DataIngestionFunction",
    "NotificationsFunction",
    "PairingRefreshFunction",
    "TokenRescueFunction",
    "TokenRefreshFunction",
    "RefreshWorkerFunction",
    "OutboxWorkerFunction",
    "ExportWorkerFunction",  # it calls Sage with live tokens: a refresh first, when one is due
}
RUN_REPORTERS = {"TokenRefreshFunction", "RefreshWorkerFunction"}
PROTECTED = ("endpoint", "customer", "x3_issuer", "x3_subject", "paired_at")


def fake_stack() -> Stack:
    """Every resource named as a local stack names it: enough to resolve the policies without AWS."""
    refs = {
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
        "AWS::StackName": "local",
    }
    attrs: dict[tuple[str, str], str] = {}
    for logical_id in tpl.resources():
        refs[logical_id] = f"local-{logical_id}"
        attrs[(logical_id, "Arn")] = f"arn:aws:test:us-east-1:123456789012:{logical_id}"
        attrs[(logical_id, "StreamArn")] = f"arn:aws:test:us-east-1:123456789012:{logical_id}/stream/1"
    refs.update(tpl.parameter_defaults())
    return Stack(refs=refs, attrs=attrs)


STACK = fake_stack()
RESOURCES = Resources.of(STACK)


def update(function: str, expression: str, tenant: str = "acme", **params: Any) -> bool:
    """Whether the function's role may make this UpdateItem on the pairings table."""
    names = {f"#{name}": name for name in ("status", "version", "scope", "failures")}
    call = Call(
        function,
        "dynamodb",
        "UpdateItem",
        {
            "TableName": TABLE,
            "Key": {"tenant": {"S": tenant}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            **params,
        },
    )
    (request,) = RESOURCES.requests(call)
    return allowed(inline_statements(function, STACK), request)


def _pairing_writers() -> set[str]:
    table = RESOURCES.arn(TABLE)
    writers = set()
    for function in tpl.functions():
        for action in ("UpdateItem", "PutItem"):
            bare = Request(f"dynamodb:{action}", table)
            unconditioned = allowed(inline_statements(function, STACK), bare)
            assert not unconditioned, f"{function} may {action} any attribute of a pairing"
        statements = inline_statements(function, STACK)
        if any(
            "dynamodb:UpdateItem" in str(s.get("Action")) and table in str(s.get("Resource"))
            for s in statements
        ):
            writers.add(function)
    return writers


def test_every_role_that_writes_pairings_is_held_to_named_attributes() -> None:
    assert _pairing_writers() == KEEPERS | {"CallbackFunction"}


@pytest.mark.parametrize("function", sorted(KEEPERS))
def test_a_keeper_writes_tokens_and_refresh_state_but_never_where_a_pairing_goes(function: str) -> None:
    # What a refresh commits (x3link/tokens/store.py): the rotated tokens, sealed, fenced on the generation.
    commit = (
        "SET sealed_tokens = :sealed, access_token_expires_epoch = :a, refresh_token_expires_epoch = :r, "
        "refreshed_at = :now, #version = #version + :one, #status = :active "
        "REMOVE access_token, refresh_token, lease_owner, lease_until, refresh_failed_at"
    )
    assert update(function, commit, ConditionExpression="generation = :g AND #version = :v")
    assert update(function, "SET lease_owner = :o, lease_until = :u", ConditionExpression="#version = :v")
    assert update(function, "SET refusal_at = :at, refusal_by = :t, gateway = :g", tenant="~app:gw")
    for name in PROTECTED:
        assert not update(function, f"SET {name} = :x"), name
        assert not update(function, f"SET sealed_tokens = :s, {name} = :x"), name  # smuggled along
        assert not update(function, f"REMOVE {name}"), name
        assert not update(function, f"SET #{name} = :x", ExpressionAttributeNames={f"#{name}": name}), name
        assert not update(function, "SET reason = :r", AttributeUpdates={name: {"Action": "PUT"}}), name
    # An attribute no pairing has, such as one that would steer a future version of the code, neither.
    assert not update(function, "SET token_url = :x")
    ledger = "ADD #refreshed :n"
    ledger_names = {"#refreshed": "refreshed"}
    assert update(function, ledger, "~run:r1", ExpressionAttributeNames=ledger_names) is (
        function in RUN_REPORTERS
    )


def test_the_callback_creates_pairings_but_never_touches_a_breaker_or_a_report() -> None:
    save = (
        "SET customer = :c, endpoint = :e, #scope = :s, #status = :a, sealed_tokens = :t, "
        "access_token_expires_epoch = :ax, refresh_token_expires_epoch = :rx, paired_at = :now, "
        "generation = :g, reason = :p, #version = if_not_exists(#version, :zero) + :one, "
        "x3_issuer = :iss, x3_subject = :sub REMOVE refreshed_at, lease_owner"
    )
    condition = "attribute_not_exists(x3_subject) OR (x3_issuer = :iss AND x3_subject = :sub)"
    assert update("CallbackFunction", save, ConditionExpression=condition)
    assert update("CallbackFunction", "SET success_at = :at, success_version = :v", tenant="~app:gw")
    assert not update("CallbackFunction", "SET breaker = :closed, closed_at = :at", tenant="~app:gw")
    assert not update("CallbackFunction", "SET #failures = :f", "~run:r1")
    assert not update("CallbackFunction", "SET token_url = :x")


@pytest.mark.parametrize("function", ["TenantsFunction", "PairingEventsFunction", "PairingStartFunction"])
def test_the_other_roles_write_nothing_in_a_pairing(function: str) -> None:
    for name in ("sealed_tokens", "endpoint", "x3_subject", "status"):
        assert not update(function, f"SET {name} = :x"), name


# ---------------------------------------------------------------------------------------------- the judge
def judge(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    statement = {"Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": "t", "Condition": condition}
    return allowed([statement], Request("dynamodb:UpdateItem", "t", tuple(context.items())))


def test_the_judge_reads_an_expression_as_dynamodb_names_its_attributes() -> None:
    params = {
        "Key": {"tenant": {"S": "acme"}},
        "UpdateExpression": "SET #v = if_not_exists(#v, :zero) + :one, a.b[0].c = :x, "
        "f = list_append(if_not_exists(f, :none), :named) REMOVE d ADD e :n",
        "ConditionExpression": "attribute_not_exists(g) OR (size(h) < :room AND NOT i IN (:p, :q))",
        "ExpressionAttributeNames": {"#v": "version"},
    }
    assert expression_attributes(params) == {"tenant", "version", "a", "f", "d", "e", "g", "h", "i"}


def test_the_judge_holds_for_all_values_and_null_as_iam_does() -> None:
    names = {"ForAllValues:StringEquals": {"dynamodb:Attributes": ["tenant", "a"]}}
    assert judge(names, {"dynamodb:Attributes": ("a", "tenant")})
    assert not judge(names, {"dynamodb:Attributes": ("a", "b", "tenant")})
    assert judge(names, {})  # vacuously true without the key: why the template adds Null
    required = {**names, "Null": {"dynamodb:Attributes": "false"}}
    assert not judge(required, {})
    assert judge(required, {"dynamodb:Attributes": ("tenant",)})
    any_of = {"ForAnyValue:StringEquals": {"dynamodb:Attributes": ["a"]}}
    assert judge(any_of, {"dynamodb:Attributes": ("a", "b")}) and not judge(any_of, {})
    returns = {"StringEqualsIfExists": {"dynamodb:ReturnValues": ["NONE", "UPDATED_NEW"]}}
    assert judge(returns, {}) and judge(returns, {"dynamodb:ReturnValues": "NONE"})
    assert not judge(returns, {"dynamodb:ReturnValues": "ALL_NEW"})
    # A single-valued operator on a set, or an operator it does not know: never taken to allow.
    assert not judge({"StringEquals": {"dynamodb:Attributes": "a"}}, {"dynamodb:Attributes": ("a",)})
    assert not judge({"StringNotEquals": {"dynamodb:ReturnValues": "X"}}, {"dynamodb:ReturnValues": "NONE"})


def test_a_deny_the_judge_cannot_read_denies() -> None:
    allow = {"Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": "t"}
    unreadable = {**allow, "Effect": "Deny", "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020"}}}
    request = Request("dynamodb:UpdateItem", "t")
    assert allowed([allow], request) and not allowed([allow, unreadable], request)


def test_the_judge_gives_writes_their_return_values_and_queries_their_select() -> None:
    def context(operation: str, **params: Any) -> dict[str, Any]:
        call = Call("x", "dynamodb", operation, {"TableName": TABLE, **params})
        return dict(RESOURCES.requests(call)[0].context)

    key = {"tenant": {"S": "acme"}}
    assert context("UpdateItem", Key=key, UpdateExpression="SET a = :a")["dynamodb:ReturnValues"] == "NONE"
    assert context("DeleteItem", Key=key, ReturnValues="ALL_OLD") == {
        "dynamodb:Attributes": ("tenant",),  # a deletion names its key only: no list can narrow it
        "dynamodb:ReturnValues": "ALL_OLD",
    }
    assert context("PutItem", Item={"tenant": {"S": "a"}, "b": {"S": "c"}})["dynamodb:Attributes"] == (
        "b",
        "tenant",
    )
    assert context("Query", KeyConditionExpression="a = :a")["dynamodb:Select"] == "ALL_ATTRIBUTES"
    assert context("Query", ProjectionExpression="a, b")["dynamodb:Select"] == "SPECIFIC_ATTRIBUTES"
    assert "dynamodb:Attributes" not in context("GetItem", Key=key)
