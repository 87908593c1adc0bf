"""The pure parts of export delivery: a file version's identity, Sage's checksum against the bytes read,
the queue's messages read back, and FileDelivered as the ledger's stream announces it."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from typing import Any

import pytest

from x3link.aws.sqs_delays import retry_after_seconds
from x3link.events import lifecycle
from x3link.exports.orders import (
    FileOrder,
    ScanOrder,
    checksum_matches,
    parse_order,
    version_of,
)

ORDER = FileOrder(
    "acme", "SEED", "orders.csv", 15, "9e107d9d372bb6826bd81d3542a419d6", "2026-01-01T12:00:00Z"
)


def test_the_same_file_listed_twice_is_one_version_and_a_reused_name_is_another() -> None:
    assert version_of(ORDER) == version_of(replace(ORDER))
    assert version_of(replace(ORDER, last_modified="2026-01-02T12:00:00Z")) != version_of(ORDER)
    assert version_of(replace(ORDER, checksum="0" * 32)) != version_of(ORDER)
    assert version_of(replace(ORDER, size=16)) != version_of(ORDER)
    assert version_of(replace(ORDER, tenant="globex")) != version_of(ORDER)
    assert ORDER.key == "acme/SEED/orders.csv"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (hashlib.md5(b"x", usedforsecurity=False).hexdigest(), True),
        (hashlib.md5(b"x", usedforsecurity=False).hexdigest().upper(), True),
        (f'"{hashlib.md5(b"x", usedforsecurity=False).hexdigest()}"', True),  # as an ETag
        (hashlib.sha256(b"x").hexdigest(), True),
        (base64.b64encode(hashlib.sha256(b"x").digest()).decode(), True),
        (hashlib.md5(b"y", usedforsecurity=False).hexdigest(), False),
        (hashlib.sha256(b"y").hexdigest(), False),
        ("crc32:1234", None),  # a form Sage does not document: the size alone is checked
        (None, None),
        ("", None),
    ],
)
def test_sages_checksum_is_checked_when_its_form_is_known(given: str | None, expected: bool | None) -> None:
    md5, sha = hashlib.md5(b"x", usedforsecurity=False).digest(), hashlib.sha256(b"x").digest()
    assert checksum_matches(given, md5, sha) is expected


def test_messages_read_back_as_written_and_anything_else_is_poison() -> None:
    assert parse_order(ORDER.body()) == ORDER
    assert parse_order(ScanOrder("acme").body()) == ScanOrder("acme")
    assert parse_order(ScanOrder("acme", "SEED").body()) == ScanOrder("acme", "SEED")
    for body in ("{not json", "[]", '{"tenant": "acme"}', '{"scan": "../x"}'):
        assert parse_order(body) is None
    escaping = '{"tenant": "acme", "folder": "SEED", "filename": "../etc"}'
    assert parse_order(escaping) is None  # a name that would leave its folder never reaches a URL or key


def test_retry_after_is_seconds_or_a_date_within_sqs_delay() -> None:
    assert retry_after_seconds("30", 0) == 30
    assert retry_after_seconds("86400", 0) == 900  # a day's quota: asked again every 15 minutes
    assert retry_after_seconds("Thu, 01 Jan 1970 00:01:00 GMT", 0) == 60
    assert retry_after_seconds(None, 0) is None and retry_after_seconds("soon", 0) is None


def _entry(stage: str, **extra: Any) -> dict[str, Any]:
    return {
        "folder_key": {"S": "acme/SEED"},
        "entry": {"S": "v#abc"},
        "stage": {"S": stage},
        **{name: {"N": str(v)} if isinstance(v, int) else {"S": v} for name, v in extra.items()},
    }


STORED = _entry(
    "stored",
    version_id="abc",
    filename="o.csv",
    bucket="b",
    object_key="acme/SEED/o.csv",
    size=15,
    stored_at=1,
)


def test_file_delivered_is_announced_once_when_a_version_is_stored() -> None:
    (event,) = lifecycle.events_for("MODIFY", _entry("downloading"), STORED)
    assert event.detail_type == "FileDelivered"
    assert event.id == "file-delivered:abc"
    assert {k: event.detail[k] for k in ("tenant", "folder", "filename", "bucket", "key", "size")} == {
        "tenant": "acme",
        "folder": "SEED",
        "filename": "o.csv",
        "bucket": "b",
        "key": "acme/SEED/o.csv",
        "size": 15,
    }
    # A claim, a retry that finds it stored, its delivery and its expiry announce nothing.
    assert lifecycle.events_for("INSERT", None, _entry("downloading")) == []
    assert lifecycle.events_for("MODIFY", STORED, STORED) == []
    assert lifecycle.events_for("MODIFY", STORED, _entry("delivered")) == []
    assert lifecycle.events_for("REMOVE", _entry("delivered"), None) == []
    sync: dict[str, Any] = {
        "folder_key": {"S": "acme/SEED"},
        "entry": {"S": "~sync"},
        "enabled": {"BOOL": True},
    }
    assert lifecycle.events_for("MODIFY", None, sync) == []
