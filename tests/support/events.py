"""Reading what the stack publishes: its bus routed, by an EventBridge rule, to a queue a test drains."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3

from local.aws_resources import Stack
from local.triggers import Triggers


def published_events(stack: Stack) -> Callable[[], list[dict[str, Any]]]:
    """Subscribe to everything the bundle publishes; the returned function drains what arrived since."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue = sqs.create_queue(QueueName="observed-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.refs["PairingEventsBus"]
    events.put_rule(Name="observe", EventBusName=bus, EventPattern=json.dumps({"source": ["sage-x3-link"]}))
    events.put_targets(Rule="observe", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])

    def drain() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    return drain


def stream_triggers(stack: Stack) -> Triggers:
    """The template's table-stream triggers (PairingEventsFunction) over `stack`, read from the stream's
    start: `pump()` hands the function every change committed so far, as Lambda would."""
    return Triggers(stack, types=("DynamoDB",))


def lifecycle_events(stack: Stack) -> Callable[[], list[dict[str, Any]]]:
    """Like `published_events`, but each drain first delivers the table's stream to its function, so it
    returns what the committed changes published since the last call (the writers publish nothing)."""
    triggers, drain = stream_triggers(stack), published_events(stack)

    def pump_and_drain() -> list[dict[str, Any]]:
        triggers.pump()
        return drain()

    return pump_and_drain
