"""`make run`'s webhook: the template's rule, API destination and connection, delivered to a receiver on
loopback with EventBridge's semantics (the header, retries with backoff, then the dead-letter queue)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import aws_resources
from local.aws_resources import Stack
from local.stack import StackSettings
from local.webhooks import WebhookDelivery, WebhookTarget, backoff, target
from tests.support.webhook_receiver import Receiver, webhook_receiver

ROOT = Path(__file__).parents[3]
SECRET = "whsec-local-test"  # nosec B105  # a test value, not a credential
PARAMETERS = {"SageX3Url": "http://127.0.0.1:9/v1"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as found:
        yield found


@pytest.fixture
def stack(receiver: Receiver) -> Iterator[Stack]:
    with mock_aws():
        yield aws_resources.create({**PARAMETERS, "WebhookUrl": receiver.url, "WebhookSecret": SECRET})


def publish(stack: Stack, *kinds: str) -> list[dict[str, Any]]:
    """Put the sample event of each kind on the stack's bus as the publisher does; return their details."""
    details = []
    for kind in kinds:
        sample = json.loads((ROOT / "events" / "lifecycle" / f"{kind}.json").read_text())
        details.append(sample["detail"])
        boto3.client("events").put_events(
            Entries=[
                {
                    "Source": "sage-x3-link",
                    "DetailType": kind,
                    "Detail": json.dumps(sample["detail"]),
                    "EventBusName": stack.refs["PairingEventsBus"],
                }
            ]
        )
    return details


