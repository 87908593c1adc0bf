"""The only code that speaks DynamoDB about exports delivered to the app's bucket: each folder's sync state,
and a ledger of every file version, claimed under a lease, then stored and delivered.

One table, keyed by the folder (`{tenant}/{folder}`) and an entry:
- `~sync`: the folder's sync state (`enabled`, `last_run_at`, `files_delivered`, `last_error`); an enabled one
  carries `sync_list`, so the sparse index `by-sync` lists exactly the enabled folders for the schedule.
- `v#<version>`: one file version (x3link.exports.orders.version_of), through `downloading` → `stored`
  (the stream announces FileDelivered) → `delivered`. Every move is a conditional write: two workers never
  both hold a version, a version delivered stays delivered, and a worker that lost its lease writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

# Any: items deserialised to Python values of any type; expression values of mixed attribute types.
from typing import TYPE_CHECKING, Any

from x3link.aws.dynamo_attrs import s

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import UpdateItemInputTypeDef

SYNC_ENTRY = "~sync"
SYNC_INDEX = "by-sync"
ENABLED = "enabled"
# A delivered version's entry is kept this long: far past the day a listing could still show the file.
KEPT_SECONDS = 90 * 86400
_MAX_ERROR = 300


class Stage(StrEnum):
    DOWNLOADING = "downloading"  # claimed: the object may or may not be in the bucket yet
    STORED = "stored"  # the object is in the bucket, verified; Sage still holds the file
    DELIVERED = "delivered"  # announced and deleted at Sage: nothing left to do


class Claim(StrEnum):
    """What a worker's claim on a file version got it."""

    HELD = "held"  # this worker now holds the version's lease
    BUSY = "busy"  # another worker holds it
    DONE = "done"  # delivered already


@dataclass(frozen=True)
class Entry:
    """A file version's ledger entry, as the claim left it."""

    stage: Stage
    lease_until: float


@dataclass(frozen=True)
class SyncState:
    enabled: bool
    last_run_at: float | None = None
    files_delivered: int = 0
    last_error: str | None = None


def folder_key(tenant: str, folder: str) -> str:
    return f"{tenant}/{folder}"


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer  # on the first read: init does not load it

    deserialise = TypeDeserializer().deserialize
    return {name: deserialise(value) for name, value in item.items()}


