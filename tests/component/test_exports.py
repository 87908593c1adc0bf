"""Exports delivered to the app's bucket, exactly once (issue 16 part 1): the sync routes, the schedule and a
notification racing over 120 files, and each single fault injected in turn. Every check is what the app
sees: the objects in the bucket (their bytes and versions), the files left at Sage, the FileDelivered
events on the bus, and, for every delete Sage received, whether the object was already stored."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3

from local import template as tpl
from local.aws_resources import Stack
from local.lambda_context import for_function
from local.sagex3_emulator import Emulator
from local.triggers import QueuePoller
from tests.support.api import call, invoke
from tests.support.events import lifecycle_events
from tests.support.keeper import Spy, rewire
from tests.support.sage import pair
from x3link import wiring
from x3link.errors import UpstreamTimeout
from x3link.exports.worker import DeliveryTiming

CUSTOMER = "https://x3.acme.example"
SYNC = "/tenants/acme/folders/SEED/sync"
WORKER = "ExportWorkerFunction"
ACCOUNT = "123456789012"
SCHEDULED = json.loads((Path(__file__).parents[2] / "events" / "scheduled.json").read_text())
LEASE = 2.0  # seconds stand for the worker's 16 minutes: a killed worker's retry waits this long


class Killed(BaseException):
    """The worker's process dies here: nothing after it runs, not even a release of its lease."""


