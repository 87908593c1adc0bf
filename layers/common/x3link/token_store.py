"""The only code that speaks DynamoDB about pairings and their tokens.

Every change is conditional on the item's `version`, so a refresh, a re-pairing and an expiry can never
overwrite one another, and a refresh lease lets one worker at a time spend a pairing's refresh token.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from x3link.oauth import TokenSet, folders_from_scope

ACTIVE, SUSPENDED, EXPIRED = "active", "suspended", "expired"
EXPIRY_INDEX = "by-refresh-expiry"


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Refusal:
    """What Sage said when it refused a pairing's refresh grant (the message already scrubbed)."""

    at: float
    status: int
    message: str


@dataclass(frozen=True)
class Pairing:
    tenant: str
    customer: str
    endpoint: str
    scope: str
    status: str
    version: int
    # Random per pairing, so fencing never repeats after a delete and a re-pair ("" on items from before).
    generation: str = ""
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    access_token_expires_at: float | None = None
    refresh_token_expires_at: float | None = None
    paired_at: float | None = None
    refreshed_at: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    refresh_failed_at: float | None = None
    refresh_timed_out_at: float | None = None
    reason: str | None = None
    suspended_at: float | None = None
    expired_at: float | None = None
    next_attempt_at: float | None = None
    last_refusal: Refusal | None = None
    refusal_count: int = 0

    @property
    def folders(self) -> list[str]:
        return folders_from_scope(self.scope)

    def status_at(self, now: float) -> str:
        if self.status == ACTIVE and (
            not self.refresh_token_expires_at or self.refresh_token_expires_at <= now
        ):
            return EXPIRED
        return self.status

    def leased_at(self, now: float) -> bool:
        return self.lease_until is not None and self.lease_until > now

    def describe(self, now: float) -> dict[str, Any]:
        """The public view of a pairing: everything but token material."""
        status = self.status_at(now)
        view: dict[str, Any] = {
            "tenant": self.tenant,
            "customer": self.customer,
            "status": status,
            "scope": self.scope,
            "folders": self.folders,
            "endpoint": self.endpoint,
            "access_token_expires_at": iso(self.access_token_expires_at),
            "refresh_token_expires_at": iso(self.refresh_token_expires_at),
            "paired_at": iso(self.paired_at),
            "refreshed_at": iso(self.refreshed_at),
        }
        if status != ACTIVE:
            refusal = self.last_refusal
            view["last_refusal"] = (
                {"at": iso(refusal.at), "status": refusal.status, "message": refusal.message}
                if refusal
                else None
            )
            view["next_attempt_at"] = iso(self.next_attempt_at) if status == SUSPENDED else None
        return view


def _num(item: dict[str, Any], name: str) -> float | None:
    return float(item[name]["N"]) if name in item else None


def _str(item: dict[str, Any], name: str) -> str | None:
    return item[name]["S"] if name in item else None


def _pairing(item: dict[str, Any]) -> Pairing:
    return Pairing(
        tenant=item["tenant"]["S"],
        customer=item["customer"]["S"],
        endpoint=item["endpoint"]["S"],
        scope=_str(item, "scope") or "",
        status=item["status"]["S"],
        version=int(item["version"]["N"]),
        access_token=_str(item, "access_token"),
        refresh_token=_str(item, "refresh_token"),
        access_token_expires_at=_num(item, "access_token_expires_epoch"),
        refresh_token_expires_at=_num(item, "refresh_token_expires_epoch"),
        paired_at=_num(item, "paired_at"),
        refreshed_at=_num(item, "refreshed_at"),
        lease_owner=_str(item, "lease_owner"),
        lease_until=_num(item, "lease_until"),
        refresh_failed_at=_num(item, "refresh_failed_at"),
        refresh_timed_out_at=_num(item, "refresh_timed_out_at"),
        generation=_str(item, "generation") or "",
        reason=_str(item, "reason"),
        suspended_at=_num(item, "suspended_at"),
        expired_at=_num(item, "expired_at"),
        next_attempt_at=_num(item, "next_attempt_at"),
        last_refusal=_refusal(item),
        refusal_count=int(_num(item, "refusal_count") or 0),
    )


def _refusal(item: dict[str, Any]) -> Refusal | None:
    at, status = _num(item, "last_refusal_at"), _num(item, "last_refusal_status")
    if at is None or status is None:
        return None
    return Refusal(at=at, status=int(status), message=_str(item, "last_refusal_message") or "")


def _tokens(tokens: TokenSet) -> dict[str, dict[str, str]]:
    return {
        ":access": {"S": tokens.access_token},
        ":refresh": {"S": tokens.refresh_token},
        ":access_exp": {"N": repr(tokens.access_token_expires_at)},
        ":refresh_exp": {"N": repr(tokens.refresh_token_expires_at)},
    }


