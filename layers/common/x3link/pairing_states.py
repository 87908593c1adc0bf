"""Pending pairings, keyed by a hash of their `state`: single use, short-lived, bound to what was asked.

Only the SHA-256 of a state is stored, so reading the table does not yield a usable callback.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from x3link.errors import InvalidState

STATE_BYTES = 32  # 256 random bits


@dataclass(frozen=True)
class PendingPairing:
    tenant: str
    customer: str
    scope: str
    redirect_uri: str
    created_at: float
    expires_at: float


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class PairingStates:
    def __init__(
        self, table_name: str, dynamodb: Any, *, token: Callable[[int], str] = secrets.token_urlsafe
    ) -> None:
        self._table = table_name
        self._db = dynamodb
        self._token = token

    def create(self, pending: PendingPairing) -> str:
        state = self._token(STATE_BYTES)
        self._db.put_item(
            TableName=self._table,
            Item={
                "state_hash": {"S": _hash(state)},
                "tenant": {"S": pending.tenant},
                "customer": {"S": pending.customer},
                "scope": {"S": pending.scope},
                "redirect_uri": {"S": pending.redirect_uri},
                "created_at": {"N": repr(pending.created_at)},
                "expires_epoch": {"N": str(int(pending.expires_at))},
            },
            ConditionExpression="attribute_not_exists(state_hash)",
        )
        return state

    def consume(self, state: str, now: float) -> PendingPairing:
        """Delete the state and return what it was bound to; a second consumer gets InvalidState."""
        try:
            old = self._db.delete_item(
                TableName=self._table,
                Key={"state_hash": {"S": _hash(state)}},
                ConditionExpression="attribute_exists(state_hash)",
                ReturnValues="ALL_OLD",
            )["Attributes"]
        except self._db.exceptions.ConditionalCheckFailedException:
            raise InvalidState("This pairing link is unknown or has already been used.") from None
        expires_at = float(old["expires_epoch"]["N"])
        if expires_at <= now:
            raise InvalidState("This pairing link has expired: start the pairing again.")
        return PendingPairing(
            tenant=old["tenant"]["S"],
            customer=old["customer"]["S"],
            scope=old["scope"]["S"],
            redirect_uri=old["redirect_uri"]["S"],
            created_at=float(old["created_at"]["N"]),
            expires_at=expires_at,
        )
