"""Exports delivered to the app's bucket, exactly once per file version (docs/exports.md).

Two kinds of message share the delivery queue:
- a scan (`{"scan": tenant, "folder"?}`), sent by the schedule for every enabled folder and by a signed
  notification for its tenant: the worker lists the folder's files at Sage and queues one file message each;
- a file (`{"tenant", "folder", "filename", "size", "checksum", "last_modified"}`): the worker streams it
  into the bucket, verifies it, records it, announces `FileDelivered` and only then deletes it at Sage.

Exactly once rests on the ledger (x3link.delivery_ledger), keyed by the file version (`version_of`: the
name with Sage's `lastModified`, `checksum` and `size`), never on the queue: a message seen twice, a file
listed twice or a retry after a crash all meet the version's entry. A version's lease keeps two workers
apart; a version delivered is never taken again; the object written carries the version in its metadata,
so a worker that died after writing it finds it and does not write it twice; Sage's delete comes after the
object is stored and verified, and a delete Sage applied but did not confirm is met by a 404 next time.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from x3link import data_delivery
from x3link.budget import Budget
from x3link.data_integration import file_name, folder_name
from x3link.delivery_ledger import Claim, DeliveryLedger, Stage, SyncState
from x3link.errors import FileNotFound, FolderNotGranted, NotPaired, QuotaExceeded, UpstreamError, X3LinkError
from x3link.pairings import iso

if TYPE_CHECKING:
    from x3link.sage_client import SageX3Client
    from x3link.token_keeper import TokenKeeper
    from x3link.token_store import TokenStore

logger = Logger(child=True)

SQS_MAX_DELAY = 900
SQS_BATCH = 10
MIB = 1024 * 1024
# S3's smallest part but the last: 8 MiB parts keep a 2 GB file at 245 parts (S3 allows 10,000) and the
# worker's memory at one part plus one read.
PART_SIZE = 8 * MIB
READ_SIZE = 1 * MIB
_BINARY = "application/octet-stream"
REQUEUED, POISON, DUPLICATE, DELIVERED, SCANNED = "requeued", "poison", "duplicate", "delivered", "scanned"
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class RetryLater(Exception):
    """The message failed for now: SQS hands it back after its backoff (its DLQ after the last receive)."""


class NotVerified(UpstreamError):
    """The bytes read are not the file Sage listed (size or checksum): nothing is recorded or deleted."""


# ---------------------------------------------------------------------------------------------- orders
@dataclass(frozen=True)
class FileOrder:
    tenant: str
    folder: str
    filename: str
    size: int | None
    checksum: str | None
    last_modified: str | None

    def body(self) -> str:
        return json.dumps(
            {
                "tenant": self.tenant,
                "folder": self.folder,
                "filename": self.filename,
                "size": self.size,
                "checksum": self.checksum,
                "last_modified": self.last_modified,
            }
        )

    @property
    def version(self) -> str:
        return version_of(self)

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.folder}/{self.filename}"


@dataclass(frozen=True)
class ScanOrder:
    tenant: str
    folder: str | None = None

    def body(self) -> str:
        return json.dumps({"scan": self.tenant, "folder": self.folder})


Order = FileOrder | ScanOrder


def version_of(order: FileOrder) -> str:
    """A file version's identity: a name Sage reuses later with another `lastModified` or checksum is a new
    version (delivered again); the same one listed twice is the same version."""
    parts = [order.tenant, order.folder, order.filename, order.last_modified or "", order.checksum or ""]
    parts.append("" if order.size is None else str(order.size))
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def parse_order(body: str) -> Order | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        if "scan" in data:
            folder = data.get("folder")
            return ScanOrder(
                _tenant(data["scan"]), folder_name(folder) if isinstance(folder, str) and folder else None
            )
        size = data.get("size")
        return FileOrder(
            tenant=_tenant(data["tenant"]),
            folder=folder_name(data["folder"]),
            filename=file_name(data["filename"]),
            size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
            checksum=data["checksum"] if isinstance(data.get("checksum"), str) else None,
            last_modified=data["last_modified"] if isinstance(data.get("last_modified"), str) else None,
        )
    except (KeyError, X3LinkError):
        return None


def _tenant(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
        raise KeyError("tenant")
    return value


def checksum_matches(given: str | None, md5: bytes, sha256: bytes) -> bool | None:
    """Sage's `checksum` against the bytes read: True or False when its form is known (MD5 or SHA-256, hex
    or base64), None when Sage gave none or one of a form it does not document [gap]."""
    if not given:
        return None
    text = given.strip().strip('"')
    if _HEX32.fullmatch(text):
        return text.lower() == md5.hex()
    if _HEX64.fullmatch(text):
        return text.lower() == sha256.hex()
    for digest in (md5, sha256):
        if text == base64.b64encode(digest).decode():
            return True
    return None


def retry_seconds(retry_after: str | None, now: float) -> float | None:
    """Sage's Retry-After (delta-seconds or an HTTP date) as seconds from now, within SQS's delay limit."""
    if not retry_after:
        return None
    if retry_after.isdigit():
        seconds = float(retry_after)
    else:
        try:
            seconds = parsedate_to_datetime(retry_after).timestamp() - now
        except (TypeError, ValueError, IndexError):
            return None
    return float(min(SQS_MAX_DELAY, max(1.0, seconds)))


def _delay(seconds: float) -> int:
    return max(0, min(SQS_MAX_DELAY, math.ceil(seconds)))


# ---------------------------------------------------------------------------------------------- queue
class DeliveryQueue:
    def __init__(self, url: str, sqs: Any) -> None:
        self._url = url
        self._sqs = sqs

    def send(self, orders: list[Order]) -> int:
        """Send orders ten at a time, entries SQS refuses tried once more; how many were sent."""
        sent = 0
        for start in range(0, len(orders), SQS_BATCH):
            chunk = orders[start : start + SQS_BATCH]
            pending = {str(i): order for i, order in enumerate(chunk)}
            for _ in range(2):
                if not pending:
                    break
                answer = self._sqs.send_message_batch(
                    QueueUrl=self._url,
                    Entries=[{"Id": key, "MessageBody": order.body()} for key, order in pending.items()],
                )
                pending = {entry["Id"]: pending[entry["Id"]] for entry in answer.get("Failed", [])}
            sent += len(chunk) - len(pending)
        return sent

    def later(self, order: Order, delay: float) -> None:
        self._sqs.send_message(QueueUrl=self._url, MessageBody=order.body(), DelaySeconds=_delay(delay))

    def hide(self, receipt_handle: str, seconds: float) -> None:
        self._sqs.change_message_visibility(
            QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=_delay(seconds)
        )


# ---------------------------------------------------------------------------------------------- bucket
@dataclass(frozen=True)
class StoredObject:
    size: int
    md5: bytes
    sha256: bytes
    version_id: str | None


class DeliveryBucket:
    """The app's bucket: objects streamed in parts, each one's file version in its metadata."""

    def __init__(self, name: str, s3: Any, part_size: int = PART_SIZE) -> None:
        self.name = name
        self._s3 = s3
        self._part_size = max(5 * MIB, part_size)

    def holds(self, key: str, version: str) -> str | None:
        """The S3 version id of the object at `key` when it was written for this file version, else None:
        what a worker that died after writing it left."""
        try:
            head = self._s3.head_object(Bucket=self.name, Key=key)
        except self._s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        if head.get("Metadata", {}).get("x3-version") != version:
            return None
        version_id: str | None = head.get("VersionId") or ""
        return version_id

    def stream(
        self,
        key: str,
        chunks: Iterator[bytes],
        metadata: dict[str, str],
        verify: Callable[[StoredObject], None],
    ) -> StoredObject:
        """Write `chunks` to `key`, at most one part in memory: a file smaller than a part in one PUT, a
        larger one as a multipart upload. `verify` sees the totals before the object is written (the PUT,
        or the upload's completion); an upload that fails or is refused is aborted: a half file never
        becomes an object."""
        md5, sha256, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
        parts: list[dict[str, Any]] = []
        upload: str | None = None
        buffer = bytearray()
        try:
            for chunk in chunks:
                md5.update(chunk)
                sha256.update(chunk)
                size += len(chunk)
                buffer += chunk
                while len(buffer) >= self._part_size:
                    if upload is None:
                        upload = self._s3.create_multipart_upload(
                            Bucket=self.name, Key=key, Metadata=metadata, ContentType=_BINARY
                        )["UploadId"]
                    parts.append(self._part(key, upload, len(parts) + 1, bytes(buffer[: self._part_size])))
                    del buffer[: self._part_size]
            totals = StoredObject(size, md5.digest(), sha256.digest(), None)
            if upload is None:
                verify(totals)
                done = self._s3.put_object(
                    Bucket=self.name, Key=key, Body=bytes(buffer), Metadata=metadata, ContentType=_BINARY
                )
                return StoredObject(size, totals.md5, totals.sha256, done.get("VersionId"))
            if buffer:
                parts.append(self._part(key, upload, len(parts) + 1, bytes(buffer)))
            buffer = bytearray()
            verify(totals)
            done = self._s3.complete_multipart_upload(
                Bucket=self.name, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            if upload is not None:
                try:
                    self._s3.abort_multipart_upload(Bucket=self.name, Key=key, UploadId=upload)
                except Exception as exc:  # the bucket's lifecycle rule removes what is left
                    logger.warning("An upload could not be aborted", extra={"error": type(exc).__name__})
            raise
        return StoredObject(size, totals.md5, totals.sha256, done.get("VersionId"))

    def _part(self, key: str, upload: str, number: int, body: bytes) -> dict[str, Any]:
        answer = self._s3.upload_part(
            Bucket=self.name, Key=key, UploadId=upload, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}


# ---------------------------------------------------------------------------------------------- sync state
@dataclass(frozen=True)
class SyncSettings:
    default_on: bool = (
        False  # DeliverySyncDefault: every granted folder of a pairing with no state of its own
    )


class SyncSwitch:
    """PUT/GET /tenants/{tenant}/folders/{folder}/sync."""

    def __init__(
        self,
        ledger: DeliveryLedger,
        pairings: TokenStore,
        settings: SyncSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger, self._pairings, self._settings, self._clock = ledger, pairings, settings, clock

    def _granted(self, tenant: str, folder: str) -> bool:
        pairing = self._pairings.get(tenant)
        if pairing is None:
            raise NotPaired("No pairing for this tenant.")
        return folder in pairing.folders

    def set(self, tenant: str, folder: str, enabled: bool) -> dict[str, Any]:
        folder = folder_name(folder)
        if not self._granted(tenant, folder):
            raise FolderNotGranted(f"The customer did not grant this pairing the folder {folder!r}.")
        self._ledger.set_enabled(tenant, folder, enabled, self._clock())
        return self.view(tenant, folder)

    def view(self, tenant: str, folder: str) -> dict[str, Any]:
        folder = folder_name(folder)
        state = self._ledger.sync_state(tenant, folder)
        if state is None:
            state = SyncState(enabled=self._settings.default_on and self._granted(tenant, folder))
        return {
            "enabled": state.enabled,
            "last_run_at": iso(state.last_run_at),
            "files_delivered": state.files_delivered,
            "last_error": state.last_error,
        }


# ---------------------------------------------------------------------------------------------- schedule
class ExportPoller:
    """The schedule (and a notification): one scan message per enabled folder."""

    def __init__(
        self,
        ledger: DeliveryLedger,
        queue: DeliveryQueue,
        pairings: TokenStore,
        settings: SyncSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger, self._queue, self._pairings, self._settings = ledger, queue, pairings, settings
        self._clock = clock

    def run(self) -> dict[str, int]:
        folders = dict.fromkeys(self._ledger.enabled_folders())
        if self._settings.default_on:
            for tenant, folder in self._defaulted():
                folders[(tenant, folder)] = None
        sent = self._queue.send([ScanOrder(tenant, folder) for tenant, folder in folders])
        return {"folders": len(folders), "queued": sent}

    def _defaulted(self) -> Iterator[tuple[str, str]]:
        """DeliverySyncDefault on: every granted folder of an active pairing that has no sync state yet is
        switched on (a folder switched off stays off)."""
        tenants = list(self._pairings.tenants_with_status("active"))
        for start in range(0, len(tenants), 100):
            for pairing in self._pairings.get_pairings(tenants[start : start + 100]):
                for folder in pairing.folders:
                    if self._ledger.sync_state(pairing.tenant, folder) is None:
                        self._ledger.set_enabled(pairing.tenant, folder, True, self._clock())
                        yield pairing.tenant, folder

    def notified(self, tenants: list[str]) -> int:
        """A signed notification was recorded for these tenants: scan their enabled folders now."""
        return self._queue.send([ScanOrder(tenant) for tenant in dict.fromkeys(tenants)])


# ---------------------------------------------------------------------------------------------- worker
@dataclass
class DeliveryTiming:
    lease_seconds: float = 960.0  # past the worker's 900 s timeout: a lease that ran out is a dead worker's
    retry_base_seconds: float = 30.0  # a failed delivery's retries: 30 s, 60 s, ... (message visibility)
    throttle_seconds: float = 300.0  # a 429 without a usable Retry-After
    max_receives: int = 5  # the queue's maxReceiveCount
    part_size: int = PART_SIZE


class ExportWorker:
    """One execution environment's worker: scans folders and delivers files, one message at a time."""

    def __init__(
        self,
        ledger: DeliveryLedger,
        queue: DeliveryQueue,
        bucket: DeliveryBucket,
        keeper: TokenKeeper,
        sage: SageX3Client,
        pairings: TokenStore,
        *,
        timing: DeliveryTiming | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger, self._queue, self._bucket = ledger, queue, bucket
        self._keeper, self._sage, self._pairings = keeper, sage, pairings
        self._timing = timing or DeliveryTiming()
        self._clock = clock
        self._paused: dict[str, float] = {}  # tenant → Sage's 429 lasts until then: no call for it before
        self._finish_by = math.inf

    def begin(self, finish_by: float) -> None:
        self._finish_by = finish_by

    def handle(self, body: str, receipt_handle: str, receive_count: int) -> str:
        """One message: its outcome; raises RetryLater for a failure that may pass."""
        order = parse_order(body)
        if order is None:
            logger.error("A delivery message no part of the bundle wrote was dropped")
            return POISON
        now = self._clock()
        paused_until = self._paused.get(order.tenant, 0.0)
        if now < paused_until:
            return self._requeue(order, paused_until - now, "paused")
        try:
            if isinstance(order, ScanOrder):
                return self._scan(order)
            return self._deliver(order)
        except QuotaExceeded as throttled:
            wait = retry_seconds(throttled.retry_after, self._clock()) or self._timing.throttle_seconds
            self._paused[order.tenant] = self._clock() + wait
            logger.warning("Sage X3 asks to slow down", extra={"tenant": order.tenant, "seconds": wait})
            return self._requeue(order, wait, "throttled")
        except (NotPaired, FolderNotGranted) as gone:
            logger.warning("Delivery dropped", extra={"tenant": order.tenant, "error": gone.code})
            if isinstance(order, FileOrder):
                self._note(order.tenant, order.folder, gone)
            return POISON
        except Exception as exc:
            return self._failed(order, exc, receipt_handle, receive_count)

    def _requeue(self, order: Order, delay: float, why: str) -> str:
        self._queue.later(order, delay)  # if SQS refuses, this raises: the message stays and comes back
        logger.info(
            "Delivery queued again", extra={"tenant": order.tenant, "why": why, "delay": _delay(delay)}
        )
        return REQUEUED

    def _failed(self, order: Order, exc: Exception, receipt_handle: str, receive_count: int) -> str:
        reason = exc.message if isinstance(exc, X3LinkError) else type(exc).__name__
        logger.warning(
            "Delivery failed", extra={"tenant": order.tenant, "error": reason, "receive_count": receive_count}
        )
        folder = order.folder
        if folder is not None:
            self._note(order.tenant, folder, exc)
        try:
            self._queue.hide(receipt_handle, self._timing.retry_base_seconds * 2 ** (receive_count - 1))
        except Exception as hide_error:  # the queue's own visibility timeout applies instead
            logger.warning("Backing off a retry failed", extra={"error": type(hide_error).__name__})
        raise RetryLater(reason) from None

    def _note(self, tenant: str, folder: str, error: Exception | None) -> None:
        text = None
        if error is not None:
            text = error.message if isinstance(error, X3LinkError) else type(error).__name__
        try:
            self._ledger.note_run(tenant, folder, self._clock(), text)
        except Exception as exc:  # the state shown by GET .../sync only
            logger.warning("A folder's sync state could not be noted", extra={"error": type(exc).__name__})

    # ------------------------------------------------------------------ scan
    def _scan(self, order: ScanOrder) -> str:
        if order.folder is not None:
            folders = [order.folder]
        else:  # a notification: the tenant's granted folders, each read for its state (never the index)
            pairing = self._pairings.get(order.tenant)
            folders = pairing.folders if pairing is not None else []
        for folder in folders:
            state = self._ledger.sync_state(order.tenant, folder)
            if state is None or not state.enabled:
                continue
            queued = 0
            cursor: str | None = None
            while True:
                page = data_delivery.list_files(
                    order.tenant, folder, cursor, self._keeper, self._sage, self._budget()
                )
                files = [
                    FileOrder(
                        order.tenant,
                        folder,
                        item["name"],
                        item["size"],
                        item["checksum"],
                        item["last_modified"],
                    )
                    for item in page["files"]
                ]
                queued += self._queue.send(list(files))
                cursor = page.get("cursor")
                if not cursor:
                    break
            self._note(order.tenant, folder, None)
            logger.info("Folder scanned", extra={"tenant": order.tenant, "folder": folder, "queued": queued})
        return SCANNED

    def _budget(self) -> Budget | None:
        return Budget(finish_by=self._finish_by) if math.isfinite(self._finish_by) else None

    # ------------------------------------------------------------------ deliver
    def _deliver(self, order: FileOrder) -> str:
        # Each attempt holds the lease under its own name: nothing it writes passes once another took it.
        owner = secrets.token_hex(8)
        version, now = order.version, self._clock()
        claim, entry = self._ledger.claim(
            order.tenant,
            order.folder,
            version,
            order.filename,
            owner,
            now,
            now + self._timing.lease_seconds,
        )
        if claim is Claim.DONE:
            return DUPLICATE
        if claim is Claim.BUSY or entry is None:
            wait = (entry.lease_until - now) if entry is not None else self._timing.retry_base_seconds
            return self._requeue(order, max(1.0, wait), "busy")
        try:
            size = order.size
            if entry.stage is Stage.DOWNLOADING:
                size = self._store(order, version, owner)
            # A 404: a delete Sage applied but did not confirm, or a file removed at Sage: either way gone.
            with contextlib.suppress(FileNotFound):
                data_delivery.delete_file(
                    order.tenant, order.folder, order.filename, self._keeper, self._sage, self._budget()
                )
            self._ledger.delivered(order.tenant, order.folder, version, owner, self._clock())
        except Exception:  # a killed worker releases nothing: its lease runs out
            try:
                self._ledger.release(order.tenant, order.folder, version, owner)
            except Exception as exc:  # the lease then runs out by itself
                logger.warning("A lease could not be released", extra={"error": type(exc).__name__})
            raise
        logger.info("File delivered", extra={"tenant": order.tenant, "folder": order.folder, "size": size})
        return DELIVERED

    def _store(self, order: FileOrder, version: str, owner: str) -> int | None:
        """The object in the bucket and verified, written now or found from a worker that died after
        writing it; the ledger then says `stored`."""
        found = self._bucket.holds(order.key, version)
        if found is not None:
            logger.info("Object already stored for this version", extra={"tenant": order.tenant})
            stored_version: str | None = found or None
            size = order.size
        else:
            link = data_delivery.download_link(
                order.tenant, order.folder, order.filename, self._keeper, self._sage, self._budget()
            )
            response = self._sage.open_download(link["url"])
            try:
                stored = self._bucket.stream(
                    order.key, _chunks(response), _metadata(order, version), lambda got: _verify(order, got)
                )
            finally:
                response.release_conn()
            stored_version, size = stored.version_id, stored.size
        facts: dict[str, Any] = {
            "filename": order.filename,
            "bucket": self._bucket.name,
            "object_key": order.key,
            "size": size,
            "checksum": order.checksum,
            "last_modified": order.last_modified,
            "object_version": stored_version,
        }
        if not self._ledger.stored(order.tenant, order.folder, version, owner, facts, self._clock()):
            raise UpstreamError("The file's lease was lost while it was stored.")
        return size


def _chunks(response: Any) -> Iterator[bytes]:
    while True:
        chunk = response.read(READ_SIZE)
        if not chunk:
            return
        yield chunk


def _metadata(order: FileOrder, version: str) -> dict[str, str]:
    """Sage's facts about the file, as S3 metadata (ASCII only: a name is percent-encoded)."""
    from urllib.parse import quote

    return {
        "x3-version": version,
        "x3-key": quote(order.filename, safe=""),
        "x3-size": "" if order.size is None else str(order.size),
        "x3-checksum": order.checksum or "",
        "x3-last-modified": order.last_modified or "",
    }


def _verify(order: FileOrder, got: StoredObject) -> None:
    if order.size is not None and got.size != order.size:
        raise NotVerified(f"Read {got.size} bytes of a file Sage X3 lists at {order.size}.")
    if checksum_matches(order.checksum, got.md5, got.sha256) is False:
        raise NotVerified("The bytes read do not match Sage X3's checksum.")