_SET_TOKENS = (
    "access_token = :access, refresh_token = :refresh, access_token_expires_epoch = :access_exp, "
    "refresh_token_expires_epoch = :refresh_exp"
)
_NAMES = {"#status": "status", "#version": "version"}
# Everything a status other than `active` carries, dropped when tokens are stored again.
_TROUBLE = (
    "lease_owner, lease_until, refresh_failed_at, refresh_timed_out_at, suspended_at, expired_at, "
    "next_attempt_at, last_refusal_at, last_refusal_status, last_refusal_message, refusal_count"
)


def _fence(generation: str, version: int) -> tuple[str, dict[str, dict[str, str]]]:
    """The condition that pins a write to one pairing (its generation) at one token version."""
    values = {":version": {"N": str(version)}}
    if not generation:
        return "attribute_not_exists(generation) AND #version = :version", values
    return "generation = :generation AND #version = :version", {**values, ":generation": {"S": generation}}


def _refusal_values(refusal: Refusal) -> dict[str, dict[str, str]]:
    return {
        ":refused_at": {"N": repr(refusal.at)},
        ":refused_status": {"N": str(refusal.status)},
        ":refused_message": {"S": refusal.message or "no message"},
    }


_SET_REFUSAL = (
    "last_refusal_at = :refused_at, last_refusal_status = :refused_status, "
    "last_refusal_message = :refused_message"
)


