"""Pending pairings: first a pairing link (days), then, once a browser opens it, a state (minutes).

Both are single use and keyed by a hash, so reading the table yields neither a usable link nor a usable
callback. A state remembers the digest of the cookie that binds it to its browser and, once its pairing
has completed, what it paired, so that reloading the success page shows the success page again.

A link is kept after it is opened, used or revoked, for operators (GET /pairings): opening marks it
`opened_at`, the callback that spends its state marks it `used_at`, DELETE /pairings/{id} marks it
`revoked_at`, and a link so marked never opens again. Its public id is the SHA-256 of its secret, the hash
its key already holds: the secret is 256 random bits, so the hash gives nothing that opens the link (GET
/pair/{hash} hashes it again and finds nothing), and revoking needs no lookup. Only links carry
`link_list`, the one value of the states table's sparse `by-link-created` index. A link is kept
`LINK_KEPT_SECONDS` past its expiry (`link_expires_at`; TTL removes it after that).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

# Any: DynamoDB items whose attributes are of mixed types; the listing's JSON.
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from x3link.aws.dynamo_attrs import flag, n, s, s_or_none, strings
from x3link.errors import BrowserMismatch, InvalidState, LinkNotFound, LinkUsed, PairingLinkInvalid
from x3link.pairing import browser_binding

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import QueryInputTypeDef

STATE_BYTES = 32  # 256 random bits
LINK_BYTES = 32
# How long a completed state is kept so that reloading the success page still shows it.
COMPLETED_KEPT_SECONDS = 3600
# How long a link is listed after it expires (then TTL removes it), whatever became of it.
LINK_KEPT_SECONDS = 30 * 86400
LINK_LIST, LINK_INDEX = "links", "by-link-created"
LINK_PUBLIC_ID = re.compile(r"[0-9a-f]{64}")
# What the link listing reads of a link (the index holds these): never a state's binding.
LINK_ATTRIBUTES = ("state_hash", "link_list", "created_at", "tenant", "customer", "link_expires_at")
LINK_MARKS = ("opened_at", "used_at", "revoked_at")


@dataclass(frozen=True)
class PendingPairing:
    tenant: str
    customer: str
    scope: str
    redirect_uri: str
    created_at: float
    expires_at: float
    replace: bool = False
    link: str | None = None  # a state's link: its public id, marked used when the state is spent


@dataclass(frozen=True)
class Paired:
    """What a completed state paired: the tenant, its folders, and the X3 it reached through which gateway."""

    tenant: str
    folders: list[str]
    endpoint: str = ""
    x3_issuer: str | None = None
    x3_subject: str | None = None


class AlreadyCompleted(Exception):
    """The state's pairing has completed already: the same browser sees its success page again."""

    def __init__(self, paired: Paired) -> None:
        super().__init__("This pairing has already completed.")
        self.paired = paired


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _link_key(link_id: str) -> dict[str, dict[str, str]]:
    return _public_key(_hash(link_id))


def _public_key(public_id: str) -> dict[str, dict[str, str]]:
    # A state's key is bare hex: the prefix keeps a link's and a state's keys apart.
    return {"state_hash": {"S": "link:" + public_id}}


def _state_key(state: str) -> dict[str, dict[str, str]]:
    return {"state_hash": {"S": _hash(state)}}


def _item(pending: PendingPairing) -> dict[str, dict[str, Any]]:
    return {
        "tenant": {"S": pending.tenant},
        "customer": {"S": pending.customer},
        "scope": {"S": pending.scope},
        "redirect_uri": {"S": pending.redirect_uri},
        "replace": {"BOOL": pending.replace},
        "created_at": {"N": repr(pending.created_at)},
        "expires_epoch": {"N": str(int(pending.expires_at))},
        **({"link": {"S": pending.link}} if pending.link else {}),
    }


