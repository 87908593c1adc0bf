"""How long a caller may work, and how long its own caller waits: the deadlines a refresh is fitted into.

A token call cut off after Sage applied a refresh loses the rotated token for good, so the time a query
spends before its token call is taken from that call, never added past API Gateway's limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Any: the API Gateway event is JSON of many shapes: only the fields read are checked.
from typing import Any

API_GATEWAY_TIMEOUT = 29.0  # API Gateway's integration timeout (REST APIs)
FINISH_MARGIN = 1.0  # kept back from the invocation's end for logging and metrics


@dataclass(frozen=True)
class Budget:
    """Until when the caller may work (its invocation), and until when its own caller waits for an answer."""

    finish_by: float
    answer_by: float | None = None

    @classmethod
    def for_api_request(
        cls, event: Mapping[str, Any], remaining_ms: int, clock: Callable[[], float] = time.time
    ) -> Budget:
        now = clock()
        received = (event.get("requestContext") or {}).get("requestTimeEpoch")
        started = received / 1000 if isinstance(received, int | float) else now
        if not now - API_GATEWAY_TIMEOUT < started <= now:  # a replayed or sample event: count from now
            started = now
        return cls(
            finish_by=now + remaining_ms / 1000 - FINISH_MARGIN, answer_by=started + API_GATEWAY_TIMEOUT
        )

    @classmethod
    def for_invocation(cls, remaining_ms: int, clock: Callable[[], float] = time.time) -> Budget:
        return cls(finish_by=clock() + remaining_ms / 1000 - FINISH_MARGIN)
