"""The outbox (issue 16): a file the app writes into the outbox bucket reaches Sage X3's data ingestion, and
the app hears its outcome on the bus; a file Sage's rules refuse never reaches Sage. S3's events arrive on
the outbox queue as moto's S3 sends them; the worker and the stream's publisher run as their triggers
would."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from local.triggers import Triggers
from tests.support.api import call
from tests.support.aws_faults import AwsCalls
from tests.support.events import lifecycle_events
from tests.support.sage import pair

ACME = "https://x3.acme.example"

for _function in ("OutboxWorkerFunction", "PairingEventsFunction", "DataIngestionFunction"):
    tpl.load_handler(_function)


@pytest.fixture
def outbox(stack: Stack, sage: Emulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """The outbox bucket, with acme paired (folder SEED granted, X3 not), the worker's environment set and
    Sage's scan instant, so that a file goes from S3 to its outcome in one pump of the triggers."""
    for key, value in stack.function_environment("OutboxWorkerFunction").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("OUTBOX_TRACK_SECONDS", "0")  # every follow-up at once: no test waits on a delay
    pair(sage, "acme", ACME, folders=["SEED"])
    sage.configure(scan_delay=0)
    sage.clear_requests()
    return stack.refs["OutboxBucket"]


def _deliver(stack: Stack) -> None:
    """Hand the outbox queue's messages (S3's events, then the worker's own follow-ups) to the worker until
    none is left, as Lambda's queue trigger would; every one must be processed."""
    deliveries = Triggers(stack, types=("SQS",), functions=("OutboxWorkerFunction",)).pump(max_rounds=50)
    assert all(delivery.ok for delivery in deliveries), [d.error for d in deliveries]


def _write(bucket: str, key: str, body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def _file_events(events: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [e for e in events() if e["detail-type"] in ("FileIngested", "FileRejected")]


def _tags(bucket: str, key: str) -> dict[str, str]:
    tags = boto3.client("s3").get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    return {tag["Key"]: tag["Value"] for tag in tags}


def _sent_to_sage(sage: Emulator) -> list[str]:
    return [entry["route"] for entry in sage.requests]


def test_a_good_file_is_integrated_and_published_as_file_ingested(
    stack: Stack, sage: Emulator, outbox: str
) -> None:
    events = lifecycle_events(stack)
    content = b"item;qty\nA;1\nB;2\n"

    _write(outbox, "acme/SEED/items.csv", content)
    _deliver(stack)

    assert sage.ingested(ACME, "SEED") == {"items.csv": content}
    (event,) = _file_events(events)
    detail = event["detail"]
    assert event["detail-type"] == "FileIngested" and event["source"] == "sage-x3-link"
    assert {k: detail[k] for k in ("tenant", "folder", "filename", "bucket", "key", "status")} == {
        "tenant": "acme",
        "folder": "SEED",
        "filename": "items.csv",
        "bucket": outbox,
        "key": "acme/SEED/items.csv",
        "status": "integrated",
    }
    assert detail["id"] and detail["tracking_id"]
    assert "token" not in json.dumps(detail).lower()
    # The app's object stays, tagged with its outcome.
    assert boto3.client("s3").get_object(Bucket=outbox, Key="acme/SEED/items.csv")["Body"].read() == content
    assert _tags(outbox, "acme/SEED/items.csv")["x3link-outcome"] == "ingested"
    listed = call("GET", "/tenants/acme/uploads")
    assert listed.status == 200, listed.body
    (upload,) = listed.json["uploads"]
    assert {k: upload[k] for k in ("tracking_id", "folder", "filename", "status", "source", "outcome")} == {
        "tracking_id": detail["tracking_id"],
        "folder": "SEED",
        "filename": "items.csv",
        "status": "integrated",
        "source": "outbox",
        "outcome": "ingested",
    }


def test_a_file_sage_rejects_is_file_rejected_with_sages_status(
    stack: Stack, sage: Emulator, outbox: str
) -> None:
    events = lifecycle_events(stack)

    _write(outbox, "acme/SEED/eicar-test.txt", b"harmless text\n")  # the emulator's scan flags the name
    _deliver(stack)

    (event,) = _file_events(events)
    assert event["detail-type"] == "FileRejected"
    detail = event["detail"]
    assert (detail["reason"], detail["status"]) == ("sage_rejected", "virus_detected")
    assert detail["message"]
    assert _tags(outbox, "acme/SEED/eicar-test.txt")["x3link-reason"] == "sage_rejected"


def test_a_duplicate_name_is_file_rejected_as_file_exists(stack: Stack, sage: Emulator, outbox: str) -> None:
    events = lifecycle_events(stack)
    _write(outbox, "acme/SEED/items.csv", b"a;1\n")
    _deliver(stack)
    assert [e["detail-type"] for e in _file_events(events)] == ["FileIngested"]

    _write(outbox, "acme/SEED/items.csv", b"a;2\n")  # a new version of the same key: Sage holds the name
    _deliver(stack)

    (event,) = _file_events(events)
    assert event["detail-type"] == "FileRejected"
    assert (event["detail"]["reason"], event["detail"]["filename"]) == ("file_exists", "items.csv")
    assert "status" not in event["detail"]  # the bundle's reason, not a status of Sage's tracking
    assert sage.ingested(ACME, "SEED") == {"items.csv": b"a;1\n"}
    uploads = call("GET", "/tenants/acme/uploads").json["uploads"]
    assert [(u["outcome"], u.get("reason")) for u in uploads] == [
        ("rejected", "file_exists"),
        ("ingested", None),
    ]


def test_a_binary_file_is_rejected_before_sage_hears_of_it(stack: Stack, sage: Emulator, outbox: str) -> None:
    events = lifecycle_events(stack)

    _write(outbox, "acme/SEED/photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    _deliver(stack)

    (event,) = _file_events(events)
    assert (event["detail-type"], event["detail"]["reason"]) == ("FileRejected", "not_text")
    assert _sent_to_sage(sage) == []
    assert _tags(outbox, "acme/SEED/photo.png") == {
        "x3link-outcome": "rejected",
        "x3link-reason": "not_text",
        "x3link-status": "rejected",
    }
    (upload,) = call("GET", "/tenants/acme/uploads").json["uploads"]
    assert (upload["tracking_id"], upload["source"], upload["reason"]) == (None, "outbox", "not_text")


def test_a_351_mb_file_is_rejected_from_its_size_alone(
    stack: Stack, sage: Emulator, outbox: str, calls: AwsCalls
) -> None:
    """S3's event of a 351 MB object (as S3 writes it): the size decides, nothing of the object is read and
    nothing reaches Sage. The object is small here: a real one would take minutes to write into moto, and
    the worker must not need its bytes to refuse it."""
    events = lifecycle_events(stack)
    sqs = boto3.client("sqs")
    _write(outbox, "acme/SEED/huge.csv", b"a;1\n")
    queue = stack.refs["OutboxQueue"]
    for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])  # moto's event of it
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": "2026-01-01T13:05:00.000Z",
        "eventName": "ObjectCreated:CompleteMultipartUpload",
        "s3": {"bucket": {"name": outbox}, "object": {"key": "acme/SEED/huge.csv", "size": 351_000_000}},
    }
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"Records": [record]}))

    _deliver(stack)

    (event,) = _file_events(events)
    assert (event["detail-type"], event["detail"]["reason"]) == ("FileRejected", "too_large")
    assert _sent_to_sage(sage) == []
    # Of the object, only its tags were touched: no HeadObject, no GetObject.
    s3_calls = {call.operation for call in calls.calls if call.service == "s3"}
    assert s3_calls == {"GetObjectTagging", "PutObjectTagging"}


