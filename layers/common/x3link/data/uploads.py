"""The uploads table: every upload the bundle knows of, whether the app asked for a link
(`POST .../uploads`, source `api`) or wrote a file into the outbox bucket (source `outbox`), and
`GET /tenants/{tenant}/uploads`, a tenant's newest first.

The only code that speaks DynamoDB about uploads. An item's sort key starts with the upload's time, so a
query backwards is the listing; an outbox item's key is made from its S3 event alone (event time, bucket,
key, version), so a redelivered event finds the item it made the first time. An outbox item gains its
`outcome` once (a conditional write): the table's stream turns that change into `FileIngested` or
`FileRejected` (x3link/events/lifecycle.py). Items expire by TTL after 30 days.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

# Any: an upload's fields are JSON values of any type, stored as attributes and shown as JSON.
from typing import TYPE_CHECKING, Any

from x3link.aws.dynamo_attrs import plain
from x3link.web import cursors

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import QueryInputTypeDef

API, OUTBOX = "api", "outbox"
INGESTED, REJECTED = "ingested", "rejected"
KEPT_SECONDS = 30 * 86400
DEFAULT_LIMIT, MAX_LIMIT = 50, 100
_UPLOAD_ID = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z#(api|outbox)#[0-9a-f-]{1,64}")
_BAD_CURSOR = "cursor is not one that this listing handed out."
# What GET .../uploads shows of an item, in this order; never the object's version id or the receipt.
_SHOWN = (
    "tracking_id",
    "folder",
    "filename",
    "status",
    "source",
    "created_at",
    "updated_at",
    "status_message",
    "outcome",
    "reason",
    "size",
    "bucket",
    "key",
)


def stamp(epoch: float) -> str:
    """A time as S3's events write it (milliseconds, `Z`), so that api and outbox ids sort together."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def outbox_upload_id(event_time: str, bucket: str, key: str, version: str) -> str:
    """The id of one outbox object version's upload: its S3 event's time first (the listing's order)."""
    digest = hashlib.sha256(f"{bucket}\n{key}\n{version}".encode()).hexdigest()[:32]
    return f"{event_time}#{OUTBOX}#{digest}"


@dataclass(frozen=True)
class Upload:
    """One upload's item, as the worker reads and moves it."""

    tenant: str
    upload_id: str
    fields: dict[str, Any]

    @property
    def tracking_id(self) -> str | None:
        value = self.fields.get("tracking_id")
        return value if isinstance(value, str) else None

    @property
    def outcome(self) -> str | None:
        value = self.fields.get("outcome")
        return value if isinstance(value, str) else None


def _attr(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    return {"S": str(value)}


def _plain(value: Mapping[str, Any]) -> str | float | bool | None:
    """An attribute as GET .../uploads shows it: a whole number as an int."""
    read = plain(value)
    return int(read) if isinstance(read, float) and read.is_integer() else read


class UploadLog:
    def __init__(self, table_name: str, dynamodb: DynamoDBClient) -> None:
        self._table = table_name
        self._db = dynamodb

    def _key(self, tenant: str, upload_id: str) -> dict[str, Any]:
        return {"tenant": {"S": tenant}, "upload_id": {"S": upload_id}}

    def record_api(self, tenant: str, tracking_id: str, folder: str, filename: str, now: float) -> None:
        """An upload link handed out: recorded as Sage's tracking starts it, `awaiting_upload`."""
        at = stamp(now)
        item = {
            "tracking_id": tracking_id,
            "folder": folder,
            "filename": filename,
            "status": "awaiting_upload",
            "source": API,
            "created_at": at,
            "updated_at": at,
            "expires_epoch": int(now + KEPT_SECONDS),
        }
        self._db.put_item(
            TableName=self._table,
            Item={**self._key(tenant, f"{at}#{API}#{tracking_id}"), **{k: _attr(v) for k, v in item.items()}},
        )

    def begin(self, tenant: str, upload_id: str, fields: dict[str, Any], now: float) -> Upload:
        """The outbox object's item: created now, or the one an earlier delivery of its event created."""
        item = {**fields, "source": OUTBOX, "expires_epoch": int(now + KEPT_SECONDS)}
        try:
            self._db.put_item(
                TableName=self._table,
                Item={**self._key(tenant, upload_id), **{k: _attr(v) for k, v in item.items()}},
                ConditionExpression="attribute_not_exists(upload_id)",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            found = self.get(tenant, upload_id)
            if found is not None:
                return found
            raise
        return Upload(tenant, upload_id, item)

    def get(self, tenant: str, upload_id: str) -> Upload | None:
        answer = self._db.get_item(
            TableName=self._table, Key=self._key(tenant, upload_id), ConsistentRead=True
        )
        item = answer.get("Item")
        if item is None:
            return None
        fields = {name: _plain(value) for name, value in item.items() if name not in ("tenant", "upload_id")}
        return Upload(tenant, upload_id, fields)

    def update(self, upload: Upload, changes: dict[str, Any]) -> Upload:
        """Move an upload along (its status, its tracking id); never once it has an outcome."""
        return self._set(upload, changes, "attribute_exists(upload_id) AND attribute_not_exists(outcome)")

    def conclude(self, upload: Upload, changes: dict[str, Any]) -> Upload:
        """Give an upload its outcome, once: a second conclusion finds the first and changes nothing."""
        try:
            return self._set(upload, changes, "attribute_exists(upload_id) AND attribute_not_exists(outcome)")
        except self._db.exceptions.ConditionalCheckFailedException:
            return self.get(upload.tenant, upload.upload_id) or upload

    def _set(self, upload: Upload, changes: dict[str, Any], condition: str) -> Upload:
        names = {f"#a{index}": name for index, name in enumerate(changes)}
        values = {f":v{index}": _attr(value) for index, value in enumerate(changes.values())}
        self._db.update_item(
            TableName=self._table,
            Key=self._key(upload.tenant, upload.upload_id),
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(changes))),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        return Upload(upload.tenant, upload.upload_id, {**upload.fields, **changes})

    def page(
        self, tenant: str, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        params: QueryInputTypeDef = {
            "TableName": self._table,
            "KeyConditionExpression": "tenant = :tenant",
            "ExpressionAttributeValues": {":tenant": {"S": tenant}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start is not None:
            params["ExclusiveStartKey"] = start
        answer = self._db.query(**params)
        return [view(item) for item in answer.get("Items", [])], answer.get("LastEvaluatedKey")


def view(item: dict[str, Any]) -> dict[str, Any]:
    """What GET .../uploads shows of an item: `tracking_id` is null for a file refused before Sage saw it."""
    plain = {name: _plain(value) for name, value in item.items()}
    shown: dict[str, Any] = {"tracking_id": plain.get("tracking_id")}
    shown.update({name: plain[name] for name in _SHOWN if plain.get(name) is not None})
    return shown


def page_limit(raw: str | None) -> int:
    return cursors.page_limit(raw, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)


def _start_key(cursor: str, tenant: str) -> dict[str, Any]:
    key: dict[str, Any] = cursors.tenant_start_key(cursor, tenant, "upload_id", _UPLOAD_ID, _BAD_CURSOR)
    return key


def list_uploads(log: UploadLog, tenant: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of the tenant's uploads, newest first: `{"uploads": [...], "cursor"?}`."""
    found, last = log.page(tenant, limit, _start_key(cursor, tenant) if cursor is not None else None)
    page: dict[str, Any] = {"uploads": found}
    if last is not None:
        page["cursor"] = cursors.encode(last)
    return page
