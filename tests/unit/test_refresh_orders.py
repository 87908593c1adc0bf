"""A keep-alive run's refresh order as the queue carries it (keep_alive/fan_out.py): what a worker reads back
is what the run wrote, an order with a damaged data key still refreshes (without it), and an order that is
not one is dropped."""

from __future__ import annotations

import base64
import json

import pytest

from x3link.keep_alive.fan_out import RefreshOrder

KEY = bytes(range(256)) * 2 + b"\x00" * 5  # KMS ciphertext is binary: every byte value must survive


@pytest.mark.parametrize(
    "order",
    [
        RefreshOrder("acme", "run-1"),
        RefreshOrder("acme", "run-1", judge=True),
        RefreshOrder("acme €/é", "run-1", data_key=KEY),
        RefreshOrder("acme", "run-1", judge=True, data_key=b"\x01"),
    ],
)
def test_an_order_reads_back_as_written(order: RefreshOrder) -> None:
    assert RefreshOrder.parse(order.body()) == order


def test_an_order_written_before_data_keys_travelled_still_reads() -> None:
    assert RefreshOrder.parse('{"tenant": "acme", "run": "r", "judge": false}') == RefreshOrder("acme", "r")


@pytest.mark.parametrize(
    "data_key",
    [
        "not base64!",
        "QUJ",  # not a whole quantum
        "",
        base64.b64encode(b"k" * 6145).decode(),  # longer than any KMS ciphertext
        "A" * 20000,
        12,
        None,
        ["QUJD"],
    ],
)
def test_an_order_with_a_damaged_data_key_is_kept_without_it(data_key: object) -> None:
    body = json.dumps({"tenant": "acme", "run": "r", "data_key": data_key})
    assert RefreshOrder.parse(body) == RefreshOrder("acme", "r")


@pytest.mark.parametrize(
    "body",
    ["", "[]", "null", '{"tenant": "acme"}', '{"tenant": "", "run": "r"}', '{"tenant": 1, "run": "r"}', "{"],
)
def test_a_message_that_is_no_order_reads_as_none(body: str) -> None:
    assert RefreshOrder.parse(body) is None
