"""Reading what the stack publishes: its bus routed, by an EventBridge rule, to a queue a test drains."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from local.aws_resources import Stack
from local.event_log import EventLog
from local.triggers import Triggers


def published_events(stack: Stack) -> Callable[[], list[dict[str, Any]]]:
    """Subscribe to everything the bundle publishes, as `make run`'s event log does; the returned function
    drains what arrived since."""
    return EventLog(stack.refs["PairingEventsBus"], log=lambda _line: None, name="observed-events").drain


def stream_triggers(stack: Stack) -> Triggers:
    """The template's table-stream triggers (PairingEventsFunction) over `stack`, read from the stream's
    start: `pump()` hands the function every change committed so far, as Lambda would."""
    return Triggers(stack, types=("DynamoDB",), functions=("PairingEventsFunction",))


def lifecycle_events(stack: Stack) -> Callable[[], list[dict[str, Any]]]:
    """Like `published_events`, but each drain first delivers the table's stream to its function, so it
    returns what the committed changes published since the last call (the writers publish nothing)."""
    triggers, drain = stream_triggers(stack), published_events(stack)

    def pump_and_drain() -> list[dict[str, Any]]:
        triggers.pump()
        return drain()

    return pump_and_drain
