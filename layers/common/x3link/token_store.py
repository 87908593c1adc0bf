"""The only code that speaks DynamoDB about pairings and their tokens.

Every change is conditional on the item's `version`, so a refresh, a re-pairing and an expiry can never
overwrite one another, and a refresh lease lets one worker at a time spend a pairing's refresh token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from x3link.oauth import TokenSet, folders_from_scope

ACTIVE, EXPIRED = "active", "expired"
EXPIRY_INDEX = "by-refresh-expiry"


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Pairing:
    tenant: str
    customer: str
    endpoint: str
    scope: str
    status: str
    version: int
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    access_token_expires_at: float | None = None
    refresh_token_expires_at: float | None = None
    paired_at: float | None = None
    refreshed_at: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    refresh_failed_at: float | None = None

    @property
    def folders(self) -> list[str]:
        return folders_from_scope(self.scope)

    def status_at(self, now: float) -> str:
        if self.status != ACTIVE or not self.refresh_token_expires_at or self.refresh_token_expires_at <= now:
            return EXPIRED
        return ACTIVE

    def leased_at(self, now: float) -> bool:
        return self.lease_until is not None and self.lease_until > now

    def describe(self, now: float) -> dict[str, Any]:
        """The public view of a pairing: everything but token material."""
        return {
            "tenant": self.tenant,
            "customer": self.customer,
            "status": self.status_at(now),
            "scope": self.scope,
            "folders": self.folders,
            "endpoint": self.endpoint,
            "access_token_expires_at": iso(self.access_token_expires_at),
            "refresh_token_expires_at": iso(self.refresh_token_expires_at),
            "paired_at": iso(self.paired_at),
            "refreshed_at": iso(self.refreshed_at),
        }


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
    )


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


class TokenStore:
    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table = table_name
        self._db = dynamodb

    @property
    def _conditional_failed(self) -> type[Exception]:
        return self._db.exceptions.ConditionalCheckFailedException

    def get(self, tenant: str) -> Pairing | None:
        item = self._db.get_item(TableName=self._table, Key={"tenant": {"S": tenant}}, ConsistentRead=True)
        return _pairing(item["Item"]) if "Item" in item else None

    def save_pairing(
        self, tenant: str, customer: str, endpoint: str, tokens: TokenSet, now: float
    ) -> Pairing:
        """Store a new grant, replacing any earlier pairing of the tenant whatever state it was in."""
        item = self._db.update_item(
            TableName=self._table,
            Key={"tenant": {"S": tenant}},
            UpdateExpression="SET customer = :customer, endpoint = :endpoint, #scope = :scope, "
            f"#status = :active, {_SET_TOKENS}, paired_at = :now, "
            "#version = if_not_exists(#version, :zero) + :one "
            "REMOVE refreshed_at, lease_owner, lease_until, refresh_failed_at, expired_at",
            ExpressionAttributeNames={**_NAMES, "#scope": "scope"},
            ExpressionAttributeValues={
                ":customer": {"S": customer},
                ":endpoint": {"S": endpoint},
                ":scope": {"S": tokens.scope},
                ":active": {"S": ACTIVE},
                ":now": {"N": repr(now)},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                **_tokens(tokens),
            },
            ReturnValues="ALL_NEW",
        )
        return _pairing(item["Attributes"])

    def try_lease(self, tenant: str, version: int, owner: str, now: float, until: float) -> bool:
        """Take the right to spend this version's refresh token; False when someone else holds it."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"tenant": {"S": tenant}},
                UpdateExpression="SET lease_owner = :owner, lease_until = :until",
                ConditionExpression="#version = :version AND #status = :active "
                "AND (attribute_not_exists(lease_until) OR lease_until <= :now)",
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":until": {"N": repr(until)},
                    ":version": {"N": str(version)},
                    ":active": {"S": ACTIVE},
                    ":now": {"N": repr(now)},
                },
            )
        except self._conditional_failed:
            return False
        return True

    def release_lease(self, tenant: str, owner: str, failed_at: float) -> None:
        """Give the lease back after a failed refresh, noting the failure so waiters don't pile on Sage."""
        with contextlib.suppress(self._conditional_failed):
            self._db.update_item(
                TableName=self._table,
                Key={"tenant": {"S": tenant}},
                UpdateExpression="SET refresh_failed_at = :failed REMOVE lease_owner, lease_until",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": {"S": owner}, ":failed": {"N": repr(failed_at)}},
            )

    def commit_refresh(
        self, tenant: str, expected_version: int, tokens: TokenSet, now: float
    ) -> Pairing | None:
        """Store rotated tokens over `expected_version`; None when the pairing moved on meanwhile."""
        scope_update = ", #scope = :scope" if tokens.scope else ""
        values = {
            ":version": {"N": str(expected_version)},
            ":now": {"N": repr(now)},
            ":one": {"N": "1"},
            **_tokens(tokens),
        }
        if tokens.scope:
            values[":scope"] = {"S": tokens.scope}
        try:
            item = self._db.update_item(
                TableName=self._table,
                Key={"tenant": {"S": tenant}},
                UpdateExpression=f"SET {_SET_TOKENS}{scope_update}, refreshed_at = :now, "
                "#version = #version + :one "
                "REMOVE lease_owner, lease_until, refresh_failed_at",
                ConditionExpression="#version = :version",
                ExpressionAttributeNames={
                    "#version": "version",
                    **({"#scope": "scope"} if tokens.scope else {}),
                },
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self._conditional_failed:
            return None
        return _pairing(item["Attributes"])

    def mark_expired(self, tenant: str, expected_version: int, now: float) -> bool:
        """Flip an active pairing to expired and drop its dead tokens; True only for the caller that did."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"tenant": {"S": tenant}},
                UpdateExpression="SET #status = :expired, expired_at = :now, #version = #version + :one "
                "REMOVE access_token, refresh_token, lease_owner, lease_until",
                ConditionExpression="#version = :version AND #status = :active",
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={
                    ":expired": {"S": EXPIRED},
                    ":active": {"S": ACTIVE},
                    ":now": {"N": repr(now)},
                    ":one": {"N": "1"},
                    ":version": {"N": str(expected_version)},
                },
            )
        except self._conditional_failed:
            return False
        return True

    def delete(self, tenant: str) -> bool:
        old = self._db.delete_item(
            TableName=self._table, Key={"tenant": {"S": tenant}}, ReturnValues="ALL_OLD"
        )
        return "Attributes" in old

    def due_for_refresh(self, cutoff: float) -> Iterator[str]:
        """Tenants of active pairings whose refresh token expires before `cutoff`."""
        paginator = self._db.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            IndexName=EXPIRY_INDEX,
            KeyConditionExpression="#status = :active AND refresh_token_expires_epoch <= :cutoff",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":active": {"S": ACTIVE}, ":cutoff": {"N": repr(cutoff)}},
        ):
            for item in page.get("Items", []):
                yield item["tenant"]["S"]
