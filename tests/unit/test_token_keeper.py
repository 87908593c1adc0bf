"""The refresh guarantees: one refresh per pairing at a time, no issued refresh token ever lost, a dead
grant declared once. Sage X3 is the emulator over loopback; DynamoDB, SQS and EventBridge are moto."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import call, invoke
from tests.support.events import published_events
from tests.support.sage import pair
from x3link import wiring
from x3link.errors import PairingExpired, UpstreamError
from x3link.token_keeper import KeeperTiming, TokenKeeper
from x3link.token_store import Pairing

CUSTOMER = "https://x3.acme.example"
SCHEDULED_EVENT = Path(__file__).parents[2] / "events" / "scheduled.json"


def keeper(**timing: Any) -> TokenKeeper:
    """A keeper as the functions build it, with its own lease owner (one per execution environment)."""
    wiring.token_keeper.cache_clear()
    built = wiring.token_keeper()
    if timing:
        built._timing = KeeperTiming(**timing)
    wiring.token_keeper.cache_clear()
    return built


def sweep() -> dict[str, Any]:
    """One scheduled run of the keep-alive function, with the sample event."""
    return invoke("TokenRefreshFunction", json.loads(SCHEDULED_EVENT.read_text()))


def concurrently(works: list[Callable[[], Pairing]]) -> tuple[list[Pairing], list[BaseException]]:
    """Run each work in its own thread, all released at once; collect what they return and raise."""
    results: list[Pairing] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(works))

    def worker(work: Callable[[], Pairing]) -> None:
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


def stored(tenant: str) -> Pairing:
    pairing = wiring.token_store().get(tenant)
    assert pairing is not None
    return pairing


def test_twenty_concurrent_refreshes_spend_the_refresh_token_once(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", CUSTOMER)
    before = stored("acme")
    sage.configure(latency=0.2)  # keep the lease held while the others arrive
    sage.clear_requests()
    # One keeper per thread, built up front: each stands for its own Lambda execution environment.
    results, errors = concurrently([partial(keeper().refresh, before) for _ in range(20)])

    assert errors == []
    assert sage.count("refresh") == 1
    assert {result.access_token for result in results} == {stored("acme").access_token}
    assert stored("acme").version == before.version + 1
    sage.configure(latency=0)
    assert call("GET", "/tenants/acme/folders").status == 200
    assert sage.count("refresh") == 1  # the new access token works: no second refresh


def test_a_stale_worker_refused_by_sage_rereads_instead_of_expiring_the_pairing(
    sage: Emulator, stack: Stack
) -> None:
    pair(sage, "acme", CUSTOMER)
    before = stored("acme")
    slow, fast = keeper(lease_seconds=0.3), keeper(lease_seconds=0.3)
    sage.configure(latency=0.6)
    outcome: dict[str, Any] = {}

    def slow_worker() -> None:
        outcome["slow"] = slow.refresh(before)

    thread = threading.Thread(target=slow_worker)
    thread.start()
    time.sleep(0.4)  # the slow worker's lease has lapsed while its call to Sage is still under way
    try:
        outcome["fast"] = fast.refresh(before)
    except Exception as exc:
        outcome["fast"] = exc
    thread.join()

    assert sage.count("refresh") == 2  # both spent the same refresh token; Sage honoured only the first
    final = stored("acme")
    assert final.status == "active"
    assert final.version == before.version + 1
    assert outcome["slow"].access_token == final.access_token
    assert outcome["fast"].access_token == final.access_token
    sage.configure(latency=0)
    assert call("GET", "/tenants/acme/folders").status == 200


def test_a_dead_grant_expires_the_pairing_and_publishes_one_event(sage: Emulator, stack: Stack) -> None:
    read_events = published_events(stack)
    pair(sage, "acme", CUSTOMER)
    before = stored("acme")
    sage.revoke(CUSTOMER)
    _, failures = concurrently([partial(keeper().refresh, before) for _ in range(5)])

    assert len(failures) == 5 and all(isinstance(exc, PairingExpired) for exc in failures)
    assert stored("acme").status == "expired"
    assert stored("acme").refresh_token is None  # dead token material is not kept
    published = read_events()
    assert [event["detail-type"] for event in published] == ["PairingExpired"]
    assert published[0]["detail"]["tenant"] == "acme"
    assert call("GET", "/tenants/acme").json["status"] == "expired"
    answer = call("GET", "/tenants/acme/folders")
    assert (answer.status, answer.json["error"]) == (409, "pairing_expired")
    assert read_events() == []  # later queries do not publish again


class FlakyTable:
    """Wraps the real DynamoDB client and fails the refresh write a number of times, as an outage would."""

    def __init__(self, real: Any, failures: int) -> None:
        self._real = real
        self.failures = failures
        self.exceptions = real.exceptions

    def update_item(self, **kwargs: Any) -> Any:
        if "refreshed_at" in kwargs.get("UpdateExpression", "") and self.failures > 0:
            self.failures -= 1
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "UpdateItem")
        return self._real.update_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_refreshed_tokens_survive_a_table_that_will_not_take_them(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", CUSTOMER)
    before = stored("acme")
    flaky = keeper(write_attempts=3, write_backoff_seconds=0)
    flaky.store._db = FlakyTable(flaky.store._db, failures=3)

    served = flaky.refresh(before)

    assert sage.count("refresh") == 1
    assert stored("acme").version == before.version  # the table never took the new tokens...
    assert served.refresh_token == sage.current_refresh_token(
        CUSTOMER
    )  # ...but the caller holds the live ones
    summary = sweep()
    assert summary["rescued"] == 1
    after = stored("acme")
    assert after.version == before.version + 1
    assert after.refresh_token == sage.current_refresh_token(CUSTOMER)
    assert after.lease_owner is None
    assert call("GET", "/tenants/acme/folders").status == 200


def test_a_query_that_meets_a_dead_looking_grant_first_applies_rescued_tokens(
    sage: Emulator, stack: Stack
) -> None:
    pair(sage, "acme", CUSTOMER)
    before = stored("acme")
    flaky = keeper(write_attempts=1, write_backoff_seconds=0, lease_seconds=0.1)
    flaky.store._db = FlakyTable(flaky.store._db, failures=1)
    flaky.refresh(before)
    time.sleep(0.15)  # the failed writer's lease lapses; the table still holds the rotated-away token

    other = keeper()
    result = other.refresh(stored("acme"))

    assert stored("acme").status == "active"
    assert result.refresh_token == sage.current_refresh_token(CUSTOMER)
    assert sage.count("refresh") == 2  # the second one was refused: its token had been rotated


def test_tokens_are_lost_only_when_both_the_table_and_the_rescue_queue_fail(
    sage: Emulator, stack: Stack
) -> None:
    pair(sage, "acme", CUSTOMER)
    flaky = keeper(write_attempts=2, write_backoff_seconds=0)
    flaky.store._db = FlakyTable(flaky.store._db, failures=2)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessage")

    flaky._rescue._sqs = type("DownSqs", (), {"send_message": refuse})()
    with pytest.raises(UpstreamError, match="could not be stored"):
        flaky.refresh(stored("acme"))


def test_the_sweep_refreshes_due_pairings_only_and_counts_each_outcome(sage: Emulator, stack: Stack) -> None:
    sage.configure(refresh_lifetime=3 * 86400)  # expires within the 7-day window
    pair(sage, "due", "https://x3.due.example")
    pair(sage, "dead", "https://x3.dead.example")
    sage.configure(refresh_lifetime=30 * 86400)
    pair(sage, "fresh", "https://x3.fresh.example")
    sage.revoke("https://x3.dead.example")
    versions = {tenant: stored(tenant).version for tenant in ("due", "dead", "fresh")}
    sage.clear_requests()

    summary = sweep()

    assert (summary["refreshed"], summary["expired"], summary["failed"]) == (1, 1, 0)
    assert stored("due").version == versions["due"] + 1
    assert stored("due").refresh_token_expires_at > time.time() + 29 * 86400
    assert stored("fresh").version == versions["fresh"]
    assert stored("dead").status == "expired"
    assert sage.count("refresh") == 2


def test_the_sweep_reports_transient_failures_and_keeps_the_pairing(sage: Emulator, stack: Stack) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    pair(sage, "acme", CUSTOMER)
    sage.fail_next("refresh", status=503)

    summary = sweep()

    assert (summary["refreshed"], summary["expired"], summary["failed"]) == (0, 0, 1)
    assert stored("acme").status == "active"
    assert stored("acme").lease_owner is None  # released, so the next sweep can try again
    summary = sweep()
    assert summary["refreshed"] == 1


def test_a_sweep_out_of_time_defers_the_rest_to_the_next_run(sage: Emulator, stack: Stack) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    for tenant in ("one", "two"):
        pair(sage, tenant, f"https://x3.{tenant}.example")
    sage.clear_requests()

    summary = keeper().sweep(7 * 86400, stop_at=time.time() - 1)

    assert (summary.deferred, summary.refreshed, summary.checked) == (2, 0, 2)
    assert sage.count("refresh") == 0
    assert sweep()["refreshed"] == 2  # the next run, with time to spare, does them
