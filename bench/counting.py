"""What the benches count at the boundaries: every AWS call any boto3 client makes, and the CPU time moto
spends answering them (in this thread: moto answers inside the caller's botocore call), so that a
refresh's own CPU can be told from moto's."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.latency_model import TimedCall


@dataclass
class AwsCalls:
    """What a block's AWS calls were: their count by `service:Operation`, when each started (in call order),
    and the CPU seconds that calls made on other threads spent (moto's answers included)."""

    counts: Counter[str] = field(default_factory=Counter)
    timeline: list[TimedCall] = field(default_factory=list)
    other_threads_cpu_s: float = 0.0


@contextmanager
def aws_calls(latencies_ms: Mapping[str, float] | None = None) -> Iterator[AwsCalls]:
    """Record every AWS API call made by any boto3 client, on any thread, while the block runs.

    `latencies_ms`: each call to a service named there first waits that long, as it would on AWS, so that
    calls made one after another cannot start inside each other's latency, and calls made side by side do:
    the timeline then shows which of them a refresh waits for (latency_model.overlapped_ms).
    """
    import botocore.client

    recorded = AwsCalls()
    lock = threading.Lock()
    caller = threading.get_ident()
    # botocore-stubs leave out the private _make_api_call that every client call goes through.
    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def recording(self: Any, operation: str, params: Any) -> Any:
        service = self.meta.service_model.service_name
        cpu = time.thread_time()
        with lock:
            recorded.counts[f"{service}:{operation}"] += 1
            recorded.timeline.append(TimedCall(service, time.perf_counter()))
        try:
            if latencies_ms and service in latencies_ms:
                time.sleep(latencies_ms[service] / 1000)
            return original(self, operation, params)
        finally:
            if threading.get_ident() != caller:
                with lock:
                    recorded.other_threads_cpu_s += time.thread_time() - cpu

    botocore.client.BaseClient._make_api_call = recording  # type: ignore[attr-defined]
    try:
        yield recorded
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[attr-defined]


@contextmanager
def counted_aws() -> Iterator[Counter[str]]:
    """Count every AWS API call made by any boto3 client while the block runs."""
    with aws_calls() as recorded:
        yield recorded.counts


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
