"""The app's circuit breaker: when Sage X3 refuses the app itself, stop touching customers' pairings.

A wrong client secret, an unknown client id or a proxy's error page looks, refresh by refresh, like a dead
grant. Judged one pairing at a time, it would expire every pairing it touched. So such refusals open one
breaker for the whole app, kept in DynamoDB beside the pairings (under a key no tenant can take): while it
is open no refresh is attempted and no pairing changes state, except one probe per interval, and the
breaker closes by itself once a probe succeeds. The moment the credentials in the secret change, a probe
may run at once.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

APP_KEY = "~app"  # tenants start with a letter or digit: this key is never a pairing
OPEN, CLOSED = "open", "closed"


@dataclass(frozen=True)
class BreakerView:
    state: str = CLOSED
    opened_at: float | None = None
    opened_by: str | None = None
    next_probe_at: float | None = None
    rejected_version: str | None = None
    last_status: int | None = None
    last_message: str | None = None
    healthy_at: float | None = None
    healthy_version: str | None = None

    @property
    def is_open(self) -> bool:
        return self.state == OPEN


def _view(item: dict[str, Any]) -> BreakerView:
    def num(name: str) -> float | None:
        return float(item[name]["N"]) if name in item else None

    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    status = num("last_status")
    return BreakerView(
        state=text("breaker") or CLOSED,
        opened_at=num("opened_at"),
        opened_by=text("opened_by"),
        next_probe_at=num("next_probe_at"),
        rejected_version=text("rejected_version"),
        last_status=int(status) if status is not None else None,
        last_message=text("last_message"),
        healthy_at=num("healthy_at"),
        healthy_version=text("healthy_version"),
    )


class AppBreaker:
    def __init__(
        self,
        table_name: str,
        dynamodb: Any,
        *,
        clock: Callable[[], float] = time.time,
        probe_interval: float = 300.0,
        health_window: float = 900.0,
        cache_seconds: float = 5.0,
    ) -> None:
        self._table = table_name
        self._db = dynamodb
        self._clock = clock
        self.probe_interval = probe_interval
        self._health_window = health_window
        self._cache_seconds = cache_seconds
        self._cached: BreakerView | None = None
        self._cached_at = 0.0

    @property
    def _conditional_failed(self) -> type[Exception]:
        failed: type[Exception] = self._db.exceptions.ConditionalCheckFailedException
        return failed

    def view(self, *, fresh: bool = False) -> BreakerView:
        """The breaker as last read; read again when older than a few seconds (or `fresh`)."""
        now = self._clock()
        if fresh or self._cached is None or now - self._cached_at > self._cache_seconds:
            item = self._db.get_item(
                TableName=self._table, Key={"tenant": {"S": APP_KEY}}, ConsistentRead=True
            ).get("Item")
            self._cached, self._cached_at = (_view(item) if item else BreakerView()), now
        return self._cached

    def remember(self, item: dict[str, Any] | None) -> None:
        """Take the breaker's item as read along with a pairing, so the refresh path reads it for free."""
        self._cached, self._cached_at = (_view(item) if item else BreakerView()), self._clock()

    def app_is_healthy(self, credentials_version: str) -> bool:
        """A token call with these very credentials succeeded a short while ago (and the breaker is shut)."""
        view = self.view(fresh=True)
        return (
            not view.is_open
            and view.healthy_at is not None
            and view.healthy_at >= self._clock() - self._health_window
            and view.healthy_version == credentials_version
        )

    def open(self, tenant: str, status: int, message: str, credentials_version: str) -> bool:
        """Open the breaker; True for the caller that opened it (a refusal while open only updates it)."""
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
                Key={"tenant": {"S": APP_KEY}},
                UpdateExpression="SET breaker = :open, breaker_id = :id, opened_at = :now, "
                "opened_by = :tenant, next_probe_at = :now, last_status = :status, last_message = :message, "
                "rejected_version = :rejected",
                ConditionExpression="attribute_not_exists(breaker) OR breaker <> :open",
                ExpressionAttributeValues={
                    **{k: v for k, v in values.items() if k != ":probe"},
                    ":id": {"S": secrets.token_hex(16)},
                    ":tenant": {"S": tenant},
                },
            )
        except self._conditional_failed:
            # Already open: a failed probe. Note what Sage said and wait a whole interval for the next one.
            self._db.update_item(
                TableName=self._table,
                Key={"tenant": {"S": APP_KEY}},
                UpdateExpression="SET next_probe_at = :probe, last_status = :status, "
                "last_message = :message, rejected_version = :rejected",
                ConditionExpression="breaker = :open",
                ExpressionAttributeValues={k: v for k, v in values.items() if k != ":now"},
            )
            self._cached = None
            return False
        self._cached = None
        return True

    def claim_probe(self, tenant: str, credentials_version: str) -> bool:
        """Take the one probe this interval allows (at once when the secret has changed since it opened).

        The pairing whose refusal opened the breaker never probes with the same credentials: if its
        grant is what is dead, it would keep the breaker open for the whole app.
        """
        now = self._clock()
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"tenant": {"S": APP_KEY}},
                UpdateExpression="SET next_probe_at = :next, probe_tenant = :tenant",
                ConditionExpression="breaker = :open AND (rejected_version <> :version OR "
                "(next_probe_at <= :now AND opened_by <> :tenant))",
                ExpressionAttributeValues={
                    ":next": {"N": repr(now + self.probe_interval)},
                    ":tenant": {"S": tenant},
                    ":open": {"S": OPEN},
                    ":version": {"S": credentials_version},
                    ":now": {"N": repr(now)},
                },
            )
        except self._conditional_failed:
            return False
        return True

    def close(self, credentials_version: str) -> None:
        """A token call just succeeded: the app is healthy."""
        self.note_healthy(self._clock(), credentials_version, close=True)

    def note_healthy(self, at: float, credentials_version: str, *, close: bool = False) -> None:
        """Record a successful token call; at most one write a minute unless it closes the breaker."""
        values: dict[str, Any] = {
            ":at": {"N": repr(at)},
            ":version": {"S": credentials_version},
            ":recent": {"N": repr(at - 60)},
        }
        update = "SET healthy_at = :at, healthy_version = :version"
        condition = "attribute_not_exists(healthy_at) OR healthy_at < :recent OR healthy_version <> :version"
        if close:
            update += ", breaker = :closed, closed_at = :at REMOVE next_probe_at, probe_tenant"
            condition += " OR breaker = :open"
            values.update({":closed": {"S": CLOSED}, ":open": {"S": OPEN}})
        with contextlib.suppress(self._conditional_failed):
            self._db.update_item(
                TableName=self._table,
                Key={"tenant": {"S": APP_KEY}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        self._cached = None
