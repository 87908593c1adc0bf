"""The only code that speaks DynamoDB about pairings and their tokens.

Every change is conditional on the item's `version`, so a refresh, a re-pairing and an expiry can never
overwrite one another, and a refresh lease lets one worker at a time spend a pairing's refresh token.

The tokens are stored sealed (`sealed_tokens`, see x3link/sealing.py), never in plain text, and bound to the
pairing they belong to (generation, gateway, X3 identity). A pairing read from the table carries them
sealed: `open` opens them, so a read that needs only the pairing's state makes no KMS call, and a store built
without a sealer (TenantsFunction's) can never open them. An item without a sealed blob, or with one sealed
for another pairing, is unreadable: nothing in a row is used as a token unless it opens as this pairing's.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace as _with_fields
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from x3link.dynamo_attrs import b_or_none, n, n_or_none, s, s_or_none
from x3link.errors import ConfigurationError, SealedTokensUnreadable
from x3link.oauth import TokenSet, X3Identity
from x3link.pairings import ACTIVE, EXPIRED, SUSPENDED, Lease, Pairing, PairingRef, Refusal, seal_binding

EXPIRY_INDEX = "by-refresh-expiry"
CUSTOMER_INDEX = "by-customer"  # customer → tenant, endpoint, status: whom a notification is for

if TYPE_CHECKING:
    from x3link.sealing import TokenSealer

logger = Logger(child=True)


def _leased(old: dict[str, Any], owner: str) -> Lease:
    """A lease just taken, from the item as it was before the write (ALL_OLD)."""
    holder = s_or_none(old, "lease_owner")
    before = _pairing(old) if _is_pairing(old) else None
    return Lease(taken=True, lapsed=holder is not None and holder != owner, before=before)


def _pairing(item: dict[str, Any]) -> Pairing:
    return Pairing(
        tenant=s(item, "tenant"),
        customer=s(item, "customer"),
        endpoint=s(item, "endpoint"),
        scope=s_or_none(item, "scope") or "",
        status=s(item, "status"),
        version=int(n(item, "version")),
        sealed_tokens=b_or_none(item, "sealed_tokens"),
        access_token_expires_at=n_or_none(item, "access_token_expires_epoch"),
        refresh_token_expires_at=n_or_none(item, "refresh_token_expires_epoch"),
        paired_at=n_or_none(item, "paired_at"),
        refreshed_at=n_or_none(item, "refreshed_at"),
        lease_owner=s_or_none(item, "lease_owner"),
        lease_until=n_or_none(item, "lease_until"),
        refresh_failed_at=n_or_none(item, "refresh_failed_at"),
        refresh_timed_out_at=n_or_none(item, "refresh_timed_out_at"),
        generation=s_or_none(item, "generation") or "",
        reason=s_or_none(item, "reason"),
        suspended_at=n_or_none(item, "suspended_at"),
        expired_at=n_or_none(item, "expired_at"),
        next_attempt_at=n_or_none(item, "next_attempt_at"),
        last_refusal=_refusal(item),
        refusal_count=int(n_or_none(item, "refusal_count") or 0),
        x3_identity=_identity(item),
        held_at=n_or_none(item, "held_at"),
        suspended_version=s_or_none(item, "suspended_version"),
    )


def _identity(item: dict[str, Any]) -> X3Identity | None:
    issuer, subject = s_or_none(item, "x3_issuer"), s_or_none(item, "x3_subject")
    return X3Identity(issuer=issuer, subject=subject) if issuer and subject else None


def _refusal(item: dict[str, Any]) -> Refusal | None:
    at, status = n_or_none(item, "last_refusal_at"), n_or_none(item, "last_refusal_status")
    if at is None or status is None:
        return None
    return Refusal(at=at, status=int(status), message=s_or_none(item, "last_refusal_message") or "")


_SET_TOKENS = (
    "sealed_tokens = :sealed, access_token_expires_epoch = :access_exp, "
    "refresh_token_expires_epoch = :refresh_exp"
)
_NAMES = {"#status": "status", "#version": "version"}
# Everything a status other than `active` carries, dropped when tokens are stored again.
_TROUBLE = (
    "lease_owner, lease_until, refresh_failed_at, refresh_timed_out_at, suspended_at, expired_at, "
    "next_attempt_at, last_refusal_at, last_refusal_status, last_refusal_message, refusal_count, held_at, "
    "suspended_version"
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

# What a pairing's public view (Pairing.describe) reads: a listing never has a token leave the table.
_METADATA = (
    "tenant",
    "customer",
    "endpoint",
    "scope",
    "status",
    "version",
    "access_token_expires_epoch",
    "refresh_token_expires_epoch",
    "paired_at",
    "refreshed_at",
    "next_attempt_at",
    "last_refusal_at",
    "last_refusal_status",
    "last_refusal_message",
)
_METADATA_NAMES = {f"#m{number}": name for number, name in enumerate(_METADATA)}
_METADATA_READ = {
    "ProjectionExpression": ", ".join(_METADATA_NAMES),
    "ExpressionAttributeNames": _METADATA_NAMES,
}
_BATCH_ROUNDS = 3


def _is_pairing(item: dict[str, Any]) -> bool:
    """A pairing's item, not another item the table keeps (the app breaker's `~app`)."""
    return all(name in item for name in ("tenant", "customer", "endpoint", "status", "version"))


class TokenStore:
    def __init__(self, table_name: str, dynamodb: Any, sealer: TokenSealer | None = None) -> None:
        """`sealer` None: a store that reads and deletes pairings but never opens or stores tokens."""
        self._table = table_name
        self._db = dynamodb
        self._sealer = sealer

    # ------------------------------------------------------------------ sealed tokens
    def open(self, pairing: Pairing) -> Pairing:
        """The pairing with its tokens opened: no KMS call when this environment holds the data key.

        Raises SealedTokensUnreadable when the item holds none, or they were not sealed for this pairing
        (nothing is changed), and lets KMS's own failures through.
        """
        if pairing.access_token is not None and pairing.refresh_token is not None:
            return pairing  # opened already, or just stored
        if pairing.sealed_tokens is None:
            logger.critical("A pairing holds no sealed tokens: refused", extra={"tenant": pairing.tenant})
            raise SealedTokensUnreadable()
        fields = self._require_sealer().open(pairing.tenant, pairing.sealed_tokens, pairing.binding())
        access, refresh = fields.get("access_token"), fields.get("refresh_token")
        if not (access and refresh):
            raise SealedTokensUnreadable()
        return _with_fields(pairing, access_token=access, refresh_token=refresh)

    def prepare_to_seal(self, tenant: str, valid_for: float) -> None:
        """Make sure that sealing the tenant's tokens within `valid_for` seconds needs no KMS call."""
        self._require_sealer().prepare(tenant, valid_for)

    def _require_sealer(self) -> TokenSealer:
        if self._sealer is None:
            raise ConfigurationError("This function neither opens nor stores pairing tokens.")
        return self._sealer

    def _token_values(
        self, tenant: str, tokens: TokenSet, binding: Mapping[str, str]
    ) -> dict[str, dict[str, Any]]:
        """What `_SET_TOKENS` writes: the tokens sealed for this pairing, and their expiries."""
        blob = self._require_sealer().seal(
            tenant, {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token}, binding
        )
        return {
            ":sealed": {"B": blob},
            ":access_exp": {"N": repr(tokens.access_token_expires_at)},
            ":refresh_exp": {"N": repr(tokens.refresh_token_expires_at)},
        }

    @staticmethod
    def _with_tokens(item: dict[str, Any], tokens: TokenSet) -> Pairing:
        """The pairing a write that stored `tokens` answered, with those tokens in hand (nothing to open)."""
        return _with_fields(
            _pairing(item), access_token=tokens.access_token, refresh_token=tokens.refresh_token
        )

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
        items = {s(item, "tenant"): item for item in answer.get("Responses", {}).get(self._table, [])}
        for key in answer.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", []):
            item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
            if item:
                items[s(item, "tenant")] = item
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
        self,
        tenant: str,
        customer: str,
        endpoint: str,
        tokens: TokenSet,
        now: float,
        *,
        identity: X3Identity | None = None,
        replace: bool = False,
    ) -> Pairing | None:
        """Store a new grant as a new generation, replacing any earlier pairing of the tenant.

        Unless `replace`, only a pairing with the same X3 identity (or none recorded) is replaced: None when
        the tenant is paired with another X3, and nothing is written.
        """
        names = {**_NAMES, "#scope": "scope"}
        generation = secrets.token_hex(16)
        values: dict[str, dict[str, str]] = {
            ":customer": {"S": customer},
            ":endpoint": {"S": endpoint},
            ":scope": {"S": tokens.scope},
            ":active": {"S": ACTIVE},
            ":now": {"N": repr(now)},
            ":generation": {"S": generation},
            ":paired": {"S": "paired"},
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            **self._token_values(tenant, tokens, seal_binding(generation, endpoint, identity)),
        }
        updates = (
            "SET customer = :customer, endpoint = :endpoint, #scope = :scope, "
            f"#status = :active, {_SET_TOKENS}, paired_at = :now, generation = :generation, "
            "reason = :paired, #version = if_not_exists(#version, :zero) + :one"
        )
        removed = f"refreshed_at, {_TROUBLE}"
        if identity:
            updates += ", x3_issuer = :issuer, x3_subject = :subject"
            values.update({":issuer": {"S": identity.issuer}, ":subject": {"S": identity.subject}})
        else:
            removed += ", x3_issuer, x3_subject"
        condition: dict[str, Any] = {}
        if not replace:
            same = " OR (x3_issuer = :issuer AND x3_subject = :subject)" if identity else ""
            condition["ConditionExpression"] = f"attribute_not_exists(x3_subject){same}"
        item = self._update(
            tenant,
            UpdateExpression=f"{updates} REMOVE {removed}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            **condition,
        )
        return self._with_tokens(item["Attributes"], tokens) if item else None

    def try_lease(self, pairing: Pairing, owner: str, now: float, until: float) -> Lease:
        """Take the right to spend this version's refresh token, unless someone else holds it.

        `owner` names one attempt, so a retried write whose first answer was lost finds its own lease. The
        answer also says whether another attempt's lease had lapsed there, neither committed nor given back:
        that attempt may have spent the refresh token, and its tokens may be parked.
        """
        fence, values = _fence(pairing.generation, pairing.version)
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
        return _leased(answer.get("Attributes", {}), owner) if answer is not None else Lease(taken=False)

    def lease_if_due(self, tenant: str, owner: str, now: float, until: float, due_before: float) -> Lease:
        """The keep-alive's lease, in one write that is also its read: taken only while the pairing is
        active, holds sealed tokens, has a refresh token expiring before `due_before`, and no other attempt
        holds a lease. Taken or not, the answer carries the pairing as it was (None when there is none), so
        the caller knows why without reading it again.
        """
        try:
            answer: dict[str, Any] = self._db.update_item(
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
            return Lease(taken=False, before=_pairing(item) if item and _is_pairing(item) else None)
        return _leased(answer.get("Attributes", {}), owner)

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

    def commit_refresh(
        self, pairing: Pairing, tokens: TokenSet, now: float, *, reason: str | None = None
    ) -> Pairing | None:
        """Store rotated tokens over the version and generation `pairing` was read at; None when it moved on.

        The tokens are sealed for `pairing` as it was read (its gateway and X3 identity): a row changed
        meanwhile then holds a blob that does not open, never one that serves another pairing. The pairing
        is `active` afterwards whatever it was: Sage has just honoured its grant. `reason` says why when
        that is a change of status.
        """
        tenant = pairing.tenant
        fence, values = _fence(pairing.generation, pairing.version)
        names = {"#version": "version", "#status": "status"}
        updates = f"SET {_SET_TOKENS}, refreshed_at = :now, #version = #version + :one, #status = :active"
        values.update(
            {
                ":now": {"N": repr(now)},
                ":one": {"N": "1"},
                ":active": {"S": ACTIVE},
                **self._token_values(tenant, tokens, pairing.binding()),
            }
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
        return self._with_tokens(item["Attributes"], tokens) if item else None

    def suspend(
        self,
        pairing: Pairing,
        refusal: Refusal,
        next_attempt_at: float,
        reason: str,
        owner: str,
        credentials_version: str,
    ) -> bool:
        """Keep the grant and retry later: Sage refused it, but may yet honour it (or the reply was lost).

        `credentials_version` is the secret it was refused under: a new one makes it due again at once.
        """
        fence, values = _fence(pairing.generation, pairing.version)
        return (
            self._update(
                pairing.tenant,
                UpdateExpression=f"SET #status = :suspended, reason = :reason, {_SET_REFUSAL}, "
                "suspended_at = if_not_exists(suspended_at, :refused_at), next_attempt_at = :next, "
                "refusal_count = if_not_exists(refusal_count, :zero) + :one, suspended_version = :cv "
                "REMOVE lease_owner, lease_until, refresh_timed_out_at, held_at",
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
                    ":cv": {"S": credentials_version},
                },
            )
            is not None
        )

    def hold(self, pairing: Pairing, refusal: Refusal, owner: str) -> bool:
        """A refusal with no evidence yet of what it means: note it (and when the first such one came), give
        the lease back, and change nothing else: the pairing keeps its status."""
        fence, values = _fence(pairing.generation, pairing.version)
        return (
            self._update(
                pairing.tenant,
                UpdateExpression=f"SET held_at = if_not_exists(held_at, :refused_at), {_SET_REFUSAL} "
                "REMOVE lease_owner, lease_until",
                ConditionExpression=f"{fence} AND lease_owner = :owner",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={**values, **_refusal_values(refusal), ":owner": {"S": owner}},
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
                f"{_SET_REFUSAL} REMOVE lease_owner, lease_until, next_attempt_at, refresh_timed_out_at, "
                "held_at",
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

    # ------------------------------------------------------------------ listing (metadata only)
    def scan_pairings(
        self, limit: int, start: dict[str, Any] | None = None
    ) -> tuple[list[Pairing], dict[str, Any] | None]:
        """Up to `limit` items of the table, as pairings without their tokens (other items skipped), and
        where the scan stopped (None at the end)."""
        answer = self._db.scan(
            TableName=self._table,
            Limit=limit,
            ConsistentRead=True,
            **_METADATA_READ,
            **({"ExclusiveStartKey": start} if start else {}),
        )
        pairings = [_pairing(item) for item in answer.get("Items", []) if _is_pairing(item)]
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
        values: dict[str, dict[str, str]] = {":status": {"S": status}}
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
            **({"ExclusiveStartKey": start} if start else {}),
        )
        return [s(item, "tenant") for item in answer.get("Items", [])], answer.get("LastEvaluatedKey")

    def get_pairings(self, tenants: list[str]) -> list[Pairing]:
        """The pairings of these tenants (100 at most), without their tokens, in order; gone ones left out."""
        if not tenants:
            return []
        found: dict[str, Pairing] = {}
        keys: list[dict[str, Any]] = [{"tenant": {"S": tenant}} for tenant in dict.fromkeys(tenants)]
        for _ in range(_BATCH_ROUNDS):
            answer = self._db.batch_get_item(
                RequestItems={self._table: {"Keys": keys, "ConsistentRead": True, **_METADATA_READ}}
            )
            for item in answer.get("Responses", {}).get(self._table, []):
                if _is_pairing(item):
                    found[s(item, "tenant")] = _pairing(item)
            keys = answer.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", [])
            if not keys:
                break
        for key in keys:  # still throttled after the rounds: one at a time
            item = self._db.get_item(
                TableName=self._table, Key=key, ConsistentRead=True, **_METADATA_READ
            ).get("Item")
            if item and _is_pairing(item):
                found[s(item, "tenant")] = _pairing(item)
        return [found[tenant] for tenant in dict.fromkeys(tenants) if tenant in found]

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
