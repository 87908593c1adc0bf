"""Keeps pairings' tokens alive: one refresh per pairing at a time, and no issued refresh token ever lost.

Sage rotates the refresh token on every refresh and kills the old one at once, so:
- a DynamoDB lease (conditional on the pairing's version) lets one worker spend the refresh token, while
  the others wait for the version to move and use the new access token;
- a refused grant is declared dead only after re-reading the pairing and any rescued tokens, since a stale
  worker's refusal may just mean another worker already rotated;
- new tokens are written with retries and, failing that, parked in the rescue queue.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from x3link.errors import (
    GrantRefused,
    NotPaired,
    PairingExpired,
    UpstreamError,
    UpstreamTimeout,
    X3LinkError,
)
from x3link.oauth import ClientCredentials, TokenSet, parse_token_response, refresh_grant, refusal_is_final
from x3link.pairing_events import PairingEvents
from x3link.rescue import TokenRescue
from x3link.sage_client import SageX3Client
from x3link.token_store import ACTIVE, Pairing, TokenStore, iso

logger = Logger(child=True)

STORE_ERRORS = (ClientError, BotoCoreError)


@dataclass
class KeeperTiming:
    # Longer than one token call (10 s read timeout + connect retries), so a live holder keeps its lease.
    lease_seconds: float = 30.0
    # A waiter gives up before API Gateway's 29 s integration timeout would cut the request off.
    wait_seconds: float = 15.0
    poll_seconds: float = 0.05
    write_attempts: int = 4
    write_backoff_seconds: float = 0.1


@dataclass
class SweepSummary:
    checked: int = 0
    refreshed: int = 0
    expired: int = 0
    failed: int = 0
    rescued: int = 0
    deferred: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _error_code(exc: Exception) -> str:
    """AWS's error code, never its message (which may quote request values)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


