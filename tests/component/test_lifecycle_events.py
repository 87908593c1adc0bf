"""Lifecycle events come from the pairings table's change stream: each committed change is announced at
least once, with a stable id, never with a token, even when EventBridge refuses entries for a while or the
function that made the change dies right after committing it."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from local import template as tpl
from local.aws_resources import Stack
from tests.support.api import invoke
from tests.support.events import published_events, stream_triggers
from tests.support.stream_images import (
    GEN_A,
    LIFECYCLE_SAMPLES,
    STREAM_SAMPLE,
    SUSPENDED,
    T0,
    Image,
    image,
)
from x3link import wiring
from x3link.events import lifecycle


def types(event_name: str, old: Image | None, new: Image | None) -> list[str]:
    return [event.detail_type for event in lifecycle.events_for(event_name, old, new, at_epoch=T0 + 1)]


# ---------------------------------------------------------------------------------------------- handler
def _published_details(drain: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [event["detail"] for event in drain()]


def _sample_details() -> list[dict[str, Any]]:
    """The samples' details, in the order the sample stream's records announce them."""
    order = [
        event.detail_type
        for record in STREAM_SAMPLE["Records"]
        for event in lifecycle.events_for(
            record["eventName"], record["dynamodb"].get("OldImage"), record["dynamodb"].get("NewImage")
        )
    ]
    return [LIFECYCLE_SAMPLES[detail_type]["detail"] for detail_type in order]


def _types_of(record: dict[str, Any]) -> list[str]:
    change = record["dynamodb"]
    return types(record["eventName"], change.get("OldImage"), change.get("NewImage"))


@contextlib.contextmanager
def refusing(refused: Callable[[dict[str, Any]], bool]) -> Iterator[list[str]]:
    """Within the block EventBridge refuses the entries `refused` picks, as when throttled; yields the ids
    it refused."""
    client = wiring.aws_client("events")
    real: Callable[..., Any] = client.put_events  # the fake below answers as it does, in plain dicts
    seen: list[str] = []

    def put_events(Entries: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        accepted = [entry for entry in Entries if not refused(entry)]
        answer = real(Entries=accepted, **kwargs) if accepted else {"Entries": []}
        results, taken = [], iter(answer["Entries"])
        for entry in Entries:
            if refused(entry):
                seen.append(json.loads(entry["Detail"])["id"])
                results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"})
            else:
                results.append(next(taken))
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(client, "put_events", put_events)
        yield seen


def test_the_sample_stream_event_publishes_one_event_per_sample(stack: Stack) -> None:
    drain = published_events(stack)

    answer = invoke("PairingEventsFunction", STREAM_SAMPLE)

    assert answer == {"batchItemFailures": []}
    assert _published_details(drain) == _sample_details()


def test_refused_entries_are_reported_for_retry_and_delivered_once_the_bus_accepts(stack: Stack) -> None:
    drain = published_events(stack)
    records = STREAM_SAMPLE["Records"]
    with refusing(lambda entry: entry["DetailType"] == "PairingExpired") as refused:
        answer = invoke("PairingEventsFunction", STREAM_SAMPLE)

    # The refused record and every later one go back, in order; the earlier ones are out.
    cut = next(i for i, record in enumerate(records) if _types_of(record) == ["PairingExpired"])
    assert answer["batchItemFailures"] == [
        {"itemIdentifier": record["dynamodb"]["SequenceNumber"]} for record in records[cut:]
    ]
    assert len(refused) == 1
    first = _published_details(drain)
    assert [detail["id"] for detail in first] == [detail["id"] for detail in _sample_details()[:2]]

    # The bus accepts again; Lambda hands back the failed records.
    retry = {"Records": records[cut:]}
    assert invoke("PairingEventsFunction", retry) == {"batchItemFailures": []}
    delivered = first + _published_details(drain)
    assert delivered == _sample_details()  # every event, once, in order


def test_one_line_per_published_event_and_never_the_stream_images(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")  # even when someone turns event logging on
    tpl.load_handler("PairingEventsFunction")
    service = logging.getLogger("sage-x3-link")
    stream, saved = io.StringIO(), []
    for handler in service.handlers:
        if isinstance(handler, logging.StreamHandler):
            saved.append((handler, handler.setStream(stream)))
    try:
        with refusing(lambda entry: entry["DetailType"] == "PairingDeleted"):
            invoke("PairingEventsFunction", STREAM_SAMPLE)
    finally:
        for handler, previous in saved:
            handler.setStream(previous)

    logs = [json.loads(line) for line in stream.getvalue().splitlines()]
    published = [
        (log["detail_type"], log["tenant"], log["id"])
        for log in logs
        if log["message"] == "Lifecycle event published"
    ]
    assert published == [(d["id"].split(":")[-1], d["tenant"], d["id"]) for d in _sample_details()[:4]]
    assert any(log["message"] == "EventBridge refused lifecycle events" for log in logs)
    text = stream.getvalue()
    assert "EXAMPLE-sealed" not in text and "NewImage" not in text


def test_a_bus_that_cannot_be_reached_fails_the_whole_batch_for_retry(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(**_: Any) -> dict[str, Any]:
        raise ConnectionError("EventBridge endpoint unreachable")

    monkeypatch.setattr(wiring.aws_client("events"), "put_events", unreachable)
    # Every record failed: Powertools raises, and Lambda retries (and bisects) the batch.
    with pytest.raises(Exception, match="All records failed"):
        invoke("PairingEventsFunction", STREAM_SAMPLE)


# ---------------------------------------------------------------------------------------------- the stream
def _table(stack: Stack) -> Any:
    return boto3.client("dynamodb"), stack.refs["PairingsTable"]


def _put(stack: Stack, item: Image) -> None:
    client, table = _table(stack)
    client.put_item(TableName=table, Item=item)


def test_a_change_committed_by_a_function_that_died_right_after_is_still_published(stack: Stack) -> None:
    drain, triggers = published_events(stack), stream_triggers(stack)
    # The writer commits and dies: nothing publishes anything but the stream.
    _put(stack, image("acme"))
    client, table = _table(stack)
    client.update_item(
        TableName=table,
        Key={"tenant": {"S": "acme"}},
        UpdateExpression="SET #s = :s, reason = :r, version = :v, suspended_at = :t",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":s": {"S": "suspended"},
            ":r": {"S": "grant_refused"},
            ":v": {"N": "2"},
            ":t": {"N": str(T0)},
        },
    )
    assert drain() == []

    deliveries = triggers.pump()

    assert deliveries and all(delivery.ok for delivery in deliveries)
    assert [(e["detail-type"], e["detail"]["id"]) for e in drain()] == [
        ("PairingCompleted", f"acme:{GEN_A}:1:PairingCompleted"),
        ("PairingSuspended", f"acme:{GEN_A}:2:PairingSuspended"),
    ]
    assert triggers.pump() == [] and drain() == []  # delivered once


def test_while_the_bus_refuses_nothing_is_lost_and_everything_arrives_once_it_accepts(stack: Stack) -> None:
    drain, triggers = published_events(stack), stream_triggers(stack)
    _put(stack, image("acme"))
    _put(stack, image("globex"))
    _put(stack, image("acme", **SUSPENDED))

    with refusing(lambda _entry: True) as refused:
        for _ in range(3):  # Lambda keeps retrying from the first unpublished record
            deliveries = triggers.pump()
            assert deliveries and not any(delivery.ok for delivery in deliveries)
    assert drain() == []
    assert set(refused) == {f"acme:{GEN_A}:1:PairingCompleted"}  # later records wait behind it, in order

    triggers.pump()
    assert [e["detail"]["id"] for e in drain()] == [
        f"acme:{GEN_A}:1:PairingCompleted",
        f"globex:{GEN_A}:1:PairingCompleted",
        f"acme:{GEN_A}:2:PairingSuspended",
    ]
    assert triggers.pump() == [] and drain() == []


def test_the_template_stream_is_created_locally_with_its_arn(stack: Stack) -> None:
    arn = stack.attrs[("PairingsTable", "StreamArn")]
    description = boto3.client("dynamodbstreams").describe_stream(StreamArn=arn)["StreamDescription"]
    assert description["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert description["TableName"] == stack.refs["PairingsTable"]
    assert "PairingsTable" in stack.created
    # Each of the four tables' streams (pairings, notifications, uploads, the export ledger) feeds the one
    # publisher and the activity's recorder.
    assert sorted(source.function for source in tpl.event_sources() if source.type == "DynamoDB") == [
        "ActivityRecorderFunction",
        "ActivityRecorderFunction",
        "ActivityRecorderFunction",  # the uploads table's: file_ingested, file_rejected
        "ActivityRecorderFunction",  # the delivery table's: file_delivered
        "PairingEventsFunction",
        "PairingEventsFunction",
        "PairingEventsFunction",  # the uploads table's: FileIngested, FileRejected
        "PairingEventsFunction",  # the delivery table's: FileDelivered
    ]
