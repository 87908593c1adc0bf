"""The keep-alive, fanned out over SQS: the scheduled run finds the due pairings through the index and
queues them, spread over a window; workers that the queue triggers refresh them with the keeper, the same
refresh under lease that queries and the operator's retry use.

The table, not the queue, says what is due: a message lost, dead-lettered or refused only means that
pairing waits for the next run, still due, long before its refresh token can lapse. So a worker never
needs to be sure it saw a message once; it re-reads the pairing and does only what is still due.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from x3link.aws.sqs_delays import retry_after_seconds, sqs_delay
from x3link.budget import Budget
from x3link.errors import QuotaExceeded, X3LinkError
from x3link.keep_alive.runs import RunReport
from x3link.refresh.outcomes import Outcome
from x3link.tokens.sealing import KMS_CIPHERTEXT_LIMIT

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from x3link.keep_alive.runs import RunLedger
    from x3link.refresh.keeper import TokenKeeper

logger = Logger(child=True)

SQS_BATCH = 10
KEY_BATCH = 100  # due pairings whose data keys one BatchGetItem reads


@dataclass(frozen=True)
class RefreshOrder:
    """One queued pairing: whose, for which run, and whether this is the run's second look at it (after
    the run's other refreshes): an ambiguous refusal is then judged, and a refresh the breaker holds counted
    as held. `data_key`: the encrypted data key of its tokens when the run read them (KMS ciphertext, which
    only KMS opens, for a role allowed to under the tenant's context), so the worker's Decrypt runs beside
    its lease write; a stale or missing one only costs that Decrypt after the lease."""

    tenant: str
    run: str
    judge: bool = False
    data_key: bytes | None = None

    def body(self) -> str:
        fields: dict[str, object] = {"tenant": self.tenant, "run": self.run, "judge": self.judge}
        if self.data_key is not None:
            fields["data_key"] = base64.b64encode(self.data_key).decode()
        return json.dumps(fields)

    @classmethod
    def parse(cls, body: str) -> RefreshOrder | None:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        tenant, run = data.get("tenant"), data.get("run")
        if not isinstance(tenant, str) or not isinstance(run, str) or not tenant or not run:
            return None
        return cls(tenant, run, data.get("judge") is True, _data_key(data.get("data_key")))


def _data_key(text: object) -> bytes | None:
    """The order's encrypted data key, or None when it has none that could be one (the refresh goes on)."""
    if not isinstance(text, str) or len(text) > 2 * KMS_CIPHERTEXT_LIMIT:
        return None
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if 0 < len(key) <= KMS_CIPHERTEXT_LIMIT else None


class RefreshQueue:
    """The SQS queue between the scheduled run and the workers."""

    def __init__(self, url: str, sqs: SQSClient) -> None:
        self._url = url
        self._sqs = sqs

    def send(self, orders: list[tuple[RefreshOrder, int]]) -> int:
        """Send up to 10 orders, each with its delay; entries SQS refuses are tried once more. How many
        were sent."""
        pending = {str(index): (order, delay) for index, (order, delay) in enumerate(orders)}
        for _ in range(2):
            if not pending:
                break
            answer = self._sqs.send_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": key, "MessageBody": order.body(), "DelaySeconds": delay}
                    for key, (order, delay) in pending.items()
                ],
            )
            pending = {entry["Id"]: pending[entry["Id"]] for entry in answer.get("Failed", [])}
        return len(orders) - len(pending)

    def later(self, order: RefreshOrder, delay: float) -> None:
        self._sqs.send_message(QueueUrl=self._url, MessageBody=order.body(), DelaySeconds=sqs_delay(delay))

    def hide(self, receipt_handle: str, seconds: float) -> None:
        """Keep a received message out of sight this long: its retry's backoff."""
        self._sqs.change_message_visibility(
            QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=sqs_delay(seconds)
        )


def _run_id(now: float, rng: random.Random) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + f"-{rng.getrandbits(32):08x}"


