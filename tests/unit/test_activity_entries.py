"""What one change stream record adds to a pairing's activity (x3link/events/activity.py), as a pure function:
refreshes with their outcome, Sage's refusals, lifecycle changes, file notifications; never a token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from x3link.events.activity import entries_for

T0 = 1_767_225_600.0
ACCESS, REFRESH = "EXAMPLE-access-token-value", "EXAMPLE-refresh-token-value"


def image(tenant: str = "acme", **fields: Any) -> dict[str, dict[str, str]]:
    values: dict[str, Any] = {
        "tenant": tenant,
        "customer": "https://x3.acme.example",
        "endpoint": "https://api.eu-prod-sagex3.com/v1",
        "status": "active",
        "reason": "paired",
        "generation": "a" * 32,
        "version": 1,
        "access_token": ACCESS,
        "refresh_token": REFRESH,
        "sealed_tokens": "EXAMPLE-sealed",
        "paired_at": T0,
        **fields,
    }
    return {
        name: {"S": value} if isinstance(value, str) else {"N": str(value)}
        for name, value in values.items()
        if value is not None
    }


def _shown(old: Any, new: Any, event: str = "MODIFY") -> list[dict[str, Any]]:
    return [entry.view() for entry in entries_for(event, old, new, at_epoch=T0 + 999)]


def test_a_new_pairing_is_paired_not_refreshed() -> None:
    (paired,) = _shown(None, image(refreshed_at=T0), "INSERT")

    assert paired["type"] == "paired" and paired["reason"] == "paired"
    assert paired["at"] == "2026-01-01T00:00:00Z"


def test_a_refresh_is_its_outcome_at_its_own_time() -> None:
    old = image(refreshed_at=T0)
    assert _shown(old, image(refreshed_at=T0 + 60, version=2)) == [
        {"at": "2026-01-01T00:01:00Z", "type": "refresh", "outcome": "refreshed"}
    ]
    failed = image(refreshed_at=T0, refresh_failed_at=T0 + 120, refresh_timed_out_at=T0 + 120)
    assert _shown(old, failed) == [{"at": "2026-01-01T00:02:00Z", "type": "refresh", "outcome": "timed_out"}]


def test_a_refusal_shows_as_last_refusal_does_and_its_suspension_too() -> None:
    refused = image(
        status="suspended",
        reason="grant_refused",
        suspended_at=T0 + 60,
        next_attempt_at=T0 + 960,
        last_refusal_at=T0 + 60,
        last_refusal_status=400,
        last_refusal_message="invalid_grant",
    )

    shown = _shown(image(), refused)

    assert [entry["type"] for entry in shown] == ["suspended", "refusal"]
    refusal = {"at": "2026-01-01T00:01:00Z", "status": 400, "message": "invalid_grant"}
    assert shown[0]["last_refusal"] == shown[1]["last_refusal"] == refusal
    assert shown[0]["reason"] == shown[1]["reason"] == "grant_refused"
    assert shown[0]["next_attempt_at"] == "2026-01-01T00:16:00Z"


def test_a_deletion_comes_after_every_time_its_item_names() -> None:
    (deleted,) = [e for e in entries_for("REMOVE", image(refreshed_at=T0 + 5000), None, at_epoch=T0 + 4999)]

    assert deleted.fields["type"] == "deleted" and deleted.at == T0 + 5000


def test_a_notification_is_files_available_at_its_receipt() -> None:
    notification = {
        "notification_id": {"S": "n-1"},
        "tenant": {"S": "acme"},
        "customer": {"S": "https://x3.acme.example"},
        "folder": {"S": "SEED"},
        "files": {"S": json.dumps(["orders.csv"])},
        "received_at": {"N": str(T0 + 30)},
    }

    (files,) = _shown(None, notification, "INSERT")

    assert files == {
        "at": "2026-01-01T00:00:30Z",
        "type": "files_available",
        "notification_id": "n-1",
        "folder": "SEED",
        "files": ["orders.csv"],
    }


def test_leases_rotations_runs_and_the_breaker_add_nothing_and_no_entry_holds_a_token() -> None:
    leased = image(lease_owner="w1", lease_until=T0 + 30, access_token="EXAMPLE-rotated")
    run = {"tenant": {"S": "~run:20260101T000000Z-00000000"}, "refreshed": {"N": "3"}}
    breaker = {"tenant": {"S": "~app:https://api"}, "breaker": {"S": "open"}, "breaker_id": {"S": "b"}}

    assert _shown(image(), leased) == []
    assert _shown(None, run, "INSERT") == [] and _shown(None, breaker, "INSERT") == []
    everything = [
        *_shown(None, image(), "INSERT"),
        *_shown(image(), image(refreshed_at=T0 + 1, refresh_failed_at=T0 + 2, last_refusal_at=T0 + 2)),
        *_shown(image(), None, "REMOVE"),
    ]
    assert everything
    dumped = json.dumps(everything)
    assert ACCESS not in dumped and REFRESH not in dumped and "EXAMPLE-sealed" not in dumped


def _sample(table: str) -> list[dict[str, Any]]:
    """The sample stream's records of one table (events/pairing_events_stream.json), as Lambda hands them."""
    records = json.loads((Path(__file__).parents[2] / "events" / "pairing_events_stream.json").read_text())
    return [r["dynamodb"] for r in records["Records"] if f"-{table}-" in r["eventSourceARN"]]


def test_an_export_stored_in_the_bucket_is_file_delivered_once_without_its_lease_or_versions() -> None:
    (change,) = _sample("DeliveryTable")
    old, new = change.get("OldImage"), change["NewImage"]

    (delivered,) = _shown(old, new)

    assert delivered == {
        "at": "2026-01-01T13:00:02Z",  # its stored_at, not the stream record's time
        "type": "file_delivered",
        "folder": "SEED",
        "filename": "orders-2026-01-01.csv",
        "key": "acme/SEED/orders-2026-01-01.csv",
        "size": 2048,
    }
    assert entries_for("MODIFY", old, new)[0].tenant == "acme"
    # Its later changes (deleted at Sage, then expired) are not news, as lifecycle.py decides.
    done = {**new, "stage": {"S": "delivered"}}
    assert _shown(new, done) == [] and _shown(done, None, "REMOVE") == []


def test_an_outbox_files_outcome_is_file_ingested_or_rejected_with_its_reason_once() -> None:
    ingested_change, rejected_change = _sample("UploadsTable")

    (ingested,) = _shown(ingested_change.get("OldImage"), ingested_change["NewImage"])
    (rejected,) = _shown(rejected_change.get("OldImage"), rejected_change["NewImage"])

    assert ingested == {
        "at": "2026-01-01T13:05:20Z",
        "type": "file_ingested",
        "folder": "SEED",
        "filename": "items.csv",
        "key": "acme/SEED/items.csv",
        "size": 2048,
        "message": "The file was integrated into X3",
    }
    assert rejected["type"] == "file_rejected" and rejected["reason"] == "not_text"
    assert (rejected["filename"], rejected["size"], rejected["at"]) == (
        "photo.png",
        5120,
        "2026-01-01T13:06:01Z",
    )
    new = rejected_change["NewImage"]
    assert _shown(new, {**new, "expires_epoch": {"N": "1"}}) == []  # its outcome was already news
    pending = {name: value for name, value in new.items() if name not in ("outcome", "reason")}
    assert _shown(None, pending, "INSERT") == []  # no outcome yet
    posted = {**new, "source": {"S": "api"}}
    assert _shown(pending, posted) == []  # an upload through POST .../uploads is the app's own to follow
