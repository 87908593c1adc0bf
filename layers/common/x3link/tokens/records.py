"""The pairings table, short of the tokens: reads (strongly consistent), the indexes (never a scan for work
to do), deletes, and the refresh lease.

Every write is conditional: a lease is fenced on the pairing's generation and version, so one worker at a
time spends a pairing's refresh token. Nothing here opens or writes a token (store.py does).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

# Any: DynamoDB keys, and UpdateItem's keyword arguments, of mixed types.
from typing import TYPE_CHECKING, Any, TypedDict

from x3link.aws.dynamo_attrs import b_or_none, s, s_or_none
from x3link.tokens.items import (
    METADATA_READ,
    SEALED_READ,
    Projection,
    is_pairing_item,
    lease_taken,
    pairing_from_item,
    version_fence,
)
from x3link.tokens.model import ACTIVE, Lease, Pairing, PairingRef

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        KeysAndAttributesTypeDef,
        UpdateItemOutputTypeDef,
    )

EXPIRY_INDEX = "by-refresh-expiry"
CUSTOMER_INDEX = "by-customer"  # customer → tenant, endpoint, status: whom a notification is for
_BATCH_ROUNDS = 3


class _StartAt(TypedDict, total=False):
    ExclusiveStartKey: Mapping[str, Any]


def _start_at(start: Mapping[str, Any] | None) -> _StartAt:
    """Where a paged Scan or Query goes on (a key it handed out), or nothing on the first page."""
    return {"ExclusiveStartKey": start} if start else {}


class PairingRecords:
    """The pairings table short of their tokens: reads, the indexes, deletes and the refresh lease (which
    reads no token, and writes none)."""

    def __init__(self, table_name: str, dynamodb: DynamoDBClient) -> None:
        self._table = table_name
        self._db = dynamodb

    @property
    def _conditional_failed(self) -> type[Exception]:
        failed: type[Exception] = self._db.exceptions.ConditionalCheckFailedException
        return failed

    def get(self, tenant: str) -> Pairing | None:
        item = self._db.get_item(TableName=self._table, Key={"tenant": {"S": tenant}}, ConsistentRead=True)
        return pairing_from_item(item["Item"]) if "Item" in item else None

    def get_with(self, tenant: str, other_key: str) -> tuple[Pairing | None, dict[str, Any] | None]:
        """The pairing and one more item of the table (the app's breaker), in one request."""
        keys = [{"tenant": {"S": tenant}}, {"tenant": {"S": other_key}}]
        answer = self._db.batch_get_item(RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}})
        items = {s(item, "tenant"): item for item in answer.get("Responses", {}).get(self._table, [])}
        unprocessed = answer.get("UnprocessedKeys", {}).get(self._table)
        for key in unprocessed.get("Keys", []) if unprocessed else []:
            item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
            if item:
                items[s(item, "tenant")] = item
        return (pairing_from_item(items[tenant]) if tenant in items else None), items.get(other_key)

    def _update(self, tenant: str, **kwargs: Any) -> UpdateItemOutputTypeDef | None:
        """One conditional UpdateItem; None when its condition failed. (`kwargs` are UpdateItem's own keyword
        arguments, each of its own type: Any, as a `**` of mixed types is.)"""
        try:
            answer = self._db.update_item(TableName=self._table, Key={"tenant": {"S": tenant}}, **kwargs)
        except self._conditional_failed:
            return None
        return answer

    def delete(self, tenant: str) -> bool:
        old = self._db.delete_item(
            TableName=self._table, Key={"tenant": {"S": tenant}}, ReturnValues="ALL_OLD"
        )
        return "Attributes" in old

    def tenants_with_status(self, status: str, refresh_expires_before: float | None = None) -> Iterator[str]:
        """Tenants in one status, through the index (never a scan); optionally only those due for refresh."""
        condition = "#status = :status"
        values: dict[str, AttributeValueTypeDef] = {":status": {"S": status}}
        if refresh_expires_before is not None:
            condition += " AND refresh_token_expires_epoch <= :cutoff"
            values[":cutoff"] = {"N": repr(refresh_expires_before)}
        paginator = self._db.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            IndexName=EXPIRY_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
        ):
            for item in page.get("Items", []):
                yield s(item, "tenant")

    def pairings_of(self, customers: Iterable[str]) -> list[PairingRef]:
        """Every pairing whose `customer` is spelled as one of `customers`, through the index."""
        found: dict[str, PairingRef] = {}
        paginator = self._db.get_paginator("query")
        for customer in dict.fromkeys(customers):
            for page in paginator.paginate(
                TableName=self._table,
                IndexName=CUSTOMER_INDEX,
                KeyConditionExpression="customer = :customer",
                ExpressionAttributeValues={":customer": {"S": customer}},
            ):
                for item in page.get("Items", []):
                    ref = PairingRef(
                        tenant=s(item, "tenant"),
                        customer=s(item, "customer"),
                        endpoint=s_or_none(item, "endpoint") or "",
                        status=s_or_none(item, "status") or "",
                    )
                    found[ref.tenant] = ref
        return list(found.values())

    def scan_pairings(
        self, limit: int, start: dict[str, Any] | None = None
    ) -> tuple[list[Pairing], dict[str, Any] | None]:
        """Up to `limit` items of the table, as pairings without their tokens (other items skipped), and
        where the scan stopped (None at the end)."""
        answer = self._db.scan(
            TableName=self._table, Limit=limit, ConsistentRead=True, **METADATA_READ, **_start_at(start)
        )
        pairings = [pairing_from_item(item) for item in answer.get("Items", []) if is_pairing_item(item)]
        return pairings, answer.get("LastEvaluatedKey")

    def tenants_page(
        self,
        status: str,
        limit: int,
        start: dict[str, Any] | None = None,
        refresh_expires_before: float | None = None,
    ) -> tuple[list[str], dict[str, Any] | None]:
        """Up to `limit` tenants in one status, from the index (keys only), and where the query stopped."""
        condition = "#status = :status"
        values: dict[str, AttributeValueTypeDef] = {":status": {"S": status}}
        if refresh_expires_before is not None:
            condition += " AND refresh_token_expires_epoch <= :cutoff"
            values[":cutoff"] = {"N": repr(refresh_expires_before)}
        answer = self._db.query(
            TableName=self._table,
            IndexName=EXPIRY_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
            Limit=limit,
            **_start_at(start),
        )
        return [s(item, "tenant") for item in answer.get("Items", [])], answer.get("LastEvaluatedKey")

    def get_pairings(self, tenants: list[str]) -> list[Pairing]:
        """The pairings of these tenants (100 at most), without their tokens, in order; gone ones left out."""
        found = {
            s(item, "tenant"): pairing_from_item(item)
            for item in self._batch_read(tenants, METADATA_READ, consistent=True)
            if is_pairing_item(item)
        }
        return [found[tenant] for tenant in dict.fromkeys(tenants) if tenant in found]

    def sealed_blobs(self, tenants: list[str]) -> dict[str, bytes]:
        """The sealed tokens of these tenants (100 at most) as last written, eventually consistent: one
        BatchGetItem for what a keep-alive run tells its workers. Items without a blob are left out."""
        blobs: dict[str, bytes] = {}
        for item in self._batch_read(tenants, SEALED_READ, consistent=False):
            blob = b_or_none(item, "sealed_tokens")
            if blob is not None:  # only a pairing's item holds one
                blobs[s(item, "tenant")] = blob
        return blobs

    def _batch_read(self, tenants: list[str], projection: Projection, *, consistent: bool) -> list[Any]:
        """These tenants' items (100 at most): BatchGetItem, its unprocessed keys again, then one by one."""
        if not tenants:
            return []
        items: list[Any] = []
        keys: Sequence[Mapping[str, Any]] = [{"tenant": {"S": tenant}} for tenant in dict.fromkeys(tenants)]
        for _ in range(_BATCH_ROUNDS):
            request: KeysAndAttributesTypeDef = {
                "Keys": keys,
                "ConsistentRead": consistent,
                "ProjectionExpression": projection["ProjectionExpression"],
                "ExpressionAttributeNames": projection["ExpressionAttributeNames"],
            }
            answer = self._db.batch_get_item(RequestItems={self._table: request})
            items.extend(answer.get("Responses", {}).get(self._table, []))
            unprocessed = answer.get("UnprocessedKeys", {}).get(self._table)
            keys = unprocessed.get("Keys", []) if unprocessed else []
            if not keys:
                break
        for key in keys:  # still throttled after the rounds: one at a time
            read = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=consistent, **projection)
            if "Item" in read:
                items.append(read["Item"])
        return items

    def active_on_gateway(self, endpoint: str, *, exclude: str, candidates: int = 25) -> str | None:
        """Another active pairing whose calls go to `endpoint`, from one page of the index (never a scan):
        a witness for whether Sage accepts the app there. None when that page holds none."""
        tenants, _ = self.tenants_page(ACTIVE, candidates)
        for pairing in self.get_pairings([tenant for tenant in tenants if tenant != exclude]):
            if pairing.endpoint == endpoint and pairing.status == ACTIVE:
                return pairing.tenant
        return None

    def due_for_refresh(self, cutoff: float) -> Iterator[str]:
        """Tenants of active pairings whose refresh token expires before `cutoff`."""
        return self.tenants_with_status(ACTIVE, cutoff)

    def try_lease(self, pairing: Pairing, owner: str, now: float, until: float) -> Lease:
        """Take the right to spend this version's refresh token, unless someone else holds it.

        `owner` names one attempt, so a retried write whose first answer was lost finds its own lease. The
        answer also says whether another attempt's lease had lapsed there, neither committed nor given back:
        that attempt may have spent the refresh token, and its tokens may be parked.
        """
        fence, values = version_fence(pairing.generation, pairing.version)
        answer = self._update(
            pairing.tenant,
            UpdateExpression="SET lease_owner = :owner, lease_until = :until",
            ConditionExpression=f"{fence} AND (attribute_not_exists(lease_until) OR lease_until <= :now "
            "OR lease_owner = :owner)",
            ExpressionAttributeNames={"#version": "version"},
            ExpressionAttributeValues={
                **values,
                ":owner": {"S": owner},
                ":until": {"N": repr(until)},
                ":now": {"N": repr(now)},
            },
            ReturnValues="ALL_OLD",
        )
        return lease_taken(answer.get("Attributes", {}), owner) if answer is not None else Lease(taken=False)

    def lease_if_due(self, tenant: str, owner: str, now: float, until: float, due_before: float) -> Lease:
        """The keep-alive's lease, in one write that is also its read: taken only while the pairing is
        active, holds sealed tokens, has a refresh token expiring before `due_before`, and no other attempt
        holds a lease. Taken or not, the answer carries the pairing as it was (None when there is none), so
        the caller knows why without reading it again.
        """
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key={"tenant": {"S": tenant}},
                UpdateExpression="SET lease_owner = :owner, lease_until = :until",
                ConditionExpression="#status = :active AND refresh_token_expires_epoch <= :due AND "
                "attribute_exists(sealed_tokens) AND "
                "(attribute_not_exists(lease_until) OR lease_until <= :now)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":until": {"N": repr(until)},
                    ":now": {"N": repr(now)},
                    ":due": {"N": repr(due_before)},
                    ":active": {"S": ACTIVE},
                },
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._conditional_failed as refused:
            item = getattr(refused, "response", {}).get("Item")
            before = pairing_from_item(item) if item and is_pairing_item(item) else None
            return Lease(taken=False, before=before)
        return lease_taken(answer.get("Attributes", {}), owner)

    def release_lease(
        self, tenant: str, owner: str, failed_at: float, *, maybe_applied: bool, failed: bool = True
    ) -> None:
        """Give the lease back after a failed refresh, noting the failure so waiters don't pile on Sage
        (`failed` False: nothing was tried, as when the breaker held it).

        `maybe_applied`: the token call was sent and its answer never came, so Sage may have rotated the
        token; the refusal that follows is then judged as that loss, not as the customer's doing.
        """
        timed_out = ", refresh_timed_out_at = :failed" if maybe_applied else ""
        noted = f"SET refresh_failed_at = :failed{timed_out} " if failed else ""
        self._update(
            tenant,
            UpdateExpression=f"{noted}REMOVE lease_owner, lease_until",
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeValues={
                ":owner": {"S": owner},
                **({":failed": {"N": repr(failed_at)}} if failed else {}),
            },
        )
