"""Each Sage gateway's health and circuit breaker: the evidence refusals are judged by.

A wrong client secret, an unknown client id or a proxy's error page looks, refresh by refresh, like a dead
grant. Judged one pairing at a time, it would end every pairing it touched. So each gateway (the base URL
a pairing's calls go to) has one record in the pairings table, under a key no tenant can take
(`~app:<gateway>`), holding what its token calls have shown with each client credentials version: the
latest success and the latest refusal still held, and whose pairing each was (see refusal_policy.py
for how they are weighed). When the evidence says Sage (or what stands in front of it) refuses the app,
the gateway's breaker opens: no refresh is attempted through it and no pairing changes state, except one
probe per interval, and it closes once a probe succeeds. The moment the credentials in the secret change,
a probe may run at once; and when no other pairing is due, the pairing that opened it may probe too.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

# Any: DynamoDB items and expression values whose attributes are of mixed types.
from typing import TYPE_CHECKING, Any

from x3link.aws.dynamo_attrs import n_or_none, s_or_none
from x3link.refresh.refusal_policy import GatewayEvidence

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY_PREFIX = "~app"  # tenants start with a letter or digit: these keys are never a pairing
OPEN, CLOSED = "open", "closed"


def gateway_key(gateway: str) -> str:
    return f"{KEY_PREFIX}:{gateway}"


@dataclass(frozen=True)
class BreakerView:
    gateway: str = ""
    state: str = CLOSED
    opened_at: float | None = None
    opened_by: str | None = None
    closed_at: float | None = None
    next_probe_at: float | None = None
    rejected_version: str | None = None
    last_status: int | None = None
    last_message: str | None = None
    success_at: float | None = None
    success_by: str | None = None
    success_version: str | None = None
    refusal_at: float | None = None
    refusal_by: str | None = None
    refusal_version: str | None = None

    @property
    def is_open(self) -> bool:
        return self.state == OPEN

    def evidence(self, credentials_version: str) -> GatewayEvidence:
        """What this gateway has shown with these credentials (another version's results say nothing)."""
        same_success = self.success_version == credentials_version
        same_refusal = self.refusal_version == credentials_version
        return GatewayEvidence(
            breaker_open=self.is_open,
            success_at=self.success_at if same_success else None,
            success_by=self.success_by if same_success else None,
            refusal_at=self.refusal_at if same_refusal else None,
            refusal_by=self.refusal_by if same_refusal else None,
            opened_at=self.opened_at,
        )

    def closed_after_refusal(self, refused_at: float, window_seconds: float) -> bool:
        """The breaker closed after `refused_at`, having opened within `window_seconds` after it: that
        refusal was probably the app's trouble too, so its pairing is worth trying again at once."""
        if self.is_open or self.opened_at is None or self.closed_at is None:
            return False
        return self.opened_at - window_seconds <= refused_at < self.closed_at


def _view(gateway: str, item: dict[str, Any]) -> BreakerView:
    def num(name: str) -> float | None:
        return n_or_none(item, name)

    def text(name: str) -> str | None:
        return s_or_none(item, name)

    status = num("last_status")
    return BreakerView(
        gateway=gateway,
        state=text("breaker") or CLOSED,
        opened_at=num("opened_at"),
        opened_by=text("opened_by"),
        closed_at=num("closed_at"),
        next_probe_at=num("next_probe_at"),
        rejected_version=text("rejected_version"),
        last_status=int(status) if status is not None else None,
        last_message=text("last_message"),
        success_at=num("success_at"),
        success_by=text("success_by"),
        success_version=text("success_version"),
        refusal_at=num("refusal_at"),
        refusal_by=text("refusal_by"),
        refusal_version=text("refusal_version"),
    )


class AppBreaker:
    """The gateways' records; `default_gateway` is the one a query's batch read brings along for free."""

    def __init__(
        self,
        table_name: str,
        dynamodb: DynamoDBClient,
        *,
        default_gateway: str = "",
        clock: Callable[[], float] = time.time,
        probe_interval: float = 300.0,
        success_write_interval: float = 60.0,
        cache_seconds: float = 5.0,
    ) -> None:
        self._table = table_name
        self._db = dynamodb
        self.default_gateway = default_gateway
        self._clock = clock
        self.probe_interval = probe_interval
        # A success is written at most this often unless it is news: evidence, not a log of every refresh.
        self.success_write_interval = success_write_interval
        self._cache_seconds = cache_seconds
        self._cached: dict[str, tuple[BreakerView, float]] = {}

    @property
    def _conditional_failed(self) -> type[Exception]:
        failed: type[Exception] = self._db.exceptions.ConditionalCheckFailedException
        return failed

    def _key(self, gateway: str) -> dict[str, dict[str, str]]:
        return {"tenant": {"S": gateway_key(gateway)}}

    def view(self, gateway: str | None = None, *, fresh: bool = False) -> BreakerView:
        """The gateway's record as last read; read again when older than a few seconds (or `fresh`)."""
        gateway = gateway if gateway is not None else self.default_gateway
        now = self._clock()
        cached = self._cached.get(gateway)
        if fresh or cached is None or now - cached[1] > self._cache_seconds:
            item = self._db.get_item(TableName=self._table, Key=self._key(gateway), ConsistentRead=True).get(
                "Item"
            )
            cached = (_view(gateway, item) if item else BreakerView(gateway=gateway)), now
            self._cached[gateway] = cached
        return cached[0]

    def remember(self, gateway: str, item: dict[str, Any] | None) -> None:
        """Take a gateway's record as read along with a pairing, so the refresh path reads it for free."""
        view = _view(gateway, item) if item else BreakerView(gateway=gateway)
        self._cached[gateway] = view, self._clock()

    def forget(self) -> None:
        """Drop every cached record (after a snapshot restore, say)."""
        self._cached.clear()

    def open(self, gateway: str, tenant: str, status: int, message: str, credentials_version: str) -> bool:
        """Open the gateway's breaker; True for the caller that opened it (while open it is only updated)."""
        now = self._clock()
        values = {
            ":open": {"S": OPEN},
            ":now": {"N": repr(now)},
            ":probe": {"N": repr(now + self.probe_interval)},
            ":status": {"N": str(status)},
            ":message": {"S": message},
            ":rejected": {"S": credentials_version},
        }
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(gateway),
                UpdateExpression="SET breaker = :open, breaker_id = :id, gateway = :gateway, "
                "opened_at = :now, opened_by = :tenant, next_probe_at = :now, last_status = :status, "
                "last_message = :message, rejected_version = :rejected",
                ConditionExpression="attribute_not_exists(breaker) OR breaker <> :open",
                ExpressionAttributeValues={
                    **{k: v for k, v in values.items() if k != ":probe"},
                    ":id": {"S": secrets.token_hex(16)},
                    ":tenant": {"S": tenant},
                    ":gateway": {"S": gateway},
                },
            )
        except self._conditional_failed:
            # Already open: a failed probe. Note what Sage said and wait a whole interval for the next one.
            self._db.update_item(
                TableName=self._table,
                Key=self._key(gateway),
                UpdateExpression="SET next_probe_at = :probe, last_status = :status, "
                "last_message = :message, rejected_version = :rejected",
                ConditionExpression="breaker = :open",
                ExpressionAttributeValues={k: v for k, v in values.items() if k != ":now"},
            )
            self._cached.pop(gateway, None)
            return False
        self._cached.pop(gateway, None)
        return True

    def claim_probe(self, gateway: str, tenant: str, credentials_version: str) -> bool:
        """Take the one probe this interval allows (at once when the secret has changed since it opened).

        The pairing whose refusal opened the breaker probes with the same credentials only when the slot
        has stayed free a whole interval more: no other pairing was due, and a breaker must never stay
        open for want of a probe.
        """
        now = self._clock()
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(gateway),
                UpdateExpression="SET next_probe_at = :next, probe_tenant = :tenant",
                ConditionExpression="breaker = :open AND (rejected_version <> :version OR "
                "(next_probe_at <= :now AND (opened_by <> :tenant OR next_probe_at <= :late)))",
                ExpressionAttributeValues={
                    ":next": {"N": repr(now + self.probe_interval)},
                    ":tenant": {"S": tenant},
                    ":open": {"S": OPEN},
                    ":version": {"S": credentials_version},
                    ":now": {"N": repr(now)},
                    ":late": {"N": repr(now - self.probe_interval)},
                },
            )
        except self._conditional_failed:
            return False
        return True

    def close(self, gateway: str, credentials_version: str, tenant: str) -> None:
        """A token call through this gateway just succeeded while its breaker was open: it is healthy."""
        self.note_success(gateway, self._clock(), credentials_version, tenant, close=True)

    def note_success(
        self, gateway: str, at: float, credentials_version: str, tenant: str, *, close: bool = False
    ) -> None:
        """Record a successful token call: at most one write a minute, unless it is news (a refusal was
        recorded since the last one, the credentials changed) or it closes the breaker."""
        values: dict[str, Any] = {
            ":at": {"N": repr(at)},
            ":version": {"S": credentials_version},
            ":recent": {"N": repr(at - self.success_write_interval)},
            ":tenant": {"S": tenant},
            ":gateway": {"S": gateway},
        }
        update = "SET success_at = :at, success_version = :version, success_by = :tenant, gateway = :gateway"
        condition = (
            "attribute_not_exists(success_at) OR success_at < :recent OR success_version <> :version "
            "OR refusal_at > success_at"
        )
        if close:
            update += ", breaker = :closed, closed_at = :at REMOVE next_probe_at, probe_tenant"
            condition += " OR breaker = :open"
            values.update({":closed": {"S": CLOSED}, ":open": {"S": OPEN}})
        with contextlib.suppress(self._conditional_failed):
            self._db.update_item(
                TableName=self._table,
                Key=self._key(gateway),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        self._cached.pop(gateway, None)

    def note_refusal(self, gateway: str, at: float, credentials_version: str, tenant: str) -> BreakerView:
        """Record a held refusal; the record as it was just before, to judge the refusal against at once
        (two pairings refused at the same moment each see the other's)."""
        answer = self._db.update_item(
            TableName=self._table,
            Key=self._key(gateway),
            UpdateExpression="SET refusal_at = :at, refusal_version = :version, refusal_by = :tenant, "
            "gateway = :gateway",
            ExpressionAttributeValues={
                ":at": {"N": repr(at)},
                ":version": {"S": credentials_version},
                ":tenant": {"S": tenant},
                ":gateway": {"S": gateway},
            },
            ReturnValues="ALL_OLD",
        )
        self._cached.pop(gateway, None)
        old = answer.get("Attributes")
        return _view(gateway, old) if old else BreakerView(gateway=gateway)
