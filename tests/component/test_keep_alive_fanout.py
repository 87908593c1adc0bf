"""The keep-alive fanned out: the schedule queues due pairings through the index, spread over the window;
the queue's worker refreshes them, slows down when Sage says 429, retries what failed for now, and reports
each run's outcome once its queue is drained."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest

from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import invoke
from tests.support.keeper import (
    SCHEDULED_EVENT,
    concurrently,
    drain_refresh_queue,
    pair_many,
    stored,
    sweep,
)
from x3link import wiring
from x3link.keep_alive.fan_out import KeepAliveDispatcher, KeepAliveWorker, RefreshOrder, RefreshQueue
from x3link.keep_alive.runs import KEPT_FAILURES

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

WORKER = "RefreshWorkerFunction"


class RecordingSqs:
    """The SQS client, with every message sent written down (body and delay)."""

    def __init__(self) -> None:
        self._sqs = boto3.client("sqs")
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send_message_batch(self, **kwargs: Any) -> Any:
        self.sent += [(json.loads(e["MessageBody"]), e.get("DelaySeconds", 0)) for e in kwargs["Entries"]]
        return self._sqs.send_message_batch(**kwargs)

    def send_message(self, **kwargs: Any) -> Any:
        self.sent.append((json.loads(kwargs["MessageBody"]), kwargs.get("DelaySeconds", 0)))
        return self._sqs.send_message(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)


def queued_bodies(stack: Stack) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    url = stack.refs["RefreshQueue"]
    bodies: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(message["Body"]) for message in messages]
    return bodies


def test_the_schedule_queues_only_due_pairings_through_the_index_and_spreads_them(
    sage: Emulator, stack: Stack
) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    due = pair_many(sage, 30, prefix="due")
    sage.configure(refresh_lifetime=30 * 86400)
    pair_many(sage, 3, prefix="fresh")
    recording = RecordingSqs()
    dispatcher = KeepAliveDispatcher(
        wiring.token_keeper(),
        RefreshQueue(stack.refs["RefreshQueue"], cast("SQSClient", recording)),
        wiring.run_ledger(),
        keep_alive_seconds=7 * 86400,
        spread_seconds=900,
        rng=random.Random(7),
    )
    sage.clear_requests()

    report = dispatcher.run(stop_at=time.time() + 60)

    assert (report.queued, report.deferred) == (30, 0)
    assert sorted(body["tenant"] for body, _ in recording.sent) == sorted(due)
    delays = [delay for _, delay in recording.sent]
    assert all(0 <= delay < 900 for delay in delays)
    assert len(set(delays)) > 20  # spread over the window, not one burst at the tick
    assert sage.count("refresh") == 0  # the schedule only queues
    assert wiring.run_ledger().report(report.run).queued == 30  # type: ignore[union-attr]


def test_the_schedule_never_scans_the_table(sage: Emulator, stack: Stack) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    pair_many(sage, 3)
    operations: Counter[str] = Counter()

    def counting(model: Any, **_: Any) -> None:
        operations[model.name] += 1

    # botocore's own event hooks on the client the functions share: nothing of the client is replaced.
    wiring.aws_client("dynamodb").meta.events.register("before-call.dynamodb", counting)

    answer = invoke("TokenRefreshFunction", json.loads(SCHEDULED_EVENT.read_text()))

    assert answer["queued"] == 3
    assert operations["Scan"] == 0 and operations["Query"] >= 2  # active due, and suspended


def test_the_run_report_says_what_the_workers_did_and_an_unknown_run_says_so(
    sage: Emulator, stack: Stack
) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    pair_many(sage, 12)

    report = sweep()

    assert (report["queued"], report["refreshed"], report["pending"], report["failed"]) == (12, 12, 0, 0)
    assert invoke("TokenRefreshFunction", {"report": "20260101T000000Z-00000000"})["error"] == "unknown_run"


def test_a_429_slows_the_worker_down_and_counts_as_no_failure(sage: Emulator, stack: Stack) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    pairs = pair_many(sage, 5)
    sage.fail_next("refresh", status=429, retry_after=1)
    sage.clear_requests()
    started = time.monotonic()

    report = sweep()

    assert (report["refreshed"], report["failed"], report["pending"]) == (5, 0, 0), report
    # One 429, then nothing sent to Sage until its Retry-After passed: the batch's others were queued again.
    refreshes = [entry["time"] for entry in sage.requests if entry["route"] == "refresh"]
    assert len(refreshes) == 6
    assert min(refreshes[1:]) - refreshes[0] >= 1.0
    assert time.monotonic() - started >= 1.0
    for tenant, customer in pairs.items():
        assert stored(tenant).refresh_token == sage.current_refresh_token(customer)
    dead_letters = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.refs["RefreshDeadLetterQueue"], AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert dead_letters["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_a_worker_out_of_time_queues_the_refresh_again_without_starting_it(
    sage: Emulator, stack: Stack
) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    pair_many(sage, 1)
    worker: KeepAliveWorker = wiring.keep_alive_worker()
    sage.clear_requests()

    worker.begin(finish_by=time.time() + 5)  # less than a refresh may need
    outcome = worker.handle(RefreshOrder("t000", "run-1").body(), "receipt", 1)

    assert outcome == "requeued" and sage.count("refresh") == 0
    assert [body["tenant"] for body in queued_bodies(stack)] == ["t000"]


def test_a_message_no_run_wrote_is_dropped_without_failing_the_batch(sage: Emulator, stack: Stack) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    pair_many(sage, 1)
    sqs = boto3.client("sqs")
    url = stack.refs["RefreshQueue"]
    sqs.send_message(QueueUrl=url, MessageBody="{not json")
    sqs.send_message(QueueUrl=url, MessageBody=RefreshOrder("t000", "run-1").body())

    drain_refresh_queue(lambda event: invoke(WORKER, event))

    assert wiring.run_ledger().report("run-1").counts == {"refreshed": 1}  # type: ignore[union-attr]


def test_the_report_names_a_bounded_number_of_failures_and_counts_them_all(
    sage: Emulator, stack: Stack
) -> None:
    ledger = wiring.run_ledger()
    for batch in range(6):
        failures = [
            {"tenant": f"t{batch}-{n}", "error": "Sage X3 did not answer in time."} for n in range(10)
        ]
        ledger.add("run-1", {"failed": 10}, failures)

    report = ledger.report("run-1")

    assert report is not None
    assert report.counts == {"failed": 60}
    assert KEPT_FAILURES <= len(report.failures) < KEPT_FAILURES + 10


@pytest.mark.usefixtures("atomic_moto_dynamodb")
def test_the_same_pairing_queued_twice_is_refreshed_once(sage: Emulator, stack: Stack) -> None:
    """Two runs' messages for one pairing, handled at once by two workers: the lease lets one refresh."""
    sage.configure(refresh_lifetime=3 * 86400)
    pairs = pair_many(sage, 1)
    sage.configure(refresh_lifetime=30 * 86400)  # once refreshed, it is no longer due
    sage.clear_requests()
    workers = [_environment() for _ in range(2)]
    for worker in workers:
        worker.begin(finish_by=time.time() + 110)

    outcomes, errors = concurrently(
        [partial(w.handle, RefreshOrder("t000", f"run-{n}").body(), "r", 1) for n, w in enumerate(workers)]
    )

    assert errors == []
    assert sage.count("refresh") == 1
    assert sorted(outcomes) in (["refreshed", "refreshed"], ["refreshed", "skipped"])
    assert stored("t000").refresh_token == sage.current_refresh_token(pairs["t000"])


def _environment() -> KeepAliveWorker:
    """A worker in an execution environment of its own (its own keeper and lease owner)."""
    from tests.support.keeper import worker as keeper_of_its_own

    return KeepAliveWorker(
        keeper_of_its_own(),
        wiring.refresh_queue(),
        wiring.run_ledger(),
        keep_alive_seconds=wiring.settings().keep_alive_seconds,
    )
