"""What the benches count at the boundaries: every AWS call any boto3 client makes, and the CPU time moto
spends answering them (in this thread: moto answers inside the caller's botocore call), so that a
refresh's own CPU can be told from moto's."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@contextmanager
def counted_aws() -> Iterator[Counter[str]]:
    """Count every AWS API call made by any boto3 client while the block runs."""
    import botocore.client

    calls: Counter[str] = Counter()
    # botocore-stubs leave out the private _make_api_call that every client call goes through.
    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def counting(self: Any, operation: str, params: Any) -> Any:
        calls[f"{self.meta.service_model.service_name}:{operation}"] += 1
        return original(self, operation, params)

    botocore.client.BaseClient._make_api_call = counting  # type: ignore[attr-defined]
    try:
        yield calls
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[attr-defined]


def by_service(calls: Counter[str]) -> dict[str, int]:
    """{"dynamodb": 2, "kms": 1} from {"dynamodb:UpdateItem": 2, "kms:Decrypt": 1}."""
    services: Counter[str] = Counter()
    for name, count in calls.items():
        services[name.split(":", 1)[0]] += count
    return dict(services)


@dataclass
class MotoTime:
    cpu_s: float = 0.0  # this thread's CPU seconds spent inside moto's answers


@contextmanager
def moto_cpu() -> Iterator[MotoTime]:
    """The CPU time this thread spends in moto's botocore hook (moto parsing and answering) while the block
    runs: subtracted from a refresh's CPU, what remains is the client's own work (botocore included)."""
    from moto.core.botocore_stubber import BotocoreStubber

    spent = MotoTime()
    original = BotocoreStubber.__call__

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent.cpu_s += time.thread_time() - started

    BotocoreStubber.__call__ = timed  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        BotocoreStubber.__call__ = original  # type: ignore[method-assign]
