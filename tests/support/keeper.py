"""Shortcuts for refresh-path tests: the stored pairing, a keeper of its own, the sweep, many pairings."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import boto3

from local import template as tpl
from local.aws_resources import Stack
from local.lambda_context import for_function
from local.sagex3_emulator import Emulator
from local.triggers import QueuePoller
from tests.support.sage import CLIENT_ID, CLIENT_SECRET, pair
from x3link import wiring
from x3link.aws.clients import Service
from x3link.refresh.keeper import TokenKeeper
from x3link.tokens.model import Pairing

SCHEDULED_EVENT = Path(__file__).parents[2] / "events" / "scheduled.json"
WORKER = "RefreshWorkerFunction"
ACCOUNT = "123456789012"
QUEUE_COUNTS: list[
    Literal[
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
] = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]
T = TypeVar("T")


def stored(tenant: str) -> Pairing:
    """The tenant's pairing as the table holds it, its sealed tokens opened as the functions open them."""
    store = wiring.token_store()
    pairing = store.get(tenant)
    assert pairing is not None, tenant
    return store.open(pairing)


def worker() -> TokenKeeper:
    """Another execution environment's keeper (its own lease owner) sharing this process's AWS clients:
    cheap enough to build twenty for a concurrency test."""
    wiring.token_keeper.cache_clear()
    built: TokenKeeper = wiring.token_keeper()
    wiring.token_keeper.cache_clear()
    return built


def keeper(
    *,
    dynamodb: Callable[[Any], Any] | None = None,
    sqs: Callable[[Any], Any] | None = None,
    kms: Callable[[Any], Any] | None = None,
    sage: Callable[[Any], Any] | None = None,
    **timing: Any,
) -> TokenKeeper:
    """A keeper as the functions build it, in an execution environment of its own: its own lease owner,
    clients and caches, so a test can break its table or queue without breaking everyone else's.

    `timing` changes its KeeperTiming; `dynamodb`, `sqs` and `kms` wrap the AWS clients it is built with (a
    table that fails, an answer that is lost, a queue that is down, a slow key) and `sage` its Sage X3 client
    (a spy on the token call). All go in through the wiring, as a function's environment builds them.
    """
    real_client, real_sage = wiring.aws_client, wiring.sage_client
    timing_now = wiring.keeper_timing()
    wrappers = {"dynamodb": dynamodb, "sqs": sqs, "kms": kms}

    def client(service: Service) -> Any:
        wrap = wrappers.get(service)
        if wrap is None:
            return real_client(service)
        # A client of this environment's own, not the process's shared one: a hook the wrapper registers
        # on it (a slow key) must slow this keeper only, not every keeper built after it.
        own = getattr(real_client, "__wrapped__", real_client)(service)
        return wrap(own)

    def sage_client() -> Any:
        made = real_sage()
        return sage(made) if sage is not None else made

    with wiring.override(
        keeper_timing=lambda: replace(timing_now, **timing), aws_client=client, sage_client=sage_client
    ):
        built = wiring.token_keeper()
        wiring.credentials_source().current()  # its Secrets Manager client too, made now, not in a thread
    return built


class Spy:
    """An object standing in for another, recording the calls a test names and passing every call on."""

    def __init__(self, real: Any, **replacements: Callable[..., Any]) -> None:
        self.real = real
        self.replacements = replacements

    def __getattr__(self, name: str) -> Any:
        replaced = self.replacements.get(name)
        return replaced if replaced is not None else getattr(self.real, name)


_rewired = contextlib.ExitStack()


def rewire(**factories: Callable[..., Any]) -> None:
    """Replace some of the wiring's factories from now until the test ends: services already built are
    dropped, and every function's environment builds its own with the replacements."""
    _rewired.enter_context(wiring.override(**factories))


def tune(**timing: Any) -> None:
    """Change the timing of every keeper the functions build from now until the test ends (a test's seconds
    stand for hours)."""
    tuned = replace(wiring.keeper_timing(), **timing)
    rewire(keeper_timing=lambda: tuned)


def untune() -> None:
    """Every factory back as the wiring defines it (the stack fixture's teardown)."""
    _rewired.close()


Handler = Callable[[dict[str, Any], Any], Any]


def sweep(load_handler: Callable[[str], Handler] | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """One scheduled keep-alive run (the sample event), its queue drained by the worker as Lambda's queue
    trigger would, and then the run's report, as `make invoke` prints it."""
    load = load_handler or (lambda logical_id: tpl.load_handler(logical_id))

    def run(logical_id: str, event: dict[str, Any]) -> Any:
        return load(logical_id)(event, for_function(logical_id, region="us-east-1", account_id=ACCOUNT))

    queued = run("TokenRefreshFunction", json.loads(SCHEDULED_EVENT.read_text()))
    drain_refresh_queue(lambda event: run(WORKER, event), timeout)
    report: dict[str, Any] = run("TokenRefreshFunction", {"report": queued["run"]})
    return report


def drain_refresh_queue(invoke_worker: Callable[[dict[str, Any]], Any], timeout: float = 60.0) -> None:
    """Hand the refresh queue's messages to the worker until none is left, waiting out delayed ones."""
    sqs = boto3.client("sqs")
    url = os.environ["REFRESH_QUEUE_URL"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    (source,) = [source for source in tpl.event_sources() if source.function == WORKER]
    poller = QueuePoller(source, arn, invoke_worker, client=sqs)
    deadline, empty_seen = time.monotonic() + timeout, 0
    while True:
        poller.pump()
        left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=QUEUE_COUNTS)["Attributes"]
        # Empty twice in a row, as `make invoke` waits: moto's counts are read message by message, by the
        # millisecond, so one reading can miss a delayed message coming due.
        empty_seen = empty_seen + 1 if not any(int(count) for count in left.values()) else 0
        if empty_seen >= 2:
            return
        assert time.monotonic() < deadline, f"the refresh queue did not drain: {left}"
        time.sleep(0.05)


def put_credentials(stack: Stack, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> None:
    """What an operator does with `aws secretsmanager put-secret-value` (a typo, or the fix)."""
    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack.refs["ClientCredentialsSecret"],
        SecretString=json.dumps({"client_id": client_id, "client_secret": client_secret}),
    )


def pair_many(sage: Emulator, count: int, prefix: str = "t") -> dict[str, str]:
    """`count` pairings, tenant → customer URL."""
    pairs = {f"{prefix}{n:03d}": f"https://x3.{prefix}{n:03d}.example" for n in range(count)}
    for tenant, customer in pairs.items():
        pair(sage, tenant, customer)
    return pairs


def concurrently(works: list[Callable[[], T]]) -> tuple[list[T], list[BaseException]]:
    """Run each work in its own thread, all released at once; collect what they return and raise."""
    results: list[T] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(works))

    def worker(work: Callable[[], T]) -> None:
        try:
            barrier.wait()
            results.append(work())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(work,)) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


# A keeper timing short enough for a test to outlast a commit deadline and park the tokens within it.
PARKING: dict[str, Any] = {
    "connect_seconds": 0.05,
    "token_timeout": 0.5,
    "min_token_timeout": 0.1,
    "store_call_seconds": 0.05,
    "commit_seconds": 0.1,
    "park_seconds": 0.3,
    "margin_seconds": 0.0,
}
