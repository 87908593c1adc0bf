"""`make bench`'s keep-alive figure: N due pairings, Sage answering in L seconds, C workers, against the
N·L/C a perfect fan-out would take.

The worker environments are threads of this process, each with its own keeper (its own lease owner) and
worker, fed by a poller like Lambda's (receive up to 10, hand them over, delete what was handled). moto and
the emulator run in this process too, so their own CPU time (moto parses every DynamoDB expression in
Python) is measured once, one refresh at a time with no Sage latency, and the wall time is also compared
with the larger of N·L/C and N times that cost: what the fan-out adds beyond the services it calls.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    POWERTOOLS_SERVICE_NAME="bench",
    POWERTOOLS_METRICS_NAMESPACE="Bench",
    POWERTOOLS_LOG_LEVEL="ERROR",
    POWERTOOLS_METRICS_DISABLED="true",
)

import boto3
from moto import mock_aws

from local import aws_resources
from local.sagex3_emulator import Emulator

DAY = 86400.0
QUEUE_COUNTS: list[Any] = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


CALIBRATION = 200


@contextmanager
def atomic_moto() -> Iterator[None]:
    """AWS applies each request atomically; moto, under threads, does not (an SQS message can be handed to
    two receivers, a conditional write checked then overwritten). One request at a time, as the real ones."""
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


def fan_out(pairings: int = 10_000, concurrency: int = 10, latency: float = 0.05) -> dict[str, Any]:
    from tests.support.sage import CLIENT_ID, CLIENT_SECRET
    from x3link import wiring
    from x3link.oauth import parse_token_response

    with Emulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sage, mock_aws(), atomic_moto():
        stack = aws_resources.create(
            {"SageX3Url": sage.base_url(), "RefreshSpreadSeconds": "0"},
            client_credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        )
        for function in ("TokenRefreshFunction", "RefreshWorkerFunction"):
            os.environ.update(stack.function_environment(function))
        os.environ["REFRESH_RETRY_SECONDS"] = "1"  # a failed refresh's retry: seconds here, not 30
        wiring.reset()
        sage.configure(refresh_lifetime=3 * DAY)  # every pairing is due
        store, now = wiring.token_store(), time.time()
        tenants = [f"b{n:05d}" for n in range(CALIBRATION + pairings)]
        for tenant in tenants:
            customer = f"https://x3.{tenant}.example"
            tokens = parse_token_response(sage.grant(CLIENT_ID, customer), now)
            store.save_pairing(tenant, customer, sage.base_url(), tokens, now)
        sage.configure(refresh_lifetime=30 * DAY)  # a refreshed pairing is no longer due
        per_refresh = _one_at_a_time(tenants[:CALIBRATION], wiring)
        sage.configure(latency=latency)
        sage.clear_requests()
        started = time.perf_counter()
        queued = wiring.keep_alive_dispatcher().run(stop_at=time.time() + 600)
        queued_in = time.perf_counter() - started
        outcomes = _drain(stack.refs["RefreshQueue"], concurrency, wiring)
        wall = time.perf_counter() - started
        ideal = pairings * latency / concurrency
        floor = max(ideal, pairings * per_refresh)
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


def _one_at_a_time(tenants: list[str], wiring: Any) -> float:
    """What one queued refresh costs this process with no Sage latency and one worker (moto, the emulator,
    our code; SQS aside): the mean over `tenants`, which are then no longer due."""
    from tests.support.keeper import worker as keeper_of_its_own
    from x3link.keep_alive import KeepAliveWorker, RefreshOrder

    worker = KeepAliveWorker(
        keeper_of_its_own(),
        wiring.refresh_queue(),
        wiring.run_ledger(),
        keep_alive_seconds=wiring.settings().keep_alive_seconds,
    )
    started = time.perf_counter()
    for start in range(0, len(tenants), 10):
        worker.begin(finish_by=time.time() + 115)
        for tenant in tenants[start : start + 10]:
            assert worker.handle(RefreshOrder(tenant, "calibration").body(), "-", 1) == "refreshed"
        worker.finish()
    return (time.perf_counter() - started) / len(tenants)


def _drain(queue_url: str, concurrency: int, wiring: Any) -> Counter[str]:
    """C execution environments polling the queue as Lambda's event source mapping does, until it is empty."""
    from tests.support.keeper import worker as keeper_of_its_own
    from x3link.keep_alive import KeepAliveWorker, RetryLater

    sqs = boto3.client("sqs")
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
            messages = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
            ).get("Messages", [])
            if not messages:
                left = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=QUEUE_COUNTS)
                if not any(int(count) for count in left["Attributes"].values()):
                    return
                time.sleep(0.05)
                continue
            worker.begin(finish_by=time.time() + 115)
            handled: list[Any] = []
            for message in messages:
                receives = int(message["Attributes"].get("ApproximateReceiveCount", "1"))
                try:
                    outcome = worker.handle(message["Body"], message["ReceiptHandle"], receives)
                except RetryLater as failed:
                    with lock:
                        outcomes[f"retried: {failed}"] += 1
                    continue
                handled.append({"Id": str(len(handled)), "ReceiptHandle": message["ReceiptHandle"]})
                with lock:
                    outcomes[outcome] += 1
            worker.finish()
            if handled:
                sqs.delete_message_batch(QueueUrl=queue_url, Entries=handled)

    workers = [
        KeepAliveWorker(
            keeper_of_its_own(),
            wiring.refresh_queue(),
            wiring.run_ledger(),
            keep_alive_seconds=wiring.settings().keep_alive_seconds,
        )
        for _ in range(concurrency)
    ]
    threads = [threading.Thread(target=environment, args=(worker,)) for worker in workers]
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

    # python -m tests.bench_fanout [pairings [concurrency [latency]]]
    n, c, latency = (sys.argv[1:] + ["10000", "5", "0.05"][len(sys.argv) - 1 :])[:3]
    print(json.dumps(fan_out(int(n), int(c), float(latency)), indent=2))
