"""Shortcuts for refresh-path tests: the stored pairing, a keeper of its own, the sweep, many pairings."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import boto3

from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import invoke
from tests.support.sage import CLIENT_ID, CLIENT_SECRET, pair
from x3link import wiring
from x3link.token_keeper import TokenKeeper
from x3link.token_store import Pairing

SCHEDULED_EVENT = Path(__file__).parents[2] / "events" / "scheduled.json"
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


def keeper(**timing: Any) -> TokenKeeper:
    """A keeper as the functions build it, in an execution environment of its own: its own lease owner,
    clients and caches, so a test can break its table or queue without breaking everyone else's."""
    built: TokenKeeper
    own = (
        wiring.token_keeper,
        wiring.token_store,
        wiring.token_sealer,
        wiring.token_rescue,
        wiring.app_breaker,
        wiring.credentials_source,
        wiring.aws_client,
    )
    for factory in own:
        factory.cache_clear()
    built = wiring.token_keeper()
    built._credentials.current()  # its Secrets Manager client too, made now rather than in a worker thread
    for factory in own:
        factory.cache_clear()
    if timing:
        built._timing = replace(built._timing, **timing)
    return built


def tune(**timing: Any) -> None:
    """Change the timing of the keeper the functions use (a test's seconds stand for hours)."""
    shared: TokenKeeper = wiring.token_keeper()
    shared._timing = replace(shared._timing, **timing)


def sweep() -> dict[str, Any]:
    """One scheduled run of the keep-alive function, with the sample event."""
    result: dict[str, Any] = invoke("TokenRefreshFunction", json.loads(SCHEDULED_EVENT.read_text()))
    return result


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
PARKING = {
    "connect_seconds": 0.05,
    "token_timeout": 0.5,
    "min_token_timeout": 0.1,
    "store_call_seconds": 0.05,
    "commit_seconds": 0.1,
    "park_seconds": 0.3,
    "margin_seconds": 0.0,
}
