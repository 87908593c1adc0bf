"""`make bench`'s keep-alive figure: N due pairings, Sage answering in L seconds, C workers, against the
N·L/C a perfect fan-out would take.

The worker environments are threads of this process, each with its own keeper (its own lease owner) and
worker, fed by a poller like Lambda's (receive up to 10, hand them over, delete what was handled). The
schedule's query, the workers, DynamoDB (moto), KMS (moto) and Sage (the emulator) are the real code paths;
SQS is stood in for by an in-memory queue with SQS's delays and receive counts, because moto's SQS scans
its whole queue on every receive (10,000 messages: minutes of moto, not of SQS). The tests drive moto's
SQS instead. moto and the emulator spend CPU in this process (moto parses every DynamoDB expression in
Python), so one refresh's cost here is measured alone, and the wall time is also compared with the larger
of N·L/C and N times that cost: what the fan-out adds beyond the services it calls.
"""

from __future__ import annotations

from bench import env  # noqa: F401  # first: the environment must be set before boto3 is imported

# isort: split

import heapq
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from moto import mock_aws

from local import aws_resources
from local.sagex3_emulator import Emulator
from x3link.keep_alive.fan_out import RefreshOrder

if TYPE_CHECKING:
    from x3link.keep_alive.fan_out import KeepAliveWorker

DAY = 86400.0


CALIBRATION = 200


@contextmanager
def atomic_moto() -> Iterator[None]:
    """AWS applies each request atomically; moto, under threads, does not (a conditional write can be
    checked, then overwritten). One request at a time, as the real services behave."""
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.RLock()
    original = BotocoreStubber.process_request

    def process_request(self: BotocoreStubber, request: Any) -> Any:
        with lock:
            return original(self, request)

    BotocoreStubber.process_request = process_request  # type: ignore[method-assign]
    try:
        yield
    finally:
        BotocoreStubber.process_request = original  # type: ignore[method-assign]