class KeepAliveDispatcher:
    """The scheduled run: rescue parked tokens, then queue every due pairing, spread over the window."""

    def __init__(
        self,
        keeper: TokenKeeper,
        queue: RefreshQueue,
        ledger: RunLedger,
        *,
        keep_alive_seconds: float,
        spread_seconds: int,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._keeper, self._queue, self._ledger = keeper, queue, ledger
        self._keep_alive = keep_alive_seconds
        self._spread = sqs_delay(spread_seconds)
        self._clock = clock
        self._random = rng or random.Random()  # noqa: S311  # nosec B311  # jitter, not a secret

    def run(self, stop_at: float) -> RunReport:
        now = self._clock()
        report = RunReport(run=_run_id(now, self._random), started_at=now)
        try:
            report.rescued = int(self._keeper.recover_rescued(confirm_empty=False).stored)
        except Exception as exc:
            logger.warning("The rescue queue could not be drained", extra={"error": type(exc).__name__})
        due: list[str] = []
        for tenant in self._keeper.due_for_keep_alive(self._keep_alive):
            if self._clock() >= stop_at:
                report.deferred += 1  # still due: the next run queues it
                continue
            due.append(tenant)
            if len(due) == KEY_BATCH:
                self._queue_due(due, report)
        self._queue_due(due, report)
        self._ledger.opened(
            report.run, queued=report.queued, deferred=report.deferred, rescued=report.rescued, at=now
        )
        return report

    def _queue_due(self, due: list[str], report: RunReport) -> None:
        """Queue these due pairings, each with its tokens' encrypted data key (one read for all of them),
        in batches of ten, each order with its own delay within the spread."""
        if not due:
            return
        try:
            keys = self._keeper.data_keys(due)
        except Exception as exc:  # the orders go without: each worker asks KMS after its lease instead
            logger.warning("Due pairings' data keys were not read", extra={"error": type(exc).__name__})
            keys = {}
        batch: list[tuple[RefreshOrder, int]] = []
        for tenant in due:
            delay = int(self._random.random() * self._spread)
            batch.append((RefreshOrder(tenant, report.run, data_key=keys.get(tenant)), delay))
            if len(batch) == SQS_BATCH:
                self._flush(batch, report)
        self._flush(batch, report)
        due.clear()

    def _flush(self, batch: list[tuple[RefreshOrder, int]], report: RunReport) -> None:
        if not batch:
            return
        try:
            sent = self._queue.send(batch)
        except Exception as exc:
            logger.warning("Queuing refreshes failed", extra={"error": type(exc).__name__})
            sent = 0
        report.queued += sent
        report.deferred += len(batch) - sent
        batch.clear()


@dataclass
class WorkerTiming:
    judge_delay_seconds: float = 900.0  # a held refresh is looked at again after the run's other refreshes
    retry_base_seconds: float = 30.0  # a failed refresh's retries: 30 s, 60 s, ... (message visibility)
    throttle_seconds: float = 60.0  # a 429 without a usable Retry-After
    max_receives: int = 3  # the queue's maxReceiveCount: a failure on the last receive is counted failed


class RetryLater(Exception):
    """This pairing's refresh failed for now: SQS hands the message back after its backoff."""


class KeepAliveWorker:
    """One execution environment's worker: refreshes queued pairings and counts what it did per run."""

    def __init__(
        self,
        keeper: TokenKeeper,
        queue: RefreshQueue,
        ledger: RunLedger,
        *,
        keep_alive_seconds: float,
        timing: WorkerTiming | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._keeper, self._queue, self._ledger = keeper, queue, ledger
        self._keep_alive = keep_alive_seconds
        self._timing = timing or WorkerTiming()
        self._clock = clock
        self._random = rng or random.Random()  # noqa: S311  # nosec B311  # jitter, not a secret
        self._paused_until = 0.0  # Sage's 429: no token call from this environment before then
        self._finish_by = 0.0
        self._counts: dict[str, Counter[str]] = {}
        self._failures: dict[str, list[dict[str, str]]] = {}
        self._requeued = 0

    def begin(self, finish_by: float) -> None:
        """A new batch: counts start empty, and no refresh starts that could not finish by `finish_by`."""
        self._finish_by = finish_by
        self._counts, self._failures, self._requeued = {}, {}, 0

    def handle(self, body: str, receipt_handle: str, receive_count: int) -> Outcome:
        """One message: its outcome, `requeued`, or `poison`; raises RetryLater for a transient failure."""
        order = RefreshOrder.parse(body)
        if order is None:
            logger.error("A refresh message no run wrote was dropped")
            return Outcome.POISON
        now = self._clock()
        if now < self._paused_until:
            return self._requeue(order, self._paused_until - now + self._random.uniform(0, 5), "paused")
        if self._finish_by - now < self._keeper.seconds_needed():
            return self._requeue(order, 0, "out_of_time")
        try:
            budget = Budget(finish_by=self._finish_by)
            outcome = self._keeper.keep_alive(order.tenant, self._keep_alive, budget, data_key=order.data_key)
        except QuotaExceeded as throttled:
            wait = retry_after_seconds(throttled.retry_after, self._clock()) or self._timing.throttle_seconds
            self._paused_until = self._clock() + wait
            logger.warning("Sage X3 asks to slow down", extra={"tenant": order.tenant, "seconds": wait})
            return self._requeue(order, wait, "throttled")
        except Exception as exc:
            return self._failed(order, exc, receipt_handle, receive_count)
        if outcome == Outcome.HELD and not order.judge:
            # The breaker was open, or the refusal is held: the run's other refreshes (a probe, evidence for
            # or against this grant) may settle it. Look again later.
            return self._requeue(replace(order, judge=True), self._timing.judge_delay_seconds, "held")
        self._count(order.run, outcome)
        return outcome

    def _requeue(self, order: RefreshOrder, delay: float, why: str) -> Outcome:
        self._queue.later(order, delay)  # if SQS refuses, this raises: the message stays and comes back
        self._requeued += 1
        logger.info(
            "Refresh queued again", extra={"tenant": order.tenant, "why": why, "delay": sqs_delay(delay)}
        )
        return Outcome.REQUEUED

    def _failed(
        self, order: RefreshOrder, exc: Exception, receipt_handle: str, receive_count: int
    ) -> Outcome:
        reason = exc.message if isinstance(exc, X3LinkError) else type(exc).__name__
        logger.warning(
            "Keep-alive refresh failed",
            extra={"tenant": order.tenant, "error": reason, "receive_count": receive_count},
        )
        if receive_count >= self._timing.max_receives:
            # The last try this run: the pairing is still due, so the next run queues it again.
            self._count(order.run, Outcome.FAILED)
            self._failures.setdefault(order.run, []).append({"tenant": order.tenant, "error": reason})
            return Outcome.FAILED
        try:
            self._queue.hide(receipt_handle, self._timing.retry_base_seconds * 2 ** (receive_count - 1))
        except Exception as hide_error:  # the queue's own visibility timeout applies instead
            logger.warning("Backing off a retry failed", extra={"error": type(hide_error).__name__})
        raise RetryLater(reason) from None

    def _count(self, run: str, outcome: str) -> None:
        self._counts.setdefault(run, Counter())[outcome] += 1

    def finish(self) -> Counter[str]:
        """Add this batch's counts to each run's report; what the batch did, for metrics."""
        total: Counter[str] = Counter({Outcome.REQUEUED.value: self._requeued})
        for run in set(self._counts) | set(self._failures):
            counts = self._counts.get(run, Counter())
            total += counts
            try:
                self._ledger.add(run, counts, self._failures.get(run, ()))
            except Exception as exc:  # the refreshes are done; only their report lacks them
                logger.warning(
                    "A run's report could not be updated", extra={"run": run, "error": type(exc).__name__}
                )
        self._counts, self._failures, self._requeued = {}, {}, 0
        return total
