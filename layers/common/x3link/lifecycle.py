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
from datetime import UTC, datetime
from typing import Any

SOURCE = "sage-x3-link"
APP_KEY = "~app"  # a gateway's health record is keyed `~app:<gateway>` (x3link/breaker.py)
ACTIVE, SUSPENDED, EXPIRED, DELETED = "active", "suspended", "expired", "deleted"

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


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _s(image: Image | None, name: str) -> str | None:
    value = (image or {}).get(name)
    return value["S"] if value and "S" in value else None


def _n(image: Image | None, name: str) -> float | None:
    value = (image or {}).get(name)
    return float(value["N"]) if value and "N" in value else None


def _is_pairing(image: Image | None) -> bool:
    """Items keyed `~...` (the app breaker) share the table but are not pairings."""
    return image is not None and not (_s(image, "tenant") or "~").startswith("~")


def events_for(
    event_name: str, old: Image | None, new: Image | None, *, at_epoch: float | None = None
) -> list[LifecycleEvent]:
    """What one stream record announces: at most one event; token rotation and leases announce nothing.

    `at_epoch` is the stream record's own time (ApproximateCreationDateTime), used when the item names
    none (a deletion).
    """
    if _s(new or old, "notification_id") is not None:
        return _files_events(event_name, new)
    if _s(new or old, "upload_id") is not None:
        return _upload_events(old, new)
    if _s(new or old, "folder_key") is not None:
        return _delivered_events(old, new)
    if (_s(new or old, "tenant") or "").startswith(APP_KEY):
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
    status = _s(new, "status")
    if old is None or _s(old, "generation") != _s(new, "generation"):
        return COMPLETED if status == ACTIVE else None
    was = _s(old, "status")
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
    tenant, generation = _s(image, "tenant"), _s(image, "generation") or ""
    version = (image.get("version") or {}).get("N", "0")
    at = _n(image, _AT[detail_type]) if detail_type in _AT else None
    detail: dict[str, Any] = {
        "id": f"{tenant}:{generation}:{version}:{detail_type}",
        "tenant": tenant,
        "customer": _s(image, "customer"),
        "status": status or _s(image, "status"),
        "reason": reason or _s(image, "reason"),
        "generation": generation,
        "at": iso(at if at is not None else at_epoch),
    }
    if detail_type == COMPLETED:
        # Which X3 the grant reaches, through which gateway: a pairing with an X3 nobody expected shows.
        detail["x3_subject"] = _s(image, "x3_subject")
        detail["x3_issuer"] = _s(image, "x3_issuer")
        detail["endpoint"] = _s(image, "endpoint")
    if detail_type in (SUSPENDED_EVENT, EXPIRED_EVENT):
        refusal_status = _n(image, "last_refusal_status")
        detail["last_refusal"] = {
            "at": iso(_n(image, "last_refusal_at")),
            "status": int(refusal_status) if refusal_status is not None else None,
            "message": _s(image, "last_refusal_message"),
        }
        detail["next_attempt_at"] = iso(_n(image, "next_attempt_at"))
    return LifecycleEvent(detail_type, detail)


def _app_events(old: Image | None, new: Image | None, at_epoch: float | None) -> list[LifecycleEvent]:
    """Only an opening of a gateway's breaker is news; every later change of its record is not."""
    if new is None or _s(new, "breaker") != "open":
        return []
    breaker_id = _s(new, "breaker_id")
    if _s(old, "breaker") == "open" and _s(old, "breaker_id") == breaker_id:
        return []
    upstream = _n(new, "last_status")
    opened_at = _n(new, "opened_at")
    detail = {
        "id": f"app:{breaker_id}",
        "status": "open",
        "reason": _s(new, "last_message"),
        "upstream_status": int(upstream) if upstream is not None else None,
        "gateway": _s(new, "gateway"),
        "at": iso(opened_at if opened_at is not None else at_epoch),
    }
    return [LifecycleEvent(APP_REJECTED, detail)]


def _files_events(event_name: str, new: Image | None) -> list[LifecycleEvent]:
    """A notification recorded for a tenant is news once, when it is inserted; its expiry (TTL) is not."""
    if event_name != "INSERT" or new is None:
        return []
    notification_id, tenant = _s(new, "notification_id"), _s(new, "tenant")
    try:
        files = json.loads(_s(new, "files") or "[]")
    except ValueError:
        files = []
    detail = {
        "id": f"notification:{notification_id}:{tenant}",
        "tenant": tenant,
        "customer": _s(new, "customer"),
        "notification_id": notification_id,
        "folder": _s(new, "folder"),
        "files": files if isinstance(files, list) else [],
        "truncated": bool((new.get("truncated") or {}).get("BOOL", False)),
        "sent_at": _s(new, "sent_at"),
        "at": iso(_n(new, "received_at")),
    }
    return [LifecycleEvent(FILES_AVAILABLE, detail)]


def _upload_events(old: Image | None, new: Image | None) -> list[LifecycleEvent]:
    """An outbox file's outcome is news once, when its upload item gains it (x3link/uploads.py); an upload
    through `POST .../uploads` is the app's own to follow."""
    outcome = _s(new, "outcome")
    if new is None or outcome is None or _s(old, "outcome") is not None or _s(new, "source") != "outbox":
        return []
    tenant, upload_id = _s(new, "tenant"), _s(new, "upload_id")
    detail_type = FILE_INGESTED if outcome == "ingested" else FILE_REJECTED
    detail: dict[str, Any] = {
        "id": f"upload:{tenant}:{upload_id}",
        "tenant": tenant,
        "folder": _s(new, "folder"),
        "filename": _s(new, "filename"),
        "bucket": _s(new, "bucket"),
        "key": _s(new, "key"),
        "version_id": _s(new, "version_id"),
        "tracking_id": _s(new, "tracking_id"),
        "message": _s(new, "status_message"),
        "at": _s(new, "updated_at"),
    }
    reason = _s(new, "reason")
    if detail_type == FILE_REJECTED:
        detail["reason"] = reason
    # Sage's own status, where Sage judged the file (not where the bundle refused it before sending).
    if detail_type == FILE_INGESTED or reason in ("sage_rejected", "tracking_timeout"):
        detail["status"] = _s(new, "status")
    return [LifecycleEvent(detail_type, detail)]


def _delivered_events(old: Image | None, new: Image | None) -> list[LifecycleEvent]:
    """A file version's ledger entry (x3link.delivery_ledger) moving to `stored`: its object is in the
    bucket and verified. Its id is the version's, so a version announced twice is one event to subscribers;
    every other change of the entry (a claim, its delivery, its expiry) announces nothing."""
    if new is None or _s(new, "stage") != "stored" or _s(old, "stage") in ("stored", "delivered"):
        return []
    tenant, _, folder = (_s(new, "folder_key") or "").rpartition("/")
    size = _n(new, "size")
    detail = {
        "id": f"file-delivered:{_s(new, 'version_id')}",
        "tenant": tenant,
        "folder": folder,
        "filename": _s(new, "filename"),
        "bucket": _s(new, "bucket"),
        "key": _s(new, "object_key"),
        "size": int(size) if size is not None else None,
        "checksum": _s(new, "checksum"),
        "last_modified": _s(new, "last_modified"),
        "version_id": _s(new, "object_version"),
        "at": iso(_n(new, "stored_at")),
    }
    return [LifecycleEvent(FILE_DELIVERED, detail)]
