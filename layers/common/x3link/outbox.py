"""The outbox: a file the app writes at `{tenant}/{folder}/{filename}` in the outbox bucket is checked against
Sage X3's rules, sent to Sage's data ingestion for that tenant and folder, and followed to a final status
(docs/outbox.md).

S3 announces each new object version on the outbox queue; the worker then moves the object's upload item
(x3link/uploads.py) along, one step a message:

1. the rules first, before Sage hears of the file: a name Sage accepts, at most 350 MB (the S3 event's
   size, then HeadObject's; nothing of the object read), text (a bounded prefix sniffed);
2. an upload link from Sage (the pairing's grant of the folder checked before any Sage call), then the
   object streamed to it, never held whole in memory;
3. the tracking document read after a delay that doubles each time (the queue's `DelaySeconds`, never a
   sleep), until Sage's status is final or `track_hours` have passed.

The outcome is written once to the upload's item (its stream publishes `FileIngested` or `FileRejected`)
and as tags on the object; the bundle never deletes the app's object. A failure that may pass (Sage or AWS
did not answer, Sage's quota) is tried again later by a delayed message, `max_attempts` times, then the
file is rejected with `sage_unavailable`. Pure decisions (`objects_of`, `placed`, `vet_*`, `is_text`,
`judge`, `backoff`) are apart from the worker that reads, calls and writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger

from x3link import data_ingestion
from x3link.config import TENANT_PATTERN
from x3link.data_integration import FOLDER_PATTERN, file_name
from x3link.errors import (
    BadRequest,
    FileExists,
    FolderNotGranted,
    NotPaired,
    PairingExpired,
    PairingSuspended,
    X3LinkError,
)
from x3link.sage_client import SageX3Client
from x3link.token_keeper import TokenKeeper
from x3link.uploads import INGESTED, REJECTED, Upload, UploadLog, outbox_upload_id, stamp

logger = Logger(child=True)

# Sage's limit for an ingested file (docs/sage-x3.md#data-ingestion), counted in decimal megabytes: a file
# over it by either count is refused before Sage is asked.
MAX_BYTES = 350 * 1000 * 1000
SNIFF_BYTES = 64 * 1024
MAX_DELAY = 900  # SQS's longest DelaySeconds
RECEIVED, SENDING, UPLOADED = "received", "sending", "uploaded"
TAG_PREFIX = "x3link-"
MAX_TAGS = 10  # S3's limit per object
# Bytes a text file holds seldom: C0 controls but tab, line feed, form feed, carriage return and escape; DEL.
_CONTROL = frozenset(range(32)) - {9, 10, 12, 13, 27} | {127}


class Reason(StrEnum):
    """Why a file is rejected: the bundle's own checks, the pairing's state, or Sage's verdict."""

    BAD_NAME = "bad_name"
    OBJECT_GONE = "object_gone"
    TOO_LARGE = "too_large"
    NOT_TEXT = "not_text"
    FILE_EXISTS = "file_exists"
    FOLDER_NOT_GRANTED = "folder_not_granted"
    NOT_PAIRED = "not_paired"
    PAIRING_SUSPENDED = "pairing_suspended"
    PAIRING_EXPIRED = "pairing_expired"
    UPLOAD_FAILED = "upload_failed"
    SAGE_UNAVAILABLE = "sage_unavailable"
    SAGE_REJECTED = "sage_rejected"
    TRACKING_TIMEOUT = "tracking_timeout"


# Sage's own refusals of the upload request, each a final answer for this file.
_REFUSALS: dict[type[X3LinkError], Reason] = {
    FileExists: Reason.FILE_EXISTS,
    FolderNotGranted: Reason.FOLDER_NOT_GRANTED,
    NotPaired: Reason.NOT_PAIRED,
    PairingSuspended: Reason.PAIRING_SUSPENDED,
    PairingExpired: Reason.PAIRING_EXPIRED,
}


class Verdict(Enum):
    PENDING = "pending"
    INGESTED = "ingested"
    REJECTED = "rejected"


