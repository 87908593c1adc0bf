"""The keep-alive's data keys travel with its orders: the run reads the due pairings' sealed tokens once per
hundred and tells each order its tokens' encrypted data key, so a worker has KMS open it while the lease is
written rather than after (one call's time off every keep-alive refresh). A key that is stale, damaged or
another tenant's costs one more Decrypt, never the refresh; a run that cannot read the keys still queues."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal, cast

import boto3
from botocore.exceptions import EndpointConnectionError

from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.keeper import pair_many, stored
from tests.support.sage import pair
from x3link import wiring
from x3link.budget import Budget
from x3link.keep_alive.fan_out import KeepAliveDispatcher, RefreshOrder, RefreshQueue
from x3link.tokens.sealing import encrypted_data_key

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

WINDOW = 7 * 86400


class RecordingSqs:
    """The SQS client, with the orders sent written down."""

    def __init__(self) -> None:
        self._sqs = boto3.client("sqs")
        self.orders: list[RefreshOrder] = []

    def send_message_batch(self, **kwargs: Any) -> Any:
        for entry in kwargs["Entries"]:
            order = RefreshOrder.parse(entry["MessageBody"])
            assert order is not None
            self.orders.append(order)
        return self._sqs.send_message_batch(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)


def dispatch(stack: Stack) -> list[RefreshOrder]:
    recording = RecordingSqs()
    dispatcher = KeepAliveDispatcher(
        wiring.token_keeper(),
        RefreshQueue(stack.refs["RefreshQueue"], cast("SQSClient", recording)),
        wiring.run_ledger(),
        keep_alive_seconds=WINDOW,
        spread_seconds=900,
        rng=random.Random(3),
    )
    dispatcher.run(stop_at=time.time() + 60)
    return recording.orders


def due(sage: Emulator, count: int, prefix: str = "t") -> dict[str, str]:
    """`count` pairings whose refresh tokens expire within the keep-alive's window (3 days of 7)."""
    sage.configure(refresh_lifetime=3 * 86400)
    return pair_many(sage, count, prefix=prefix)


def one_due_order(sage: Emulator, stack: Stack) -> RefreshOrder:
    """Pairing t000, due, and the order a keep-alive run queued for it."""
    due(sage, 1)
    (order,) = dispatch(stack)
    return order


def data_key_of(tenant: str) -> bytes:
    pairing = wiring.token_store().get(tenant)
    assert pairing is not None and pairing.sealed_tokens is not None
    key = encrypted_data_key(pairing.sealed_tokens)
    assert key is not None
    return key


def counting(service: Literal["dynamodb", "kms"]) -> Counter[str]:
    """Every call of the functions' shared client for `service`, by operation (botocore's event hooks)."""
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    wiring.aws_client(service).meta.events.register(f"before-call.{service}", count)
    return calls


def keep_alive(tenant: str, data_key: bytes | None) -> str:
    keeper = wiring.token_keeper()
    return keeper.keep_alive(tenant, WINDOW, Budget(finish_by=time.time() + 300), data_key=data_key)


def test_the_run_tells_each_order_its_tokens_data_key_in_one_read_per_hundred(
    sage: Emulator, stack: Stack
) -> None:
    pairs = due(sage, 101, prefix="due")
    dynamodb = counting("dynamodb")

    orders = dispatch(stack)

    assert sorted(order.tenant for order in orders) == sorted(pairs)
    assert all(order.data_key == data_key_of(order.tenant) for order in orders)
    assert dynamodb["BatchGetItem"] == 2  # 100, then 1: no read per pairing
    assert not any(name.startswith("Scan") for name in dynamodb)


def test_a_run_that_cannot_read_the_data_keys_still_queues_every_due_pairing(
    sage: Emulator, stack: Stack
) -> None:
    pairs = due(sage, 12, prefix="due")

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com")

    wiring.aws_client("dynamodb").meta.events.register("before-call.dynamodb.BatchGetItem", unreachable)

    orders = dispatch(stack)

    assert sorted(order.tenant for order in orders) == sorted(pairs)
    assert all(order.data_key is None for order in orders)


def lease_waits_for_decrypt(timeout: float) -> dict[str, bool]:
    """When the lease's answer comes back, wait up to `timeout` for a Decrypt to have been sent: `seen` says
    whether one was, that is whether KMS was asked while the lease was being written."""
    asked, seen = threading.Event(), {"seen": False, "leases": False}

    def decrypt_sent(**_: Any) -> None:
        asked.set()

    def lease_answered(model: Any, **_: Any) -> None:
        if not seen["leases"]:  # the first UpdateItem of a keep-alive refresh is its lease
            seen["leases"] = True
            seen["seen"] = asked.wait(timeout)

    wiring.aws_client("kms").meta.events.register("before-call.kms.Decrypt", decrypt_sent)
    wiring.aws_client("dynamodb").meta.events.register("after-call.dynamodb.UpdateItem", lease_answered)
    return seen


def test_a_worker_told_the_data_key_has_kms_open_it_while_the_lease_is_written(
    sage: Emulator, stack: Stack
) -> None:
    order = one_due_order(sage, stack)
    before = stored("t000").refresh_token
    wiring.token_sealer().forget()  # a worker meets a tenant long after its data key left the cache
    kms, dynamodb = counting("kms"), counting("dynamodb")
    lease = lease_waits_for_decrypt(timeout=5)

    outcome = keep_alive("t000", order.data_key)

    assert outcome == "refreshed"
    assert lease["seen"], "KMS was asked only after the lease was written"
    assert kms == Counter({"Decrypt": 1})
    assert dynamodb["UpdateItem"] == 2  # the lease (which reads the pairing), the commit
    assert dynamodb.keys() <= {"UpdateItem", "GetItem"}  # GetItem: the breakers' records, cached after
    assert stored("t000").refresh_token != before


def test_a_worker_without_the_data_key_asks_kms_after_the_lease(sage: Emulator, stack: Stack) -> None:
    due(sage, 1)
    wiring.token_sealer().forget()
    kms = counting("kms")
    lease = lease_waits_for_decrypt(timeout=0.5)

    assert keep_alive("t000", None) == "refreshed"

    assert not lease["seen"]  # what the test above would see if the order's key went unused
    assert kms == Counter({"Decrypt": 1})


def test_a_data_key_gone_stale_since_the_run_costs_one_more_decrypt_not_the_refresh(
    sage: Emulator, stack: Stack
) -> None:
    order = one_due_order(sage, stack)
    wiring.token_sealer().forget()
    pair(sage, "t000", "https://x3.t000.example", replace=True)  # paired again: sealed with a new key
    assert data_key_of("t000") != order.data_key
    wiring.token_sealer().forget()
    kms = counting("kms")

    assert keep_alive("t000", order.data_key) == "refreshed"

    assert kms == Counter({"Decrypt": 2})  # the stale key beside the lease, the blob's own after it
    assert stored("t000").refresh_token == sage.current_refresh_token("https://x3.t000.example")


def test_a_damaged_or_foreign_data_key_in_an_order_costs_the_refresh_nothing(
    sage: Emulator, stack: Stack
) -> None:
    due(sage, 2)
    foreign = data_key_of("t001")
    worker = wiring.keep_alive_worker()
    worker.begin(finish_by=time.time() + 300)

    for data_key in (b"\x01" * 64, foreign):
        wiring.token_sealer().forget()
        body = RefreshOrder("t000", "run-1", data_key=data_key).body()
        assert worker.handle(body, "receipt", 1) == "refreshed"
