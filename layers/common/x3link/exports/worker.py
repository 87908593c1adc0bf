"""Exports delivered to the app's bucket, exactly once per file version (docs/exports.md): the worker that
takes the delivery queue's messages, one at a time. A scan lists a folder's files at Sage and queues one
file message each; a file is streamed into the bucket, verified, recorded, announced and only then deleted
at Sage. The messages are x3link.exports.orders, the queue x3link.exports.queue, the bucket
x3link.exports.bucket; the folder's switch and the schedule are x3link.exports.sync.

Exactly once rests on the ledger (x3link.exports.ledger), keyed by the file version (`version_of`: the
name with Sage's `lastModified`, `checksum` and `size`), never on the queue: a message seen twice, a file
listed twice or a retry after a crash all meet the version's entry. A version's lease keeps two workers
apart; a version delivered is never taken again; the object written carries the version in its metadata,
so a worker that died after writing it finds it and does not write it twice; Sage's delete comes after the
object is stored and verified, and a delete Sage applied but did not confirm is met by a 404 next time.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

# Any: urllib3's streamed response (untyped), and a JSON record of the stored file's facts.
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from x3link.aws.sqs_delays import retry_after_seconds, sqs_delay
from x3link.budget import Budget
from x3link.data import delivery
from x3link.errors import FileNotFound, FolderNotGranted, NotPaired, QuotaExceeded, UpstreamError, X3LinkError
from x3link.exports.bucket import MIB, PART_SIZE, DeliveryBucket, StoredObject
from x3link.exports.ledger import Claim, DeliveryLedger, Stage
from x3link.exports.orders import (
    FileOrder,
    Order,
    ScanOrder,
    checksum_matches,
    parse_order,
)

if TYPE_CHECKING:
    from x3link.exports.queue import DeliveryQueue
    from x3link.refresh.keeper import TokenKeeper
    from x3link.sage.client import SageX3Client
    from x3link.tokens.store import TokenStore

logger = Logger(child=True)

READ_SIZE = 1 * MIB
REQUEUED, POISON, DUPLICATE, DELIVERED, SCANNED = "requeued", "poison", "duplicate", "delivered", "scanned"


class RetryLater(Exception):
    """The message failed for now: SQS hands it back after its backoff (its DLQ after the last receive)."""


class NotVerified(UpstreamError):
    """The bytes read are not the file Sage listed (size or checksum): nothing is recorded or deleted."""


@dataclass
class DeliveryTiming:
    lease_seconds: float = 960.0  # past the worker's 900 s timeout: a lease that ran out is a dead worker's
    retry_base_seconds: float = 30.0  # a failed delivery's retries: 30 s, 60 s, ... (message visibility)
    throttle_seconds: float = 300.0  # a 429 without a usable Retry-After
    max_receives: int = 5  # the queue's maxReceiveCount
    part_size: int = PART_SIZE

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DeliveryTiming:
        """DELIVERY_RETRY_SECONDS, DELIVERY_MAX_RECEIVES (the queue's, from the template), else defaults."""
        return cls(
            retry_base_seconds=float(env.get("DELIVERY_RETRY_SECONDS") or cls.retry_base_seconds),
            max_receives=int(env.get("DELIVERY_MAX_RECEIVES") or cls.max_receives),
        )


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
            wait = retry_after_seconds(throttled.retry_after, self._clock()) or self._timing.throttle_seconds
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
            "Delivery queued again", extra={"tenant": order.tenant, "why": why, "delay": sqs_delay(delay)}
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
            files: list[Order] = []
            cursor: str | None = None
            while True:
                page = delivery.list_files(
                    order.tenant, folder, cursor, self._keeper, self._sage, self._budget()
                )
                files += [
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
                cursor = page.get("cursor")
                if not cursor:
                    break
            # Every page read before any file is queued: Sage pages by position (`?page=2`), so a file of
            # this listing delivered and deleted before its next page was read would move a later file onto
            # a page already read, and the scan would never see it.
            queued = self._queue.send(files)
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
                delivery.delete_file(
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
            link = delivery.download_link(
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