# Sage publishes `awaiting_upload` and `awaiting_scan` only [gap]: a status that says it is done is final,
# one that says it failed is final, anything else (known or not) is followed until `track_hours`.
_DONE = frozenset(
    {"integrated", "imported", "processed", "completed", "complete", "success", "succeeded", "done"}
)
_FAILED = (
    "reject",
    "fail",
    "error",
    "virus",
    "infect",
    "threat",
    "quarantin",
    "invalid",
    "refused",
    "denied",
)


# ------------------------------------------------------------------ pure decisions
@dataclass(frozen=True)
class OutboxObject:
    """One object version S3 announced: where it is, its size as the event gives it, and when."""

    bucket: str
    key: str
    version: str  # "null" when the bucket does not version
    size: int | None
    event_time: str
    sequencer: str = ""

    @property
    def identity(self) -> str:
        """What tells this write of the key from another: its version, else S3's sequencer."""
        return self.version if self.version != "null" else f"seq:{self.sequencer}"


def objects_of(document: Any) -> list[OutboxObject]:
    """The created objects an S3 event notification names (S3's test event and other events name none)."""
    found: list[OutboxObject] = []
    records = document.get("Records") if isinstance(document, dict) else None
    for record in records if isinstance(records, list) else []:
        if not isinstance(record, dict) or not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3") or {}
        bucket, obj = s3.get("bucket") or {}, s3.get("object") or {}
        size = obj.get("size")
        found.append(
            OutboxObject(
                bucket=str(bucket.get("name", "")),
                key=unquote_plus(str(obj.get("key", ""))),  # S3 writes the key URL-encoded, spaces as `+`
                version=str(obj.get("versionId") or "null"),
                size=size if isinstance(size, int) else None,
                event_time=str(record.get("eventTime") or stamp(time.time())),
                sequencer=str(obj.get("sequencer") or ""),
            )
        )
    return found


def placed(key: str) -> tuple[str, str, str] | None:
    """`{tenant}/{folder}/{filename}` of an outbox key, or None for a key of another shape."""
    parts = key.split("/")
    if len(parts) != 3 or not TENANT_PATTERN.fullmatch(parts[0]):
        return None
    return parts[0], parts[1], parts[2]


def vet_name(folder: str, filename: str) -> Reason | None:
    """A folder name and a file name that Sage's URLs can carry (x3link/data_integration.py)."""
    if not FOLDER_PATTERN.fullmatch(folder):
        return Reason.BAD_NAME
    try:
        file_name(filename)
    except BadRequest:
        return Reason.BAD_NAME
    return None


def vet_size(size: int | None) -> Reason | None:
    return Reason.TOO_LARGE if size is not None and size > MAX_BYTES else None


def is_text(prefix: bytes) -> bool:
    """Whether a file's first bytes look like text: UTF-16 with its byte order mark, or else no NUL byte
    and at most 1 % control characters (UTF-8 and the single-byte charsets of CSV exports pass)."""
    if prefix.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    if b"\x00" in prefix:
        return False
    controls = sum(1 for byte in prefix if byte in _CONTROL)
    return controls * 100 <= len(prefix)


def judge(status: str) -> Verdict:
    """What Sage's tracking status says of the file: final (integrated or rejected) or not yet."""
    word = status.strip().lower()
    if word.startswith("awaiting"):
        return Verdict.PENDING
    if word in _DONE:
        return Verdict.INGESTED
    if any(part in word for part in _FAILED):
        return Verdict.REJECTED
    return Verdict.PENDING


def backoff(attempt: int, base: float) -> int:
    """The delay before follow-up `attempt` (0, 1, ...): `base` doubled each time, at most SQS's 15 min."""
    return int(min(MAX_DELAY, max(0.0, base) * 2 ** min(attempt, 16)))


def tags_with(existing: list[dict[str, str]], outcome: dict[str, str]) -> list[dict[str, str]]:
    """The object's tags with the outcome's (`x3link-*`) in place of any earlier ones; the app's own tags are
    kept, as many as S3's ten allow beside ours."""
    own = [{"Key": f"{TAG_PREFIX}{name}", "Value": value} for name, value in outcome.items()]
    others = [tag for tag in existing if not tag.get("Key", "").startswith(TAG_PREFIX)]
    return others[: MAX_TAGS - len(own)] + own