class DeliveryLedger:
    def __init__(self, table_name: str, dynamodb: DynamoDBClient) -> None:
        self._table = table_name
        self._db = dynamodb

    def _failed(self) -> type[Exception]:
        failed: type[Exception] = self._db.exceptions.ConditionalCheckFailedException
        return failed

    # ------------------------------------------------------------------ sync state
    def sync_state(self, tenant: str, folder: str) -> SyncState | None:
        item = self._db.get_item(
            TableName=self._table,
            Key={"folder_key": {"S": folder_key(tenant, folder)}, "entry": {"S": SYNC_ENTRY}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        data = _plain(item)
        last_run = data.get("last_run_at")
        return SyncState(
            enabled=bool(data.get("enabled")),
            last_run_at=float(last_run) if last_run is not None else None,
            files_delivered=int(data.get("files_delivered", 0)),
            last_error=data.get("last_error"),
        )

    def set_enabled(self, tenant: str, folder: str, enabled: bool, at: float) -> None:
        names = {"#enabled": "enabled", "#changed": "changed_at"}
        values: dict[str, Any] = {":enabled": {"BOOL": enabled}, ":at": {"N": repr(at)}}
        if enabled:
            expression = "SET #enabled = :enabled, #changed = :at, #list = :list"
            names["#list"] = "sync_list"
            values[":list"] = {"S": ENABLED}
        else:
            expression = "SET #enabled = :enabled, #changed = :at REMOVE #list"
            names["#list"] = "sync_list"
        self._db.update_item(
            TableName=self._table,
            Key={"folder_key": {"S": folder_key(tenant, folder)}, "entry": {"S": SYNC_ENTRY}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def enabled_folders(self) -> Iterator[tuple[str, str]]:
        """Every (tenant, folder) with sync on, through the sparse index."""
        paginator = self._db.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            IndexName=SYNC_INDEX,
            KeyConditionExpression="sync_list = :enabled",
            ExpressionAttributeValues={":enabled": {"S": ENABLED}},
        ):
            for item in page.get("Items", []):
                tenant, _, folder = s(item, "folder_key").rpartition("/")
                yield tenant, folder

    def note_run(self, tenant: str, folder: str, at: float, error: str | None) -> None:
        """A scan of the folder ran (and how it ended), for GET .../sync."""
        key = {"folder_key": {"S": folder_key(tenant, folder)}, "entry": {"S": SYNC_ENTRY}}
        if error is None:
            self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET last_run_at = :at REMOVE last_error",
                ExpressionAttributeValues={":at": {"N": repr(at)}},
            )
        else:
            self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET last_run_at = :at, last_error = :error",
                ExpressionAttributeValues={":at": {"N": repr(at)}, ":error": {"S": error[:_MAX_ERROR]}},
            )

    # ------------------------------------------------------------------ file versions
    def _version_key(self, tenant: str, folder: str, version: str) -> dict[str, Any]:
        return {"folder_key": {"S": folder_key(tenant, folder)}, "entry": {"S": f"v#{version}"}}

    def claim(
        self, tenant: str, folder: str, version: str, filename: str, owner: str, now: float, until: float
    ) -> tuple[Claim, Entry | None]:
        """Take the version's lease unless it is delivered or another worker's lease still runs."""
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=self._version_key(tenant, folder, version),
                UpdateExpression=(
                    "SET #stage = if_not_exists(#stage, :downloading), lease_owner = :owner, "
                    "lease_until = :until, filename = :filename, claimed_at = :now"
                ),
                ConditionExpression=(
                    "attribute_not_exists(#stage) OR "
                    "(#stage <> :delivered AND (attribute_not_exists(lease_until) OR lease_until < :now))"
                ),
                ExpressionAttributeNames={"#stage": "stage"},
                ExpressionAttributeValues={
                    ":downloading": {"S": Stage.DOWNLOADING},
                    ":delivered": {"S": Stage.DELIVERED},
                    ":owner": {"S": owner},
                    ":until": {"N": repr(until)},
                    ":now": {"N": repr(now)},
                    ":filename": {"S": filename},
                },
                ReturnValues="ALL_NEW",
            )
        except self._failed():
            item = self._db.get_item(
                TableName=self._table, Key=self._version_key(tenant, folder, version), ConsistentRead=True
            ).get("Item")
            entry = _entry(item) if item else None
            if entry is not None and entry.stage == Stage.DELIVERED:
                return Claim.DONE, entry
            return Claim.BUSY, entry
        return Claim.HELD, _entry(answer["Attributes"])

    def _advance(
        self,
        tenant: str,
        folder: str,
        version: str,
        owner: str,
        expression: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
        condition: str = "lease_owner = :owner",
    ) -> bool:
        names = dict(names or {})
        if "#stage" in expression or "#stage" in condition:
            names["#stage"] = "stage"
        update: UpdateItemInputTypeDef = {
            "TableName": self._table,
            "Key": self._version_key(tenant, folder, version),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": {":owner": {"S": owner}, **values},
        }
        if names:
            update["ExpressionAttributeNames"] = names
        try:
            self._db.update_item(**update)
        except self._failed():
            return False
        return True

    def stored(
        self, tenant: str, folder: str, version: str, owner: str, facts: dict[str, Any], at: float
    ) -> bool:
        """The object is in the bucket and verified; False when this worker no longer holds the lease.

        `facts` (filename, bucket, key, size, checksum, last_modified, object_version) go on the entry: its
        move to `stored` is what the delivery table's stream announces as FileDelivered (events/lifecycle.py).
        """
        values: dict[str, Any] = {":stored": {"S": Stage.STORED}, ":at": {"N": repr(at)}}
        sets = ["#stage = :stored", "stored_at = :at", "version_id = :version_id"]
        values[":version_id"] = {"S": version}
        names: dict[str, str] = {}
        for name, value in facts.items():
            if value is None:
                continue
            names[f"#{name}"] = name  # `size` and others are DynamoDB reserved words
            sets.append(f"#{name} = :{name}")
            values[f":{name}"] = {"N": str(value)} if isinstance(value, int) else {"S": str(value)}
        return self._advance(tenant, folder, version, owner, "SET " + ", ".join(sets), values, names)

    def delivered(self, tenant: str, folder: str, version: str, owner: str, at: float) -> bool:
        """Deleted at Sage: the version is done for good; the folder counts one more file delivered."""
        done = self._advance(
            tenant,
            folder,
            version,
            owner,
            "SET #stage = :delivered, delivered_at = :at, expires_epoch = :expires REMOVE lease_until",
            {
                ":delivered": {"S": Stage.DELIVERED},
                ":stored": {"S": Stage.STORED},
                ":at": {"N": repr(at)},
                ":expires": {"N": str(int(at + KEPT_SECONDS))},
            },
            condition="lease_owner = :owner AND #stage = :stored",  # counted once, whoever retries
        )
        if done:
            self._db.update_item(
                TableName=self._table,
                Key={"folder_key": {"S": folder_key(tenant, folder)}, "entry": {"S": SYNC_ENTRY}},
                UpdateExpression="ADD files_delivered :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        return done

    def release(self, tenant: str, folder: str, version: str, owner: str) -> None:
        """Give the lease up after a failure, so the retry need not wait for it to run out."""
        self._advance(tenant, folder, version, owner, "REMOVE lease_until", {})


def _entry(item: dict[str, Any]) -> Entry:
    data = _plain(item)
    return Entry(
        stage=Stage(data.get("stage", Stage.DOWNLOADING)),
        lease_until=float(data.get("lease_until", 0)),
    )