class TokenStore:
    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table = table_name
        self._db = dynamodb

    @property
    def _conditional_failed(self) -> type[Exception]:
        failed: type[Exception] = self._db.exceptions.ConditionalCheckFailedException
        return failed

    def get(self, tenant: str) -> Pairing | None:
        item = self._db.get_item(TableName=self._table, Key={"tenant": {"S": tenant}}, ConsistentRead=True)
        return _pairing(item["Item"]) if "Item" in item else None

    def get_with(self, tenant: str, other_key: str) -> tuple[Pairing | None, dict[str, Any] | None]:
        """The pairing and one more item of the table (the app's breaker), in one request."""
        keys = [{"tenant": {"S": tenant}}, {"tenant": {"S": other_key}}]
        answer = self._db.batch_get_item(RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}})
        items = {item["tenant"]["S"]: item for item in answer.get("Responses", {}).get(self._table, [])}
        for key in answer.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", []):
            item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
            if item:
                items[item["tenant"]["S"]] = item
        return (_pairing(items[tenant]) if tenant in items else None), items.get(other_key)

    def _update(self, tenant: str, **kwargs: Any) -> dict[str, Any] | None:
        """One conditional UpdateItem; None when its condition failed."""
        try:
            answer: dict[str, Any] = self._db.update_item(
                TableName=self._table, Key={"tenant": {"S": tenant}}, **kwargs
            )
        except self._conditional_failed:
            return None
        return answer

    def save_pairing(
        self, tenant: str, customer: str, endpoint: str, tokens: TokenSet, now: float
    ) -> Pairing:
        """Store a new grant as a new generation, replacing any earlier pairing of the tenant."""
        item = self._db.update_item(
            TableName=self._table,
            Key={"tenant": {"S": tenant}},
            UpdateExpression="SET customer = :customer, endpoint = :endpoint, #scope = :scope, "
            f"#status = :active, {_SET_TOKENS}, paired_at = :now, generation = :generation, "
            "reason = :paired, #version = if_not_exists(#version, :zero) + :one "
            f"REMOVE refreshed_at, {_TROUBLE}",
            ExpressionAttributeNames={**_NAMES, "#scope": "scope"},
            ExpressionAttributeValues={
                ":customer": {"S": customer},
                ":endpoint": {"S": endpoint},
                ":scope": {"S": tokens.scope},
                ":active": {"S": ACTIVE},
                ":now": {"N": repr(now)},
                ":generation": {"S": secrets.token_hex(16)},
                ":paired": {"S": "paired"},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                **_tokens(tokens),
            },
            ReturnValues="ALL_NEW",
        )
        return _pairing(item["Attributes"])

    def try_lease(self, pairing: Pairing, owner: str, now: float, until: float) -> bool:
        """Take the right to spend this version's refresh token; False when someone else holds it.

        `owner` names one attempt, so a retried write whose first answer was lost finds its own lease.
        """
        fence, values = _fence(pairing.generation, pairing.version)
        return (
            self._update(
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
            )
            is not None
        )

    def release_lease(self, tenant: str, owner: str, failed_at: float, *, maybe_applied: bool) -> None:
        """Give the lease back after a failed refresh, noting the failure so waiters don't pile on Sage.

        `maybe_applied`: the token call was sent and its answer never came, so Sage may have rotated the
        token; the refusal that follows is then judged as that loss, not as the customer's doing.
        """
        timed_out = ", refresh_timed_out_at = :failed" if maybe_applied else ""
        self._update(
            tenant,
            UpdateExpression=f"SET refresh_failed_at = :failed{timed_out} REMOVE lease_owner, lease_until",
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeValues={":owner": {"S": owner}, ":failed": {"N": repr(failed_at)}},
        )

    def commit_refresh(
        self,
        tenant: str,
        generation: str,
        expected_version: int,
        tokens: TokenSet,
        now: float,
        *,
        reason: str | None = None,
    ) -> Pairing | None:
        """Store rotated tokens over `expected_version` of this generation; None when it moved on.

        The pairing is `active` afterwards whatever it was: Sage has just honoured its grant. `reason`
        says why when that is a change of status.
        """
        fence, values = _fence(generation, expected_version)
        names = {"#version": "version", "#status": "status"}
        updates = f"SET {_SET_TOKENS}, refreshed_at = :now, #version = #version + :one, #status = :active"
        values.update(
            {":now": {"N": repr(now)}, ":one": {"N": "1"}, ":active": {"S": ACTIVE}, **_tokens(tokens)}
        )
        if tokens.scope:
            updates += ", #scope = :scope"
            names["#scope"] = "scope"
            values[":scope"] = {"S": tokens.scope}
        if reason:
            updates += ", reason = :reason"
            values[":reason"] = {"S": reason}
        item = self._update(
            tenant,
            UpdateExpression=f"{updates} REMOVE {_TROUBLE}",
            ConditionExpression=fence,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return _pairing(item["Attributes"]) if item else None

    def suspend(
        self, pairing: Pairing, refusal: Refusal, next_attempt_at: float, reason: str, owner: str
    ) -> bool:
        """Keep the grant and retry later: Sage refused it, but may yet honour it (or the reply was lost)."""
        fence, values = _fence(pairing.generation, pairing.version)
        return (
            self._update(
                pairing.tenant,
                UpdateExpression=f"SET #status = :suspended, reason = :reason, {_SET_REFUSAL}, "
                "suspended_at = if_not_exists(suspended_at, :refused_at), next_attempt_at = :next, "
                "refusal_count = if_not_exists(refusal_count, :zero) + :one "
                "REMOVE lease_owner, lease_until, refresh_timed_out_at",
                ConditionExpression=f"{fence} AND #status <> :expired AND lease_owner = :owner",
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={
                    **values,
                    **_refusal_values(refusal),
                    ":suspended": {"S": SUSPENDED},
                    ":expired": {"S": EXPIRED},
                    ":reason": {"S": reason},
                    ":next": {"N": repr(next_attempt_at)},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":owner": {"S": owner},
                },
            )
            is not None
        )

    def mark_expired(self, pairing: Pairing, refusal: Refusal, reason: str, owner: str) -> bool:
        """Flip to expired, keeping the last refresh token; True only for the caller that flipped it."""
        fence, values = _fence(pairing.generation, pairing.version)
        return (
            self._update(
                pairing.tenant,
                UpdateExpression=f"SET #status = :expired, expired_at = :refused_at, reason = :reason, "
                f"{_SET_REFUSAL} REMOVE lease_owner, lease_until, next_attempt_at, refresh_timed_out_at",
                ConditionExpression=f"{fence} AND #status <> :expired AND lease_owner = :owner",
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={
                    **values,
                    **_refusal_values(refusal),
                    ":expired": {"S": EXPIRED},
                    ":reason": {"S": reason},
                    ":owner": {"S": owner},
                },
            )
            is not None
        )

    def note_refusal(self, pairing: Pairing, refusal: Refusal, owner: str) -> None:
        """An expired pairing that an operator retried was refused again: record it, change nothing else."""
        fence, values = _fence(pairing.generation, pairing.version)
        self._update(
            pairing.tenant,
            UpdateExpression=f"SET {_SET_REFUSAL} REMOVE lease_owner, lease_until",
            ConditionExpression=f"{fence} AND lease_owner = :owner",
            ExpressionAttributeNames={"#version": "version"},
            ExpressionAttributeValues={**values, **_refusal_values(refusal), ":owner": {"S": owner}},
        )

    def delete(self, tenant: str) -> bool:
        old = self._db.delete_item(
            TableName=self._table, Key={"tenant": {"S": tenant}}, ReturnValues="ALL_OLD"
        )
        return "Attributes" in old

    def tenants_with_status(self, status: str, refresh_expires_before: float | None = None) -> Iterator[str]:
        """Tenants in one status, through the index (never a scan); optionally only those due for refresh."""
        condition = "#status = :status"
        values: dict[str, dict[str, str]] = {":status": {"S": status}}
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
                yield item["tenant"]["S"]

    def due_for_refresh(self, cutoff: float) -> Iterator[str]:
        """Tenants of active pairings whose refresh token expires before `cutoff`."""
        return self.tenants_with_status(ACTIVE, cutoff)
