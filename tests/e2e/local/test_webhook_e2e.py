"""`make run` with WEBHOOK_URL: a pairing's life reaches the app's receiver with the configured header, as
EventBridge's API destination delivers it on AWS, and a receiver that fails gets the event again later."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from local.stack import LocalStack, StackError, StackSettings
from tests.e2e.local.conftest import deliver_callback, open_pairing_link
from tests.support.webhook_receiver import Receiver, webhook_receiver
from x3link import wiring

pytestmark = pytest.mark.e2e

SECRET = "whsec-e2e"  # nosec B105  # a test value, not a credential


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[LocalStack, Receiver, list[str]]]:
    lines: list[str] = []
    with webhook_receiver() as receiver:
        settings = StackSettings(port=0, moto_port=0, webhook_url=receiver.url, webhook_secret=SECRET)
        with LocalStack(settings, log=lines.append) as stack:
            wiring.reset()
            parameters.clear_caches()
            yield stack, receiver, lines
    wiring.reset()
    parameters.clear_caches()


def test_the_receiver_gets_pairing_completed_and_expired_with_the_header(
    running: tuple[LocalStack, Receiver, list[str]],
) -> None:
    stack, receiver, lines = running
    assert any(line.startswith(f"  Webhook      {receiver.url}") for line in lines)
    started = stack.call(
        "POST", "/pairings", json_body={"tenant": "hooked", "customer": "https://x3.hooked.example"}
    )
    assert started.status == 201, started.body
    link, cookie = open_pairing_link(stack, started.json()["pairing_url"])
    answer = deliver_callback(stack, stack.emulator.approve(link, folders=["SEED"]), cookie)
    assert answer.status == 200, answer.body

    (completed,) = receiver.wait_for("PairingCompleted")
    assert completed.headers["x-sage-x3-link-secret"] == SECRET
    assert completed.event["source"] == "sage-x3-link"
    assert completed.event["detail"]["tenant"] == "hooked"
    assert completed.event["detail"]["status"] == "active"

    # Expired as the keep-alive would write it; the stream announces it, the bus delivers it.
    receiver.answers = [500]  # and the receiver fails the first attempt
    assert stack.resources is not None
    table = stack.resources.refs["PairingsTable"]
    item = {
        "tenant": {"S": "gone"},
        "customer": {"S": "https://x3.gone.example"},
        "status": {"S": "suspended"},
        "reason": {"S": "grant_refused"},
        "generation": {"S": "e" * 32},
        "version": {"N": "4"},
    }
    boto3.client("dynamodb").put_item(TableName=table, Item=item)
    expired = {
        **item,
        "status": {"S": "expired"},
        "reason": {"S": "grace_period_over"},
        "version": {"N": "5"},
    }
    boto3.client("dynamodb").put_item(TableName=table, Item=expired)

    first, again = receiver.wait_for("PairingExpired", count=2, timeout=30)
    assert (first.answered, again.answered) == (500, 200)
    assert first.event["id"] == again.event["id"]
    assert again.headers["x-sage-x3-link-secret"] == SECRET
    assert again.event["detail"]["tenant"] == "gone"
    assert again.event["detail"]["reason"] == "grace_period_over"
    assert not any(SECRET in line for line in lines)


def test_a_webhook_url_without_its_secret_is_refused_before_anything_starts() -> None:
    settings = StackSettings(port=0, moto_port=0, webhook_url="http://127.0.0.1:9/hook")
    with pytest.raises(StackError, match="WEBHOOK_SECRET"):
        LocalStack(settings).start()