@dataclass
class Watch:
    """What the worker did at Sage and in S3, seen through its clients."""

    bucket: str
    deletes: list[str] = field(default_factory=list)
    deletes_before_storage: list[str] = field(default_factory=list)
    faults: dict[str, Callable[..., Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _stored(bucket: str, filename: str) -> bool:
    try:
        head = boto3.client("s3").head_object(Bucket=bucket, Key=f"acme/SEED/{filename}")
    except boto3.client("s3").exceptions.ClientError:
        return False
    return bool(head.get("Metadata", {}).get("x3-version"))


@pytest.fixture
def watch(sage: Emulator, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Watch:
    """Tenant acme paired with SEED, its sync on, a worker whose Sage deletes and S3 writes are watched."""
    monkeypatch.setenv("DELIVERY_RETRY_SECONDS", "0")
    # A received message not finished comes back in 2 s rather than 90 minutes (a killed worker's).
    boto3.client("sqs").set_queue_attributes(
        QueueUrl=stack.refs["DeliveryQueue"], Attributes={"VisibilityTimeout": "2"}
    )
    seen = Watch(stack.refs["DeliveryBucket"])
    real_sage, real_s3 = wiring.sage_client, wiring.s3_client

    def delete(url: str, token: str, **kwargs: Any) -> None:
        filename = url.rsplit("filename=", 1)[-1]
        with seen.lock:
            seen.deletes.append(filename)
            if not _stored(seen.bucket, filename):
                seen.deletes_before_storage.append(filename)
        fault = seen.faults.get("delete")
        if fault is not None:
            fault(real_sage(), url, token, **kwargs)
            return
        real_sage().delete(url, token, **kwargs)

    def open_download(url: str, **kwargs: Any) -> Any:
        fault = seen.faults.get("open_download")
        if fault is not None:
            return fault(real_sage(), url, **kwargs)
        return real_sage().open_download(url, **kwargs)

    def s3_call(name: str) -> Callable[..., Any]:
        def made(**kwargs: Any) -> Any:
            fault = seen.faults.get(name)
            if fault is not None:
                return fault(real_s3(), **kwargs)
            return getattr(real_s3(), name)(**kwargs)

        return made

    rewire(
        sage_client=lambda: Spy(real_sage(), delete=delete, open_download=open_download),
        s3_client=lambda: Spy(
            real_s3(),
            upload_part=s3_call("upload_part"),
            complete_multipart_upload=s3_call("complete_multipart_upload"),
            put_object=s3_call("put_object"),
        ),
        delivery_timing=lambda: DeliveryTiming(lease_seconds=LEASE, retry_base_seconds=0, max_receives=5),
    )
    pair(sage, "acme", CUSTOMER, folders=["SEED"])
    answer = call("PUT", SYNC, json_body={"enabled": True})
    assert answer.status == 200, answer.body
    return seen


def export(sage: Emulator, count: int, size: int = 64) -> dict[str, bytes]:
    lines = {n: f"order;{n};".encode() for n in range(count)}
    files = {f"orders-{n:03}.csv": (line * (size // len(line) + 1))[:size] for n, line in lines.items()}
    for name, content in files.items():
        sage.put_delivery_file(CUSTOMER, "SEED", name, content)
    return files


def poll() -> None:
    invoke("ExportPollFunction", SCHEDULED)


def notify(sage: Emulator) -> None:
    sent = sage.notify(CUSTOMER, "SEED", send=False)
    headers = {"Content-Type": "application/json", "HMAC_SHA256": sent.signature or ""}
    assert call("POST", "/notifications", body=sent.body, headers=headers).status == 200


def drain(stack: Stack, *, drainers: int = 1, timeout: float = 240.0) -> list[BaseException]:
    """Hand the delivery queue's messages to the worker, as its trigger would, from `drainers` threads at
    once, until it stays empty; what the worker raised past its handler (a kill) is returned."""
    sqs = boto3.client("sqs")
    url, arn = stack.refs["DeliveryQueue"], stack.attrs[("DeliveryQueue", "Arn")]
    (source,) = [s for s in tpl.event_sources() if s.function == WORKER]
    context = for_function(WORKER, region="us-east-1", account_id=ACCOUNT)
    killed: list[BaseException] = []
    failures: list[BaseException] = []

    def run(event: dict[str, Any]) -> Any:
        try:
            return tpl.load_handler(WORKER)(event, context)
        except Killed as exc:
            killed.append(exc)
            raise RuntimeError("killed") from None

    deadline = time.monotonic() + timeout

    def loop() -> None:
        poller = QueuePoller(source, arn, run, client=sqs)
        empty = 0
        while empty < 3:
            poller.pump()
            counts = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            empty = empty + 1 if not any(int(v) for v in counts.values()) else 0
            assert time.monotonic() < deadline, f"the delivery queue did not drain: {counts}"
            time.sleep(0.1)

    def guarded() -> None:
        try:
            loop()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=guarded) for _ in range(drainers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return killed


def objects(stack: Stack) -> dict[str, list[bytes]]:
    """Every version of every object in the bucket, by key (oldest first)."""
    s3 = boto3.client("s3")
    bucket = stack.refs["DeliveryBucket"]
    found: dict[str, list[bytes]] = {}
    answer = s3.list_object_versions(Bucket=bucket)
    for version in sorted(answer.get("Versions", []), key=lambda v: v["LastModified"]):
        body = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"].read()
        found.setdefault(version["Key"], []).append(body)
    return found


def delivered_ids(events: Callable[[], list[dict[str, Any]]]) -> Counter[str]:
    return Counter(e["detail"]["id"] for e in events() if e["detail-type"] == "FileDelivered")


def assert_exactly_once(
    stack: Stack, sage: Emulator, watch: Watch, files: dict[str, bytes], ids: Counter[str]
) -> None:
    """Nothing lost, nothing delivered twice, nothing deleted at Sage before it was stored."""
    found = objects(stack)
    expected = {f"acme/SEED/{name}": [content] for name, content in files.items()}
    assert found == expected, _explain(stack, sorted(set(expected) ^ set(found)))
    assert sage.delivery_files(CUSTOMER, "SEED") == {}
    assert watch.deletes_before_storage == []
    assert len(ids) == len(files)
    sync = call("GET", SYNC).json
    assert sync["files_delivered"] == len(files) and sync["enabled"] is True


def _explain(stack: Stack, keys: list[str]) -> str:
    """What the bucket and the delivery ledger say of the keys a listing lacks or has too many of: a
    failure of the exactly-once tests says where the file went."""
    s3, db = boto3.client("s3"), boto3.client("dynamodb")
    lines = []
    for key in keys[:5]:
        try:
            head: Any = s3.head_object(Bucket=stack.refs["DeliveryBucket"], Key=key)
            seen = {k: head.get(k) for k in ("VersionId", "ContentLength", "Metadata")}
        except s3.exceptions.ClientError as exc:
            seen = {"error": exc.response.get("Error", {}).get("Code")}
        ledger = [
            item
            for page in db.get_paginator("scan").paginate(TableName=stack.refs["DeliveryTable"])
            for item in page["Items"]
            if key.rsplit("/", 1)[-1] in json.dumps(item)
        ]
        lines.append(f"{key}: head {seen}; ledger {ledger}")
    return "\n".join(lines)


@pytest.fixture
def events(stack: Stack) -> Callable[[], list[dict[str, Any]]]:
    return lifecycle_events(stack)


# ---------------------------------------------------------------------------------------------- routes
def test_a_folder_never_switched_on_answers_disabled_and_an_ungranted_one_is_refused(
    sage: Emulator, stack: Stack
) -> None:
    pair(sage, "acme", CUSTOMER, folders=["SEED"])
    assert call("GET", SYNC).json == {
        "enabled": False,
        "last_run_at": None,
        "files_delivered": 0,
        "last_error": None,
    }
    refused = call("PUT", "/tenants/acme/folders/X3/sync", json_body={"enabled": True})
    assert (refused.status, refused.json["error"]) == (403, "folder_not_granted")
    assert call("PUT", SYNC, json_body={"enabled": "yes"}).status == 400
    assert call("PUT", "/tenants/nobody/folders/SEED/sync", json_body={"enabled": True}).status == 404
    on = call("PUT", SYNC, json_body={"enabled": True})
    assert (on.status, on.json["enabled"]) == (200, True)
    off = call("PUT", SYNC, json_body={"enabled": False})
    assert (off.status, off.json["enabled"]) == (200, False)


def test_a_folder_switched_off_is_not_polled(sage: Emulator, watch: Watch, stack: Stack) -> None:
    files = export(sage, 2)
    call("PUT", SYNC, json_body={"enabled": False})
    poll()
    drain(stack)
    assert objects(stack) == {}
    assert sage.delivery_files(CUSTOMER, "SEED") == files


def test_a_scan_reads_every_page_before_it_queues_a_file(
    sage: Emulator, stack: Stack, events: Callable[[], list[dict[str, Any]]]
) -> None:
    """Sage pages by position (`?page=2`): a file delivered and deleted while its folder is still being listed
    moves a later file onto a page already read. So no file of a listing is queued, and none can be
    delivered, before its last page is read."""
    real_sage = wiring.sage_client
    sqs, url = boto3.client("sqs"), stack.refs["DeliveryQueue"]
    waiting_at_later_pages: list[int] = []

    def get_json(url_: str, token: str, **kwargs: Any) -> Any:
        if "page=" in url_:
            answer = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            waiting_at_later_pages.append(int(answer["Attributes"]["ApproximateNumberOfMessages"]))
        return real_sage().get_json(url_, token, **kwargs)

    rewire(sage_client=lambda: Spy(real_sage(), get_json=get_json))
    pair(sage, "acme", CUSTOMER, folders=["SEED"])
    assert call("PUT", SYNC, json_body={"enabled": True}).status == 200
    files = export(sage, 120)  # three pages of 50

    poll()
    assert drain(stack) == []

    assert waiting_at_later_pages == [0, 0]
    assert objects(stack) == {f"acme/SEED/{name}": [content] for name, content in files.items()}
    assert sage.delivery_files(CUSTOMER, "SEED") == {}


# ---------------------------------------------------------------------------------------------- the race
@pytest.mark.serial
def test_120_files_one_notification_and_one_poll_racing_are_delivered_exactly_once(
    sage: Emulator,
    watch: Watch,
    stack: Stack,
    events: Callable[[], list[dict[str, Any]]],
    atomic_moto_dynamodb: None,
) -> None:
    # A lease that outlasts any one delivery on a loaded machine, as 16 minutes outlast the worker's timeout.
    rewire(delivery_timing=lambda: DeliveryTiming(lease_seconds=20, retry_base_seconds=0, max_receives=5))
    files = export(sage, 120)
    notify(sage)
    poll()
    started = time.monotonic()
    assert drain(stack, drainers=3) == []
    seconds = time.monotonic() - started
    ids = delivered_ids(events)
    assert_exactly_once(stack, sage, watch, files, ids)
    assert set(ids.values()) == {1}, ids.most_common(3)
    assert sorted(watch.deletes) == sorted(files)  # 120 deletes, one a file
    sync = call("GET", SYNC).json
    assert sync["last_run_at"] is not None and sync["last_error"] is None
    print(f"\n120 files delivered in {seconds:.1f} s: {120 / seconds * 60:.0f} files a minute")


def test_a_name_sage_reuses_later_is_a_new_version_delivered_again(
    sage: Emulator, watch: Watch, stack: Stack, events: Callable[[], list[dict[str, Any]]]
) -> None:
    sage.put_delivery_file(CUSTOMER, "SEED", "daily.csv", b"monday\n")
    poll()
    drain(stack)
    time.sleep(1.1)  # a new lastModified (Sage's are to the second)
    sage.put_delivery_file(CUSTOMER, "SEED", "daily.csv", b"tuesday\n")
    poll()
    drain(stack)
    assert objects(stack) == {"acme/SEED/daily.csv": [b"monday\n", b"tuesday\n"]}
    assert len(delivered_ids(events)) == 2
    assert call("GET", SYNC).json["files_delivered"] == 2


# ---------------------------------------------------------------------------------------------- faults
def _once(name: str, watch: Watch, fault: Callable[..., Any]) -> None:
    def first(*args: Any, **kwargs: Any) -> Any:
        watch.faults.pop(name, None)
        return fault(*args, **kwargs)

    watch.faults[name] = first


def test_a_worker_killed_after_the_s3_write_and_before_the_ledger_writes_nothing_twice(
    sage: Emulator, watch: Watch, stack: Stack, events: Callable[[], list[dict[str, Any]]]
) -> None:
    files = export(sage, 3)

    def put_then_die(s3: Any, **kwargs: Any) -> Any:
        s3.put_object(**kwargs)
        raise Killed

    _once("put_object", watch, put_then_die)
    poll()
    killed = drain(stack)
    assert len(killed) == 1
    assert_exactly_once(stack, sage, watch, files, delivered_ids(events))


def test_a_worker_killed_after_storing_and_before_sages_delete_deletes_once_announced_once(
    sage: Emulator, watch: Watch, stack: Stack, events: Callable[[], list[dict[str, Any]]]
) -> None:
    files = export(sage, 3)

    def die(sage_client: Any, url: str, token: str, **kwargs: Any) -> None:
        raise Killed

    _once("delete", watch, die)
    poll()
    assert len(drain(stack)) == 1
    ids = delivered_ids(events)
    assert_exactly_once(stack, sage, watch, files, ids)
    assert set(ids.values()) == {1}


def test_a_delete_sage_applied_but_did_not_confirm_is_not_a_lost_file(
    sage: Emulator, watch: Watch, stack: Stack, events: Callable[[], list[dict[str, Any]]]
) -> None:
    files = export(sage, 3)

    def applied_then_timed_out(sage_client: Any, url: str, token: str, **kwargs: Any) -> None:
        sage_client.delete(url, token, **kwargs)
        failure = UpstreamTimeout("Sage X3 did not answer in time.")
        failure.maybe_applied = True
        raise failure

    _once("delete", watch, applied_then_timed_out)
    poll()
    drain(stack)
    assert_exactly_once(stack, sage, watch, files, delivered_ids(events))


class _CutStream:
    """A download whose connection drops after the first read, as a link expiring mid-stream does."""

    def __init__(self, real: Any) -> None:
        self.real, self.reads = real, 0

    def read(self, amount: int) -> bytes:
        self.reads += 1
        if self.reads > 1:
            raise urllib3.exceptions.ProtocolError("Connection broken: the link expired")
        return bytes(self.real.read(min(amount, 100)))

    def release_conn(self) -> None:
        self.real.release_conn()


def test_a_link_that_expires_mid_stream_is_asked_again_and_no_half_file_is_stored(
    sage: Emulator, watch: Watch, stack: Stack, events: Callable[[], list[dict[str, Any]]]
) -> None:
    files = export(sage, 2, size=4096)
    _once("open_download", watch, lambda client, url, **kw: _CutStream(client.open_download(url, **kw)))
    poll()
    drain(stack)
    assert_exactly_once(stack, sage, watch, files, delivered_ids(events))


def test_a_short_download_is_not_stored_and_not_deleted(
    sage: Emulator, watch: Watch, stack: Stack, events: Callable[[], list[dict[str, Any]]]
) -> None:
    files = export(sage, 1, size=4096)

    class Short(_CutStream):
        def read(self, amount: int) -> bytes:
            self.reads += 1
            return bytes(self.real.read(100)) if self.reads == 1 else b""

    _once("open_download", watch, lambda client, url, **kw: Short(client.open_download(url, **kw)))
    poll()
    drain(stack)
    assert_exactly_once(stack, sage, watch, files, delivered_ids(events))


def test_a_part_s3_refuses_aborts_the_upload_and_the_retry_delivers_once(
    sage: Emulator, watch: Watch, stack: Stack, events: Callable[[], list[dict[str, Any]]]
) -> None:
    # Files of two parts and a bit (5 MiB parts, S3's smallest): streamed as multipart uploads.
    part = 5 * 1024 * 1024
    rewire(delivery_timing=lambda: DeliveryTiming(lease_seconds=LEASE, retry_base_seconds=0, part_size=part))
    files = export(sage, 2, size=2 * part + 1000)
    refused: list[int] = []

    def refuse(s3: Any, **kwargs: Any) -> Any:
        from tests.support.aws_faults import client_error

        refused.append(kwargs["PartNumber"])
        raise client_error(s3, "InternalError", "UploadPart")

    def second_part(s3: Any, **kwargs: Any) -> Any:
        if kwargs["PartNumber"] == 2:
            watch.faults.pop("upload_part", None)
            return refuse(s3, **kwargs)
        return s3.upload_part(**kwargs)

    watch.faults["upload_part"] = second_part
    poll()
    drain(stack)
    assert refused == [2]
    assert_exactly_once(stack, sage, watch, files, delivered_ids(events))
    s3 = boto3.client("s3")
    assert s3.list_multipart_uploads(Bucket=stack.refs["DeliveryBucket"]).get("Uploads", []) == []


def test_sages_429_is_honoured_for_its_retry_after_and_nothing_is_lost(
    sage: Emulator, watch: Watch, stack: Stack, events: Callable[[], list[dict[str, Any]]]
) -> None:
    files = export(sage, 2)
    poll()
    sage.fail_next("datadelivery", status=429, retry_after=2, count=1)
    started = time.monotonic()
    drain(stack)
    assert time.monotonic() - started >= 2  # the scan came back only after Sage's Retry-After
    assert_exactly_once(stack, sage, watch, files, delivered_ids(events))


def test_sync_by_default_switches_on_every_granted_folder_of_a_new_pairing_but_not_one_switched_off(
    sage: Emulator, watch: Watch, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELIVERY_SYNC_DEFAULT", "enabled")  # the template parameter DeliverySyncDefault
    wiring.reset()
    pair(sage, "globex", "https://x3.globex.example", folders=["SEED"])
    sage.put_delivery_file("https://x3.globex.example", "SEED", "new.csv", b"globex\n")
    assert call("GET", "/tenants/globex/folders/SEED/sync").json["enabled"] is True
    call("PUT", SYNC, json_body={"enabled": False})  # acme chose: off stays off
    export(sage, 1)

    poll()
    drain(stack)

    assert objects(stack) == {"globex/SEED/new.csv": [b"globex\n"]}
    assert call("GET", "/tenants/globex/folders/SEED/sync").json["files_delivered"] == 1
    assert call("GET", SYNC).json["enabled"] is False