def _pending(item: dict[str, Any]) -> PendingPairing:
    # A link's own expiry is `link_expires_at` (its TTL is later); a state's, and an older link's, the TTL.
    return PendingPairing(
        tenant=s(item, "tenant"),
        customer=s(item, "customer"),
        scope=s(item, "scope"),
        redirect_uri=s(item, "redirect_uri"),
        created_at=n(item, "created_at"),
        expires_at=n(item, "link_expires_at" if "link_expires_at" in item else "expires_epoch"),
        replace=flag(item, "replace"),
        link=s_or_none(item, "link"),
    )


class PairingStates:
    def __init__(
        self,
        table_name: str,
        dynamodb: DynamoDBClient,
        *,
        token: Callable[[int], str] = secrets.token_urlsafe,
    ) -> None:
        self._table = table_name
        self._db = dynamodb
        self._token = token

    @property
    def _conditional_failed(self) -> type[Exception]:
        failed: type[Exception] = self._db.exceptions.ConditionalCheckFailedException
        return failed

    def create_link(self, pending: PendingPairing) -> str:
        """A pairing link's id; `pending.expires_at` is when the link stops opening."""
        link_id = self._token(LINK_BYTES)
        item = {**_link_key(link_id), **_item(pending)}
        item["link_list"] = {"S": LINK_LIST}
        item["link_expires_at"] = {"N": repr(pending.expires_at)}
        item["expires_epoch"] = {"N": str(int(pending.expires_at + LINK_KEPT_SECONDS))}
        self._db.put_item(
            TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(state_hash)"
        )
        return link_id

    def open_link(self, link_id: str, now: float) -> PendingPairing:
        """Mark the link opened and return what it was made for; a second opening, or one of a revoked or
        expired link, gets PairingLinkInvalid."""
        try:
            item = self._db.update_item(
                TableName=self._table,
                Key=_link_key(link_id),
                UpdateExpression="SET opened_at = :now",
                ConditionExpression=(
                    "attribute_exists(state_hash) AND attribute_not_exists(opened_at)"
                    " AND attribute_not_exists(revoked_at)"
                    " AND (attribute_not_exists(link_expires_at) OR link_expires_at > :now)"
                ),
                ExpressionAttributeValues={":now": {"N": repr(now)}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except self._conditional_failed:
            raise PairingLinkInvalid(
                "The pairing link is unknown, expired, revoked or has already been used."
            ) from None
        pending = _pending(item)
        if pending.expires_at <= now:  # an older link: TTL deletes expired items late, if ever
            raise PairingLinkInvalid("The pairing link has expired.")
        return replace(pending, link=_hash(link_id))

    def revoke_link(self, public_id: str, now: float) -> None:
        """The link never opens again (revoking twice is no error); LinkUsed once it has been opened."""
        if not LINK_PUBLIC_ID.fullmatch(public_id):
            raise LinkNotFound("No pairing link has this id.")
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_public_key(public_id),
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
                ConditionExpression="attribute_exists(state_hash) AND attribute_not_exists(opened_at)",
                ExpressionAttributeValues={":now": {"N": repr(now)}},
            )
        except self._conditional_failed:
            found = self._db.get_item(
                TableName=self._table,
                Key=_public_key(public_id),
                ConsistentRead=True,
                ProjectionExpression="state_hash, opened_at",
            ).get("Item")
            if not found:
                raise LinkNotFound("No pairing link has this id.") from None
            raise LinkUsed(
                "The pairing link has been opened already: revoking it would stop nothing."
            ) from None

    def links_page(
        self, limit: int, start: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Up to `limit` links' items, newest first, from the index; and where the next page starts."""
        names = (*LINK_ATTRIBUTES, *LINK_MARKS)
        params: QueryInputTypeDef = {
            "TableName": self._table,
            "IndexName": LINK_INDEX,
            "KeyConditionExpression": "#link_list = :links",
            "ExpressionAttributeValues": {":links": {"S": LINK_LIST}},
            "ProjectionExpression": ", ".join(f"#{name}" for name in names),
            "ExpressionAttributeNames": {f"#{name}": name for name in names},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start is not None:
            params["ExclusiveStartKey"] = start
        answer = self._db.query(**params)
        return answer.get("Items", []), answer.get("LastEvaluatedKey")

    def create(self, pending: PendingPairing, binding_digest: str | None = None) -> str:
        """A state for this pairing, bound to a browser's cookie when `binding_digest` is given."""
        state = self._token(STATE_BYTES)
        item = {**_state_key(state), **_item(pending)}
        if binding_digest:
            item["binding"] = {"S": binding_digest}
        self._db.put_item(
            TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(state_hash)"
        )
        return state

    def consume(self, state: str, now: float, *, cookie: str | None, bound: bool) -> PendingPairing:
        """Mark the state used and return what it was bound to; it is used once, by its own browser only.

        `bound`: the callback must carry the cookie the state was bound to. A callback without it leaves
        the state untouched, so a forged callback cannot spend the customer's state.
        """
        condition = "attribute_exists(state_hash) AND attribute_not_exists(used_at)"
        values: dict[str, dict[str, str]] = {":now": {"N": repr(now)}}
        if bound:
            condition += " AND binding = :binding"
            values[":binding"] = {"S": browser_binding.digest(cookie or "")}
        try:
            item = self._db.update_item(
                TableName=self._table,
                Key=_state_key(state),
                UpdateExpression="SET used_at = :now",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except self._conditional_failed:
            raise self._refusal(state, cookie, bound=bound) from None
        pending = _pending(item)
        if pending.expires_at <= now:
            raise InvalidState("This pairing link has expired: start the pairing again.")
        if pending.link:
            self._mark_used(pending.link, now)
        return pending

    def _mark_used(self, public_id: str, now: float) -> None:
        """The link's state is spent: its listing says `used` (best effort: it never fails a pairing)."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_public_key(public_id),
                UpdateExpression="SET used_at = if_not_exists(used_at, :now)",
                ConditionExpression="attribute_exists(state_hash)",
                ExpressionAttributeValues={":now": {"N": repr(now)}},
            )
        except (ClientError, BotoCoreError):
            return  # the link expired and was removed, or the table did not answer: the pairing goes on

    def _refusal(self, state: str, cookie: str | None, *, bound: bool) -> Exception:
        """Why a state was not consumed: the binding is judged first, so another browser learns nothing."""
        item = self._db.get_item(TableName=self._table, Key=_state_key(state), ConsistentRead=True).get(
            "Item"
        )
        if not item:
            return InvalidState("This pairing link is unknown or has already been used.")
        if bound and not browser_binding.matches(s_or_none(item, "binding"), cookie):
            return BrowserMismatch("The callback did not come from the browser that opened the pairing link.")
        if "completed_tenant" in item:
            return AlreadyCompleted(
                Paired(
                    s(item, "completed_tenant"),
                    strings(item, "completed_folders"),
                    s_or_none(item, "completed_endpoint") or "",
                    s_or_none(item, "completed_x3_issuer"),
                    s_or_none(item, "completed_x3_subject"),
                )
            )
        return InvalidState("This pairing link has already been used.")

    def record_completion(self, state: str, paired: Paired, now: float) -> None:
        """Remember what the state paired, for a while, so that a reload shows the success page again."""
        updates = "SET completed_tenant = :tenant, completed_folders = :folders, expires_epoch = :kept"
        values: dict[str, dict[str, Any]] = {
            ":tenant": {"S": paired.tenant},
            ":folders": {"L": [{"S": folder} for folder in paired.folders]},
            ":kept": {"N": str(int(now + COMPLETED_KEPT_SECONDS))},
        }
        for name, value in (
            ("endpoint", paired.endpoint),
            ("x3_issuer", paired.x3_issuer),
            ("x3_subject", paired.x3_subject),
        ):
            if value:
                updates += f", completed_{name} = :{name}"
                values[f":{name}"] = {"S": value}
        self._db.update_item(
            TableName=self._table,
            Key=_state_key(state),
            UpdateExpression=updates,
            ConditionExpression="attribute_exists(used_at)",
            ExpressionAttributeValues=values,
        )