def _tag_value(text: str) -> str:
    """A tag value S3 takes: letters, digits, spaces and `+ - = . _ : / @`, at most 256."""
    allowed = "".join(ch if ch.isalnum() or ch in " +-=._:/@" else "_" for ch in text)
    return allowed[:256]


# ------------------------------------------------------------------ the worker
@dataclass(frozen=True)
class OutboxTiming:
    track_seconds: float = 10.0
    track_hours: float = 24.0
    max_attempts: int = 8


class FollowUps:
    """The worker's own later steps, as delayed messages on the outbox queue."""

    def __init__(self, queue_url: str, sqs: Any) -> None:
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
        s3: Any,
        uploads: UploadLog,
        keeper: TokenKeeper,
        sage: SageX3Client,
        follow_ups: FollowUps,
        timing: OutboxTiming = OutboxTiming(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._s3 = s3
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
            try:
                head = self._s3.head_object(Bucket=bucket, Key=key, **_version(version))
            except self._s3.exceptions.ClientError as error:
                if error.response.get("Error", {}).get("Code") not in _GONE:
                    raise
                self._reject(upload, Reason.OBJECT_GONE, _MESSAGES[Reason.OBJECT_GONE])
                return
            size = int(head["ContentLength"])
            reason = vet_size(size)
        if reason is None:
            prefix = self._s3.get_object(
                Bucket=bucket, Key=key, Range=f"bytes=0-{SNIFF_BYTES - 1}", **_version(version)
            )["Body"].read()
            reason = None if is_text(prefix) else Reason.NOT_TEXT
        if reason is not None:
            self._reject(upload, reason, _MESSAGES[reason])
            return
        try:
            link = data_ingestion.request_upload(
                upload.tenant, folder, {"filename": filename}, self._keeper, self._sage, clock=self._clock
            )
        except tuple(_REFUSALS) as refused:
            (reason,) = [r for kind, r in _REFUSALS.items() if isinstance(refused, kind)][:1]
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
        body = self._s3.get_object(Bucket=bucket, Key=key, **_version(version))["Body"]
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
            document = data_ingestion.upload_status(upload.tenant, tracking_id, self._keeper, self._sage)
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
        started = _epoch(str(upload.fields.get("created_at", "")))
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
                outcome[name] = _tag_value(str(f[name]))
        if f.get("tracking_id"):
            outcome["tracking-id"] = str(f["tracking_id"])
        self._tag(str(f["bucket"]), str(f["key"]), str(f["version_id"]), outcome)

    def _tag(self, bucket: str, key: str, version: str, outcome: dict[str, str]) -> None:
        try:
            found = self._s3.get_object_tagging(Bucket=bucket, Key=key, **_version(version))
        except self._s3.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") not in _GONE:
                raise
            logger.info("Outbox object gone before it was tagged", extra={"outcome": outcome.get("outcome")})
            return
        existing = found.get("TagSet", [])
        self._s3.put_object_tagging(
            Bucket=bucket, Key=key, Tagging={"TagSet": tags_with(existing, outcome)}, **_version(version)
        )


# What S3 says of an object, version or bucket that is not there (HeadObject's 404 has no body).
_GONE = frozenset({"404", "NoSuchKey", "NoSuchVersion", "NoSuchBucket"})

_MESSAGES = {
    Reason.BAD_NAME: "The folder or file name is not one Sage X3 accepts.",
    Reason.TOO_LARGE: "The file is larger than the 350 MB Sage X3 takes.",
    Reason.NOT_TEXT: "The file is not text: Sage X3 ingests text files only.",
    Reason.OBJECT_GONE: "The object was deleted from the outbox before it could be sent.",
}


def _version(version: str) -> dict[str, str]:
    """The VersionId argument for a versioned object (an unversioned one's events name none)."""
    return (
        {}
        if version in ("", "null") or not version.isprintable() or len(version) > 1024
        else {"VersionId": version}
    )


def _epoch(text: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
