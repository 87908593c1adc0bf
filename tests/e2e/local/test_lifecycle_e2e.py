"""`make run` shows a pairing's life as it happens: the table's stream is read from the embedded AWS by
the local trigger, the function publishes, and each event is printed as one short line."""

from __future__ import annotations

import time
from collections.abc import Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from local.stack import LocalStack, StackSettings
from tests.e2e.local.conftest import deliver_callback, open_pairing_link
from x3link import wiring

pytestmark = pytest.mark.e2e


class Lines(list[str]):
    def wait_for(self, prefix: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self if line.startswith(prefix)]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no line starting with {prefix!r} in:\n" + "\n".join(self))


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[LocalStack, Lines]]:
    lines = Lines()
    with LocalStack(StackSettings(port=0, moto_port=0), log=lines.append) as stack:
        wiring.reset()
        parameters.clear_caches()
        yield stack, lines
    wiring.reset()
    parameters.clear_caches()


def test_pairing_and_deletion_are_printed_as_they_happen(running: tuple[LocalStack, Lines]) -> None:
    stack, lines = running
    assert any(line.startswith("  Trigger      PairingEventsFunction <- DynamoDB") for line in lines)
    started = stack.call(
        "POST", "/pairings", json_body={"tenant": "shown", "customer": "https://x3.shown.example"}
    )
    assert started.status == 201, started.body
    link, cookie = open_pairing_link(stack, started.json()["pairing_url"])
    callback = stack.emulator.approve(link, folders=["SEED"])
    answer = deliver_callback(stack, callback, cookie)
    assert answer.status == 200, answer.body

    assert lines.wait_for("event  PairingCompleted") == "event  PairingCompleted  tenant=shown  reason=paired"

    assert stack.call("DELETE", "/tenants/shown").status == 204
    assert lines.wait_for("event  PairingDeleted") == "event  PairingDeleted  tenant=shown  reason=deleted"


def test_a_change_written_straight_into_the_table_is_printed(running: tuple[LocalStack, Lines]) -> None:
    """Nothing but the stream announces it: as if the function that wrote it died right after."""
    stack, lines = running
    assert stack.resources is not None
    item = {
        "tenant": {"S": "direct"},
        "customer": {"S": "https://x3.direct.example"},
        "status": {"S": "expired"},
        "reason": {"S": "grace_period_over"},
        "generation": {"S": "d" * 32},
        "version": {"N": "4"},
    }
    table = stack.resources.refs["PairingsTable"]
    boto3.client("dynamodb").put_item(TableName=table, Item={**item, "status": {"S": "suspended"}})
    boto3.client("dynamodb").put_item(TableName=table, Item={**item, "version": {"N": "5"}})

    assert (
        lines.wait_for("event  PairingExpired")
        == "event  PairingExpired  tenant=direct  reason=grace_period_over"
    )