class TokenKeeper:
    def __init__(
        self,
        store: TokenStore,
        sage: SageX3Client,
        credentials: Callable[[], ClientCredentials],
        events: PairingEvents,
        rescue: TokenRescue,
        *,
        refresh_margin: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        timing: KeeperTiming | None = None,
    ) -> None:
        self.store = store
        self._sage = sage
        self._credentials = credentials
        self._events = events
        self._rescue = rescue
        self._margin = refresh_margin
        self._clock = clock
        self._sleep = sleep
        self._timing = timing or KeeperTiming()
        self._owner = uuid.uuid4().hex

    # ------------------------------------------------------------------ queries' entry points
    def active_pairing(self, tenant: str) -> Pairing:
        """The tenant's pairing with an access token good for at least the refresh margin."""
        pairing = self._require_active(self.store.get(tenant), tenant)
        expires = pairing.access_token_expires_at or 0
        if pairing.access_token and expires - self._clock() > self._margin:
            return pairing
        return self.refresh(pairing)

    def after_unauthorised(self, used: Pairing) -> Pairing:
        """Sage refused `used`'s access token: take a newer one if someone refreshed, else refresh now."""
        latest = self._require_active(self.store.get(used.tenant), used.tenant)
        if latest.version != used.version:
            return latest
        return self.refresh(latest)

    # ------------------------------------------------------------------ the refresh itself
    def refresh(self, seen: Pairing) -> Pairing:
        """Refresh `seen` under a lease, or wait for the worker that holds it and use its tokens."""
        started = self._clock()
        deadline = started + self._timing.wait_seconds
        current: Pairing | None = seen
        while True:
            current = self._require_active(current, seen.tenant)
            if current.version != seen.version:
                return current
            now = self._clock()
            if current.refresh_failed_at and current.refresh_failed_at >= started:
                raise UpstreamError("Refreshing this pairing's token failed just now; try again shortly.")
            if not current.leased_at(now):
                lease_until = now + self._timing.lease_seconds
                if self.store.try_lease(seen.tenant, current.version, self._owner, now, lease_until):
                    return self._refresh_leased(current)
            if now >= deadline:
                raise UpstreamTimeout("Another refresh of this pairing did not finish in time.")
            self._sleep(self._timing.poll_seconds)
            current = self.store.get(seen.tenant)

    def _refresh_leased(self, pairing: Pairing) -> Pairing:
        assert pairing.refresh_token
        try:
            payload = self._sage.token(
                pairing.endpoint, refresh_grant(pairing.refresh_token, self._credentials())
            )
        except GrantRefused as refusal:
            if refusal_is_final(refusal.upstream_status, refusal.sage_message):
                return self._grant_refused(pairing, refusal)
            self._release(pairing)
            raise UpstreamError(
                f"Sage X3 refused the refresh for the app itself: {refusal.sage_message}"
            ) from None
        except X3LinkError:
            self._release(pairing)
            raise
        now = self._clock()
        tokens = parse_token_response(
            payload,
            now,
            previous_refresh_token=pairing.refresh_token,
            previous_refresh_expires_at=pairing.refresh_token_expires_at,
        )
        return self._store_refreshed(pairing, tokens, now)

    def _release(self, pairing: Pairing) -> None:
        try:
            self.store.release_lease(pairing.tenant, self._owner, self._clock())
        except STORE_ERRORS:
            logger.warning(
                "Could not release a refresh lease; it lapses by itself", extra={"tenant": pairing.tenant}
            )

    def _store_refreshed(self, pairing: Pairing, tokens: TokenSet, now: float) -> Pairing:
        for attempt in range(self._timing.write_attempts):
            try:
                stored = self.store.commit_refresh(pairing.tenant, pairing.version, tokens, now)
            except STORE_ERRORS as exc:
                logger.warning(
                    "Storing refreshed tokens failed",
                    extra={"tenant": pairing.tenant, "attempt": attempt + 1, "error": _error_code(exc)},
                )
                self._sleep(self._timing.write_backoff_seconds * 2**attempt)
                continue
            if stored is None:
                # Re-paired or expired meanwhile: the newer state wins; our tokens belong to an old grant.
                logger.warning(
                    "Pairing changed during refresh; keeping the newer state",
                    extra={"tenant": pairing.tenant},
                )
                return self._require_active(self.store.get(pairing.tenant), pairing.tenant)
            logger.info("Tokens refreshed", extra={"tenant": pairing.tenant, "version": stored.version})
            return stored
        try:
            self._rescue.save(pairing.tenant, pairing.version, tokens)
        except Exception:
            logger.critical(
                "Refreshed tokens could neither be stored nor rescued: the pairing will need to be renewed",
                extra={"tenant": pairing.tenant},
            )
            raise UpstreamError("The refreshed tokens could not be stored.") from None
        logger.error("Refreshed tokens parked in the rescue queue", extra={"tenant": pairing.tenant})
        # The caller still gets a working access token; the lease stays until the rescue is applied.
        return Pairing(
            **{
                **pairing.__dict__,
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token,
                "access_token_expires_at": tokens.access_token_expires_at,
                "refresh_token_expires_at": tokens.refresh_token_expires_at,
            }
        )

    def _grant_refused(self, pairing: Pairing, refusal: GrantRefused) -> Pairing:
        """Declare the grant dead, unless another worker (or a rescued write) has rotated it meanwhile."""
        self.recover_rescued(wait_seconds=1)
        latest = self.store.get(pairing.tenant)
        if latest is not None and latest.version != pairing.version:
            return self._require_active(latest, pairing.tenant)
        now = self._clock()
        if self.store.mark_expired(pairing.tenant, pairing.version, now):
            logger.warning(
                "Pairing expired: Sage refused its refresh token",
                extra={"tenant": pairing.tenant, "upstream_status": refusal.upstream_status},
            )
            self._events.pairing_expired(pairing.tenant, pairing.customer, refusal.sage_message, iso(now))
        raise PairingExpired("Sage X3 no longer accepts this pairing: the customer must pair again.")

    def recover_rescued(self, wait_seconds: int = 0) -> int:
        """Store tokens parked by earlier failed writes."""

        def apply(tenant: str, base_version: int, tokens: TokenSet) -> bool:
            try:
                stored = self.store.commit_refresh(tenant, base_version, tokens, self._clock())
            except STORE_ERRORS:
                return False
            if stored is None:
                logger.warning("Rescued tokens superseded", extra={"tenant": tenant})
            return True

        try:
            return self._rescue.drain(apply, wait_seconds=wait_seconds)
        except STORE_ERRORS:
            logger.warning("The rescue queue could not be read")
            return 0

    # ------------------------------------------------------------------ the keep-alive sweep
    def sweep(self, keep_alive_seconds: float, *, stop_at: float | None = None) -> SweepSummary:
        """Refresh every active pairing whose refresh token expires within the keep-alive window.

        Past `stop_at` (the invocation's time running out) the rest are only counted as deferred: the next
        scheduled run picks them up, long before their refresh tokens can expire.
        """
        summary = SweepSummary(rescued=self.recover_rescued())
        cutoff = self._clock() + keep_alive_seconds
        for tenant in self.store.due_for_refresh(cutoff):
            summary.checked += 1
            if stop_at is not None and self._clock() >= stop_at:
                summary.deferred += 1
                continue
            try:
                pairing = self.store.get(tenant)
                if pairing is None or pairing.status != ACTIVE:
                    continue
                if (pairing.refresh_token_expires_at or 0) > cutoff:
                    continue
                self.refresh(pairing)
                summary.refreshed += 1
            except PairingExpired:
                summary.expired += 1
            except (X3LinkError, *STORE_ERRORS) as exc:
                summary.failed += 1
                message = exc.message if isinstance(exc, X3LinkError) else _error_code(exc)
                summary.failures.append({"tenant": tenant, "error": message})
                logger.warning("Keep-alive refresh failed", extra={"tenant": tenant, "error": message})
        return summary

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _require_active(pairing: Pairing | None, tenant: str) -> Pairing:
        if pairing is None:
            raise NotPaired(f"Tenant {tenant!r} is not paired.")
        if pairing.status != ACTIVE:
            raise PairingExpired("This pairing has expired: the customer must pair again.")
        return pairing
