"""Events other systems subscribe to, on the stack's own EventBridge bus."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from x3link.events.lifecycle import SOURCE, LifecycleEvent

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

PUT_EVENTS_LIMIT = 10  # entries per PutEvents call


class EventPublisher:
    """Puts lifecycle events on the bus and says which ones EventBridge did not take.

    A rejected entry is returned, never dropped: the caller (the stream's handler) keeps its record
    unprocessed so that it is retried. A failing call raises; entries of earlier chunks may then have
    been published already, which is harmless since subscribers deduplicate on the detail's `id`.
    """

    def __init__(self, bus_name: str, events_client: EventBridgeClient) -> None:
        self._bus = bus_name
        self._events = events_client

    def publish(self, events: Sequence[LifecycleEvent]) -> list[str]:
        """Publish every event; return the ids of those EventBridge refused (empty when all went)."""
        failed: list[str] = []
        for start in range(0, len(events), PUT_EVENTS_LIMIT):
            chunk = events[start : start + PUT_EVENTS_LIMIT]
            answer = self._events.put_events(Entries=[self._entry(event) for event in chunk])
            results = answer.get("Entries") or []
            if not answer.get("FailedEntryCount"):
                continue
            # Results come back in the order of the entries; a short list counts the rest as refused.
            for index, event in enumerate(chunk):
                result = results[index] if index < len(results) else {"ErrorCode": "Missing"}
                if result.get("ErrorCode") or not result.get("EventId"):
                    failed.append(event.id)
        return failed

    def _entry(self, event: LifecycleEvent) -> PutEventsRequestEntryTypeDef:
        return {
            "Source": SOURCE,
            "DetailType": event.detail_type,
            "Detail": json.dumps(event.detail, separators=(",", ":")),
            "EventBusName": self._bus,
        }
