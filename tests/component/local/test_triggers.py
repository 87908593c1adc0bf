"""The local event source mappings: the template's stream and queue triggers read the embedded AWS, hand
each function the event Lambda would, and honour its `batchItemFailures` as Lambda does."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.event_log import EventLog, line
from local.triggers import Triggers

Handler = Callable[[dict[str, Any], Any], Any]

# The tables' streams feed two functions (events, activity): these tests follow the publisher's.
PUBLISHER = "PairingEventsFunction"


class FakeFunctions:
    """Stands in for the template's handlers: records every event, answers what `answer` decides."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.answer: Callable[[dict[str, Any]], Any] = lambda _event: {"batchItemFailures": []}

    def load(self, logical_id: str) -> Handler:
        def handler(event: dict[str, Any], context: Any) -> Any:
            assert context.function_name.endswith(logical_id)
            json.dumps(event)  # what Lambda sends is JSON
            self.events.append((logical_id, event))
            return self.answer(event)

        return handler

    def records(self, logical_id: str) -> list[dict[str, Any]]:
        return [record for name, event in self.events if name == logical_id for record in event["Records"]]


@pytest.fixture
def functions() -> FakeFunctions:
    return FakeFunctions()


def _stream_function() -> str:
    """The function the pairings table's stream feeds (the notifications table's stream feeds it too)."""
    (function,) = {
        source.function
        for source in tpl.event_sources()
        if source.type == "DynamoDB" and source.function == PUBLISHER
    }
    return function


def _queue_source() -> tpl.EventSource:
    """The rescue queue's trigger: its redrive allows 100 receives, so a test's retries stay on the queue."""
    return next(source for source in tpl.event_sources() if source.function == "TokenRescueFunction")


def _put(stack: Stack, tenant: str, **extra: str) -> None:
    item = {"tenant": {"S": tenant}, **{name: {"S": value} for name, value in extra.items()}}
    boto3.client("dynamodb").put_item(TableName=stack.refs["PairingsTable"], Item=item)


def _tenants(records: list[dict[str, Any]]) -> list[str]:
    return [record["dynamodb"]["Keys"]["tenant"]["S"] for record in records]


def test_a_stream_record_has_the_shape_lambda_sends(stack: Stack, functions: FakeFunctions) -> None:
    triggers = Triggers(stack, types=("DynamoDB",), functions=(PUBLISHER,), load_handler=functions.load)
    _put(stack, "acme", status="active")
    _put(stack, "acme", status="suspended")
    boto3.client("dynamodb").delete_item(TableName=stack.refs["PairingsTable"], Key={"tenant": {"S": "acme"}})

    deliveries = triggers.pump()

    assert [delivery.ok for delivery in deliveries] == [True]
    inserted, modified, removed = functions.records(_stream_function())
    assert [r["eventName"] for r in (inserted, modified, removed)] == ["INSERT", "MODIFY", "REMOVE"]
    for record in (inserted, modified, removed):
        assert record["eventSource"] == "aws:dynamodb"
        assert record["eventSourceARN"] == stack.attrs[("PairingsTable", "StreamArn")]
        assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert record["dynamodb"]["Keys"] == {"tenant": {"S": "acme"}}
        assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], float)
    assert "OldImage" not in inserted["dynamodb"] and inserted["dynamodb"]["NewImage"]["status"] == {
        "S": "active"
    }
    assert modified["dynamodb"]["OldImage"]["status"] == {"S": "active"}
    assert modified["dynamodb"]["NewImage"]["status"] == {"S": "suspended"}
    assert "NewImage" not in removed["dynamodb"] and removed["dynamodb"]["OldImage"]["status"] == {
        "S": "suspended"
    }


