"""Events other systems subscribe to, on the stack's own EventBridge bus."""

from __future__ import annotations

import json
from typing import Any

SOURCE = "sage-x3-link"


class PairingEvents:
    def __init__(self, bus_name: str, events: Any) -> None:
        self._bus = bus_name
        self._events = events

    def pairing_expired(self, tenant: str, customer: str, reason: str, at: str | None) -> None:
        """Tell subscribers a customer must pair again; published once, by the worker that expired it."""
        detail = {"tenant": tenant, "customer": customer, "reason": reason, "expired_at": at}
        result = self._events.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": "PairingExpired",
                    "Detail": json.dumps(detail),
                    "EventBusName": self._bus,
                }
            ]
        )
        if result.get("FailedEntryCount"):
            raise RuntimeError("EventBridge did not accept the PairingExpired event")
