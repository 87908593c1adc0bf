"""A pairing's recent history (GET /tenants/{tenant}/activity), written from the tables' change streams.

Each committed change of a pairing gives at most a few entries: its lifecycle change (the events of
lifecycle.py), a refresh and its outcome, a refusal by Sage as `last_refusal` shows it; each notification
recorded for a tenant gives one `files_available`; each file outcome the file pipelines' tables record (an
export stored in the delivery bucket, an outbox file ingested or rejected) gives one `file_delivered`,
`file_ingested` or `file_rejected`, when lifecycle.py finds it news. Entries are built from named,
non-secret attributes of the stream images only (never the tokens, sealed or not, nor a lease), so the
activity table holds no token whatever the images carry. An entry's key is the change's own time and its
stream record's sequence number, so a redelivered record rewrites the same items. Items expire by TTL
after `ACTIVITY_RETENTION_DAYS`.

The listing is newest first, a page at a time; the cursor is base64url JSON of DynamoDB's LastEvaluatedKey,
checked on its way back in (it must be of the same tenant).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

# Any: stream images (DynamoDB JSON) in, the JSON entries GET .../activity shows out.
from typing import TYPE_CHECKING, Any

from x3link.aws.dynamo_attrs import n_or_none, s, s_or_none
from x3link.events import lifecycle
from x3link.tokens.model import iso
from x3link.web import cursors

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import QueryInputTypeDef

DEFAULT_LIMIT, MAX_LIMIT = 50, 100
_AT_ID = re.compile(r"\d{10}\.\d{6}#\d{1,64}#\d{1,2}")
_BAD_CURSOR = "cursor is not one that this listing handed out."
_TYPES = {
    lifecycle.COMPLETED: "paired",
    lifecycle.SUSPENDED_EVENT: "suspended",
    lifecycle.EXPIRED_EVENT: "expired",
    lifecycle.RECOVERED: "recovered",
    lifecycle.DELETED_EVENT: "deleted",
    lifecycle.FILES_AVAILABLE: "files_available",
}
# What a lifecycle event's detail may add to its entry (its id, tenant and time are the entry's own).
_DETAIL_FIELDS = (
    "status",
    "endpoint",
    "last_refusal",
    "next_attempt_at",
    "notification_id",
    "folder",
    "files",
)

# A file's outcome, as lifecycle.py announces it, and what its event's detail adds to the entry: not the
# bucket, versions or checksum (the app's own to look up), never more than the pipelines' named attributes.
_FILE_TYPES = {
    lifecycle.FILE_DELIVERED: "file_delivered",
    lifecycle.FILE_INGESTED: "file_ingested",
    lifecycle.FILE_REJECTED: "file_rejected",
}
_FILE_FIELDS = ("folder", "filename", "key", "size", "message")

# The times a pairing's item names, each of a change already recorded.
_TIMES = ("paired_at", "refreshed_at", "refresh_failed_at", "last_refusal_at", "suspended_at", "expired_at")

Image = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Entry:
    tenant: str
    at: float
    fields: dict[str, Any]  # "type", "reason"?, and the rest of what GET .../activity shows

    def view(self) -> dict[str, Any]:
        return {"at": iso(self.at), **self.fields}


def _changed(old: Image | None, new: Image | None, name: str) -> float | None:
    """The new time `name` holds when this change set it (None when it did not)."""
    now = n_or_none(new, name)
    return now if now is not None and now != n_or_none(old, name) else None


def _refusal(image: Image) -> dict[str, Any]:
    status = n_or_none(image, "last_refusal_status")
    return {
        "at": iso(n_or_none(image, "last_refusal_at")),
        "status": int(status) if status is not None else None,
        "message": s_or_none(image, "last_refusal_message"),
    }


def _with_reason(fields: dict[str, Any], reason: str | None) -> dict[str, Any]:
    return {**fields, "reason": reason} if reason else fields


def entries_for(
    event_name: str, old: Image | None, new: Image | None, *, at_epoch: float | None = None
) -> list[Entry]:
    """What one stream record adds to its tenant's activity (nothing for a run's report or the breaker)."""
    image = new or old
    if lifecycle.of_files(image):
        return _file_entries(event_name, old, new, at_epoch)
    tenant = s_or_none(image, "tenant")
    if image is None or not tenant or tenant.startswith("~"):
        return []
    fallback = at_epoch if at_epoch is not None else 0.0
    found: list[Entry] = []
    for event in lifecycle.events_for(event_name, old, new, at_epoch=at_epoch):
        detail = event.detail
        fields: dict[str, Any] = {"type": _TYPES.get(event.detail_type, event.detail_type)}
        fields |= {name: detail[name] for name in _DETAIL_FIELDS if detail.get(name) is not None}
        at = n_or_none(new, "received_at") if event.detail_type == lifecycle.FILES_AVAILABLE else None
        at = at or _event_time(detail.get("at")) or fallback
        if event.detail_type == lifecycle.DELETED_EVENT:
            # The stream's time is whole seconds: a deletion came after every time its last image names.
            at = max([at, *(t for name in _TIMES if (t := n_or_none(old, name)) is not None)])
        found.append(Entry(tenant, at, _with_reason(fields, detail.get("reason"))))
    if new is None or s_or_none(new, "notification_id") is not None:
        return found
    # The item's `reason` is news only when this change set it (else it is an earlier change's).
    reason = s_or_none(new, "reason") if s_or_none(new, "reason") != s_or_none(old, "reason") else None
    refreshed = _changed(old, new, "refreshed_at")
    paired = old is None or s_or_none(old, "generation") != s_or_none(new, "generation")
    if refreshed is not None and not paired:
        found.append(Entry(tenant, refreshed, {"type": "refresh", "outcome": "refreshed"}))
    failed = _changed(old, new, "refresh_failed_at")
    if failed is not None:
        outcome = "timed_out" if n_or_none(new, "refresh_timed_out_at") == failed else "failed"
        found.append(Entry(tenant, failed, _with_reason({"type": "refresh", "outcome": outcome}, reason)))
    refused = _changed(old, new, "last_refusal_at")
    if refused is not None:
        refusal: dict[str, Any] = {"type": "refusal", "last_refusal": _refusal(new)}
        found.append(Entry(tenant, refused, _with_reason(refusal, reason)))
    return found


def _file_entries(
    event_name: str, old: Image | None, new: Image | None, at_epoch: float | None
) -> list[Entry]:
    """A file's outcome, when lifecycle.py finds it news (one source of truth): at the event's own time."""
    found: list[Entry] = []
    for event in lifecycle.events_for(event_name, old, new, at_epoch=at_epoch):
        detail, tenant = event.detail, event.detail.get("tenant")
        if event.detail_type not in _FILE_TYPES or not tenant:
            continue
        # An outbox upload's event names no size: its item does.
        size = detail.get("size") if detail.get("size") is not None else n_or_none(new, "size")
        shown = {**detail, "size": int(size) if size is not None else None}
        fields: dict[str, Any] = {"type": _FILE_TYPES[event.detail_type]}
        fields |= {name: shown[name] for name in _FILE_FIELDS if shown.get(name) is not None}
        at = _event_time(detail.get("at")) or at_epoch or 0.0
        found.append(Entry(tenant, at, _with_reason(fields, detail.get("reason"))))
    return found


def _event_time(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class ActivityLog:
    """The activity table: entries written once per stream record, read newest first per tenant."""

    def __init__(self, table_name: str, dynamodb: DynamoDBClient, *, kept_seconds: int) -> None:
        self._table = table_name
        self._db = dynamodb
        self._kept = kept_seconds

    def record(self, entries: list[Entry], sequence: str) -> None:
        for number, entry in enumerate(entries):
            self._db.put_item(
                TableName=self._table,
                Item={
                    "tenant": {"S": entry.tenant},
                    "at_id": {"S": f"{entry.at:017.6f}#{sequence or '0'}#{number}"},
                    "entry": {"S": json.dumps(entry.view(), separators=(",", ":"))},
                    "expires_epoch": {"N": str(int(entry.at + self._kept))},
                },
            )

    def page(
        self, tenant: str, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        params: QueryInputTypeDef = {
            "TableName": self._table,
            "KeyConditionExpression": "tenant = :tenant",
            "ExpressionAttributeValues": {":tenant": {"S": tenant}},
            "ProjectionExpression": "tenant, at_id, entry",
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start is not None:
            params["ExclusiveStartKey"] = start
        answer = self._db.query(**params)
        entries = [json.loads(s(item, "entry")) for item in answer.get("Items", [])]
        return entries, answer.get("LastEvaluatedKey")


def page_limit(raw: str | None) -> int:
    return cursors.page_limit(raw, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)


def _start_key(cursor: str, tenant: str) -> dict[str, Any]:
    key: dict[str, Any] = cursors.tenant_start_key(cursor, tenant, "at_id", _AT_ID, _BAD_CURSOR)
    return key


def list_activity(log: ActivityLog, tenant: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of the tenant's activity, newest first: `{"activity": [...], "cursor"?}`."""
    entries, last = log.page(tenant, limit, _start_key(cursor, tenant) if cursor is not None else None)
    page: dict[str, Any] = {"activity": entries}
    if last is not None:
        page["cursor"] = cursors.encode(last)
    return page
