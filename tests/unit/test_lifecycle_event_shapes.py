"""Lifecycle events from a pairings table change: which change announces which event, with a stable id and
never a token, and how the publisher batches entries (the stream and the bus in moto:
tests/component/test_lifecycle_events.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

import pytest

from tests.support.stream_images import (
    ACCESS,
    GEN_A,
    GEN_B,
    LIFECYCLE_SAMPLES,
    REFRESH,
    STREAM_SAMPLE,
    SUSPENDED,
    T0,
    Image,
    app,
    image,
)
from x3link.events import lifecycle
from x3link.events.bus import EventPublisher

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

EXPIRED: dict[str, Any] = {
    **SUSPENDED,
    "status": "expired",
    "reason": "grace_period_over",
    "version": 3,
    "expired_at": T0 + 99,
}


def types(event_name: str, old: Image | None, new: Image | None) -> list[str]:
    return [event.detail_type for event in lifecycle.events_for(event_name, old, new, at_epoch=T0 + 1)]


# ---------------------------------------------------------------------------------------------- mapping
@pytest.mark.parametrize(
    ("event_name", "old", "new", "expected"),
    [
        ("INSERT", None, image(), "PairingCompleted"),
        ("MODIFY", image(**EXPIRED), image(generation=GEN_B, version=4), "PairingCompleted"),  # re-paired
        ("MODIFY", image(), image(**SUSPENDED), "PairingSuspended"),
        ("MODIFY", image(**SUSPENDED), image(**EXPIRED), "PairingExpired"),
        ("MODIFY", image(), image(**EXPIRED), "PairingExpired"),  # grant_dead while the app is healthy
        (
            "MODIFY",
            image(**SUSPENDED),
            image(version=3, reason="recovered", refreshed_at=T0 + 400),
            "PairingRecovered",
        ),
        ("MODIFY", image(**EXPIRED), image(version=4, reason="operator_retry"), "PairingRecovered"),
        ("REMOVE", image(**SUSPENDED), None, "PairingDeleted"),
        ("INSERT", None, app(breaker="open", breaker_id="b1", opened_at=T0), "AppCredentialsRejected"),
        (
            "MODIFY",
            app(breaker="closed", breaker_id="b1"),
            app(breaker="open", breaker_id="b2"),
            "AppCredentialsRejected",
        ),
        (
            "MODIFY",
            app(breaker="open", breaker_id="b1"),
            app(breaker="open", breaker_id="b2"),
            "AppCredentialsRejected",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_each_transition_announces_one_event(
    event_name: str, old: Image | None, new: Image | None, expected: str
) -> None:
    assert types(event_name, old, new) == [expected]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # token rotation: new tokens, a new version, the same generation and status
        (image(), image(version=2, access_token="new-a", refresh_token="new-r", refreshed_at=T0 + 300)),
        # leases taken, released, a failed refresh noted
        (image(), image(lease_owner="worker-1", lease_until=T0 + 30)),
        (image(lease_owner="worker-1", lease_until=T0 + 30), image(refresh_failed_at=T0 + 20)),
        # another refusal while suspended: a new attempt time, no new state
        (
            image(**SUSPENDED),
            image(**{**SUSPENDED, "next_attempt_at": T0 + 900, "last_refusal_at": T0 + 600}),
        ),
        # a new generation that is not (yet) active, and the app breaker's other changes
        (image(**EXPIRED), image(**{**EXPIRED, "generation": GEN_B})),
        (app(breaker="closed", healthy_at=T0), app(breaker="closed", healthy_at=T0 + 60)),
        (app(breaker="open", breaker_id="b1"), app(breaker="open", breaker_id="b1", next_probe_at=T0 + 60)),
        (app(breaker="open", breaker_id="b1"), app(breaker="closed", breaker_id="b1", closed_at=T0 + 60)),
    ],
)
def test_token_rotation_leases_and_other_changes_announce_nothing(old: Image, new: Image) -> None:
    assert types("MODIFY", old, new) == []


def test_removing_or_inserting_a_closed_app_breaker_announces_nothing() -> None:
    assert types("REMOVE", app(breaker="open", breaker_id="b1"), None) == []
    assert types("INSERT", None, app(breaker="closed", healthy_at=T0)) == []


def test_a_notification_recorded_for_a_tenant_announces_files_available_once() -> None:
    item: Image = {
        "notification_id": {"S": "n1"},
        "tenant": {"S": "acme"},
        "customer": {"S": "https://x3.acme.example"},
        "folder": {"S": "SEED"},
        "files": {"S": '[{"name": "a.csv", "size": 3, "last_modified": null, "checksum": null}]'},
        "received_at": {"N": str(T0)},
        "expires_epoch": {"N": str(T0 + 7 * 86400)},
    }
    (event,) = lifecycle.events_for("INSERT", None, item, at_epoch=T0 + 1)
    assert event.detail_type == "FilesAvailable"
    assert event.detail == {
        "id": "notification:n1:acme",
        "tenant": "acme",
        "customer": "https://x3.acme.example",
        "notification_id": "n1",
        "folder": "SEED",
        "files": [{"name": "a.csv", "size": 3, "last_modified": None, "checksum": None}],
        "truncated": False,
        "sent_at": None,
        "at": "2026-01-01T00:00:00Z",
    }
    # Its expiry (TTL) and any rewrite are not news.
    assert types("REMOVE", item, None) == [] and types("MODIFY", item, item) == []


def test_a_deletion_describes_the_pairing_that_was_deleted() -> None:
    (event,) = lifecycle.events_for("REMOVE", image(**SUSPENDED), None, at_epoch=T0 + 500)
    assert event.detail == {
        "id": f"acme:{GEN_A}:2:PairingDeleted",
        "tenant": "acme",
        "customer": "https://x3.acme.example",
        "status": "deleted",
        "reason": "deleted",
        "generation": GEN_A,
        "at": "2026-01-01T00:08:20Z",
    }


def test_a_completed_pairing_names_the_x3_it_reaches_and_the_gateway_in_use() -> None:
    """An app can tell at a glance that a pairing landed on an X3 it did not expect (a leaked state)."""
    paired = image(x3_issuer="api.eu-prod-sagex3.com", x3_subject="cfg-1", endpoint="https://gw.example/v1")
    (event,) = lifecycle.events_for("INSERT", None, paired)
    assert event.detail_type == "PairingCompleted"
    assert (event.detail["x3_subject"], event.detail["x3_issuer"], event.detail["endpoint"]) == (
        "cfg-1",
        "api.eu-prod-sagex3.com",
        "https://gw.example/v1",
    )
    # A re-pairing with another X3: the new generation's event names the new one.
    moved = image(generation=GEN_B, version=2, x3_issuer="api.us-prod-sagex3.com", x3_subject="cfg-2")
    (again,) = lifecycle.events_for("MODIFY", paired, moved)
    assert (again.detail["x3_subject"], again.detail["x3_issuer"]) == ("cfg-2", "api.us-prod-sagex3.com")
    # A grant whose token named no X3: said as null, never left out.
    (unnamed,) = lifecycle.events_for("INSERT", None, image())
    assert unnamed.detail["x3_subject"] is None and unnamed.detail["x3_issuer"] is None


def test_a_suspension_says_what_sage_refused_and_when_the_next_attempt_is() -> None:
    (event,) = lifecycle.events_for("MODIFY", image(), image(**SUSPENDED))
    assert event.detail == {
        "id": f"acme:{GEN_A}:2:PairingSuspended",
        "tenant": "acme",
        "customer": "https://x3.acme.example",
        "status": "suspended",
        "reason": "grant_refused",
        "generation": GEN_A,
        "at": "2026-01-01T00:01:00Z",
        "last_refusal": {"at": "2026-01-01T00:01:00Z", "status": 400, "message": "Pairing request not found"},
        "next_attempt_at": "2026-01-01T00:06:00Z",
    }


def test_ids_are_stable_across_redelivery_and_distinct_across_changes() -> None:
    change = ("MODIFY", image(**SUSPENDED), image(**EXPIRED))
    first = lifecycle.events_for(*change, at_epoch=T0 + 100)
    again = lifecycle.events_for(*change, at_epoch=T0 + 100)
    assert first == again
    assert first[0].id == f"acme:{GEN_A}:3:PairingExpired"
    # The same transition in a later version, or of another generation, is another event.
    later = lifecycle.events_for("MODIFY", image(**SUSPENDED), image(**{**EXPIRED, "version": 9}))
    repaired = lifecycle.events_for("MODIFY", image(**SUSPENDED), image(**{**EXPIRED, "generation": GEN_B}))
    assert len({first[0].id, later[0].id}) == 2
    assert repaired == []  # a new generation is announced only by its completion


def test_no_detail_ever_carries_a_token() -> None:
    records = [
        (r["eventName"], r["dynamodb"].get("OldImage"), r["dynamodb"].get("NewImage"))
        for r in STREAM_SAMPLE["Records"]
    ]
    records += [("INSERT", None, image()), ("MODIFY", image(), image(**SUSPENDED)), ("REMOVE", image(), None)]
    details = [event.detail for change in records for event in lifecycle.events_for(*change)]
    assert len(details) >= 9
    tokens = {ACCESS, REFRESH} | {
        value["S"]
        for _, old, new in records
        for item in (old or {}, new or {})
        for name, value in item.items()
        if name.endswith("_token")
    }
    for detail in details:
        text = json.dumps(detail)
        assert not any(token in text for token in tokens), detail
        assert "token" not in text.lower(), detail


# ---------------------------------------------------------------------------------------------- samples
def test_every_detail_type_has_a_sample_that_the_sample_stream_produces() -> None:
    assert set(LIFECYCLE_SAMPLES) == set(lifecycle.DETAIL_TYPES)
    produced = {}
    for record in STREAM_SAMPLE["Records"]:
        change = record["dynamodb"]
        for event in lifecycle.events_for(
            record["eventName"],
            change.get("OldImage"),
            change.get("NewImage"),
            at_epoch=change["ApproximateCreationDateTime"],
        ):
            produced[event.detail_type] = event.detail
    for detail_type, sample in LIFECYCLE_SAMPLES.items():
        assert sample["detail-type"] == detail_type
        assert sample["source"] == lifecycle.SOURCE
        assert sample["detail"] == produced[detail_type], detail_type


# ---------------------------------------------------------------------------------------------- publisher
class FakeBus:
    def __init__(self, refuse: set[int]) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.refuse = refuse  # positions, counted over every entry put

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        start = sum(len(call) for call in self.calls)
        self.calls.append(Entries)
        results = [
            {"ErrorCode": "InternalFailure"} if start + i in self.refuse else {"EventId": f"e{start + i}"}
            for i in range(len(Entries))
        ]
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def test_the_publisher_puts_ten_entries_a_call_and_returns_every_refused_id() -> None:
    events = [
        lifecycle.LifecycleEvent("PairingCompleted", {"id": f"t{i}", "tenant": f"t{i}"}) for i in range(23)
    ]
    bus = FakeBus(refuse={3, 17})

    refused = EventPublisher("the-bus", cast("EventBridgeClient", bus)).publish(events)

    assert [len(call) for call in bus.calls] == [10, 10, 3]
    assert refused == ["t3", "t17"]
    entry = bus.calls[0][0]
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (
        "sage-x3-link",
        "PairingCompleted",
        "the-bus",
    )
    assert json.loads(entry["Detail"]) == {"id": "t0", "tenant": "t0"}
    assert EventPublisher("the-bus", cast("EventBridgeClient", FakeBus(refuse=set()))).publish(events) == []
