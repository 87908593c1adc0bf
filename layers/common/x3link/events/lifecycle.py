"""Lifecycle events read off the pairings table's change stream, as pure functions of one stream record;
and `FilesAvailable`, read off the notifications table's (an item is one notification for one tenant).

The events are derived from the committed change itself, not published by the writer after it, so a
function that dies right after committing still has its change announced. The same record always gives
the same events with the same ids, so a redelivered record is something a subscriber can deduplicate.
Nothing here reads or carries token material.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

# Any: stream images (DynamoDB JSON) in, EventBridge details (JSON) out.
from typing import Any

from x3link.aws.dynamo_attrs import flag, n_or_none, n_text_or_none, s_or_none
from x3link.tokens.model import ACTIVE, EXPIRED, SUSPENDED, iso

SOURCE = "sage-x3-link"
APP_KEY = "~app"  # a gateway's health record is keyed `~app:<gateway>` (x3link/refresh/breaker.py)
DELETED = "deleted"  # no pairing left: its item was deleted

COMPLETED = "PairingCompleted"
SUSPENDED_EVENT = "PairingSuspended"
EXPIRED_EVENT = "PairingExpired"
RECOVERED = "PairingRecovered"
DELETED_EVENT = "PairingDeleted"
APP_REJECTED = "AppCredentialsRejected"
FILES_AVAILABLE = "FilesAvailable"
FILE_INGESTED = "FileIngested"
FILE_REJECTED = "FileRejected"
FILE_DELIVERED = "FileDelivered"
DETAIL_TYPES = (
    COMPLETED,
    SUSPENDED_EVENT,
    RECOVERED,
    EXPIRED_EVENT,
    DELETED_EVENT,
    APP_REJECTED,
    FILES_AVAILABLE,
    FILE_INGESTED,
    FILE_REJECTED,
    FILE_DELIVERED,
)

# The item's own time of the change each event announces; the stream record's time when it has none.
_AT = {
    COMPLETED: "paired_at",
    SUSPENDED_EVENT: "suspended_at",
    EXPIRED_EVENT: "expired_at",
    RECOVERED: "refreshed_at",
}

Image = Mapping[str, Mapping[str, Any]]  # an item in DynamoDB JSON, as the stream carries it


@dataclass(frozen=True)
class LifecycleEvent:
    detail_type: str
    detail: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.detail["id"])


def of_files(image: Image | None) -> bool:
    """An item of the file pipelines' tables: an upload's (`upload_id`) or an export ledger entry
    (`folder_key`), whose only news is a file's outcome (FileIngested, FileRejected, FileDelivered)."""
    return s_or_none(image, "upload_id") is not None or s_or_none(image, "folder_key") is not None


def _is_pairing(image: Image | None) -> bool:
    """Items keyed `~...` (the app breaker) share the table but are not pairings."""
    return image is not None and not (s_or_none(image, "tenant") or "~").startswith("~")


def events_for(
    event_name: str, old: Image | None, new: Image | None, *, at_epoch: float | None = None
) -> list[LifecycleEvent]:
    """What one stream record announces: at most one event; token rotation and leases announce nothing.

    `at_epoch` is the stream record's own time (ApproximateCreationDateTime), used when the item names
    none (a deletion).
    """
    if s_or_none(new or old, "notification_id") is not None:
        return _files_events(event_name, new)
    if s_or_none(new or old, "upload_id") is not None:
        return _upload_events(old, new)
    if s_or_none(new or old, "folder_key") is not None:
        return _delivered_events(old, new)
    if (s_or_none(new or old, "tenant") or "").startswith(APP_KEY):
        return _app_events(old, new, at_epoch)
    if event_name == "REMOVE":
        if old is None or not _is_pairing(old):
            return []
        return [_pairing_event(DELETED_EVENT, old, at_epoch, status=DELETED, reason=DELETED)]
    if new is None or not _is_pairing(new):
        return []
    detail_type = _transition(old, new)
    return [_pairing_event(detail_type, new, at_epoch)] if detail_type else []


def _transition(old: Image | None, new: Image) -> str | None:
    status = s_or_none(new, "status")
    if old is None or s_or_none(old, "generation") != s_or_none(new, "generation"):
        return COMPLETED if status == ACTIVE else None
    was = s_or_none(old, "status")
    if was == status:
        return None
    if status == SUSPENDED:
        return SUSPENDED_EVENT
    if status == EXPIRED:
        return EXPIRED_EVENT
    if status == ACTIVE and was in (SUSPENDED, EXPIRED):
        return RECOVERED
    return None


def _pairing_event(
    detail_type: str,
    image: Image,
    at_epoch: float | None,
    *,
    status: str | None = None,
    reason: str | None = None,
) -> LifecycleEvent:
    tenant, generation = s_or_none(image, "tenant"), s_or_none(image, "generation") or ""
    version = n_text_or_none(image, "version") or "0"
    at = n_or_none(image, _AT[detail_type]) if detail_type in _AT else None
    detail: dict[str, Any] = {
        "id": f"{tenant}:{generation}:{version}:{detail_type}",
        "tenant": tenant,
        "customer": s_or_none(image, "customer"),
        "status": status or s_or_none(image, "status"),
        "reason": reason or s_or_none(image, "reason"),
        "generation": generation,
        "at": iso(at if at is not None else at_epoch),
    }
    if detail_type == COMPLETED:
        # Which X3 the grant reaches, through which gateway: a pairing with an X3 nobody expected shows.
        detail["x3_subject"] = s_or_none(image, "x3_subject")
        detail["x3_issuer"] = s_or_none(image, "x3_issuer")
        detail["endpoint"] = s_or_none(image, "endpoint")
    if detail_type in (SUSPENDED_EVENT, EXPIRED_EVENT):
        refusal_status = n_or_none(image, "last_refusal_status")
        detail["last_refusal"] = {
            "at": iso(n_or_none(image, "last_refusal_at")),
            "status": int(refusal_status) if refusal_status is not None else None,
            "message": s_or_none(image, "last_refusal_message"),
        }
        detail["next_attempt_at"] = iso(n_or_none(image, "next_attempt_at"))
    return LifecycleEvent(detail_type, detail)