def test_a_folder_not_granted_is_rejected_before_sage_hears_of_it(
    stack: Stack, sage: Emulator, outbox: str
) -> None:
    events = lifecycle_events(stack)

    _write(outbox, "acme/X3/items.csv", b"a;1\n")
    _deliver(stack)

    (event,) = _file_events(events)
    assert (event["detail-type"], event["detail"]["reason"]) == ("FileRejected", "folder_not_granted")
    assert event["detail"]["folder"] == "X3"
    assert _sent_to_sage(sage) == []  # not even a token refresh
    assert sage.ingested(ACME, "X3") == {}


def test_uploads_through_the_api_are_listed_with_their_source(
    stack: Stack, sage: Emulator, outbox: str
) -> None:
    answer = call("POST", "/tenants/acme/folders/SEED/uploads", json_body={"filename": "prices.csv"})
    assert answer.status == 201, answer.body
    _write(outbox, "acme/SEED/stock.csv", b"a;1\n")
    _deliver(stack)

    uploads = call("GET", "/tenants/acme/uploads", query={"limit": "1"})
    assert uploads.status == 200, uploads.body
    (newest,) = uploads.json["uploads"]
    assert (newest["filename"], newest["source"]) == ("stock.csv", "outbox")
    rest = call("GET", "/tenants/acme/uploads", query={"limit": "1", "cursor": uploads.json["cursor"]}).json
    (older,) = rest["uploads"]
    assert {k: older[k] for k in ("tracking_id", "folder", "filename", "status", "source")} == {
        "tracking_id": answer.json["tracking_id"],
        "folder": "SEED",
        "filename": "prices.csv",
        "status": "awaiting_upload",
        "source": "api",
    }
    assert call("GET", "/tenants/other/uploads").json == {"uploads": []}
    assert call("GET", "/tenants/acme/uploads", query={"cursor": "bogus"}).status == 400


def test_a_redelivered_s3_event_sends_nothing_twice(stack: Stack, sage: Emulator, outbox: str) -> None:
    events = lifecycle_events(stack)
    sqs, queue = boto3.client("sqs"), stack.refs["OutboxQueue"]
    _write(outbox, "acme/SEED/items.csv", b"a;1\n")
    (message,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    sqs.send_message(QueueUrl=queue, MessageBody=message["Body"])  # S3 delivers at least once

    _deliver(stack)

    assert [e["detail-type"] for e in _file_events(events)] == ["FileIngested"]
    assert (
        sum(1 for entry in sage.requests if entry["route"] == "dataingestion" and entry["method"] == "POST")
        == 1
    )
    assert len(call("GET", "/tenants/acme/uploads").json["uploads"]) == 1


def test_sage_failing_is_retried_with_backoff_then_rejected_as_sage_unavailable(
    stack: Stack, sage: Emulator, outbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTBOX_MAX_ATTEMPTS", "3")
    events = lifecycle_events(stack)
    sage.fail_next("dataingestion", status=503, count=3)

    _write(outbox, "acme/SEED/items.csv", b"a;1\n")
    _deliver(stack)

    (event,) = _file_events(events)
    assert (event["detail-type"], event["detail"]["reason"]) == ("FileRejected", "sage_unavailable")
    assert sage.ingested(ACME, "SEED") == {}


def test_an_object_deleted_before_it_was_read_is_rejected_as_gone(
    stack: Stack, sage: Emulator, outbox: str
) -> None:
    events = lifecycle_events(stack)
    _write(outbox, "acme/SEED/items.csv", b"a;1\n")
    boto3.client("s3").delete_object(Bucket=outbox, Key="acme/SEED/items.csv")

    _deliver(stack)

    (event,) = _file_events(events)
    assert (event["detail-type"], event["detail"]["reason"]) == ("FileRejected", "object_gone")
    assert _sent_to_sage(sage) == []
