"""The outbox: a file the app writes at `{tenant}/{folder}/{filename}` in the outbox bucket is checked against
Sage X3's rules, sent to Sage's data ingestion for that tenant and folder, and followed to a final status
(docs/outbox.md).

S3 announces each new object version on the outbox queue; the worker then moves the object's upload item
(x3link/data/uploads.py) along, one step a message:

1. the rules first, before Sage hears of the file: a name Sage accepts, at most 350 MB (the S3 event's
   size, then HeadObject's; nothing of the object read), text (a bounded prefix sniffed);
2. an upload link from Sage (the pairing's grant of the folder checked before any Sage call), then the
   object streamed to it, never held whole in memory;
3. the tracking document read after a delay that doubles each time (the queue's `DelaySeconds`, never a
   sleep), until Sage's status is final or `track_hours` have passed.

The outcome is written once to the upload's item (its stream publishes `FileIngested` or `FileRejected`)
and as tags on the object; the bundle never deletes the app's object. A failure that may pass (Sage or AWS
did not answer, Sage's quota) is tried again later by a delayed message, `max_attempts` times, then the
file is rejected with `sage_unavailable`. This module is the worker that reads, calls and writes; the pure
decisions (`objects_of`, `placed`, `vet_*`, `is_text`, `judge`, `backoff`) are in rules.py,
the object's reads and tags in bucket.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Any: an upload's fields and a follow-up message are JSON values of any type.
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from x3link.data import ingestion
from x3link.data.uploads import INGESTED, REJECTED, Upload, UploadLog, outbox_upload_id, stamp
from x3link.errors import X3LinkError
from x3link.outbox.bucket import OutboxBucket
from x3link.outbox.rules import (
    MESSAGES,
    REFUSALS,
    OutboxObject,
    Reason,
    Verdict,
    backoff,
    epoch,
    is_text,
    judge,
    objects_of,
    placed,
    tag_value,
    vet_name,
    vet_size,
)
from x3link.refresh.keeper import TokenKeeper
from x3link.sage.client import SageX3Client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

logger = Logger(child=True)

RECEIVED, SENDING, UPLOADED = "received", "sending", "uploaded"


@dataclass(frozen=True)
class OutboxTiming:
    track_seconds: float = 10.0
    track_hours: float = 24.0
    max_attempts: int = 8

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OutboxTiming:
        """OUTBOX_TRACK_SECONDS, OUTBOX_TRACK_HOURS and OUTBOX_MAX_ATTEMPTS (tests shorten them)."""
        return cls(
            track_seconds=float(env.get("OUTBOX_TRACK_SECONDS") or cls.track_seconds),
            track_hours=float(env.get("OUTBOX_TRACK_HOURS") or cls.track_hours),
            max_attempts=int(env.get("OUTBOX_MAX_ATTEMPTS") or cls.max_attempts),
        )


class FollowUps:
    """The worker's own later steps, as delayed messages on the outbox queue."""

    def __init__(self, queue_url: str, sqs: SQSClient) -> None:
        self._url = queue_url
        self._sqs = sqs

    def send(self, upload: Upload, attempt: int, delay: int) -> None:
        body = {"follow": {"tenant": upload.tenant, "upload_id": upload.upload_id, "attempt": attempt}}
        self._sqs.send_message(
            QueueUrl=self._url, MessageBody=json.dumps(body, separators=(",", ":")), DelaySeconds=delay
        )