def _app_events(old: Image | None, new: Image | None, at_epoch: float | None) -> list[LifecycleEvent]:
    """Only an opening of a gateway's breaker is news; every later change of its record is not."""
    if new is None or s_or_none(new, "breaker") != "open":
        return []
    breaker_id = s_or_none(new, "breaker_id")
    if s_or_none(old, "breaker") == "open" and s_or_none(old, "breaker_id") == breaker_id:
        return []
    upstream = n_or_none(new, "last_status")
    opened_at = n_or_none(new, "opened_at")
    detail = {
        "id": f"app:{breaker_id}",
        "status": "open",
        "reason": s_or_none(new, "last_message"),
        "upstream_status": int(upstream) if upstream is not None else None,
        "gateway": s_or_none(new, "gateway"),
        "at": iso(opened_at if opened_at is not None else at_epoch),
    }
    return [LifecycleEvent(APP_REJECTED, detail)]


def _files_events(event_name: str, new: Image | None) -> list[LifecycleEvent]:
    """A notification recorded for a tenant is news once, when it is inserted; its expiry (TTL) is not."""
    if event_name != "INSERT" or new is None:
        return []
    notification_id, tenant = s_or_none(new, "notification_id"), s_or_none(new, "tenant")
    try:
        files = json.loads(s_or_none(new, "files") or "[]")
    except ValueError:
        files = []
    detail = {
        "id": f"notification:{notification_id}:{tenant}",
        "tenant": tenant,
        "customer": s_or_none(new, "customer"),
        "notification_id": notification_id,
        "folder": s_or_none(new, "folder"),
        "files": files if isinstance(files, list) else [],
        "truncated": flag(new, "truncated"),
        "sent_at": s_or_none(new, "sent_at"),
        "at": iso(n_or_none(new, "received_at")),
    }
    return [LifecycleEvent(FILES_AVAILABLE, detail)]


def _upload_events(old: Image | None, new: Image | None) -> list[LifecycleEvent]:
    """An outbox file's outcome is news once, when its upload item gains it (data/uploads.py); an upload
    through `POST .../uploads` is the app's own to follow."""
    outcome = s_or_none(new, "outcome")
    if (
        new is None
        or outcome is None
        or s_or_none(old, "outcome") is not None
        or s_or_none(new, "source") != "outbox"
    ):
        return []
    tenant, upload_id = s_or_none(new, "tenant"), s_or_none(new, "upload_id")
    detail_type = FILE_INGESTED if outcome == "ingested" else FILE_REJECTED
    detail: dict[str, Any] = {
        "id": f"upload:{tenant}:{upload_id}",
        "tenant": tenant,
        "folder": s_or_none(new, "folder"),
        "filename": s_or_none(new, "filename"),
        "bucket": s_or_none(new, "bucket"),
        "key": s_or_none(new, "key"),
        "version_id": s_or_none(new, "version_id"),
        "tracking_id": s_or_none(new, "tracking_id"),
        "message": s_or_none(new, "status_message"),
        "at": s_or_none(new, "updated_at"),
    }
    reason = s_or_none(new, "reason")
    if detail_type == FILE_REJECTED:
        detail["reason"] = reason
    # Sage's own status, where Sage judged the file (not where the bundle refused it before sending).
    if detail_type == FILE_INGESTED or reason in ("sage_rejected", "tracking_timeout"):
        detail["status"] = s_or_none(new, "status")
    return [LifecycleEvent(detail_type, detail)]


def _delivered_events(old: Image | None, new: Image | None) -> list[LifecycleEvent]:
    """A file version's ledger entry (x3link.exports.ledger) moving to `stored`: its object is in the
    bucket and verified. Its id is the version's, so a version announced twice is one event to subscribers;
    every other change of the entry (a claim, its delivery, its expiry) announces nothing."""
    if (
        new is None
        or s_or_none(new, "stage") != "stored"
        or s_or_none(old, "stage") in ("stored", "delivered")
    ):
        return []
    tenant, _, folder = (s_or_none(new, "folder_key") or "").rpartition("/")
    size = n_or_none(new, "size")
    detail = {
        "id": f"file-delivered:{s_or_none(new, 'version_id')}",
        "tenant": tenant,
        "folder": folder,
        "filename": s_or_none(new, "filename"),
        "bucket": s_or_none(new, "bucket"),
        "key": s_or_none(new, "object_key"),
        "size": int(size) if size is not None else None,
        "checksum": s_or_none(new, "checksum"),
        "last_modified": s_or_none(new, "last_modified"),
        "version_id": s_or_none(new, "object_version"),
        "at": iso(n_or_none(new, "stored_at")),
    }
    return [LifecycleEvent(FILE_DELIVERED, detail)]