def pump_until(delivery: WebhookDelivery, done: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the deliveries did not come in time"
        delivery.pump()
        time.sleep(0.05)


def dead_letters(stack: Stack) -> list[dict[str, Any]]:
    sqs: Any = boto3.client("sqs")
    return sqs.receive_message(
        QueueUrl=stack.refs["WebhookDeadLetterQueue"],
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
    ).get("Messages", [])


def test_the_webhook_is_read_from_the_template_and_exists_only_with_a_url(
    stack: Stack, receiver: Receiver
) -> None:
    webhook = target(stack)
    assert webhook is not None
    assert (webhook.url, webhook.method, webhook.header) == (receiver.url, "POST", "X-Sage-X3-Link-Secret")
    assert webhook.secret == SECRET and SECRET not in repr(webhook)
    assert webhook.pattern == {"source": ["sage-x3-link"]}
    assert webhook.bus == stack.refs["PairingEventsBus"]
    assert webhook.dead_letter_queue_url == stack.refs["WebhookDeadLetterQueue"]
    assert (webhook.max_retries, webhook.max_age_seconds) == (185, 86400)
    without = aws_resources.create(PARAMETERS, stack_name="plain")
    assert target(without) is None
    assert "WebhookDeadLetterQueue" not in without.refs


def test_every_event_reaches_the_receiver_with_the_header(stack: Stack, receiver: Receiver) -> None:
    webhook = target(stack)
    assert webhook is not None
    lines: list[str] = []
    delivery = WebhookDelivery(webhook, lines.append)
    details = publish(stack, "PairingCompleted", "PairingExpired")
    pump_until(delivery, lambda: len(receiver.deliveries) >= 2)

    assert [d.event["detail-type"] for d in receiver.deliveries] == ["PairingCompleted", "PairingExpired"]
    for got, detail in zip(receiver.deliveries, details, strict=True):
        assert got.headers["x-sage-x3-link-secret"] == SECRET
        assert got.headers["content-type"].startswith("application/json")
        # The EventBridge event as a subscriber receives it: the envelope, and the detail as published.
        assert got.event["source"] == "sage-x3-link"
        assert {"version", "id", "time", "region", "resources"} <= set(got.event)
        assert got.event["detail"] == detail
    assert lines == [
        "webhook  PairingCompleted  delivered (HTTP 200)",
        "webhook  PairingExpired  delivered (HTTP 200)",
    ]
    assert not any(SECRET in line for line in lines)
    assert dead_letters(stack) == []


def test_a_receiver_that_fails_gets_the_event_again_later(stack: Stack, receiver: Receiver) -> None:
    webhook = target(stack)
    assert webhook is not None
    receiver.answers = [500, 503, 429]
    lines: list[str] = []
    delivery = WebhookDelivery(webhook, lines.append, base_seconds=0.4, cap_seconds=1)
    publish(stack, "PairingExpired")
    started = time.monotonic()
    pump_until(delivery, lambda: any(d.answered == 200 for d in receiver.deliveries))

    assert [d.answered for d in receiver.deliveries] == [500, 503, 429, 200]
    assert len({d.event["id"] for d in receiver.deliveries}) == 1  # the same event, again
    assert time.monotonic() - started >= 0.4  # not at once: after a backoff
    assert [line.split(":")[0] for line in lines[:3]] == [
        "webhook  PairingExpired  HTTP_500",
        "webhook  PairingExpired  HTTP_503",
        "webhook  PairingExpired  HTTP_429",
    ]
    assert dead_letters(stack) == []


def test_a_refusal_that_is_not_retried_goes_to_the_dead_letter_queue(
    stack: Stack, receiver: Receiver
) -> None:
    webhook = target(stack)
    assert webhook is not None
    receiver.then = 400
    delivery = WebhookDelivery(webhook, lambda _line: None)
    publish(stack, "PairingCompleted")
    pump_until(delivery, lambda: bool(receiver.deliveries))
    delivery.pump()

    assert len(receiver.deliveries) == 1
    (message,) = dead_letters(stack)
    assert json.loads(message["Body"])["detail-type"] == "PairingCompleted"
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "HTTP_400"
    assert attributes["RETRY_ATTEMPTS"] == "0"
    assert attributes["RULE_ARN"].endswith("-WebhookRule")


def test_retries_run_out_into_the_dead_letter_queue(stack: Stack, receiver: Receiver) -> None:
    webhook = target(stack)
    assert webhook is not None
    receiver.then = 502
    short: WebhookTarget = dataclasses.replace(webhook, max_retries=2)
    delivery = WebhookDelivery(short, lambda _line: None, base_seconds=0.01, cap_seconds=0.01)
    publish(stack, "PairingExpired")
    set_aside: list[dict[str, Any]] = []

    def landed() -> bool:
        set_aside.extend(dead_letters(stack))
        return bool(set_aside)

    pump_until(delivery, landed)

    assert [d.answered for d in receiver.deliveries] == [502, 502, 502]  # the first try and two retries
    attributes = {k: v["StringValue"] for k, v in set_aside[0]["MessageAttributes"].items()}
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
    assert attributes["ERROR_CODE"] == "HTTP_502"


def test_a_receiver_that_is_not_there_is_retried_then_set_aside(stack: Stack) -> None:
    webhook = target(stack)
    assert webhook is not None
    with webhook_receiver() as gone:
        closed = gone.url  # a port nothing listens on once the receiver stops
    lines: list[str] = []
    delivery = WebhookDelivery(
        dataclasses.replace(webhook, url=closed, max_retries=1), lines.append, base_seconds=0.01
    )
    publish(stack, "PairingDeleted")
    set_aside: list[dict[str, Any]] = []

    def landed() -> bool:
        set_aside.extend(dead_letters(stack))
        return bool(set_aside)

    pump_until(delivery, landed)
    assert lines[0] == "webhook  PairingDeleted  CONNECTION_ERROR: retried in 0 s"
    attributes = {k: v["StringValue"] for k, v in set_aside[0]["MessageAttributes"].items()}
    assert (attributes["ERROR_CODE"], attributes["RETRY_ATTEMPTS"]) == ("CONNECTION_ERROR", "1")


def test_backoff_grows_exponentially_to_its_cap_with_jitter() -> None:
    assert backoff(1, base=1, cap=60, rand=lambda: 0.0) == 0.5
    assert backoff(1, base=1, cap=60, rand=lambda: 1.0) == 1.0
    assert backoff(4, base=1, cap=60, rand=lambda: 1.0) == 8.0
    assert backoff(30, base=1, cap=60, rand=lambda: 1.0) == 60.0


def test_make_run_reads_the_webhook_from_its_variables_and_never_shows_the_secret() -> None:
    settings = StackSettings.from_env(
        {"WEBHOOK_URL": " http://127.0.0.1:8080/hooks ", "WEBHOOK_SECRET": "s3cret"}
    )
    assert (settings.webhook_url, settings.webhook_secret) == ("http://127.0.0.1:8080/hooks", "s3cret")
    assert "s3cret" not in repr(settings)
    unset = StackSettings.from_env({})
    assert (unset.webhook_url, unset.webhook_secret) == (None, "")
