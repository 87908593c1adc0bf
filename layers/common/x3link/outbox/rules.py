"""The outbox's pure decisions, apart from the worker that reads, calls and writes (worker.py):
which objects an S3 event names, where a key points, Sage X3's rules a file must meet before Sage hears of it
(a name Sage accepts, at most 350 MB, text), what Sage's tracking status says, the follow-ups' backoff, and
the outcome's tags. Nothing here does I/O: each rule is tested alone (tests/unit/test_outbox_rules.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum

# Any: an S3 event's JSON body, untrusted: checked field by field.
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from x3link.config import TENANT_PATTERN
from x3link.data.integration import FOLDER_PATTERN, file_name
from x3link.data.uploads import stamp
from x3link.errors import (
    BadRequest,
    FileExists,
    FolderNotGranted,
    NotPaired,
    PairingExpired,
    PairingSuspended,
    X3LinkError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import TagTypeDef

# Sage's limit for an ingested file (docs/sage-x3.md#data-ingestion), counted in decimal megabytes: a file
# over it by either count is refused before Sage is asked.
MAX_BYTES = 350 * 1000 * 1000
SNIFF_BYTES = 64 * 1024
MAX_DELAY = 900  # SQS's longest DelaySeconds
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
REFUSALS: dict[type[X3LinkError], Reason] = {
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
    """A folder name and a file name that Sage's URLs can carry (x3link/data/integration.py)."""
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


def tags_with(existing: Sequence[TagTypeDef], outcome: dict[str, str]) -> list[TagTypeDef]:
    """The object's tags with the outcome's (`x3link-*`) in place of any earlier ones; the app's own tags are
    kept, as many as S3's ten allow beside ours."""
    own: list[TagTypeDef] = [
        {"Key": f"{TAG_PREFIX}{name}", "Value": value} for name, value in outcome.items()
    ]
    others = [tag for tag in existing if not tag.get("Key", "").startswith(TAG_PREFIX)]
    return others[: MAX_TAGS - len(own)] + own


def tag_value(text: str) -> str:
    """A tag value S3 takes: letters, digits, spaces and `+ - = . _ : / @`, at most 256."""
    allowed = "".join(ch if ch.isalnum() or ch in " +-=._:/@" else "_" for ch in text)
    return allowed[:256]


# What the upload's item says of a file the bundle's own checks refused.
MESSAGES = {
    Reason.BAD_NAME: "The folder or file name is not one Sage X3 accepts.",
    Reason.TOO_LARGE: "The file is larger than the 350 MB Sage X3 takes.",
    Reason.NOT_TEXT: "The file is not text: Sage X3 ingests text files only.",
    Reason.OBJECT_GONE: "The object was deleted from the outbox before it could be sent.",
}


def epoch(text: str) -> float | None:
    """The seconds since the epoch of an ISO 8601 stamp (`Z` or an offset), or None for another text."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
