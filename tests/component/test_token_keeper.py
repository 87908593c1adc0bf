"""The refresh guarantees: one refresh per pairing at a time, no issued refresh token ever lost, a lease
that covers the work done under it, and fencing that never repeats. Sage X3 is the emulator over
loopback; DynamoDB, SQS, KMS and EventBridge are moto."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import call
from tests.support.events import lifecycle_events
from tests.support.keeper import Spy, concurrently, keeper, stored, sweep, worker
from tests.support.sage import pair
from x3link import wiring
from x3link.aws.clients import Service
from x3link.budget import Budget
from x3link.errors import UpstreamError, UpstreamTimeout

CUSTOMER = "https://x3.acme.example"
RUNS = int(os.environ.get("CONCURRENCY_RUNS", "50"))
# A lease of under a second: connection, token call and the work after it all shrunk alike. The token call
# may start as late as 0.45 s into it (a loaded machine's stall) and still be sent.
SHORT: dict[str, Any] = {
    "connect_seconds": 0.05,
    "token_timeout": 0.5,
    "min_token_timeout": 0.05,
    "store_call_seconds": 0.05,
    "commit_seconds": 0.05,
    "park_seconds": 0.05,
    "margin_seconds": 0.0,
    "write_backoff_seconds": 0.02,
}


class FlakyTable:
    """The real DynamoDB client, whose refresh commits fail a number of times, as an outage would."""

    def __init__(self, real: Any, failures: int, delay: float = 0.0) -> None:
        self._real = real
        self.failures = failures
        self.delay = delay
        self.exceptions = real.exceptions

    def update_item(self, **kwargs: Any) -> Any:
        if "refreshed_at" in kwargs.get("UpdateExpression", "") and self.failures > 0:
            self.failures -= 1
            time.sleep(self.delay)
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "UpdateItem")
        return self._real.update_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_twenty_concurrent_refreshes_spend_the_refresh_token_once_in_fifty_runs_of_fifty(
    sage: Emulator, stack: Stack, atomic_moto_dynamodb: None
) -> None:
    sage.configure(latency=0.1)  # keep the lease held while the others arrive
    for run in range(RUNS):
        tenant = f"acme{run}"
        pair(sage, tenant, f"https://x3.{tenant}.example")
        before = stored(tenant)
        sage.clear_requests()
        # One keeper per thread, built up front: each stands for its own Lambda execution environment.
        results, errors = concurrently([partial(worker().refresh, before) for _ in range(20)])

        assert errors == [], (run, errors)
        assert sage.count("refresh") == 1, run
        after = stored(tenant)
        assert {result.access_token for result in results} == {after.access_token}, run
        assert after.version == before.version + 1
        assert after.refresh_token == sage.current_refresh_token(f"https://x3.{tenant}.example")
    sage.configure(latency=0)
    assert call("GET", "/tenants/acme0/folders").status == 200


def test_the_lease_covers_the_token_call_and_the_work_after_it(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", CUSTOMER)
    seen: dict[str, float] = {}

    def leases(table: Any) -> Any:
        def update_item(**kwargs: Any) -> Any:
            if "lease_owner = :owner" in kwargs.get("UpdateExpression", ""):
                values = kwargs["ExpressionAttributeValues"]
                seen["leased_for"] = float(values[":until"]["N"]) - float(values[":now"]["N"])
            return table.update_item(**kwargs)

        return Spy(table, update_item=update_item)

    def token_calls(client: Any) -> Any:
        def token(base_url: str, grant: dict[str, str], *, read_timeout: float | None = None) -> Any:
            seen["read_timeout"] = read_timeout or 0
            return client.token(base_url, grant, read_timeout=read_timeout)

        return Spy(client, token=token)

    worker = keeper(dynamodb=leases, sage=token_calls)
    now = time.time()
    worker.refresh(stored("acme"), Budget(finish_by=now + 89, answer_by=now + 29))

    t = wiring.keeper_timing()
    # A query: the token call gets most of API Gateway's 29 s, and the lease all the work it may take.
    assert 25 <= seen["read_timeout"] <= 28
    worst = t.connect_seconds + seen["read_timeout"] + t.commit_seconds + t.park_seconds
    assert seen["leased_for"] >= worst
    # The sweep, with minutes left, gives the token call a long read timeout.
    worker.refresh(stored("acme"), Budget(finish_by=time.time() + 250))
    assert t.token_timeout - 1 <= seen["read_timeout"] <= t.token_timeout  # what is left of its lease


def test_a_refresh_is_not_started_when_the_invocation_has_too_little_time_left(
    sage: Emulator, stack: Stack
) -> None:
    pair(sage, "acme", CUSTOMER)
    before = stored("acme")
    sage.clear_requests()

    with pytest.raises(UpstreamTimeout, match="Too little time"):
        keeper().refresh(before, Budget(finish_by=time.time() + 20))

    assert sage.count("refresh") == 0
    assert stored("acme").lease_owner is None  # no lease taken that could outlive the invocation


@pytest.mark.serial  # asserts a deadline
def test_a_worker_whose_lease_write_lost_its_answer_recognises_its_own_lease(
    sage: Emulator, stack: Stack
) -> None:
    pair(sage, "acme", CUSTOMER)

    class LostAnswer:
        """The real table, whose lease writes are applied and their answers lost."""

        def __init__(self, real: Any) -> None:
            self._real = real
            self.exceptions = real.exceptions

        def update_item(self, **kwargs: Any) -> Any:
            result = self._real.update_item(**kwargs)
            if "lease_owner = :owner, lease_until" in kwargs.get("UpdateExpression", ""):
                raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
            return result

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

    worker = keeper(dynamodb=LostAnswer)
    started = time.monotonic()

    refreshed = worker.refresh(stored("acme"))

    assert time.monotonic() - started < 2  # no wait on its own lease (15 s, then a 504)
    assert sage.count("refresh") == 1
    assert refreshed.refresh_token == sage.current_refresh_token(CUSTOMER) == stored("acme").refresh_token


@pytest.mark.serial  # asserts a deadline
def test_a_commit_that_outlasts_its_deadline_parks_the_tokens_inside_the_lease(
    sage: Emulator, stack: Stack
) -> None:
    pair(sage, "acme", CUSTOMER)
    before = stored("acme")
    # The token call may wait 0.8 s: a loaded machine's stall before it must not use up the lease.
    timing = {"token_timeout": 0.8, "store_call_seconds": 0.2, "commit_seconds": 0.5, "park_seconds": 1.0}
    parked_at: list[float] = []

    def parking(queue: Any) -> Any:
        def send_message(**kwargs: Any) -> Any:
            parked_at.append(time.time())  # when the tokens were parked
            return queue.send_message(**kwargs)

        return Spy(queue, send_message=send_message)

    # Every commit hangs, then fails.
    worker = keeper(
        dynamodb=lambda db: FlakyTable(db, failures=10**6, delay=0.2), sqs=parking, **{**SHORT, **timing}
    )
    started = time.time()

    served = worker.refresh(before)

    lease_until = stored("acme").lease_until
    assert lease_until is not None and parked_at and parked_at[0] < lease_until - 0.5
    assert parked_at[0] - started < 1.5  # parked at the commit deadline, not after every retry
    assert served.refresh_token == sage.current_refresh_token(CUSTOMER)
    assert sweep()["rescued"] == 1
    assert stored("acme").refresh_token == sage.current_refresh_token(CUSTOMER)
    assert stored("acme").lease_owner is None


def test_refreshed_tokens_survive_a_table_that_will_not_take_them(sage: Emulator, stack: Stack) -> None:
    pair(sage, "acme", CUSTOMER)
    before = stored("acme")
    flaky = keeper(dynamodb=lambda db: FlakyTable(db, failures=10**6), **SHORT)

    served = flaky.refresh(before)

    assert sage.count("refresh") == 1
    assert stored("acme").version == before.version  # the table never took the new tokens...
    assert served.refresh_token == sage.current_refresh_token(CUSTOMER)  # ...but the caller holds them
    summary = sweep()
    assert summary["rescued"] == 1
    after = stored("acme")
    assert after.version == before.version + 1
    assert after.refresh_token == sage.current_refresh_token(CUSTOMER)
    assert after.lease_owner is None
    assert call("GET", "/tenants/acme/folders").status == 200


def test_a_refresh_after_a_lapsed_lease_applies_the_parked_tokens_and_never_spends_the_old_one(
    sage: Emulator, stack: Stack
) -> None:
    read_events = lifecycle_events(stack)
    pair(sage, "acme", CUSTOMER)
    flaky = keeper(dynamodb=lambda db: FlakyTable(db, failures=10**6), **SHORT)
    flaky.refresh(stored("acme"))  # Sage rotated; the table kept the old token; the new one is parked
    time.sleep(max(0.0, (stored("acme").lease_until or 0) - time.time()) + 0.05)  # its lease lapses

    result = keeper().refresh(stored("acme"))

    assert stored("acme").status == "active"
    assert result.refresh_token == sage.current_refresh_token(CUSTOMER)
    # The lapsed lease said a refresh may have been spent: the parked set was applied first, and the
    # rotated (dead) refresh token was never sent again.
    assert sage.count("refresh") == 1
    assert [event["detail-type"] for event in read_events()] == ["PairingCompleted"]


def test_tokens_are_lost_only_when_both_the_table_and_the_rescue_queue_fail(
    sage: Emulator, stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    pair(sage, "acme", CUSTOMER)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessage")

    flaky = keeper(
        dynamodb=lambda db: FlakyTable(db, failures=10**6),
        sqs=lambda queue: Spy(queue, send_message=refuse),
        **SHORT,
    )
    with pytest.raises(UpstreamError, match="could not be stored"):
        flaky.refresh(stored("acme"))
    assert any(
        record.levelname == "CRITICAL" and "could neither be stored nor rescued" in record.getMessage()
        for record in caplog.records
    )


@pytest.mark.parametrize("pending", ["rescued tokens", "a slow commit"])
def test_delete_and_re_pair_keeps_the_new_pairings_tokens_and_customer(
    sage: Emulator, stack: Stack, pending: str, atomic_moto_dynamodb: None
) -> None:
    old_customer, new_customer = "https://x3.old.example", "https://x3.new.example"
    pair(sage, "acme", old_customer)
    old = stored("acme")
    if pending == "rescued tokens":
        flaky = keeper(dynamodb=lambda db: FlakyTable(db, failures=10**6), **SHORT)
        flaky.refresh(old)  # parked, for the old pairing's generation and version
        assert call("DELETE", "/tenants/acme").status == 204
        pair(sage, "acme", new_customer)
        assert stored("acme").version == old.version  # a counter restarts; the generation does not
        sweep()  # drains the rescue queue
    else:
        sage.configure(latency=0.6)
        slow = keeper()

        def delete_meanwhile() -> None:
            time.sleep(0.2)
            call("DELETE", "/tenants/acme")

        works: list[Callable[[], object]] = [partial(slow.refresh, old), delete_meanwhile]
        concurrently(works)
        sage.configure(latency=0)
        pair(sage, "acme", new_customer)
        time.sleep(0.6)

    new = stored("acme")
    assert new.generation != old.generation
    assert new.customer == new_customer
    assert new.refresh_token == sage.current_refresh_token(new_customer)
    assert call("GET", "/tenants/acme").json["customer"] == new_customer
    assert call("GET", "/tenants/acme/folders").status == 200


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

    # The refused one is suspended once another pairing's refresh shows Sage accepts the app: a refresh
    # after its refusal, so the one asked as its witness (the due one, before its own turn finds it fresh,
    # or after it; or the fresh one, refreshed once as a witness). Each grant stays whole.
    assert (summary["suspended"], summary["expired"], summary["failed"]) == (1, 0, 0), summary
    assert summary["refreshed"] in (0, 1), summary
    assert stored("due").version in (versions["due"] + 1, versions["due"] + 2)
    assert stored("due").refresh_token == sage.current_refresh_token("https://x3.due.example")
    assert stored("due").refresh_token_expires_at or time.time() + 29 * 86400 < 0
    assert stored("fresh").version in (versions["fresh"], versions["fresh"] + 1)
    assert stored("fresh").refresh_token == sage.current_refresh_token("https://x3.fresh.example")
    assert stored("dead").status == "suspended"
    assert sage.count("refresh") >= 3


def test_the_sweep_retries_a_transient_failure_within_the_run(sage: Emulator, stack: Stack) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    pair(sage, "acme", CUSTOMER)
    sage.fail_next("refresh", status=503, count=2)
    sage.clear_requests()

    summary = sweep()

    assert (summary["refreshed"], summary["failed"], summary["pending"]) == (1, 0, 0), summary
    assert sage.count("refresh") == 3  # two failures, each handed back by SQS, then the refresh


def test_the_sweep_reports_lasting_failures_and_keeps_the_pairing(sage: Emulator, stack: Stack) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    pair(sage, "acme", CUSTOMER)
    sage.fail_next("refresh", status=503, count=3)  # every receive the queue allows

    summary = sweep()

    assert (summary["refreshed"], summary["expired"], summary["failed"]) == (0, 0, 1), summary
    assert summary["failures"] == [{"tenant": "acme", "error": "Sage X3's token endpoint failed (503)."}]
    assert stored("acme").status == "active"
    assert stored("acme").lease_owner is None  # released, so the next run can try again
    summary = sweep()
    assert summary["refreshed"] == 1


def test_one_pairings_unexpected_failure_never_stops_the_sweep(sage: Emulator, stack: Stack) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    for tenant in ("one", "two", "three"):
        pair(sage, tenant, f"https://x3.{tenant}.example")
    real_client = wiring.aws_client

    def client(service: Service) -> Any:
        made: Any = real_client(service)  # any service's client: only DynamoDB's is spied on

        def update_item(**kwargs: Any) -> Any:
            first_touch = "refresh_token_expires_epoch <= :due" in kwargs.get("ConditionExpression", "")
            if first_touch and kwargs["Key"]["tenant"]["S"] == "two":  # the keep-alive's lease of a pairing
                raise RuntimeError("a bug nobody foresaw")
            return made.update_item(**kwargs)

        return Spy(made, update_item=update_item) if service == "dynamodb" else made

    with wiring.override(aws_client=client):
        summary = sweep()

    assert (summary["refreshed"], summary["failed"]) == (2, 1)
    assert summary["failures"] == [{"tenant": "two", "error": "RuntimeError"}]


def test_a_sweep_out_of_time_defers_the_rest_to_the_next_run(sage: Emulator, stack: Stack) -> None:
    sage.configure(refresh_lifetime=3 * 86400)
    for tenant in ("one", "two"):
        pair(sage, tenant, f"https://x3.{tenant}.example")
    sage.clear_requests()

    report = wiring.keep_alive_dispatcher().run(stop_at=time.time() - 1)

    assert (report.deferred, report.queued) == (2, 0)
    assert sage.count("refresh") == 0
    assert sweep()["refreshed"] == 2  # the next run, with time to spare, does them