class OutboxWorker:
    def __init__(
        self,
        s3: S3Client,
        uploads: UploadLog,
        keeper: TokenKeeper,
        sage: SageX3Client,
        follow_ups: FollowUps,
        timing: OutboxTiming = OutboxTiming(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._bucket = OutboxBucket(s3)
        self._uploads = uploads
        self._keeper = keeper
        self._sage = sage
        self._follow_ups = follow_ups
        self._timing = timing
        self._clock = clock

    def handle(self, body: str) -> None:
        """One queue message: an S3 event (new objects) or a follow-up of one upload. Raises only for a
        failure nothing here could settle (the message is then retried, and finally set aside)."""
        try:
            document = json.loads(body)
        except ValueError:
            logger.warning("Outbox message that is not JSON ignored")
            return
        follow = document.get("follow") if isinstance(document, dict) else None
        if isinstance(follow, dict):
            self._follow(follow)
            return
        for obj in objects_of(document):
            self._start(obj)

    # -------------------------------------- steps
    def _start(self, obj: OutboxObject) -> None:
        where = placed(obj.key)
        if where is None:
            # No tenant to record it for: the object alone says why nothing was sent.
            logger.warning("Outbox object not at {tenant}/{folder}/{filename}", extra={"key": obj.key})
            self._tag(obj.bucket, obj.key, obj.version, {"outcome": REJECTED, "reason": Reason.BAD_NAME})
            return
        tenant, folder, filename = where
        now = self._clock()
        fields: dict[str, Any] = {
            "folder": folder,
            "filename": filename,
            "bucket": obj.bucket,
            "key": obj.key,
            "version_id": obj.version,
            "status": RECEIVED,
            "created_at": obj.event_time,
            "updated_at": stamp(now),
        }
        if obj.size is not None:
            fields["size"] = obj.size
        upload_id = outbox_upload_id(obj.event_time, obj.bucket, obj.key, obj.identity)
        upload = self._uploads.begin(tenant, upload_id, fields, now)
        logger.append_keys(tenant=tenant, folder=folder, upload_id=upload_id)
        status = upload.fields.get("status")
        if upload.outcome:
            self._tag_outcome(upload)
        elif status == RECEIVED:
            self._send(upload, attempt=0, size=obj.size)
        elif status == SENDING:
            # This event came back after the worker died streaming the file (its visibility timeout is
            # far past the worker's): Sage holds the name and an upload that will not finish.
            self._reject(upload, Reason.UPLOAD_FAILED, "The transfer to Sage X3 was interrupted.")
        else:
            # Sent already: follow it (again, should the earlier delivery have died before queuing that).
            self._follow_ups.send(upload, 0, backoff(0, self._timing.track_seconds))

    def _follow(self, follow: dict[str, Any]) -> None:
        tenant, upload_id = str(follow.get("tenant", "")), str(follow.get("upload_id", ""))
        raw_attempt = follow.get("attempt")
        attempt = raw_attempt if isinstance(raw_attempt, int) and raw_attempt >= 0 else 0
        upload = self._uploads.get(tenant, upload_id)
        if upload is None:
            logger.warning("Outbox follow-up of an unknown upload ignored", extra={"tenant": tenant})
            return
        logger.append_keys(tenant=tenant, folder=upload.fields.get("folder"), upload_id=upload_id)
        if upload.outcome:
            self._tag_outcome(upload)
        elif upload.tracking_id:
            self._track(upload, attempt)
        else:
            self._send(upload, attempt, size=None)

    def _send(self, upload: Upload, attempt: int, size: int | None) -> None:
        f = upload.fields
        bucket, key, version = str(f["bucket"]), str(f["key"]), str(f["version_id"])
        folder, filename = str(f["folder"]), str(f["filename"])
        reason = vet_name(folder, filename) or vet_size(size)
        if reason is None:
            size = self._bucket.size(bucket, key, version)
            if size is None:
                self._reject(upload, Reason.OBJECT_GONE, MESSAGES[Reason.OBJECT_GONE])
                return
            reason = vet_size(size)
        if reason is None:
            reason = None if is_text(self._bucket.prefix(bucket, key, version)) else Reason.NOT_TEXT
        if reason is not None:
            self._reject(upload, reason, MESSAGES[reason])
            return
        try:
            link = ingestion.request_upload(
                upload.tenant, folder, {"filename": filename}, self._keeper, self._sage, clock=self._clock
            )
        except tuple(REFUSALS) as refused:
            (reason,) = [r for kind, r in REFUSALS.items() if isinstance(refused, kind)][:1]
            self._reject(upload, reason, refused.message)
            return
        except X3LinkError as failure:
            self._again(upload, attempt, failure)
            return
        # Recorded before the upload: a retry of this message follows the file instead of asking again.
        upload = self._uploads.update(
            upload,
            {
                "tracking_id": link["tracking_id"],
                "status": SENDING,
                "size": size,
                "updated_at": stamp(self._clock()),
            },
        )
        body = self._bucket.body(bucket, key, version)
        try:
            self._sage.put_file(link["upload_url"], body, int(size or 0))
        except X3LinkError as failure:
            # Sage holds the name now (a new request would be `file_exists`): the app writes it again under
            # another name once it knows why.
            self._reject(upload, Reason.UPLOAD_FAILED, failure.message)
            return
        finally:
            body.close()
        upload = self._uploads.update(upload, {"status": UPLOADED, "updated_at": stamp(self._clock())})
        logger.info("Outbox file sent to Sage X3", extra={"tracking_id": link["tracking_id"], "size": size})
        self._follow_ups.send(upload, 0, backoff(0, self._timing.track_seconds))

    def _track(self, upload: Upload, attempt: int) -> None:
        tracking_id = str(upload.tracking_id)
        try:
            document = ingestion.upload_status(upload.tenant, tracking_id, self._keeper, self._sage)
        except X3LinkError as failure:
            logger.info("Outbox tracking not read this time", extra={"error": failure.code})
            self._track_later(upload, attempt, str(upload.fields.get("status", "")), failure.message)
            return
        status, message = str(document["status"]), document.get("status_message")
        verdict = judge(status)
        if verdict is Verdict.INGESTED:
            self._conclude(upload, INGESTED, None, status, message)
        elif verdict is Verdict.REJECTED:
            self._conclude(upload, REJECTED, Reason.SAGE_REJECTED, status, message)
        else:
            changes: dict[str, Any] = {"status": status, "updated_at": stamp(self._clock())}
            if message:
                changes["status_message"] = message
            upload = self._uploads.update(upload, changes)
            self._track_later(upload, attempt, status, message)

    def _track_later(self, upload: Upload, attempt: int, status: str, message: str | None) -> None:
        started = epoch(str(upload.fields.get("created_at", "")))
        if started is not None and self._clock() - started >= self._timing.track_hours * 3600:
            text = f"Sage X3 gave no final status within {self._timing.track_hours:g} hours"
            self._conclude(upload, REJECTED, Reason.TRACKING_TIMEOUT, status or None, message or text)
            return
        self._follow_ups.send(upload, attempt + 1, backoff(attempt + 1, self._timing.track_seconds))

    def _again(self, upload: Upload, attempt: int, failure: X3LinkError) -> None:
        if attempt + 1 >= self._timing.max_attempts:
            self._reject(upload, Reason.SAGE_UNAVAILABLE, failure.message)
            return
        logger.info("Outbox file not sent this time", extra={"error": failure.code, "attempt": attempt})
        self._follow_ups.send(upload, attempt + 1, backoff(attempt, self._timing.track_seconds))

    # -------------------------------------- outcomes
    def _reject(self, upload: Upload, reason: Reason, message: str) -> None:
        self._conclude(upload, REJECTED, reason, None, message)

    def _conclude(
        self, upload: Upload, outcome: str, reason: Reason | None, status: str | None, message: str | None
    ) -> None:
        changes: dict[str, Any] = {"outcome": outcome, "updated_at": stamp(self._clock())}
        if status is not None:
            changes["status"] = status
        elif outcome == REJECTED and upload.fields.get("status") in (RECEIVED, SENDING):
            changes["status"] = REJECTED
        if reason is not None:
            changes["reason"] = str(reason)
        if message:
            changes["status_message"] = message[:1000]
        upload = self._uploads.conclude(upload, changes)
        logger.info(
            "Outbox file concluded", extra={"outcome": upload.outcome, "reason": upload.fields.get("reason")}
        )
        self._tag_outcome(upload)

    def _tag_outcome(self, upload: Upload) -> None:
        f = upload.fields
        outcome = {"outcome": str(upload.outcome)}
        for name in ("reason", "status"):
            if f.get(name):
                outcome[name] = tag_value(str(f[name]))
        if f.get("tracking_id"):
            outcome["tracking-id"] = str(f["tracking_id"])
        self._tag(str(f["bucket"]), str(f["key"]), str(f["version_id"]), outcome)

    def _tag(self, bucket: str, key: str, version: str, outcome: dict[str, str]) -> None:
        if not self._bucket.tag(bucket, key, version, outcome):
            logger.info("Outbox object gone before it was tagged", extra={"outcome": outcome.get("outcome")})
