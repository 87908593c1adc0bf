"""What `make run` shows of the stack's bus: each event, one short line, as it is published.

A rule on the bus routes the bundle's events to a local queue (as a subscriber's would), and a thread
drains it into the stack's log.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import boto3

from local.background import IDLE_SECONDS, POLLING, Repeating

SOURCE = "sage-x3-link"  # docs/api.md#lifecycle-events
NAME = "local-event-log"
SHOWN = ("tenant", "upstream_status", "reason", "folder", "filename", "key", "size")


def line(event: dict[str, Any]) -> str:
    """`event  PairingExpired  tenant=acme  reason=grace_period_over`: never more than the detail names."""
    detail = event.get("detail") or {}
    parts = [f"event  {event.get('detail-type', '?')}"]
    for key in SHOWN:
        value = detail.get(key)
        if value is not None and value != "":
            text = str(value)
            quoted = any(char.isspace() for char in text)  # a message with a newline stays one line
            parts.append(f"{key}={json.dumps(text) if quoted else text}")
    return "  ".join(parts)


class EventLog:
    """Subscribes a local queue to `bus_name`; `drain()` logs what arrived, `start()` keeps draining."""

    def __init__(
        self,
        bus_name: str,
        log: Callable[[str], None],
        *,
        session: boto3.Session | None = None,
        name: str = NAME,
    ) -> None:
        session = session or boto3.Session()
        self.log = log
        self._sqs, events = session.client("sqs", config=POLLING), session.client("events")
        self._queue = self._sqs.create_queue(QueueName=name)["QueueUrl"]
        with contextlib.suppress(Exception):  # an endpoint that outlived an earlier run: show only what's new
            self._sqs.purge_queue(QueueUrl=self._queue)
        arn = self._sqs.get_queue_attributes(QueueUrl=self._queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(Name=name, EventBusName=bus_name, EventPattern=json.dumps({"source": [SOURCE]}))
        events.put_targets(Rule=name, EventBusName=bus_name, Targets=[{"Id": "local-queue", "Arn": arn}])
        self._loop = Repeating(self.drain, log, name=name, failing="events  could not be read")

    def drain(self) -> list[dict[str, Any]]:
        """Log and return every event that arrived since the last drain."""
        found: list[dict[str, Any]] = []
        while True:
            batch = self._sqs.receive_message(QueueUrl=self._queue, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return found
            for message in batch:
                event = json.loads(message["Body"])
                found.append(event)
                self.log(line(event))
                self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=message["ReceiptHandle"])

    def start(self, interval: float = 0.25, idle_interval: float = IDLE_SECONDS) -> EventLog:
        self._loop.start(interval, idle_interval=idle_interval)
        return self

    def wake(self) -> None:
        """Look now: a function just ran, and may have sent an event."""
        self._loop.wake()

    def stop(self) -> None:
        self._loop.stop()
