"""The only code that speaks DynamoDB about pairings' tokens: PairingRecords (records.py:
reads, indexes, deletes, the lease) plus the writes that seal tokens or change a pairing's status.

Every change is conditional on the item's `version`, so a refresh, a re-pairing and an expiry can never
overwrite one another, and a refresh lease lets one worker at a time spend a pairing's refresh token.

The tokens are stored sealed (`sealed_tokens`, see sealing.py), never in plain text, and bound to the
pairing they belong to (generation, gateway, X3 identity). A pairing read from the table carries them
sealed: `open` opens them, so a read that needs only the pairing's state makes no KMS call, and a store built
without a sealer (TenantsFunction's) can never open them. An item without a sealed blob, or with one sealed
for another pairing, is unreadable: nothing in a row is used as a token unless it opens as this pairing's.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import replace as _with_fields

# Any: DynamoDB items and expression values whose attributes are of mixed types.
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from x3link.errors import ConfigurationError, SealedTokensUnreadable
from x3link.sage.oauth import TokenSet, X3Identity
from x3link.tokens.items import (
    NAMES,
    SET_REFUSAL,
    SET_TOKENS,
    TROUBLE,
    pairing_from_item,
    refusal_values,
    version_fence,
)
from x3link.tokens.model import ACTIVE, EXPIRED, SUSPENDED, Pairing, Refusal, seal_binding
from x3link.tokens.records import PairingRecords

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from x3link.tokens.sealing import TokenSealer

logger = Logger(child=True)


class TokenStore(PairingRecords):
    """The pairings table with their tokens: sealed writes fenced on generation and version, the refresh
    lease, and the refusals recorded."""

    def __init__(self, table_name: str, dynamodb: DynamoDBClient, sealer: TokenSealer | None = None) -> None:
        """`sealer` None: a store that reads and deletes pairings but never opens or stores tokens."""
        super().__init__(table_name, dynamodb)
        self._sealer = sealer

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

    def data_keys(self, tenants: list[str]) -> dict[str, bytes]:
        """Each tenant's encrypted data key (100 at most), for a worker to open beside its lease: one read."""
        from x3link.tokens.sealing import encrypted_data_key

        keys = {tenant: encrypted_data_key(blob) for tenant, blob in self.sealed_blobs(tenants).items()}
        return {tenant: key for tenant, key in keys.items() if key is not None}

    def start_opening(self, tenant: str, encrypted_key: bytes) -> None:
        """Have KMS open this data key of the tenant's on a side thread, for the `open` that follows."""
        self._require_sealer().start_opening(tenant, encrypted_key)

    def stop_opening(self, tenant: str, encrypted_key: bytes) -> None:
        self._require_sealer().stop_opening(tenant, encrypted_key)

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
        """What `SET_TOKENS` writes: the tokens sealed for this pairing, and their expiries."""
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
            pairing_from_item(item), access_token=tokens.access_token, refresh_token=tokens.refresh_token
        )

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
        names = {**NAMES, "#scope": "scope"}
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
            f"#status = :active, {SET_TOKENS}, paired_at = :now, generation = :generation, "
            "reason = :paired, #version = if_not_exists(#version, :zero) + :one"
        )
        removed = f"refreshed_at, {TROUBLE}"
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
        fence, values = version_fence(pairing.generation, pairing.version)
        names = {"#version": "version", "#status": "status"}
        updates = f"SET {SET_TOKENS}, refreshed_at = :now, #version = #version + :one, #status = :active"
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
            UpdateExpression=f"{updates} REMOVE {TROUBLE}",
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
        fence, values = version_fence(pairing.generation, pairing.version)
        return (
            self._update(
                pairing.tenant,
                UpdateExpression=f"SET #status = :suspended, reason = :reason, {SET_REFUSAL}, "
                "suspended_at = if_not_exists(suspended_at, :refused_at), next_attempt_at = :next, "
                "refusal_count = if_not_exists(refusal_count, :zero) + :one, suspended_version = :cv "
                "REMOVE lease_owner, lease_until, refresh_timed_out_at, held_at",
                ConditionExpression=f"{fence} AND #status <> :expired AND lease_owner = :owner",
                ExpressionAttributeNames=NAMES,
                ExpressionAttributeValues={
                    **values,
                    **refusal_values(refusal),
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
        fence, values = version_fence(pairing.generation, pairing.version)
        return (
            self._update(
                pairing.tenant,
                UpdateExpression=f"SET held_at = if_not_exists(held_at, :refused_at), {SET_REFUSAL} "
                "REMOVE lease_owner, lease_until",
                ConditionExpression=f"{fence} AND lease_owner = :owner",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={**values, **refusal_values(refusal), ":owner": {"S": owner}},
            )
            is not None
        )

    def mark_expired(self, pairing: Pairing, refusal: Refusal, reason: str, owner: str) -> bool:
        """Flip to expired, keeping the last refresh token; True only for the caller that flipped it."""
        fence, values = version_fence(pairing.generation, pairing.version)
        return (
            self._update(
                pairing.tenant,
                UpdateExpression=f"SET #status = :expired, expired_at = :refused_at, reason = :reason, "
                f"{SET_REFUSAL} REMOVE lease_owner, lease_until, next_attempt_at, refresh_timed_out_at, "
                "held_at",
                ConditionExpression=f"{fence} AND #status <> :expired AND lease_owner = :owner",
                ExpressionAttributeNames=NAMES,
                ExpressionAttributeValues={
                    **values,
                    **refusal_values(refusal),
                    ":expired": {"S": EXPIRED},
                    ":reason": {"S": reason},
                    ":owner": {"S": owner},
                },
            )
            is not None
        )

    def note_refusal(self, pairing: Pairing, refusal: Refusal, owner: str) -> None:
        """An expired pairing that an operator retried was refused again: record it, change nothing else."""
        fence, values = version_fence(pairing.generation, pairing.version)
        self._update(
            pairing.tenant,
            UpdateExpression=f"SET {SET_REFUSAL} REMOVE lease_owner, lease_until",
            ConditionExpression=f"{fence} AND lease_owner = :owner",
            ExpressionAttributeNames={"#version": "version"},
            ExpressionAttributeValues={**values, **refusal_values(refusal), ":owner": {"S": owner}},
        )