def test_a_stream_resumes_at_the_first_failed_record(stack: Stack, functions: FakeFunctions) -> None:
    triggers = Triggers(stack, types=("DynamoDB",), functions=(PUBLISHER,), load_handler=functions.load)
    for tenant in ("t1", "t2", "t3", "t4"):
        _put(stack, tenant)
    # The function takes t1, fails t2 and (so) t4: Lambda starts again at t2.
    functions.answer = lambda event: {
        "batchItemFailures": [
            {"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
            for r in event["Records"]
            if r["dynamodb"]["Keys"]["tenant"]["S"] in ("t2", "t4")
        ]
    }
    first = triggers.pump()
    assert [(d.ok, _tenants(d.records)) for d in first] == [(False, ["t1", "t2", "t3", "t4"])]

    functions.answer = lambda _event: None  # a handler that returns nothing processed everything
    second = triggers.pump()
    assert [(d.ok, _tenants(d.records)) for d in second] == [(True, ["t2", "t3", "t4"])]
    assert triggers.pump() == []

    _put(stack, "t5")
    assert [_tenants(d.records) for d in triggers.pump()] == [["t5"]]


def test_a_function_error_offers_the_whole_batch_again(stack: Stack, functions: FakeFunctions) -> None:
    triggers = Triggers(stack, types=("DynamoDB",), functions=(PUBLISHER,), load_handler=functions.load)
    _put(stack, "t1")
    _put(stack, "t2")

    def crash(_event: dict[str, Any]) -> Any:
        raise RuntimeError("the function died")

    functions.answer = crash
    (failed,) = triggers.pump()
    assert failed.error == "RuntimeError: the function died" and len(failed.failed) == 2

    functions.answer = lambda _event: {"batchItemFailures": []}
    (retried,) = triggers.pump()
    assert retried.ok and _tenants(retried.records) == ["t1", "t2"]


def test_a_table_found_from_an_earlier_run_is_read_from_now_on(
    stack: Stack, functions: FakeFunctions
) -> None:
    _put(stack, "before")
    found = Stack(refs=stack.refs, attrs=stack.attrs, created=stack.created - {"PairingsTable"})
    triggers = Triggers(found, types=("DynamoDB",), functions=(PUBLISHER,), load_handler=functions.load)
    _put(stack, "after")

    assert [_tenants(d.records) for d in triggers.pump()] == [["after"]]


def test_a_queue_deletes_only_the_messages_the_function_took(stack: Stack, functions: FakeFunctions) -> None:
    source = _queue_source()
    sqs = boto3.client("sqs")
    queue_logical_id = source.source.value[0]
    queue_url, queue_arn = stack.refs[queue_logical_id], stack.attrs[(queue_logical_id, "Arn")]
    for body in ("one", "two", "three"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    triggers = Triggers(stack, types=("SQS",), load_handler=functions.load)
    functions.answer = lambda event: {
        "batchItemFailures": [
            {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "two"
        ]
    }

    deliveries = triggers.pump()

    records = functions.records(source.function)
    assert sorted(r["body"] for r in records) == ["one", "three", "two"]
    assert all(not d.ok for d in deliveries if any(r["body"] == "two" for r in d.records))
    for record in records:
        assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == queue_arn
        assert record["messageId"] and record["receiptHandle"] and record["md5OfBody"]
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
    # The failed message comes back once its visibility timeout is over (here: at once); the others are gone.
    (two,) = [r for r in records if r["body"] == "two"]
    sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=two["receiptHandle"], VisibilityTimeout=0)
    functions.events.clear()
    functions.answer = lambda _event: {"batchItemFailures": []}
    triggers.pump()
    again = functions.records(source.function)
    assert [(r["body"], r["attributes"]["ApproximateReceiveCount"]) for r in again] == [("two", "2")]
    assert triggers.pump() == []


def test_the_background_thread_delivers_as_changes_happen(stack: Stack, functions: FakeFunctions) -> None:
    lines: list[str] = []
    with Triggers(
        stack, types=("DynamoDB",), functions=(PUBLISHER,), load_handler=functions.load, log=lines.append
    ).start(0.05):
        _put(stack, "live")
        deadline = time.monotonic() + 10
        while not functions.events and time.monotonic() < deadline:
            time.sleep(0.05)
    assert _tenants(functions.records(_stream_function())) == ["live"]
    assert lines == []


def test_failures_are_logged_once_until_the_function_takes_records_again(
    stack: Stack, functions: FakeFunctions
) -> None:
    lines: list[str] = []
    triggers = Triggers(
        stack, types=("DynamoDB",), functions=(PUBLISHER,), load_handler=functions.load, log=lines.append
    )
    _put(stack, "t1")
    functions.answer = lambda event: {
        "batchItemFailures": [{"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}]
    }
    triggers.pump()
    triggers.pump()
    functions.answer = lambda _event: {"batchItemFailures": []}
    triggers.pump()
    function = _stream_function()
    assert lines == [
        f"trigger  {function} did not process 1 of 1 records (batchItemFailures); they will be retried",
        f"trigger  {function} processes its records again",
    ]


def test_the_event_log_prints_one_short_line_per_published_event(stack: Stack) -> None:
    lines: list[str] = []
    bus = stack.refs["PairingEventsBus"]
    log = EventLog(bus, lines.append)
    detail = {
        "id": "acme:g:3:PairingExpired",
        "tenant": "acme",
        "reason": "grace_period_over",
        "status": "expired",
    }
    boto3.client("events").put_events(
        Entries=[
            {
                "Source": "sage-x3-link",
                "DetailType": "PairingExpired",
                "Detail": json.dumps(detail),
                "EventBusName": bus,
            }
        ]
    )
    assert [event["detail-type"] for event in log.drain()] == ["PairingExpired"]
    assert lines == ["event  PairingExpired  tenant=acme  reason=grace_period_over"]
    rejected = {
        "detail-type": "AppCredentialsRejected",
        "detail": {"upstream_status": 401, "reason": "Unauthorised"},
    }
    assert line(rejected) == "event  AppCredentialsRejected  upstream_status=401  reason=Unauthorised"
    assert line({"detail-type": "X", "detail": {"reason": "a b"}}) == 'event  X  reason="a b"'


def test_a_message_that_keeps_failing_on_a_queue_without_visibility_timeout_ends_the_pump(
    stack: Stack, functions: FakeFunctions
) -> None:
    source = _queue_source()
    sqs = boto3.client("sqs")
    queue_url = stack.refs[source.source.value[0]]
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": "0"})
    sqs.send_message(QueueUrl=queue_url, MessageBody="poison")
    triggers = Triggers(stack, types=("SQS",), load_handler=functions.load)
    functions.answer = lambda event: {
        "batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]
    }

    # Visible again at once, it may be delivered once more in the same pump (its receive counted, as
    # Lambda's would); then the pump ends rather than loop on it, and the next pump offers it again.
    first, second = triggers.pump(), triggers.pump()
    for pumped in (first, second):
        assert 1 <= len(pumped) <= 2 and not any(delivery.ok for delivery in pumped)
    time.sleep(0.01)  # visible again from the next millisecond
    receives = sqs.receive_message(QueueUrl=queue_url, AttributeNames=["ApproximateReceiveCount"])
    count = int(receives["Messages"][0]["Attributes"]["ApproximateReceiveCount"])
    assert count == len(first) + len(second) + 1  # every receive but this one was a delivery