class InMemoryQueue:
    """What the keep-alive asks of SQS, in memory: batches sent with delays, receives of up to 10 with a
    receive count, a failed message hidden for its backoff, and whether anything is left."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[tuple[float, int, str, int]] = []  # (visible at, seq, body, receives so far)
        self._in_flight: dict[str, tuple[str, int]] = {}
        self._seq = 0

    def _put(self, body: str, delay: float, receives: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._waiting, (time.monotonic() + delay, self._seq, body, receives))

    def send(self, orders: list[tuple[RefreshOrder, int]]) -> int:
        with self._lock:
            for order, delay in orders:
                self._put(order.body(), delay)
        return len(orders)

    def later(self, order: RefreshOrder, delay: float) -> None:
        with self._lock:
            self._put(order.body(), delay)

    def hide(self, receipt_handle: str, seconds: float) -> None:
        with self._lock:
            body, receives = self._in_flight.pop(receipt_handle)
            self._put(body, seconds, receives)

    def receive(self) -> list[tuple[str, str, int]]:
        """Up to 10 visible messages: (body, receipt handle, receive count)."""
        taken: list[tuple[str, str, int]] = []
        with self._lock:
            while self._waiting and len(taken) < 10 and self._waiting[0][0] <= time.monotonic():
                _, seq, body, receives = heapq.heappop(self._waiting)
                receipt = f"{seq}-{receives + 1}"
                self._in_flight[receipt] = (body, receives + 1)
                taken.append((body, receipt, receives + 1))
        return taken

    def delete(self, receipt_handle: str) -> None:
        with self._lock:
            self._in_flight.pop(receipt_handle, None)

    def drained(self) -> bool:
        with self._lock:
            return not self._waiting and not self._in_flight


def fan_out(pairings: int = 10_000, concurrency: int = 5, latency: float = 0.05) -> dict[str, Any]:
    from tests.support.sage import CLIENT_ID, CLIENT_SECRET
    from x3link import wiring
    from x3link.keep_alive.fan_out import KeepAliveDispatcher
    from x3link.sage.oauth import parse_token_response

    with Emulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sage, mock_aws(), atomic_moto():
        stack = aws_resources.create(
            {"SageX3Url": sage.base_url(), "RefreshSpreadSeconds": "0"},
            client_credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        )
        for function in ("TokenRefreshFunction", "RefreshWorkerFunction"):
            os.environ.update(stack.function_environment(function))
        wiring.reset()
        sage.configure(refresh_lifetime=3 * DAY)  # every pairing is due
        store, now = wiring.token_store(), time.time()
        tenants = [f"b{n:05d}" for n in range(CALIBRATION + pairings)]
        for tenant in tenants:
            customer = f"https://x3.{tenant}.example"
            tokens = parse_token_response(sage.grant(CLIENT_ID, customer), now)
            store.save_pairing(tenant, customer, sage.base_url(), tokens, now)
        sage.configure(refresh_lifetime=30 * DAY)  # a refreshed pairing is no longer due
        queue = InMemoryQueue()
        per_refresh = _one_at_a_time(tenants[:CALIBRATION], queue, wiring)
        sage.configure(latency=latency)
        sage.clear_requests()
        dispatcher = KeepAliveDispatcher(
            wiring.token_keeper(),
            cast(Any, queue),
            wiring.run_ledger(),
            keep_alive_seconds=wiring.settings().keep_alive_seconds,
            spread_seconds=0,
        )
        started = time.perf_counter()
        queued = dispatcher.run(stop_at=time.time() + 600)
        queued_in = time.perf_counter() - started
        outcomes = _drain(queue, concurrency, wiring)
        wall = time.perf_counter() - started
        ideal = pairings * latency / concurrency
        floor = max(ideal, queued_in + pairings * per_refresh)
        return {
            "pairings": pairings,
            "concurrency": concurrency,
            "sage_latency_s": latency,
            "queued": queued.queued,
            "queued_in_s": round(queued_in, 1),
            "outcomes": dict(outcomes),
            "sage_refreshes": sage.count("refresh"),
            "wall_s": round(wall, 1),
            "ideal_s": round(ideal, 1),
            "ratio": round(wall / ideal, 2),
            "one_refresh_here_ms": round(per_refresh * 1000, 1),
            "floor_s": round(floor, 1),
            "ratio_to_floor": round(wall / floor, 2),
        }


def _worker(queue: InMemoryQueue, wiring: Any) -> KeepAliveWorker:
    """A worker in an execution environment of its own: its own keeper (lease owner), sharing the clients."""
    from tests.support.keeper import worker as keeper_of_its_own
    from x3link.keep_alive.fan_out import KeepAliveWorker

    return KeepAliveWorker(
        keeper_of_its_own(),
        cast(Any, queue),
        wiring.run_ledger(),
        keep_alive_seconds=wiring.settings().keep_alive_seconds,
    )


def _one_at_a_time(tenants: list[str], queue: InMemoryQueue, wiring: Any) -> float:
    """What one queued refresh costs this process with no Sage latency and one worker (moto, the emulator,
    our code): the mean over `tenants`, which are then no longer due."""
    worker = _worker(queue, wiring)
    started = time.perf_counter()
    for start in range(0, len(tenants), 10):
        worker.begin(finish_by=time.time() + 115)
        for tenant in tenants[start : start + 10]:
            assert worker.handle(RefreshOrder(tenant, "calibration").body(), "-", 1) == "refreshed"
        worker.finish()
    return (time.perf_counter() - started) / len(tenants)


def _drain(queue: InMemoryQueue, concurrency: int, wiring: Any) -> Counter[str]:
    """C execution environments polling the queue as Lambda's event source mapping does, until it is empty."""
    from x3link.keep_alive.fan_out import RetryLater

    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def environment(worker: KeepAliveWorker) -> None:
        try:
            poll(worker)
        except BaseException as exc:  # reported, never a silent thread
            errors.append(exc)

    def poll(worker: KeepAliveWorker) -> None:
        while True:
            messages = queue.receive()
            if not messages:
                if queue.drained():
                    return
                time.sleep(0.01)
                continue
            worker.begin(finish_by=time.time() + 115)
            for body, receipt, receives in messages:
                try:
                    outcome = worker.handle(body, receipt, receives)
                except RetryLater as failed:
                    with lock:
                        outcomes[f"retried: {failed}"] += 1
                    continue  # the worker hid it for its backoff: it comes back
                queue.delete(receipt)
                with lock:
                    outcomes[outcome] += 1
            worker.finish()

    threads = [
        threading.Thread(target=environment, args=(_worker(queue, wiring),)) for _ in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} worker environments failed") from errors[0]
    return outcomes


if __name__ == "__main__":
    import json
    import sys

    # python -m bench.bench_fanout [pairings [concurrency [latency]]]
    n, c, latency = (sys.argv[1:] + ["10000", "5", "0.05"][len(sys.argv) - 1 :])[:3]
    print(json.dumps(fan_out(int(n), int(c), float(latency)), indent=2))
